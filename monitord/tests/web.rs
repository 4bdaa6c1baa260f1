//! The web listener against a real monitord with real samples sent through the ingest
//! listener: the read API's shapes ([`api`]), `/metrics` through `promtool` ([`metrics`]),
//! basic auth and `monitord passwd` ([`auth`]), TLS trusted through a throwaway CA ([`tls`]),
//! both sockets from systemd by name ([`sockets`]), the dashboard in headless Chromium
//! ([`dashboard`]).

mod api;
mod auth;
mod dashboard;
mod metrics;
mod sockets;
mod tls;

use std::process::{Command, Stdio};

use testkit::monitord::Monitord;

use crate::support::bin;

/// A monitord whose client `web1` has tags and an alert that fires on any sample
/// (`processes` above 1) and mails ops@example.com; `db1` never sends.
pub fn fleet_with_an_alert(web_attrs: &str) -> Monitord {
    let mut m = Monitord::prepare(bin(), &["web1", "db1"]);
    m.set_web(web_attrs);
    let xml = Monitord::config_xml_with_web(&["web1".into(), "db1".into()], web_attrs).replace(
        r#"<client name="web1" ip="127.0.0.1" username="monitor" interval="10s"/>"#,
        r#"<client name="web1" ip="127.0.0.1" username="monitor" interval="10s" tags="web prod" mail="ops@example.com"><alert type="processes" limit="1"/></client>"#,
    );
    assert!(xml.contains("tags="), "the client line changed: {xml}");
    std::fs::write(m.config_path(), xml).unwrap();
    m
}

/// `monitord passwd NAME --users-file FILE` with `password` on stdin (not a terminal).
pub fn passwd(m: &Monitord, name: &str, file: &str, password: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(bin())
        .args(["--config"])
        .arg(m.config_path())
        .args(["passwd", name, "--users-file"])
        .arg(m.dir().join(file))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run monitord passwd");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The `Authorization` header line for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}")
}
