//! The dashboard (`/`, `/clients/{name}`, `/alerts`) from a real monitord fed real samples
//! through ingest, loaded in headless Chromium (Debian's `chromium`, installed by
//! scripts/test): the DOM after the script ran shows every host with its state, firing and
//! down first; a host's CPU chart has as many buckets as `/api/v1/…/series` gives for its
//! range, the rule's limit and clear lines at their values and the firing incident shaded;
//! an unknown client is a 404 page; 500 clients render. Without credentials every page is
//! 401; no page embeds a secret or a path of the server. Screenshots go to the test's
//! directory, and to `$MONITORD_SCREENSHOTS` when set (how docs/screenshots/ is made).
//! Without Chromium the browser tests skip with the reason (fail when CI is set).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testkit::monitord::{Monitord, sample};
use testkit::{browser, util};

use super::{basic, passwd};
use crate::support::bin;

/// Whether Chromium is here; if not, says why the browser part cannot run.
fn chromium() -> bool {
    util::runnable(
        browser::installed(),
        "no /usr/bin/chromium (Debian package chromium)",
    )
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=…`); its stdout.
fn browse(dir: &Path, url: &str, args: &[&str]) -> String {
    let profile = util::temp_dir("chromium-profile");
    let out = browser::headless(profile.path())
        .args(args)
        .arg(url)
        .current_dir(dir)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of `url` after its script ran.
fn dom(dir: &Path, url: &str) -> String {
    browse(dir, url, &["--dump-dom"])
}

/// A 1280×900 screenshot of `url` as `name` in `dir` (and in `$MONITORD_SCREENSHOTS`).
fn screenshot(dir: &Path, url: &str, name: &str) {
    let file = dir.join(name);
    browse(
        dir,
        url,
        &[
            &format!("--screenshot={}", file.display()),
            "--window-size=1280,900",
        ],
    );
    let png = std::fs::read(&file).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{name}: {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("MONITORD_SCREENSHOTS") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&file, PathBuf::from(keep).join(name)).unwrap();
    }
}

/// `(state, name)` of every fleet table row, in page order.
fn fleet_rows(dom: &str) -> Vec<(String, String)> {
    dom.split(r#"<tr class="host" data-state=""#)
        .skip(1)
        .map(|row| {
            let state = row[..row.find('"').unwrap()].to_owned();
            let link = &row[row.find(r#"<a href="/clients/"#).unwrap()..];
            let name = &link[link.find('>').unwrap() + 1..link.find("</a>").unwrap()];
            (state, name.to_owned())
        })
        .collect()
}

/// The `<figure … data-series="{key}">` of a host page.
fn figure<'a>(dom: &'a str, key: &str) -> &'a str {
    let start = dom
        .find(&format!(r#"data-series="{key}""#))
        .unwrap_or_else(|| panic!("no chart of {key}"));
    let rest = &dom[start..];
    &rest[..rest.find("</figure>").unwrap()]
}

/// The value of attribute `name` of the first element starting with `start` in `html`.
fn attr<'a>(html: &'a str, start: &str, name: &str) -> &'a str {
    let element = &html[html.find(start).unwrap_or_else(|| panic!("no {start}"))..];
    let element = &element[..element.find('>').unwrap()];
    let marker = format!(r#" {name}=""#);
    let value = &element[element
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {element}"))
        + marker.len()..];
    &value[..value.find('"').unwrap()]
}

const CLIENTS: [&str; 9] = [
    "web1", "web2", "web3", "db1", "db2", "app1", "cache1", "mail1", "backup1",
];

/// A fleet with every state (interval 60s, the history a sample a minute): web1 fires `cpu` (limit 50%, clear 40%) over a history of an
/// hour, app1 is pending (`memory` for 1h), cache1 went down, backup1 was never seen, the
/// others (mail1 without tags) are ok. Returns the running monitord.
fn fleet(web: &str) -> Monitord {
    let names: Vec<String> = CLIENTS.iter().map(|s| s.to_string()).collect();
    let mut m = Monitord::prepare(bin(), &CLIENTS);
    m.set_web(web);
    let mut xml = Monitord::config_xml_with_web(&names, web)
        .replace(r#"interval="10s""#, r#"interval="60s""#);
    let line = |name: &str| {
        format!(r#"<client name="{name}" ip="127.0.0.1" username="monitor" interval="60s"/>"#)
    };
    let tagged = |name: &str, attrs: &str, inner: &str| {
        format!(
            r#"<client name="{name}" ip="127.0.0.1" username="monitor" interval="60s" {attrs}>{inner}</client>"#
        )
    };
    for (name, attrs, inner) in [
        (
            "web1",
            r#"tags="web prod""#,
            r#"<alert type="cpu" limit="50%" clear="40%"/>"#,
        ),
        ("web2", r#"tags="web prod""#, ""),
        ("web3", r#"tags="web staging""#, ""),
        ("db1", r#"tags="db prod""#, ""),
        ("db2", r#"tags="db prod""#, ""),
        (
            "app1",
            r#"tags="app prod""#,
            r#"<alert type="memory" limit="20%" for="1h"/>"#,
        ),
        ("cache1", r#"tags="prod""#, ""),
    ] {
        xml = xml.replace(&line(name), &tagged(name, attrs, inner));
    }
    std::fs::write(m.config_path(), xml).unwrap();
    m.spawn();
    let now = m.now_ms();
    let mut seq = 0;
    let mut put = |m: &Monitord, name: &str, ts: i64, cpu: f64| {
        seq += 1;
        let mut s = sample("dash", seq, ts);
        s["cpu_percent"] = cpu.into();
        s["agent"] = "monitor-agent 0.1.0".into();
        let r = m.put_sample(name, &s).unwrap();
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    };
    // An hour of history a minute apart (stored, not evaluated: older than 2 × interval).
    for i in 0..60 {
        let ts = now - (60 - i) * 60_000;
        let wave = 25.0 + 15.0 * ((i as f64) / 6.0).sin();
        for (k, name) in ["web1", "web2", "web3", "db1", "db2", "app1", "mail1"]
            .iter()
            .enumerate()
        {
            put(&m, name, ts, wave / (k as f64 + 1.0) + 5.0);
        }
    }
    // cache1 speaks once, then falls silent for more than 3 minutes: down.
    put(&m, "cache1", m.now_ms(), 5.0);
    // web1: fires (80% > 50%), resolves at 20% (≤ 40%) two minutes later, fires again.
    for (advance_s, cpu) in [(0, 80.0), (60, 90.0), (60, 20.0), (60, 70.0), (60, 75.0)] {
        m.advance_clock(Duration::from_secs(advance_s));
        put(&m, "web1", m.now_ms(), cpu);
        for (k, name) in ["web2", "web3", "db1", "db2", "app1", "mail1"]
            .iter()
            .enumerate()
        {
            put(&m, name, m.now_ms(), 12.0 + 7.0 * k as f64);
        }
    }
    util::wait_until(Duration::from_secs(30), "cache1 down, app1 pending", || {
        let clients = m.web_get("/api/v1/clients", &[]).unwrap().json();
        let state = |name: &str| {
            clients
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["state"].as_str().unwrap().to_owned())
        };
        state("cache1").as_deref() == Some("down") && state("app1").as_deref() == Some("pending")
    });
    m
}

#[test]
fn the_three_pages_show_the_fleet_in_a_browser() {
    if !chromium() {
        return;
    }
    let m = fleet(r#"listen="127.0.0.1:0""#);
    let base = format!("http://{}", m.web_addr());
    let dir = m.dir().to_owned();

    // The fleet: every host with its state, firing and down first, the script loaded.
    let started = Instant::now();
    let fleet = dom(&dir, &format!("{base}/"));
    eprintln!(
        "chromium: fleet page of 9 hosts dumped in {:?}",
        started.elapsed()
    );
    assert!(fleet.contains(r#"data-js="on""#), "the script did not run");
    let rows = fleet_rows(&fleet);
    let state = |name: &str| {
        rows.iter()
            .find(|(_, n)| n == name)
            .map(|(s, _)| s.as_str())
            .unwrap_or_else(|| panic!("{name} not on the page: {rows:?}"))
    };
    assert_eq!(rows.len(), CLIENTS.len(), "{rows:?}");
    assert_eq!(state("web1"), "firing");
    assert_eq!(state("cache1"), "down");
    assert_eq!(state("app1"), "pending");
    assert_eq!(state("backup1"), "never");
    assert_eq!(state("db2"), "ok");
    assert_eq!(state("mail1"), "ok");
    let order: Vec<&str> = rows.iter().map(|(s, _)| s.as_str()).take(4).collect();
    assert_eq!(order, ["firing", "down", "pending", "never"], "{rows:?}");
    // Every chart is a line: a point per minute at a step of a minute.
    assert!(fleet.contains(r#"<svg class="spark""#), "no sparkline");
    // The filter and grouping work without the script (server-side).
    let filtered = m.web_get("/?q=db&partial=1", &[]).unwrap().text();
    let names: Vec<String> = fleet_rows(&filtered).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["db1", "db2"]);
    let grouped = m.web_get("/?group=tag", &[]).unwrap().text();
    assert!(grouped.contains(r#"<tr class="group"><th colspan="10" scope="rowgroup">staging"#));
    let by_cpu = fleet_rows(&m.web_get("/?sort=cpu&partial=1", &[]).unwrap().text());
    assert_eq!(by_cpu[0].1, "web1", "highest CPU first: {by_cpu:?}");
    screenshot(&dir, &format!("{base}/"), "fleet.png");

    // A host: the CPU chart over the last hour has what the API gives for the same range.
    let host = dom(&dir, &format!("{base}/clients/web1?range=1h"));
    let cpu = figure(&host, "cpu_percent");
    let (from, to) = (attr(cpu, "<svg", "data-from"), attr(cpu, "<svg", "data-to"));
    let api = m
        .web_get(
            &format!("/api/v1/clients/web1/series?from={from}&to={to}&points=300"),
            &[],
        )
        .unwrap()
        .json();
    let buckets = api["series"]["cpu_percent"].as_array().unwrap().len();
    assert!(buckets > 50, "{api}");
    assert_eq!(cpu.matches(r#"<rect class="pt""#).count(), buckets);
    assert_eq!(attr(cpu, "<svg", "data-points"), buckets.to_string());
    // The limit at 50% and clear at 40% of a 0–100 axis drawn over rows 8..160.
    assert_eq!(attr(cpu, r#"<line class="limit""#, "data-value"), "50");
    assert_eq!(attr(cpu, r#"<line class="limit""#, "y1"), "84.0");
    assert_eq!(attr(cpu, r#"<line class="clear""#, "data-value"), "40");
    assert_eq!(attr(cpu, r#"<line class="clear""#, "y1"), "99.2");
    // Both firing periods shaded, starting when the API says they fired.
    let incidents = m.web_get("/api/v1/alerts?since=0", &[]).unwrap().json()["incidents"].clone();
    let fired: Vec<String> = incidents
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["client"] == "web1" && i["rule"] == "cpu")
        .map(|i| i["fired_ms"].to_string())
        .collect();
    assert_eq!(fired.len(), 2, "{incidents}");
    assert_eq!(cpu.matches(r#"<rect class="firing""#).count(), 2, "{cpu}");
    for ms in &fired {
        assert!(
            cpu.contains(&format!(r#"data-from="{ms}""#)),
            "{ms} not shaded"
        );
    }
    for key in [
        "memory_percent",
        "swap_percent",
        "load1",
        "processes",
        "disk:/",
    ] {
        assert!(figure(&host, key).contains("<svg"), "{key}");
    }
    assert!(host.contains("monitor-agent 0.1.0") && host.contains("Linux test"));
    assert!(host.contains("<td>init</td>"), "the top processes");
    screenshot(&dir, &format!("{base}/clients/web1?range=1h"), "host.png");

    // Alerts: firing and pending now, the incidents, the outbox (no mail configured: empty).
    let alerts = dom(&dir, &format!("{base}/alerts"));
    let now = &alerts[alerts.find(r#"id="now-table""#).expect("the now table")..];
    let now = &now[..now.find("</table>").unwrap()];
    assert!(now.contains(">web1</a>") && now.contains(">app1</a>") && now.contains(">cache1</a>"));
    assert!(now.contains(r#"s-pending">pending"#) && now.contains(r#"s-firing">firing"#));
    assert!(alerts.contains(r#"id="incident-table""#));
    screenshot(&dir, &format!("{base}/alerts"), "alerts.png");

    // An unknown client: a 404 page, in the browser and on the wire.
    let missing = dom(&dir, &format!("{base}/clients/nope"));
    assert!(
        missing.contains("404 Not Found") && missing.contains("no client named"),
        "{missing}"
    );
    let wire = m.web_get("/clients/nope", &[]).unwrap();
    assert_eq!(wire.status, 404);
    assert_eq!(
        wire.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    // A path that is neither a page nor the API: the 404 page, not the API's JSON.
    let stray = m.web_get("/clients", &[]).unwrap();
    assert_eq!(stray.status, 404);
    assert_eq!(
        stray.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        stray.text().contains("no page at /clients"),
        "{}",
        stray.text()
    );
    let bad = m.web_get("/clients/web1?range=2w", &[]).unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn five_hundred_clients_render() {
    let names: Vec<String> = (0..500).map(|i| format!("host{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut m = Monitord::prepare(bin(), &refs);
    m.spawn();
    for (i, name) in names.iter().enumerate() {
        let mut s = sample("many", 1, m.now_ms());
        s["cpu_percent"] = ((i % 100) as f64).into();
        assert_eq!(m.put_sample(name, &s).unwrap().status, 200, "{name}");
    }
    let started = Instant::now();
    let page = m.web_get("/", &[]).unwrap();
    let server = started.elapsed();
    assert_eq!(page.status, 200);
    assert_eq!(fleet_rows(&page.text()).len(), 500);
    let sparks = |html: &str| html.matches(r#"<svg class="spark""#).count();
    assert_eq!(sparks(&page.text()), 500, "a sparkline for every host");
    let gzip = m.web_get("/", &["Accept-Encoding: gzip"]).unwrap();
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    eprintln!(
        "fleet page of 500 hosts (debug build): {server:?}, {} bytes, {} gzipped",
        page.body.len(),
        gzip.body.len()
    );
    // A restarted monitord reads each host's newest sample and last hour back from the store.
    m.restart();
    let page = m.web_get("/", &[]).unwrap().text();
    let rows = fleet_rows(&page);
    assert_eq!(rows.len(), 500);
    assert!(
        rows.iter().all(|(state, _)| state == "ok"),
        "{:?}",
        &rows[..3]
    );
    assert_eq!(sparks(&page), 500, "sparklines after a restart");

    if !chromium() {
        return;
    }
    let started = Instant::now();
    let dom = dom(m.dir(), &format!("http://{}/", m.web_addr()));
    eprintln!(
        "chromium: fleet page of 500 hosts dumped in {:?}",
        started.elapsed()
    );
    let rows = fleet_rows(&dom);
    assert_eq!(rows.len(), 500);
    assert!(
        rows.iter().all(|(state, _)| state == "ok"),
        "{:?}",
        &rows[..3]
    );
}

#[test]
fn pages_need_credentials_and_embed_no_secret_or_path() {
    let web = r#"listen="127.0.0.1:0" users-file="web.users""#;
    let mut m = Monitord::prepare(bin(), &["web1"]);
    m.set_web(web);
    let out = passwd(&m, "alice", "web.users", "s3cret-pass");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Secrets and paths config.xml holds: an SMTP password, a password-file, an SSH key and
    // a client's password.
    let xml = Monitord::config_xml_with_web(&["web1".into()], web)
        .replace(
            r#"<client name="web1" ip="127.0.0.1" username="monitor" interval="10s"/>"#,
            r#"<client name="web1" ip="127.0.0.1" username="monitor" interval="10s" password="client-Pa55word" mail="ops@example.com"><alert type="processes" limit="1"/></client>
  <client name="web2" ip="127.0.0.2" username="monitor" key="/etc/monitord/secret_id_ed25519"/>
  <client name="web3" ip="127.0.0.3" username="monitor" password-file="/etc/monitord/web3.pass"/>
  <smtp host="127.0.0.1" port="1" username="alerts" password="smtp-Pa55word" from="monitord@example.com"/>"#,
        );
    std::fs::write(m.config_path(), xml).unwrap();
    m.spawn();
    let auth = basic("alice", "s3cret-pass");
    let r = m
        .put_sample("web1", &sample("secret", 1, m.now_ms()))
        .unwrap();
    assert_eq!(r.status, 200);
    let dir = m.dir().display().to_string();
    let secrets = [
        "client-Pa55word",
        "smtp-Pa55word",
        "s3cret-pass",
        "secret_id_ed25519",
        "web3.pass",
        "/etc/monitord",
        "master.key",
        "db.sqlite3",
        "web.users",
        dir.as_str(),
    ];
    for path in [
        "/",
        "/?partial=1",
        "/clients/web1",
        "/clients/web2",
        "/clients/web3?range=1y",
        "/alerts",
        "/clients/nope",
        "/assets/app.js",
        "/assets/style.css",
    ] {
        let without = m.web_get(path, &[]).unwrap();
        assert_eq!(without.status, 401, "{path} without credentials");
        assert!(without.header("www-authenticate").is_some(), "{path}");
        let with = m.web_get(path, &[&auth]).unwrap();
        let expected = if path == "/clients/nope" { 404 } else { 200 };
        assert_eq!(with.status, expected, "{path}: {}", with.text());
        let body = with.text();
        for secret in secrets {
            assert!(!body.contains(secret), "{path} embeds {secret:?}");
        }
    }
    // The assets' one caching rule: a version in the URL, an ETag, a 304 when it matches.
    let page = m.web_get("/", &[&auth]).unwrap().text();
    let css = &page[page.find("/assets/style.css?v=").unwrap()..];
    let css = &css[..css.find('"').unwrap()];
    let first = m.web_get(css, &[&auth]).unwrap();
    assert_eq!(
        first.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = first.header("etag").unwrap().to_owned();
    assert!(css.ends_with(etag.trim_matches('"')), "{css} vs {etag}");
    let again = m
        .web_get(css, &[&auth, &format!("If-None-Match: {etag}")])
        .unwrap();
    assert_eq!(again.status, 304);
}
