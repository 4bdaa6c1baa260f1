//! Stage two: raw elements to a checked [`Config`], every problem reported at once.
//!
//! This file owns the file's shape (which elements may appear where, how often), `<server>`,
//! `<smtp>`, and the [`Checker`] that collects diagnostics; clients, `<defaults>` and alerts
//! live in [`client`](super::client), single values in [`values`](super::values). XML syntax is
//! stage one's ([`parse`](super::parse)) and is never re-checked here.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::parse::{QUOTE_HINT, RawConfig, RawElement, TYPOGRAPHIC_QUOTES};
use super::values::{self, suggest};
use super::{
    Audience, Config, DEFAULT_DATABASE, DEFAULT_KEY_FILE, DEFAULT_LISTEN, Diagnostic, History,
    Invalid, Loaded, Secret, Security, Server, Severity, Smtp, Web, client, history, web,
};

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
    clients: Vec<super::Client>,
}

impl Sections {
    /// The sections a file gets when it names none but its clients.
    fn defaults(ck: &mut Checker, clients: Vec<super::Client>) -> Sections {
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

/// Collects diagnostics; every check reports here and carries on, so one run finds everything.
pub(super) struct Checker {
    file: String,
    dir: PathBuf,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Files already warned about, so 500 clients sharing one key from `<defaults>` warn once.
    warned_paths: HashSet<PathBuf>,
    /// Line and element of the first `password` attribute: the file then holds a secret.
    password_at: Option<(u32, String)>,
}

impl Checker {
    fn new(path: &Path) -> Checker {
        Checker {
            file: path.display().to_string(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            errors: Vec::new(),
            warnings: Vec::new(),
            warned_paths: HashSet::new(),
            password_at: None,
        }
    }

    fn diagnostic(
        &self,
        severity: Severity,
        line: u32,
        element: &str,
        message: String,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            audience: Audience::Everyone,
            file: self.file.clone(),
            line,
            element: element.to_string(),
            message,
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub fn error(&mut self, el: &RawElement, message: impl Into<String>) {
        self.error_at(el.line, &el.name, message);
    }

    pub fn error_at(&mut self, line: u32, element: &str, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Error, line, element, message.into());
        self.errors.push(d);
    }

    pub fn warn_at(&mut self, line: u32, element: &str, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Warning, line, element, message.into());
        self.warnings.push(d);
    }

    /// `attr "value" <problem>`, with the typographic-quote hint when the value has such quotes.
    pub fn bad_value(&mut self, el: &RawElement, attr: &str, value: &str, problem: String) {
        let mut message = format!("`{attr}` {value:?} {problem}");
        if value.contains(TYPOGRAPHIC_QUOTES) {
            message.push_str("; ");
            message.push_str(QUOTE_HINT);
        }
        self.error(el, message);
    }

    /// The checked value, or `None` after reporting why it is bad.
    pub fn value<T>(
        &mut self,
        el: &RawElement,
        attr: &str,
        text: &str,
        r: values::Checked<T>,
    ) -> Option<T> {
        r.map_err(|problem| self.bad_value(el, attr, text, problem))
            .ok()
    }

    /// A path attribute resolved against config.xml's directory; an empty one is an error.
    pub fn path_attr(&mut self, el: &RawElement, attr: &str) -> Option<PathBuf> {
        let v = el.attr(attr)?;
        if v.trim().is_empty() {
            self.bad_value(el, attr, v, "is empty: expected a file path".into());
            return None;
        }
        Some(self.resolve(v))
    }

    pub fn resolve(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    pub fn saw_password(&mut self, el: &RawElement) {
        if self.password_at.is_none() {
            self.password_at = Some((el.line, el.name.clone()));
        }
    }

    /// Warns (once per file) when a file named by `attr` is missing or unreadable by this user.
    /// For a file only `audience` reads, "exists but unreadable" concerns only it (a missing
    /// file or a directory is wrong for everyone).
    pub fn warn_unreadable(
        &mut self,
        el: &RawElement,
        attr: &str,
        path: &Path,
        audience: Audience,
    ) {
        if !self.warned_paths.insert(path.to_path_buf()) {
            return;
        }
        let (problem, audience) = match std::fs::File::open(path) {
            Ok(_) if path.is_dir() => {
                ("is a directory, not a file".to_string(), Audience::Everyone)
            }
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ("does not exist".into(), Audience::Everyone)
            }
            Err(e) => (format!("cannot be read by this user ({e})"), audience),
        };
        let mut d = self.diagnostic(
            Severity::Warning,
            el.line,
            &el.name,
            format!("`{attr}` file {} {problem}", path.display()),
        );
        d.audience = audience;
        self.warnings.push(d);
    }

    /// Reports attributes not in `known`, suggesting the closest known name for a likely typo.
    pub fn check_attrs(&mut self, el: &RawElement, known: &[&str]) {
        self.check_attrs_except(el, known, &[]);
    }

    /// [`check_attrs`](Self::check_attrs), leaving out `skip`, which the caller reports itself.
    pub fn check_attrs_except(&mut self, el: &RawElement, known: &[&str], skip: &[&str]) {
        for attr in &el.attrs {
            if known.contains(&attr.name.as_str()) || skip.contains(&attr.name.as_str()) {
                continue;
            }
            let hint = match suggest(&attr.name, known) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            let expected = if known.is_empty() {
                "it takes no attributes".to_string()
            } else {
                format!("expected one of {}", known.join(", "))
            };
            self.error(
                el,
                format!("unknown attribute `{}`: {hint}{expected}", attr.name),
            );
        }
    }

    pub fn unknown_element(&mut self, el: &RawElement, parent: &str, known: &[&str]) {
        let hint = match suggest(&el.name, known) {
            Some(s) => format!("did you mean <{s}>? "),
            None => String::new(),
        };
        let expected = known.iter().map(|k| format!("<{k}>")).collect::<Vec<_>>();
        self.error_at(
            el.line,
            parent,
            format!(
                "unknown element <{}> inside <{parent}>: {hint}expected {}",
                el.name,
                expected.join(", ")
            ),
        );
    }

    /// An element that takes neither child elements nor text.
    pub fn check_leaf(&mut self, el: &RawElement) {
        for child in &el.children {
            self.error_at(
                child.line,
                &el.name,
                format!(
                    "<{}> cannot hold a <{}> element: <{}> takes only attributes",
                    el.name, child.name, el.name
                ),
            );
        }
        self.check_text(el);
    }

    pub fn check_text(&mut self, el: &RawElement) {
        if let Some(line) = el.stray_text {
            self.error_at(
                line,
                &el.name,
                format!("unexpected text inside <{}>: values go in attributes, e.g. name=\"value\"; notes go in <!-- comments -->", el.name),
            );
        }
    }

    /// Warns when the file holds a password and any user may read it.
    fn check_file_mode(&mut self, path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let Some((line, element)) = self.password_at.clone() else {
                return;
            };
            let Ok(meta) = std::fs::metadata(path) else {
                return;
            };
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o004 != 0 {
                self.warn_at(
                    line,
                    &element,
                    format!(
                        "the file holds passwords and every user can read it (mode {mode:04o}); \
                         run chmod o-r on it, or use password-file / key"
                    ),
                );
            }
        }
    }

    fn finish(mut self, config: Config) -> Result<Loaded, Invalid> {
        self.errors.sort_by_key(|d| d.line);
        self.warnings.sort_by_key(|d| d.line);
        if self.errors.is_empty() {
            Ok(Loaded {
                config,
                warnings: self.warnings,
            })
        } else {
            Err(Invalid {
                errors: self.errors,
                warnings: self.warnings,
            })
        }
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
