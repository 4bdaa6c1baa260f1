//! `<web>`: monitord's read-only web listener (the API, `/metrics`, the dashboard).
//!
//! Secure by default (DESIGN.md): it listens on loopback unless told otherwise, and a `listen`
//! off loopback is refused unless both basic-auth users (`users-file`) and TLS (`cert-file` +
//! `key-file`) are set, so the fleet's data is neither open nor sniffable. A `users-file` that
//! others may access (any bit of mode 007) is refused here when this user can stat it; monitord
//! checks again when it reads the file. Not here: reading the users or the certificate
//! (monitord's `web` module does, as the daemon's user).

use std::net::SocketAddr;

use super::checker::Checker;
use super::model::{Audience, Tls, Web};
use super::parse::RawElement;
use super::values;

/// Default `<web listen>`.
const WEB_ATTRS: [&str; 5] = ["listen", "users-file", "cert-file", "key-file", "enabled"];

/// Whether `listen` binds only loopback addresses (127.0.0.0/8, ::1).
pub fn is_loopback(listen: &str) -> bool {
    listen
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

pub(super) fn web(ck: &mut Checker, el: Option<&RawElement>) -> Web {
    let mut web = Web::default();
    let Some(el) = el else { return web };
    web.line = el.line;
    ck.check_attrs(el, &WEB_ATTRS);
    ck.check_leaf(el);
    if let Some(v) = el.attr("enabled") {
        match v {
            "yes" => web.enabled = true,
            "no" => web.enabled = false,
            _ => ck.bad_value(
                el,
                "enabled",
                v,
                "is not yes or no: expected enabled=\"no\" to turn the web listener off".into(),
            ),
        }
    }
    let mut listen_ok = true;
    if let Some(v) = el.attr("listen") {
        match ck.value(el, "listen", v, values::listen(v)) {
            Some(listen) => web.listen = listen,
            None => listen_ok = false,
        }
    }
    web.users_file = ck.path_attr(el, "users-file");
    if let Some(path) = web.users_file.clone() {
        ck.warn_unreadable(el, "users-file", &path, Audience::Everyone);
        check_users_mode(ck, el, &path);
    }
    let cert = ck.path_attr(el, "cert-file");
    let key = ck.path_attr(el, "key-file");
    match (cert, key) {
        (Some(cert_file), Some(key_file)) => {
            ck.warn_unreadable(el, "cert-file", &cert_file, Audience::Everyone);
            ck.warn_unreadable(el, "key-file", &key_file, Audience::Everyone);
            web.tls = Some(Tls {
                cert_file,
                key_file,
            });
        }
        (Some(_), None) if el.attr("key-file").is_none() => ck.error(
            el,
            "`cert-file` is given without `key-file`: TLS needs both, the certificate chain \
             and its private key (PEM)",
        ),
        (None, Some(_)) if el.attr("cert-file").is_none() => ck.error(
            el,
            "`key-file` is given without `cert-file`: TLS needs both, the certificate chain \
             and its private key (PEM)",
        ),
        _ => {}
    }
    if web.enabled && listen_ok && !is_loopback(&web.listen) {
        let missing: Vec<&str> = [
            el.attr("users-file").is_none().then_some("users-file"),
            el.attr("cert-file").is_none().then_some("cert-file"),
            el.attr("key-file").is_none().then_some("key-file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !missing.is_empty() {
            ck.error(
                el,
                format!(
                    "`listen` {:?} is not a loopback address, so it needs users-file (basic \
                     auth) and cert-file + key-file (TLS); missing: {}. Listen on 127.0.0.1 \
                     and reach it through an SSH tunnel or a reverse proxy on this host, or \
                     set them",
                    web.listen,
                    missing.join(", ")
                ),
            );
        }
    }
    web
}

/// Refuses a users-file that others may access: its hashes can be attacked offline.
fn check_users_mode(ck: &mut Checker, el: &RawElement, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        ck.error(
            el,
            format!(
                "`users-file` {} may be accessed by other users (mode {mode:04o}): its \
                 password hashes must stay private; run chmod o-rwx on it (0640 \
                 root:monitord or 0600)",
                path.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_is_127_slash_8_and_v6_one() {
        assert!(is_loopback("127.0.0.1:8751"));
        assert!(is_loopback("127.1.2.3:1"));
        assert!(is_loopback("[::1]:8751"));
        assert!(!is_loopback("0.0.0.0:8751"));
        assert!(!is_loopback("[::]:8751"));
        assert!(!is_loopback("10.0.0.5:8751"));
    }
}
