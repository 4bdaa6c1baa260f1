//! Checks for single attribute values: ports, host names, client names, mail addresses,
//! limits, the server URL and listen address, and "did you mean" suggestions.
//!
//! Each returns the parsed value or the sentence that follows `attr "value" …` in a message
//! (what is wrong, then what is expected). Nothing here knows about elements or lines; that
//! is [`validate`](super::validate)'s job.

use std::net::{IpAddr, SocketAddr};

use super::duration::parse_duration;
use super::model::AlertKind;

pub(super) type Checked<T> = Result<T, String>;

pub(super) fn port(text: &str) -> Checked<u16> {
    match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("is not a port: expected a whole number from 1 to 65535".into()),
    }
}

/// What `ip` and `<smtp host>` take: an IPv4/IPv6 address or a host name.
pub(super) fn host(text: &str) -> Checked<()> {
    if text.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if inner.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "has brackets: expected the bare address, e.g. \"{inner}\" \
                 (the port goes in port=)"
            ));
        }
    }
    if text.is_empty() {
        return Err("is empty: expected an IP address or a host name".into());
    }
    if text.chars().any(char::is_whitespace) {
        return Err("contains spaces: expected one IP address or host name".into());
    }
    if let Some((h, p)) = text.rsplit_once(':') {
        if !h.contains(':') && p.parse::<u16>().is_ok() {
            return Err(format!(
                "includes a port: expected only the address, e.g. \"{h}\", with port=\"{p}\""
            ));
        }
    }
    let ok_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok_chars || text.starts_with(['-', '.']) || text.len() > 253 {
        return Err(
            "is not an IP address or host name: expected e.g. 10.0.0.11, fe80::1 or web1.example.com"
                .into(),
        );
    }
    Ok(())
}

/// The characters of a client name.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '[' | ']')
}

/// Whether `text` could be a client's name (see [`client_name`]): what monitord asks of a
/// name in a URL before it logs it as it is.
pub fn is_client_name(text: &str) -> bool {
    client_name(text).is_ok()
}

/// Client names: letters, digits and `. _ - : [ ]`, so they are safe in URL paths (after
/// percent-encoding), in log fields and in key derivation.
pub(super) fn client_name(text: &str) -> Checked<()> {
    if text.is_empty() {
        return Err("is empty: expected a name of letters, digits and . _ - : [ ]".into());
    }
    if let Some(bad) = text.chars().find(|&c| !name_char(c)) {
        return Err(format!(
            "contains {bad:?}: a name may hold only letters, digits and . _ - : [ ]"
        ));
    }
    if text.len() > 255 {
        return Err("is longer than 255 characters".into());
    }
    Ok(())
}

/// The name a client gets without `name=`: `ip` on port 22, else `ip:port` or `[v6]:port`.
pub(super) fn default_name(ip: &str, port: u16) -> String {
    match (port, ip.contains(':')) {
        (22, _) => ip.to_string(),
        (_, true) => format!("[{ip}]:{port}"),
        (_, false) => format!("{ip}:{port}"),
    }
}

pub(super) fn username(text: &str) -> Checked<()> {
    if text.is_empty() {
        return Err("is empty: expected the user to log in as over SSH".into());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters: expected one user name".into());
    }
    if text.starts_with('-') {
        return Err("starts with '-': expected a user name, not an option".into());
    }
    Ok(())
}

/// A comma-separated list of `local@domain` addresses. Empty items (a trailing comma) are
/// skipped; an empty list means "no mail".
pub(super) fn mail_list(text: &str) -> Checked<Vec<String>> {
    let commas = "separate addresses with commas, e.g. \"ops@example.com, oncall@example.com\"";
    if text.contains(';') {
        return Err(format!("uses ';': {commas}"));
    }
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.contains(char::is_whitespace) {
            return Err(format!("has {item:?}: {commas}"));
        }
        mail_address(item).map_err(|problem| {
            if item == text.trim() {
                problem
            } else {
                format!("has {item:?}, which {problem}")
            }
        })?;
        out.push(item.to_string());
    }
    Ok(out)
}

/// One `local@domain` address; `root@localhost` is fine, `nobody` is not.
pub(super) fn mail_address(text: &str) -> Checked<()> {
    let expected = "expected an address like ops@example.com";
    let Some((local, domain)) = text.split_once('@') else {
        return Err(format!("has no @: {expected}"));
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:@\"".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !local_ok || !domain_ok {
        return Err(format!("is not a valid address: {expected}"));
    }
    Ok(())
}

/// A plain decimal: digits with at most one `.`; no sign, exponent, `inf` or `NaN`.
fn decimal(text: &str) -> Option<f64> {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let dots = text.chars().filter(|&c| c == '.').count();
    if digits == 0 || dots > 1 || digits + dots != text.len() {
        return None;
    }
    text.parse().ok()
}

/// A `limit` or `clear` value for `kind`, in the unit [`AlertRule`](super::AlertRule) keeps.
pub(super) fn limit(kind: AlertKind, text: &str) -> Checked<f64> {
    let text = text.trim();
    match kind {
        k if k.is_percent() => {
            let number = text.strip_suffix('%').unwrap_or(text).trim_end();
            match decimal(number) {
                Some(p) if p <= 100.0 => Ok(p),
                Some(_) => Err("is over 100%: expected a percentage from 0 to 100".into()),
                None => Err(
                    "is not a percentage: expected a number from 0 to 100, e.g. \"90%\" or \"90\""
                        .into(),
                ),
            }
        }
        AlertKind::Load => decimal(text).ok_or_else(|| {
            if text.ends_with('%') {
                "is a percentage: the load limit is a plain number (load average), e.g. \"8\""
                    .into()
            } else {
                "is not a number: expected a load average of 0 or more, e.g. \"8\" or \"2.5\""
                    .into()
            }
        }),
        AlertKind::Processes => match text.parse::<u64>() {
            Ok(n) if !text.starts_with('+') => Ok(n as f64),
            _ => Err("is not a whole number: expected a process count, e.g. \"900\"".into()),
        },
        _ => match parse_duration(text) {
            Some(d) => Ok(d.as_secs() as f64),
            None => Err(
                "is not a duration: expected an uptime such as \"10m\", \"1h30m\" or \"600\""
                    .into(),
            ),
        },
    }
}

/// Formats a limit for messages the way it would be written: `90%`, `8`, `10m`.
pub(super) fn show_limit(kind: AlertKind, value: f64) -> String {
    match kind {
        k if k.is_percent() => format!("{value}%"),
        AlertKind::Uptime => {
            super::duration::format_duration(std::time::Duration::from_secs(value as u64))
        }
        _ => format!("{value}"),
    }
}

/// `<server url>`: `http://host[:port]`, returned without a trailing `/`.
pub(super) fn server_url(text: &str) -> Checked<String> {
    let expected = "expected http://HOST or http://HOST:PORT, e.g. \"http://10.0.0.5:8750\"";
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "uses https: agents speak plain HTTP (every body is already encrypted and \
             authenticated); {expected}"
        ));
    }
    let Some(rest) = text.get(7..).filter(|_| lower.starts_with("http://")) else {
        return Err(format!("does not start with http://: {expected}"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(format!("has a path, query or user part: {expected}"));
    }
    let (host_part, port_part) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("has an unclosed [: {expected}"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "has {addr:?} in brackets, not an IPv6 address: {expected}"
            ));
        }
        let port_part = match (after, after.strip_prefix(':')) {
            ("", _) => None,
            (_, Some(p)) => Some(p),
            (_, None) => return Err(format!("has text after the ]: {expected}")),
        };
        (None, port_part)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(rest), None),
        }
    };
    if let Some(h) = host_part {
        if h.is_empty() || host(h).is_err() {
            return Err(format!("has no valid host: {expected}"));
        }
    }
    if let Some(p) = port_part {
        if port(p).is_err() {
            return Err(format!("has a bad port: {expected}"));
        }
    }
    Ok(format!("{}{}", &text[..7], rest))
}

/// `<server listen>`: a literal socket address (port 0 allowed, for tests).
pub(super) fn listen(text: &str) -> Checked<String> {
    match text.parse::<SocketAddr>() {
        Ok(addr) => Ok(addr.to_string()),
        Err(_) => Err(
            "is not an address and port: expected e.g. \"127.0.0.1:8750\", \
             \"0.0.0.0:8750\" or \"[::]:8750\" (a host name is not allowed)"
                .into(),
        ),
    }
}

/// `tags`: space-separated words of `[a-z0-9_.-]`, each kept once, in order.
pub(super) fn tags(text: &str) -> Checked<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if let Some(bad) = word.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        }) {
            let hint = if word.contains(',') {
                " (separate tags with spaces, not commas)"
            } else if bad.is_ascii_uppercase() {
                " (tags are lower case)"
            } else {
                ""
            };
            return Err(format!(
                "has {word:?} with {bad:?}{hint}: expected space-separated words of a-z, 0-9 \
                 and _ . -, e.g. tags=\"web prod\""
            ));
        }
        if !out.iter().any(|t| t == word) {
            out.push(word.to_string());
        }
    }
    Ok(out)
}

/// The closest of `known` to a misspelt `name`, when it is close enough to be a likely typo.
pub(super) fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let name = norm(name);
    let (best, distance) = known
        .iter()
        .map(|k| (*k, edit_distance(&name, &norm(k))))
        .min_by_key(|(_, d)| *d)?;
    let allowed = if name.len() <= 4 { 1 } else { 2 };
    (distance <= allowed || (distance <= 3 && (best.contains(&name) || name.contains(best))))
        .then_some(best)
}

/// Optimal-string-alignment distance: like Levenshtein, but a swap of two neighbours (`prot`)
/// counts as one typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_defaults() {
        assert_eq!(default_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(default_name("10.0.0.1", 2222), "10.0.0.1:2222");
        assert_eq!(default_name("::1", 2222), "[::1]:2222");
        assert!(client_name("[::1]:2222").is_ok());
        assert!(client_name("web_1.example-2").is_ok());
        assert!(client_name("web 1").is_err());
        assert!(client_name("web/1").is_err());
        assert!(client_name("").is_err());
    }

    #[test]
    fn hosts() {
        for ok in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "web1",
            "web-1.example.com",
            "localhost",
        ] {
            assert!(host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "[::1]",
            "10.0.0.1:22",
            "a b",
            "-oProxyCommand=x",
            "web/1",
            "ä",
        ] {
            assert!(host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mail() {
        assert!(mail_address("root@localhost").is_ok());
        assert!(mail_address("ops.team+x@mail.example.com").is_ok());
        for bad in ["nobody", "@x", "a@", "a@b..c", "a b@c", "a@-b", "<a@b>"] {
            assert!(mail_address(bad).is_err(), "{bad}");
        }
        assert_eq!(
            mail_list("a@b.c, d@e ,").unwrap(),
            vec!["a@b.c".to_string(), "d@e".to_string()]
        );
        assert!(mail_list("").unwrap().is_empty());
        assert!(mail_list("a@b; c@d").unwrap_err().contains("commas"));
        assert!(mail_list("a@b c@d").unwrap_err().contains("commas"));
        assert_eq!(
            mail_list("nobody").unwrap_err(),
            mail_address("nobody").unwrap_err()
        );
        assert!(
            mail_list("a@b, nobody")
                .unwrap_err()
                .starts_with("has \"nobody\", which has no @")
        );
    }

    #[test]
    fn limits() {
        assert_eq!(limit(AlertKind::Memory, "50%"), Ok(50.0));
        assert_eq!(limit(AlertKind::Cpu, "90"), Ok(90.0));
        assert_eq!(limit(AlertKind::Disk, "92.5 %"), Ok(92.5));
        assert_eq!(limit(AlertKind::Swap, "0"), Ok(0.0));
        assert_eq!(limit(AlertKind::Memory, "100%"), Ok(100.0));
        for bad in ["101%", "-1%", "NaN", "inf", "5e1", "", "%", "fifty"] {
            assert!(limit(AlertKind::Memory, bad).is_err(), "{bad}");
        }
        assert_eq!(limit(AlertKind::Load, "2.5"), Ok(2.5));
        assert!(limit(AlertKind::Load, "-1").is_err());
        assert!(
            limit(AlertKind::Load, "50%")
                .unwrap_err()
                .contains("percentage")
        );
        assert_eq!(limit(AlertKind::Processes, "900"), Ok(900.0));
        assert!(limit(AlertKind::Processes, "9.5").is_err());
        assert_eq!(limit(AlertKind::Uptime, "10m"), Ok(600.0));
        assert!(limit(AlertKind::Uptime, "10%").is_err());
        assert_eq!(show_limit(AlertKind::Uptime, 600.0), "10m");
        assert_eq!(show_limit(AlertKind::Cpu, 90.0), "90%");
    }

    #[test]
    fn urls_and_listen() {
        assert_eq!(
            server_url("http://10.0.0.5:8750/").unwrap(),
            "http://10.0.0.5:8750"
        );
        assert!(server_url("http://mon.example.com").is_ok());
        assert!(server_url("http://[::1]:8750").is_ok());
        for bad in [
            "https://x",
            "10.0.0.5:8750",
            "http://",
            "http://x:0",
            "http://x:99999",
            "http://x/v1",
            "http://[nope]:1",
        ] {
            assert!(server_url(bad).is_err(), "{bad}");
        }
        assert_eq!(listen("127.0.0.1:0").unwrap(), "127.0.0.1:0");
        assert!(listen("[::]:8750").is_ok());
        assert!(listen("localhost:8750").is_err());
        assert!(listen("8750").is_err());
    }

    #[test]
    fn suggestions() {
        let known = [
            "ip",
            "port",
            "username",
            "password",
            "password-file",
            "key",
            "mail",
        ];
        assert_eq!(suggest("usrname", &known), Some("username"));
        assert_eq!(suggest("password_file", &known), Some("password-file"));
        assert_eq!(suggest("emails", &known), Some("mail"));
        assert_eq!(suggest("timeout", &known), None);
        assert_eq!(suggest("hostname", &known), None);
        assert_eq!(suggest("prot", &known), Some("port"));
    }
}
