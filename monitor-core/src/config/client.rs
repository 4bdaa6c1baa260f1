//! `<client>`, `<defaults>` and `<alert>`: checked one by one, then merged so every
//! [`Client`] comes out complete (the rest of the code never looks at `<defaults>`).
//!
//! Merging rules (DESIGN.md): a client's own attributes win; naming any of `password`,
//! `password-file`, `key` replaces the default's authentication whole; a client's own alert of
//! a type replaces the default alert of that type. Not here: value syntax ([`values`]), the
//! file's shape ([`validate`](super::validate)).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::checker::Checker;
use super::duration::parse_duration;
use super::model::{
    AlertKind, AlertRule, Audience, Auth, Client, DEFAULT_INTERVAL, MAX_INTERVAL, Secret,
};
use super::parse::RawElement;
use super::values::{self, suggest};

const CLIENT_ATTRS: [&str; 10] = [
    "name",
    "ip",
    "port",
    "username",
    "password",
    "password-file",
    "key",
    "mail",
    "interval",
    "tags",
];
const DEFAULTS_ATTRS: [&str; 8] = [
    "port",
    "username",
    "password",
    "password-file",
    "key",
    "mail",
    "interval",
    "tags",
];
const ALERT_ATTRS: [&str; 5] = ["type", "limit", "clear", "for", "repeat"];
const AUTH_ATTRS: [&str; 3] = ["password", "password-file", "key"];
/// Past this many clients without mail, one summary warning replaces one line per client.
const MAIL_WARNINGS_LISTED: usize = 3;

/// What `<defaults>` or one `<client>` says, before merging; `None`: not given (or invalid,
/// which is already reported).
#[derive(Debug, Default)]
pub(super) struct Fields {
    port: Option<u16>,
    username: Option<String>,
    auth: Option<Auth>,
    mail: Option<Vec<String>>,
    interval: Option<Duration>,
    tags: Vec<String>,
    alerts: BTreeMap<AlertKind, AlertRule>,
    /// `username` was written, even if invalid (then already reported, not "missing" again).
    username_given: bool,
}

pub(super) type Defaults = Fields;

pub(super) fn defaults(ck: &mut Checker, el: Option<&RawElement>) -> Defaults {
    let Some(el) = el else {
        return Fields::default();
    };
    for attr in ["ip", "name"] {
        if el.attr(attr).is_some() {
            ck.error(
                el,
                format!(
                    "`{attr}` cannot be set in <defaults>: every <client> gives its own \
                     (names must be unique)"
                ),
            );
        }
    }
    // ip and name were reported above, in words that fit <defaults>.
    ck.check_attrs_except(el, &DEFAULTS_ATTRS, &["ip", "name"]);
    fields(ck, el)
}

/// Every `<client>`, merged with `defaults`, with names checked for uniqueness and a warning
/// for clients that get no mail.
pub(super) fn clients(ck: &mut Checker, defaults: &Defaults, els: &[&RawElement]) -> Vec<Client> {
    let mut out: Vec<Client> = Vec::with_capacity(els.len());
    let mut names: HashMap<String, u32> = HashMap::with_capacity(els.len());
    let mut without_mail = Vec::new();
    for el in els {
        let Some(client) = client(ck, defaults, el) else {
            continue;
        };
        if let Some(first) = names.get(&client.name) {
            let how = if el.attr("name").is_some() {
                String::new()
            } else {
                " (derived from ip and port; give each a distinct name=\"…\")".to_string()
            };
            ck.error(
                el,
                format!(
                    "name {:?}{how} is already used by the client at line {first}: names must be unique",
                    client.name
                ),
            );
        } else {
            names.insert(client.name.clone(), client.line);
        }
        if client.mail.is_empty() && el.attr("mail").is_none() && defaults.mail.is_none() {
            without_mail.push((client.name.clone(), client.line));
        }
        out.push(client);
    }
    // With errors to fix first, a list of clients without mail is only noise.
    if !ck.has_errors() {
        warn_without_mail(ck, &without_mail);
    }
    out
}

fn warn_without_mail(ck: &mut Checker, without: &[(String, u32)]) {
    let consequence = "its alerts are recorded but mailed to nobody; add mail=\"…\" \
                       to it or to <defaults> (mail=\"\" silences this)";
    if without.len() <= MAIL_WARNINGS_LISTED {
        for (name, line) in without {
            ck.warn_at(
                *line,
                "client",
                format!("{name:?} has no mail: {consequence}"),
            );
        }
        return;
    }
    let shown: Vec<String> = without
        .iter()
        .take(MAIL_WARNINGS_LISTED)
        .map(|(n, _)| format!("{n:?}"))
        .collect();
    ck.warn_at(
        without[0].1,
        "client",
        format!(
            "{} clients have no mail ({}, and {} more): their alerts are recorded but mailed \
             to nobody; add mail=\"…\" to <defaults> or to each client (mail=\"\" silences this)",
            without.len(),
            shown.join(", "),
            without.len() - MAIL_WARNINGS_LISTED
        ),
    );
}

/// One client merged with the defaults; `None` when it has no usable name (already reported).
fn client(ck: &mut Checker, defaults: &Defaults, el: &RawElement) -> Option<Client> {
    ck.check_attrs(el, &CLIENT_ATTRS);
    let own = fields(ck, el);
    let ip = match el.attr("ip") {
        None => {
            ck.error(
                el,
                "`ip` is missing: expected the address or host name to SSH to, e.g. ip=\"10.0.0.11\"",
            );
            None
        }
        Some(v) => ck
            .value(el, "ip", v, values::host(v))
            .map(|()| v.to_string()),
    };
    if el.attr("username").is_none() && !defaults.username_given {
        ck.error(
            el,
            "`username` is missing (and <defaults> gives none): expected the SSH user, \
             e.g. username=\"monitor\"",
        );
    }
    let port = own.port.or(defaults.port).unwrap_or(22);
    let name = match (el.attr("name"), &ip) {
        (Some(n), _) => ck
            .value(el, "name", n, values::client_name(n))
            .map(|()| n.to_string()),
        (None, Some(ip)) => Some(values::default_name(ip, port)),
        (None, None) => None,
    }?;
    let mut alerts = defaults.alerts.clone();
    alerts.extend(own.alerts);
    // A client's tags add to those of <defaults>.
    let mut tags = defaults.tags.clone();
    for tag in own.tags {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Some(Client {
        name,
        ip: ip.unwrap_or_default(),
        port,
        username: own
            .username
            .or_else(|| defaults.username.clone())
            .unwrap_or_default(),
        auth: own
            .auth
            .or_else(|| defaults.auth.clone())
            .unwrap_or(Auth::Default),
        mail: own
            .mail
            .or_else(|| defaults.mail.clone())
            .unwrap_or_default(),
        interval: own
            .interval
            .or(defaults.interval)
            .unwrap_or(DEFAULT_INTERVAL),
        tags,
        alerts: alerts.into_values().collect(),
        line: el.line,
    })
}

/// The attributes `<client>` and `<defaults>` share, and their `<alert>` children.
fn fields(ck: &mut Checker, el: &RawElement) -> Fields {
    ck.check_text(el);
    let mut f = Fields::default();
    if let Some(v) = el.attr("port") {
        f.port = ck.value(el, "port", v, values::port(v));
    }
    if let Some(v) = el.attr("username") {
        f.username_given = true;
        f.username = ck
            .value(el, "username", v, values::username(v))
            .map(|()| v.to_string());
    }
    if let Some(v) = el.attr("mail") {
        f.mail = ck.value(el, "mail", v, values::mail_list(v));
    }
    if let Some(v) = el.attr("interval") {
        let checked = match parse_duration(v) {
            Some(d) if d.is_zero() => {
                Err("is zero: expected a sampling period such as \"30s\" or \"1m\"".into())
            }
            Some(d) if d > MAX_INTERVAL => {
                Err("is longer than a day: expected a sampling period up to \"1d\"".into())
            }
            Some(d) => Ok(d),
            None => Err(
                "is not a duration: expected e.g. \"30s\", \"5m\", \"1h\" or a number of seconds"
                    .into(),
            ),
        };
        f.interval = ck.value(el, "interval", v, checked);
    }
    if let Some(v) = el.attr("tags") {
        f.tags = ck.value(el, "tags", v, values::tags(v)).unwrap_or_default();
    }
    f.auth = auth(ck, el);
    f.alerts = alerts(ck, el);
    f
}

/// The element's own authentication, if it names any of password / password-file / key.
fn auth(ck: &mut Checker, el: &RawElement) -> Option<Auth> {
    let given: Vec<&str> = AUTH_ATTRS
        .into_iter()
        .filter(|a| el.attr(a).is_some())
        .collect();
    if el.attr("password").is_some() {
        ck.saw_password(el);
    }
    match given.as_slice() {
        [] => None,
        [one] => {
            let value = el.attr(one).unwrap_or_default();
            if value.is_empty() {
                ck.bad_value(
                    el,
                    one,
                    value,
                    "is empty: remove it to log in with the ssh agent, or give a value".into(),
                );
                return None;
            }
            if *one == "password" {
                return Some(Auth::Password(Secret::new(value.to_string())));
            }
            let path = ck.path_attr(el, one)?;
            ck.warn_unreadable(el, one, &path, Audience::Deployer);
            Some(if *one == "key" {
                Auth::Key(path)
            } else {
                Auth::PasswordFile(path)
            })
        }
        many => {
            ck.error(
                el,
                format!(
                    "gives {}: choose one way to log in (password, password-file or key)",
                    many.iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
            None
        }
    }
}

fn alerts(ck: &mut Checker, el: &RawElement) -> BTreeMap<AlertKind, AlertRule> {
    let mut out = BTreeMap::new();
    let mut lines: HashMap<AlertKind, u32> = HashMap::new();
    for child in &el.children {
        if child.name != "alert" {
            ck.unknown_element(child, &el.name, &["alert"]);
            continue;
        }
        let Some(rule) = alert(ck, child) else {
            continue;
        };
        if let Some(first) = lines.get(&rule.kind) {
            ck.error(
                child,
                format!(
                    "a second alert of type \"{}\" in this <{}> (the first is at line {first}): \
                     one alert per type; merge them",
                    rule.kind, el.name
                ),
            );
            continue;
        }
        lines.insert(rule.kind, child.line);
        out.insert(rule.kind, rule);
    }
    out
}

fn alert(ck: &mut Checker, el: &RawElement) -> Option<AlertRule> {
    ck.check_attrs(el, &ALERT_ATTRS);
    ck.check_leaf(el);
    let type_names = AlertKind::ALL.map(AlertKind::as_str);
    let kind = match el.attr("type") {
        None => {
            ck.error(
                el,
                format!(
                    "`type` is missing: expected one of {}",
                    type_names.join(", ")
                ),
            );
            None
        }
        Some(t) => {
            let checked = AlertKind::from_name(t).ok_or_else(|| {
                let hint = suggest(t, &type_names)
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                format!(
                    "is not an alert type{hint}: expected one of {}",
                    type_names.join(", ")
                )
            });
            ck.value(el, "type", t, checked)
        }
    };
    let hold = match el.attr("for") {
        Some(v) => ck.value(el, "for", v, duration(v, true)),
        None => Some(Duration::ZERO),
    };
    let repeat = match el.attr("repeat") {
        Some(v) => ck.value(el, "repeat", v, duration(v, false)).map(Some),
        None => Some(None),
    };
    let kind = kind?;
    let Some(limit_text) = el.attr("limit") else {
        ck.error(
            el,
            format!(
                "`limit` is missing: expected e.g. limit=\"{}\"",
                example_limit(kind)
            ),
        );
        return None;
    };
    let limit = ck.value(el, "limit", limit_text, values::limit(kind, limit_text))?;
    let clear = match el.attr("clear") {
        None => limit,
        Some(v) => {
            let clear = ck.value(el, "clear", v, values::limit(kind, v))?;
            check_clear_side(ck, el, kind, limit, clear)?
        }
    };
    Some(AlertRule {
        kind,
        limit,
        clear,
        hold: hold?,
        repeat: repeat?,
    })
}

/// A `clear` on the firing side of `limit` would resolve the alert while it still fires.
fn check_clear_side(
    ck: &mut Checker,
    el: &RawElement,
    kind: AlertKind,
    limit: f64,
    clear: f64,
) -> Option<f64> {
    let (wrong, side, back) = if kind.fires_below() {
        (clear < limit, "below", "at or above")
    } else {
        (clear > limit, "above", "at or below")
    };
    if wrong {
        ck.error(
            el,
            format!(
                "`clear` {} is {side} `limit` {}: {} {kind} alert fires {side} its limit and \
                 resolves once the value is back {back} clear, so clear must be {back} the limit",
                values::show_limit(kind, clear),
                values::show_limit(kind, limit),
                if kind == AlertKind::Uptime { "an" } else { "a" },
            ),
        );
        return None;
    }
    Some(clear)
}

fn duration(text: &str, zero_ok: bool) -> values::Checked<Duration> {
    match parse_duration(text) {
        Some(d) if d.is_zero() && !zero_ok => {
            Err("is zero: expected how often to re-send, e.g. \"1h\" (leave it out for never)".into())
        }
        Some(d) => Ok(d),
        None => Err("is not a duration: expected e.g. \"45s\", \"5m\", \"2h\", \"1d\", \"1h30m\" or seconds".into()),
    }
}

fn example_limit(kind: AlertKind) -> &'static str {
    match kind {
        k if k.is_percent() => "90%",
        AlertKind::Load => "8",
        AlertKind::Processes => "900",
        _ => "10m",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{AlertKind, Auth, Config, Invalid, parse_bytes};

    fn load(text: &str) -> Result<Config, Invalid> {
        parse_bytes(text.as_bytes(), Path::new("/srv/mon/config.xml")).map(|l| l.config)
    }

    #[test]
    fn own_authentication_replaces_the_default_whole() {
        let config = load(
            r#"<m><defaults username="u" key="id_ed25519"/>
                 <client ip="a"/><client ip="b" password="pw"/><client ip="c" username="v"/></m>"#,
        )
        .unwrap();
        assert_eq!(
            config.clients[0].auth,
            Auth::Key("/srv/mon/id_ed25519".into())
        );
        assert!(matches!(&config.clients[1].auth, Auth::Password(p) if p.expose() == "pw"));
        assert_eq!(config.clients[2].username, "v");
        assert_eq!(config.clients[2].auth, config.clients[0].auth);
    }

    #[test]
    fn own_alert_replaces_the_default_of_its_type_only() {
        let config = load(
            r#"<m><defaults username="u"><alert type="cpu" limit="90"/><alert type="disk" limit="80"/></defaults>
                 <client ip="a"><alert type="cpu" limit="50" for="1m"/><alert type="load" limit="4"/></client></m>"#,
        )
        .unwrap();
        let rules: Vec<_> = config.clients[0]
            .alerts
            .iter()
            .map(|r| (r.kind, r.limit, r.hold.as_secs()))
            .collect();
        assert_eq!(
            rules,
            [
                (AlertKind::Cpu, 50.0, 60),
                (AlertKind::Disk, 80.0, 0),
                (AlertKind::Load, 4.0, 0)
            ]
        );
        assert_eq!(config.alert_rule_count(), 3);
    }

    #[test]
    fn tags_add_to_the_defaults_once_each() {
        let config = load(
            r#"<m><defaults username="u" tags="prod web"/>
                 <client ip="a" tags="db  prod"/><client ip="b"/></m>"#,
        )
        .unwrap();
        assert_eq!(config.clients[0].tags, ["prod", "web", "db"]);
        assert_eq!(config.clients[1].tags, ["prod", "web"]);
    }

    #[test]
    fn the_derived_name_uses_the_inherited_port() {
        let config = load(
            r#"<m><defaults username="u" port="2200"/><client ip="::1"/><client ip="h" port="22"/></m>"#,
        )
        .unwrap();
        assert_eq!(config.clients[0].name, "[::1]:2200");
        assert_eq!(config.clients[1].name, "h");
    }

    #[test]
    fn an_interval_is_at_most_a_day() {
        // 3 x u64::MAX seconds (monitord's host-down limit) overflowed Duration's multiplication.
        for interval in ["1d1s", "18446744073709551615"] {
            let errors = load(&format!(
                r#"<m><client ip="a" username="u" interval="{interval}"/></m>"#
            ))
            .unwrap_err()
            .errors;
            assert!(
                errors[0].message.contains("longer than a day"),
                "{interval}: {errors:?}"
            );
        }
        let config = load(r#"<m><client ip="a" username="u" interval="1d"/></m>"#).unwrap();
        assert_eq!(config.clients[0].interval, super::super::MAX_INTERVAL);
    }

    #[test]
    fn an_invalid_default_username_is_reported_once() {
        let errors = load(r#"<m><defaults username=""/><client ip="a"/><client ip="b"/></m>"#)
            .unwrap_err()
            .errors;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].element, "defaults");
    }
}
