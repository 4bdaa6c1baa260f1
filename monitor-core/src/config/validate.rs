//! Stage two: raw elements to a checked [`Config`], every problem reported at once.
//!
//! This file owns the file's shape (which elements may appear where, how often), `<server>`,
//! `<smtp>`, and the [`Checker`] that collects diagnostics; clients, `<defaults>` and alerts
//! live in [`client`](super::client), single values in [`values`](super::values). XML syntax is
//! stage one's ([`parse`](super::parse)) and is never re-checked here.

use std::path::Path;

use super::checker::Checker;
use super::model::{
    Audience, Config, DEFAULT_DATABASE, DEFAULT_KEY_FILE, DEFAULT_LISTEN, History, Invalid, Loaded,
    Secret, Security, Server, Smtp, Web,
};
use super::parse::{RawConfig, RawElement};
use super::values::{self, suggest};
use super::{client, history, web};

const ROOT_CHILDREN: [&str; 6] = ["server", "smtp", "defaults", "client", "history", "web"];
const SERVER_ATTRS: [&str; 4] = ["url", "listen", "database", "key-file"];
const SMTP_ATTRS: [&str; 8] = [
    "host",
    "port",
    "security",
    "username",
    "password",
    "password-file",
    "from",
    "ca-file",
];

/// Everything a file configures but its path.
struct Sections {
    server: Server,
    smtp: Smtp,
    history: History,
    web: Web,
    clients: Vec<super::model::Client>,
}

impl Sections {
    /// The sections a file gets when it names none but its clients.
    fn defaults(ck: &mut Checker, clients: Vec<super::model::Client>) -> Sections {
        Sections {
            server: server(ck, None),
            smtp: smtp(ck, None),
            history: history::history(ck, None),
            web: web::web(ck, None),
            clients,
        }
    }
}

pub(super) fn validate(raw: RawConfig, path: &Path) -> Result<Loaded, Invalid> {
    let mut ck = Checker::new(path);
    let root = &raw.root;
    let sections = if root.name == "client" {
        // The classic file: one `<client>` is the whole document.
        let defaults = client::defaults(&mut ck, None);
        let clients = client::clients(&mut ck, &defaults, &[root]);
        Sections::defaults(&mut ck, clients)
    } else {
        multi_client(&mut ck, root)
    };
    if sections.clients.is_empty() && !ck.has_errors() {
        ck.warn_at(
            root.line,
            &root.name,
            "no <client> elements: nothing to monitor yet; add \
             <client ip=\"…\" username=\"…\"/> elements",
        );
    }
    ck.check_file_mode(path);
    ck.finish(Config {
        path: path.to_path_buf(),
        server: sections.server,
        smtp: sections.smtp,
        history: sections.history,
        web: sections.web,
        clients: sections.clients,
    })
}

fn multi_client(ck: &mut Checker, root: &RawElement) -> Sections {
    if matches!(
        root.name.as_str(),
        "server" | "smtp" | "defaults" | "alert" | "history" | "web"
    ) {
        ck.error(
            root,
            format!(
                "<{}> cannot be the root element: put <server>, <smtp>, <defaults> and \
                 <client> elements inside one root element such as <monitor>",
                root.name
            ),
        );
        return Sections::defaults(ck, Vec::new());
    }
    ck.check_attrs(root, &[]);
    ck.check_text(root);
    let mut by_kind: [Vec<&RawElement>; 6] = Default::default();
    for child in &root.children {
        match ROOT_CHILDREN.iter().position(|k| *k == child.name) {
            Some(i) => by_kind[i].push(child),
            None if child.name == "alert" => ck.error(
                child,
                "<alert> belongs inside a <client> or <defaults> element, not at the top level",
            ),
            None => ck.unknown_element(child, &root.name, &ROOT_CHILDREN),
        }
    }
    let [servers, smtps, defaults, clients, histories, webs] = by_kind;
    for list in [&servers, &smtps, &defaults, &histories, &webs] {
        if let [first, rest @ ..] = list.as_slice() {
            for extra in rest {
                ck.error(
                    extra,
                    format!(
                        "a second <{}> (the first is at line {}): at most one is allowed; \
                         merge them",
                        extra.name, first.line
                    ),
                );
            }
        }
    }
    let server = server(ck, servers.first().copied());
    let smtp = smtp(ck, smtps.first().copied());
    let defaults = client::defaults(ck, defaults.first().copied());
    let clients = client::clients(ck, &defaults, &clients);
    Sections {
        server,
        smtp,
        history: history::history(ck, histories.first().copied()),
        web: web::web(ck, webs.first().copied()),
        clients,
    }
}

fn server(ck: &mut Checker, el: Option<&RawElement>) -> Server {
    let mut server = Server {
        url: None,
        listen: DEFAULT_LISTEN.to_string(),
        database: ck.resolve(DEFAULT_DATABASE),
        key_file: ck.resolve(DEFAULT_KEY_FILE),
    };
    let Some(el) = el else { return server };
    ck.check_attrs(el, &SERVER_ATTRS);
    ck.check_leaf(el);
    if let Some(v) = el.attr("url") {
        server.url = ck.value(el, "url", v, values::server_url(v));
    }
    if let Some(v) = el.attr("listen") {
        if let Some(listen) = ck.value(el, "listen", v, values::listen(v)) {
            server.listen = listen;
        }
    }
    if let Some(p) = ck.path_attr(el, "database") {
        server.database = p;
    }
    if let Some(p) = ck.path_attr(el, "key-file") {
        server.key_file = p;
    }
    server
}

fn smtp(ck: &mut Checker, el: Option<&RawElement>) -> Smtp {
    let mut smtp = Smtp {
        host: "localhost".into(),
        port: 25,
        security: Security::None,
        username: None,
        password: None,
        password_file: None,
        from: None,
        ca_file: None,
    };
    let Some(el) = el else { return smtp };
    ck.check_attrs(el, &SMTP_ATTRS);
    ck.check_leaf(el);
    if let Some(v) = el.attr("host") {
        if ck.value(el, "host", v, values::host(v)).is_some() {
            smtp.host = v.to_string();
        }
    }
    if let Some(v) = el.attr("security") {
        smtp.security = match v {
            "none" => Security::None,
            "starttls" => Security::StartTls,
            "tls" => Security::Tls,
            _ => {
                let hint = suggest(v, &["none", "starttls", "tls"])
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                ck.bad_value(
                    el,
                    "security",
                    v,
                    format!("is not known{hint}: expected none, starttls or tls"),
                );
                Security::None
            }
        };
    }
    smtp.port = match smtp.security {
        Security::None => 25,
        Security::StartTls => 587,
        Security::Tls => 465,
    };
    if let Some(v) = el.attr("port") {
        smtp.port = ck
            .value(el, "port", v, values::port(v))
            .unwrap_or(smtp.port);
    }
    if let Some(v) = el.attr("from") {
        smtp.from = ck.value(
            el,
            "from",
            v,
            values::mail_address(v).map(|()| v.to_string()),
        );
    }
    smtp.ca_file = ck.path_attr(el, "ca-file");
    if let Some(ca) = &smtp.ca_file {
        ck.warn_unreadable(el, "ca-file", ca, Audience::Everyone);
    }
    smtp_auth(ck, el, &mut smtp);
    smtp
}

fn smtp_auth(ck: &mut Checker, el: &RawElement, smtp: &mut Smtp) {
    smtp.username = el.attr("username").map(str::to_string);
    if smtp.username.as_deref() == Some("") {
        ck.error(
            el,
            "`username` is empty: give the SMTP user, or remove it to send without auth",
        );
    }
    match (el.attr("password"), el.attr("password-file")) {
        (Some(_), Some(_)) => ck.error(
            el,
            "both `password` and `password-file` are given: keep one (password-file is preferred)",
        ),
        (Some(p), None) => {
            ck.saw_password(el);
            if p.is_empty() {
                ck.error(
                    el,
                    "`password` is empty: give the password, or use password-file",
                );
            }
            smtp.password = Some(Secret::new(p.to_string()));
        }
        (None, Some(_)) => {
            smtp.password_file = ck.path_attr(el, "password-file");
            if let Some(p) = smtp.password_file.clone() {
                ck.warn_unreadable(el, "password-file", &p, Audience::Everyone);
            }
        }
        (None, None) => {
            if smtp.username.is_some() {
                ck.error(el, "`username` is given without `password-file` or `password`: give one of them, or remove username to send without auth");
            }
        }
    }
    let has_password = smtp.password.is_some() || el.attr("password-file").is_some();
    if has_password && smtp.username.is_none() {
        ck.error(
            el,
            "a password is given without `username`: add username=\"…\"",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, Invalid, Security, parse_bytes};

    fn load(text: &str) -> Result<Config, Invalid> {
        parse_bytes(text.as_bytes(), Path::new("/srv/mon/config.xml")).map(|l| l.config)
    }

    #[test]
    fn smtp_port_follows_security_unless_given() {
        for (attrs, security, port) in [
            ("", Security::None, 25),
            (r#"security="starttls""#, Security::StartTls, 587),
            (r#"security="tls""#, Security::Tls, 465),
            (r#"security="tls" port="2465""#, Security::Tls, 2465),
        ] {
            let config = load(&format!("<m><smtp host=\"mx\" {attrs}/></m>")).unwrap();
            assert_eq!(
                (config.smtp.security, config.smtp.port),
                (security, port),
                "{attrs}"
            );
            assert_eq!(config.smtp.host, "mx");
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let config =
            load(r#"<m><server database="data/db.sqlite3" key-file="/etc/k"/></m>"#).unwrap();
        assert_eq!(
            config.server.database,
            Path::new("/srv/mon/data/db.sqlite3")
        );
        assert_eq!(config.server.key_file, Path::new("/etc/k"));
        assert_eq!(config.server.listen, "127.0.0.1:8750");
    }

    #[test]
    fn every_problem_is_reported_in_line_order() {
        let errors = load(
            "<m>\n<client ip=\"a\"/>\n<smtp security=\"x\"/>\n<server listen=\"y\"/>\n<bogus/>\n</m>",
        )
        .unwrap_err()
        .errors;
        let lines: Vec<(u32, &str)> = errors
            .iter()
            .map(|e| (e.line, e.element.as_str()))
            .collect();
        assert_eq!(lines, [(2, "client"), (3, "smtp"), (4, "server"), (5, "m")]);
    }

    #[test]
    fn a_config_without_clients_is_valid() {
        let config = load("<monitor/>").unwrap();
        assert!(config.clients.is_empty());
        assert_eq!(config.summary(), "OK: 0 clients, 0 alert rules");
    }
}
