//! Socket activation by name: `systemd-socket-activate` (systemd's own tool) listens on two
//! ports and execs monitord with `LISTEN_FDNAMES=ingest:web`, as monitord.socket and
//! monitord-web.socket do; monitord serves each port as its name says and binds neither of
//! config.xml's addresses itself.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::monitord::{Monitord, sample};
use testkit::util::{self, free_port};

use crate::support::bin;

#[test]
fn sockets_named_ingest_and_web_are_served_as_named() {
    let available = Command::new("systemd-socket-activate")
        .arg("--help")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !util::runnable(
        available,
        "systemd-socket-activate not found (package systemd)",
    ) {
        return;
    }
    let m = Monitord::prepare(bin(), &["web1"]);
    // Addresses nobody can bind: the sockets must come from the activator.
    let xml = Monitord::config_xml_with_web(&["web1".into()], r#"listen="127.0.0.1:1""#)
        .replace(r#"listen="127.0.0.1:0""#, r#"listen="127.0.0.1:2""#);
    std::fs::write(m.config_path(), xml).unwrap();
    let (ingest, web) = (free_port(), free_port());
    // The web port listed first: fd order does not matter, names do.
    let mut child = Command::new("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{web}"))
        .arg(format!("--listen=127.0.0.1:{ingest}"))
        .arg("--fdname=web:ingest")
        .arg(bin())
        .arg("--config")
        .arg(m.config_path())
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ingest: SocketAddr = format!("127.0.0.1:{ingest}").parse().unwrap();
    let web: SocketAddr = format!("127.0.0.1:{web}").parse().unwrap();
    // The first connection (to the web port) starts monitord.
    let clients = util::wait_for(
        Duration::from_secs(30),
        "the web API through the socket",
        || {
            util::get(web, "/api/v1/clients")
                .ok()
                .filter(|r| r.status == 200)
        },
    );
    assert_eq!(clients.json()[0]["name"], "web1");
    let body = m.seal("web1", sample("fd", 1, m.now_ms()).to_string().as_bytes());
    let put = util::put(ingest, "/v1/samples/web1", body.as_bytes()).unwrap();
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(util::get(ingest, "/api/v1/clients").unwrap().status, 404);
    let clients = util::get(web, "/api/v1/clients").unwrap().json();
    assert!(clients[0]["last_ms"].is_i64(), "{clients}");
    let _ = child.kill();
    let _ = child.wait();
}
