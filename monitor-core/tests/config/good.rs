//! Valid config.xml files: the classic single-client file, the multi-client file with every
//! feature and `<defaults>` merging, encodings and quoting, the shipped example, and a
//! 500-host file that must load quickly.

use std::path::Path;
use std::time::{Duration, Instant};

use monitor_core::config::{self, AlertKind, Auth, Security, Severity};

use super::util::{data, expect_ok, load_copy, write_config};

#[test]
fn classic_single_client_file() {
    let (_, result) = load_copy("good/classic.xml");
    let loaded = expect_ok(result);
    let config = &loaded.config;
    assert_eq!(config.clients.len(), 1);
    let c = &config.clients[0];
    assert_eq!(c.name, "127.0.0.1");
    assert_eq!(
        (c.ip.as_str(), c.port, c.username.as_str()),
        ("127.0.0.1", 22, "user")
    );
    assert!(matches!(&c.auth, Auth::Password(p) if p.expose() == "password"));
    assert_eq!(c.mail, ["asa@asda.com"]);
    assert_eq!(c.interval, Duration::from_secs(60));
    let kinds: Vec<_> = c
        .alerts
        .iter()
        .map(|a| (a.kind, a.limit, a.clear))
        .collect();
    assert_eq!(
        kinds,
        [
            (AlertKind::Memory, 50.0, 50.0),
            (AlertKind::Cpu, 20.0, 20.0)
        ]
    );
    assert_eq!(config.summary(), "OK: 1 clients, 2 alert rules");
    // Defaults when the file has no <server> or <smtp>.
    assert_eq!(config.server.listen, "127.0.0.1:8750");
    assert_eq!(
        config.server.database,
        Path::new("/var/lib/monitord/db.sqlite3")
    );
    assert_eq!(
        config.server.key_file,
        Path::new("/etc/monitord/master.key")
    );
    assert_eq!(config.server.url, None);
    assert_eq!(
        (
            config.smtp.host.as_str(),
            config.smtp.port,
            config.smtp.security
        ),
        ("localhost", 25, Security::None)
    );
    assert_eq!(config.smtp.username, None);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn multi_client_file_applies_defaults_and_resolves_paths() {
    let (path, result) = load_copy("good/multi.xml");
    let dir = path.parent().unwrap();
    let loaded = expect_ok(result);
    let config = &loaded.config;
    assert_eq!(config.server.url.as_deref(), Some("http://10.0.0.5:8750"));
    assert_eq!(config.server.listen, "0.0.0.0:8750");
    assert_eq!(config.server.database, dir.join("db.sqlite3"));
    assert_eq!(
        config.server.key_file,
        Path::new("/etc/monitord/master.key")
    );
    let smtp = &config.smtp;
    assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 2525));
    assert_eq!(smtp.security, Security::StartTls);
    assert_eq!(smtp.username.as_deref(), Some("alerts"));
    assert_eq!(
        smtp.password_file.as_deref(),
        Some(dir.join("smtp.pass").as_path())
    );
    assert_eq!(smtp.from.as_deref(), Some("monitord@example.com"));
    assert_eq!(smtp.ca_file.as_deref(), Some(dir.join("ca.pem").as_path()));

    let names: Vec<&str> = config.clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web1",
            "10.0.0.12:2222",
            "[fe80::1]:2222",
            "db.example.com",
            "quiet"
        ]
    );

    let web1 = config.client("web1").unwrap();
    assert_eq!(web1.port, 22);
    assert_eq!(web1.auth, Auth::Key("/etc/monitord/id_ed25519".into()));
    assert_eq!(web1.mail, ["ops@example.com", "oncall@example.com"]);
    let rules: Vec<_> = web1.alerts.iter().map(|a| (a.kind, a.limit)).collect();
    // Its own memory alert replaces the default one; the default disk alert stays.
    assert_eq!(
        rules,
        [
            (AlertKind::Memory, 50.0),
            (AlertKind::Cpu, 90.0),
            (AlertKind::Disk, 90.0),
            (AlertKind::Uptime, 600.0)
        ]
    );
    let cpu = &web1.alerts[1];
    assert_eq!(cpu.clear, 75.0);
    assert_eq!(cpu.hold, Duration::from_secs(300));
    assert_eq!(cpu.repeat, Some(Duration::from_secs(3600)));
    assert_eq!(web1.alerts[2].hold, Duration::from_secs(600));
    assert_eq!(web1.alerts[0].repeat, None);

    let plain = config.client("10.0.0.12:2222").unwrap();
    assert_eq!((plain.port, plain.username.as_str()), (2222, "monitor"));
    assert_eq!(plain.auth, Auth::Key(dir.join("keys/id_ed25519")));
    assert_eq!(plain.mail, ["ops@example.com"]);
    assert_eq!(plain.interval, Duration::from_secs(30));
    assert_eq!(plain.alerts.len(), 2);

    // A password replaces the default key whole; entities are decoded.
    let v6 = config.client("[fe80::1]:2222").unwrap();
    assert!(matches!(&v6.auth, Auth::Password(p) if p.expose() == "p&w<\"d"));
    assert_eq!(format!("{:?}", v6.auth), "Password(***)");

    let db = config.client("db.example.com").unwrap();
    assert_eq!(db.auth, Auth::PasswordFile("/etc/monitord/db.pass".into()));
    assert_eq!(db.interval, Duration::from_secs(120));
    assert_eq!(db.mail, ["root@localhost"]);
    let uptime = db
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::Uptime)
        .unwrap();
    assert_eq!((uptime.limit, uptime.clear), (5400.0, 7200.0));
    let load = db
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::Load)
        .unwrap();
    assert_eq!((load.limit, load.clear), (8.5, 4.0));
    assert_eq!(db.alerts.len(), 6);

    assert!(config.client("quiet").unwrap().mail.is_empty());
    assert_eq!(config.summary(), "OK: 5 clients, 16 alert rules");

    // Missing files named by key / password-file / ca-file are warnings, once per file.
    let text: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    for file in ["keys/id_ed25519", "smtp.pass", "ca.pem"] {
        let hits = text.iter().filter(|w| w.contains(file)).count();
        assert_eq!(hits, 1, "{file} in {text:#?}");
    }
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| w.severity == Severity::Warning)
    );
    assert!(text.iter().all(|w| !w.contains("no mail")), "{text:#?}");
}

#[test]
fn a_readable_key_file_is_not_warned_about() {
    let (path, _) = load_copy("good/multi.xml");
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/id_ed25519"), "key").unwrap();
    let loaded = expect_ok(config::load(&path));
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| !w.message.contains("id_ed25519") || w.message.contains("/etc/")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn bom_crlf_single_quotes_and_entities() {
    let (_, result) = load_copy("good/bom_crlf.xml");
    let loaded = expect_ok(result);
    assert_eq!(loaded.config.clients[0].line, 4);
    assert_eq!(loaded.config.clients[0].alerts[0].limit, 90.0);

    let (_, result) = load_copy("good/single_quotes.xml");
    let loaded = expect_ok(result);
    let c = &loaded.config.clients[0];
    assert!(matches!(&c.auth, Auth::Password(p) if p.expose() == "it\"s 'quoted' & A"));
    assert_eq!(c.alerts[0].limit, 75.5);
}

#[test]
fn a_file_without_clients_loads_with_one_warning() {
    let (path, result) = load_copy("good/empty.xml");
    let loaded = expect_ok(result);
    assert!(loaded.config.clients.is_empty());
    assert_eq!(loaded.config.server.listen, "127.0.0.1:0");
    assert_eq!(
        loaded.config.server.key_file,
        path.parent().unwrap().join("master.key")
    );
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = loaded.warnings[0].to_string();
    assert!(w.ends_with("no <client> elements: nothing to monitor yet; add <client ip=\"…\" username=\"…\"/> elements"), "{w}");
    assert!(w.contains(":1: warning: monitor: "), "{w}");
}

#[test]
fn the_shipped_example_loads_with_only_the_no_clients_warning() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.xml");
    let loaded = expect_ok(config::load(&example));
    assert!(loaded.config.clients.is_empty());
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("no <client> elements"),
        "{warnings:#?}"
    );
}

#[test]
fn the_shipped_example_clients_load_when_uncommented() {
    // The commented-out examples must be valid too, or copying one in would fail.
    let text = std::fs::read_to_string(data("../../../config.xml")).unwrap();
    let uncommented = text.replace("<!--CLIENT", "").replace("CLIENT-->", "");
    assert_ne!(
        uncommented, text,
        "the example marks its clients <!--CLIENT … CLIENT-->"
    );
    let path = write_config("example-uncommented", uncommented.as_bytes(), 0o600);
    let loaded = expect_ok(config::load(&path));
    assert!(loaded.config.clients.len() >= 3);
}

#[test]
fn passwords_readable_by_others_are_a_warning() {
    let content = std::fs::read(data("good/classic.xml")).unwrap();
    let path = write_config("world-readable", &content, 0o644);
    let loaded = expect_ok(config::load(&path));
    let w: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].contains(":1: warning: ") && w[0].contains("every user can read it (mode 0644)"),
        "{w:#?}"
    );
    // The same file without passwords does not warn.
    let path = write_config(
        "world-readable-nopw",
        br#"<client ip="h" username="u" mail="a@b"/>"#,
        0o644,
    );
    assert!(expect_ok(config::load(&path)).warnings.is_empty());
}

#[test]
fn clients_without_mail_warn_and_many_are_summarised() {
    let few = br#"<m><client ip="a" username="u"/><client ip="b" username="u" mail="x@y"/></m>"#;
    let path = write_config("nomail-few", few, 0o600);
    let w = expect_ok(config::load(&path)).warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("\"a\" has no mail"), "{}", w[0]);

    let path = write_config("nomail-many", hosts_file(500, false).as_bytes(), 0o600);
    let w = expect_ok(config::load(&path)).warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message.starts_with(
            "500 clients have no mail (\"host0\", \"host1\", \"host2\", and 497 more)"
        ),
        "{}",
        w[0]
    );
}

/// A file of `n` one-line hosts under `<defaults>`, the shape DESIGN.md promises stays short.
fn hosts_file(n: usize, with_mail: bool) -> String {
    let mail = if with_mail {
        r#" mail="ops@example.com""#
    } else {
        ""
    };
    let mut text = format!(
        "<monitor>\n  <server listen=\"127.0.0.1:0\" database=\"db.sqlite3\" key-file=\"master.key\"/>\n  \
         <defaults username=\"monitor\" interval=\"30s\"{mail}>\n    <alert type=\"memory\" limit=\"90%\"/>\n    \
         <alert type=\"disk\" limit=\"85%\" clear=\"80%\" for=\"5m\" repeat=\"6h\"/>\n    \
         <alert type=\"load\" limit=\"8\"/>\n  </defaults>\n"
    );
    for i in 0..n {
        text.push_str(&format!(
            "  <client name=\"host{i}\" ip=\"10.{}.{}.{}\"><alert type=\"cpu\" limit=\"95%\"/></client>\n",
            i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    text.push_str("</monitor>\n");
    text
}

#[test]
fn five_hundred_hosts_load_quickly() {
    let path = write_config("500-hosts", hosts_file(500, true).as_bytes(), 0o600);
    let started = Instant::now();
    let loaded = expect_ok(config::load(&path));
    let took = started.elapsed();
    eprintln!("500-host config.xml loaded in {took:?}");
    assert_eq!(loaded.config.clients.len(), 500);
    assert_eq!(loaded.config.summary(), "OK: 500 clients, 2000 alert rules");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // Generous for a debug build on a loaded CI machine; a release build takes about a millisecond.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn history_defaults_to_30_days_raw_then_hourly_for_5_years() {
    let loaded = config::parse_bytes(
        b"<monitor><client ip=\"10.0.0.1\" username=\"u\" mail=\"\"/></monitor>",
        Path::new("config.xml"),
    )
    .unwrap();
    assert_eq!(loaded.config.history, config::default_history());
    let h = &loaded.config.history;
    assert_eq!(h.raw, Duration::from_secs(30 * 86_400));
    assert_eq!(h.tiers.len(), 1);
    assert_eq!(h.tiers[0].step, Duration::from_secs(3600));
    assert_eq!(
        h.tiers[0].keep,
        config::Keep::For(Duration::from_secs(5 * 365 * 86_400))
    );
}

#[test]
fn history_with_more_tiers_and_forever() {
    let xml = br#"<monitor>
  <history raw="14d">
    <rollup step="5m" keep="90d"/>
    <rollup step="1h" keep="2y"/>
    <rollup step="1d" keep="forever"/>
  </history>
  <client ip="10.0.0.1" username="u" mail=""/>
</monitor>"#;
    let loaded = config::parse_bytes(xml, Path::new("config.xml")).unwrap();
    let h = &loaded.config.history;
    assert_eq!(h.raw, Duration::from_secs(14 * 86_400));
    let steps: Vec<u64> = h.tiers.iter().map(|t| t.step.as_secs()).collect();
    assert_eq!(steps, [300, 3600, 86_400]);
    assert_eq!(h.tiers[2].keep, config::Keep::Forever);
    assert_eq!(
        h.tiers[1].keep,
        config::Keep::For(Duration::from_secs(2 * 365 * 86_400))
    );
}

/// `good/web.xml` in a fresh directory with its users-file, certificate and key, the
/// users-file at `users_mode`.
fn web_config(users_mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let content = std::fs::read(data("good/web.xml")).unwrap();
    let path = write_config("web", &content, 0o600);
    let dir = path.parent().unwrap();
    std::fs::create_dir(dir.join("tls")).unwrap();
    for file in ["web.users", "tls/web.crt", "tls/web.key"] {
        std::fs::write(dir.join(file), "x").unwrap();
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(
        dir.join("web.users"),
        std::fs::Permissions::from_mode(users_mode),
    )
    .unwrap();
    path
}

#[test]
fn web_listener_off_loopback_with_users_and_tls() {
    let path = web_config(0o640);
    let dir = path.parent().unwrap();
    let loaded = expect_ok(config::load(&path));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let web = &loaded.config.web;
    assert!(web.enabled);
    assert_eq!(web.listen, "0.0.0.0:8751");
    assert_eq!(web.line, 3);
    assert_eq!(
        web.users_file.as_deref(),
        Some(dir.join("web.users").as_path())
    );
    let tls = web.tls.as_ref().expect("cert-file and key-file give TLS");
    assert_eq!(tls.cert_file, dir.join("tls/web.crt"));
    assert_eq!(tls.key_file, dir.join("tls/web.key"));
    let tags: Vec<_> = loaded
        .config
        .clients
        .iter()
        .map(|c| c.tags.clone())
        .collect();
    assert_eq!(tags, [vec!["prod", "web", "eu-1.a"], vec!["prod"]]);
}

#[test]
fn a_users_file_others_may_read_is_refused_with_its_line() {
    let path = web_config(0o644);
    let invalid = config::load(&path).unwrap_err();
    assert_eq!(invalid.errors.len(), 1, "{invalid}");
    let e = &invalid.errors[0];
    assert_eq!((e.line, e.element.as_str()), (3, "web"));
    assert!(e.message.contains("mode 0644"), "{e}");
    assert!(e.message.contains("chmod o-rwx"), "{e}");
}

#[test]
fn web_defaults_to_loopback_without_users_or_tls_and_can_be_off() {
    let (_, result) = load_copy("good/classic.xml");
    let web = expect_ok(result).config.web;
    assert_eq!(web, config::Web::default());
    assert!(web.enabled);
    assert_eq!(web.listen, "127.0.0.1:8751");
    assert_eq!((web.users_file, web.tls), (None, None));

    // Off, an open address is no risk: nothing listens.
    let path = write_config(
        "web-off",
        b"<monitor><web enabled=\"no\" listen=\"0.0.0.0:8751\"/></monitor>",
        0o600,
    );
    let loaded = expect_ok(config::load(&path));
    assert!(!loaded.config.web.enabled);
    // A users-file that does not exist is a warning here; monitord refuses to serve without it.
    let path = write_config(
        "web-missing-users",
        b"<monitor>\n<web users-file=\"nope.users\"/>\n</monitor>",
        0o600,
    );
    let loaded = expect_ok(config::load(&path));
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(":2: warning: web: `users-file` file")
                && w.contains("does not exist")),
        "{warnings:?}"
    );
}
