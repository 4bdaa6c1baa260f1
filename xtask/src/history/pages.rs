//! The dashboard on the filled database (issue 14's benchmark): the release monitord started
//! on it with a web listener, every host given the last hour through ingest, a sample a
//! minute (so the fleet reads as it does in production: everyone reporting, the sparklines
//! whole), then each
//! page fetched over HTTP like a browser does (gzip asked for): the time from connect to the
//! last byte, and the bytes on the wire; then, with Debian's chromium, the time until headless
//! Chromium has painted each page, beyond what it takes for an empty one.
//!
//! monitord runs its start-up work meanwhile (the seed of its in-memory fleet, a history and
//! a compaction pass), as a daemon just restarted on a year of data would.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use testkit::browser;
use testkit::monitord::{Monitord, sample};

use super::measure::Timings;
use crate::server;

/// Minutes of fresh samples each host is given before the pages are timed.
const FRESH_MINUTES: i64 = 60;
/// Headless Chromium runs per page; the median counts.
const BROWSER_RUNS: usize = 3;

/// One page's figures.
#[derive(Debug)]
pub struct Page {
    pub what: &'static str,
    pub timings: Timings,
    /// Bytes of the last answer as sent (gzip).
    pub wire_bytes: usize,
    /// Headless Chromium's time to a screenshot, beyond an empty page's; `None` without it.
    pub painted: Option<Duration>,
}

/// Starts monitord on `db` for the `names` of the fleet, feeds each host one sample at the
/// real time, and measures the fleet page and a host page at 24 h and at 1 y, `requests`
/// times each (host pages rotate over the hosts).
pub fn measure(
    db: &Path,
    clients_xml: &str,
    names: &[String],
    requests: usize,
) -> anyhow::Result<Vec<Page>> {
    let binary = server::monitord_binary(None)?;
    let binary_str = binary.to_str().context("the monitord path is not UTF-8")?;
    let mut m = Monitord::prepare(binary_str, &[]);
    let config = format!(
        "<monitor>\n  <server listen=\"127.0.0.1:0\" database=\"{}\" key-file=\"master.key\"/>\n  \
         <web listen=\"127.0.0.1:0\"/>\n{clients_xml}</monitor>\n",
        db.display()
    );
    std::fs::write(m.config_path(), config)?;
    let started = Instant::now();
    server::start(&mut m);
    println!(
        "pages: monitord started on the database in {:.1} s (integrity check, migrations, the \
         fleet's newest samples read into memory)",
        started.elapsed().as_secs_f64()
    );
    // The year ends when the fill began, so the last hour is given now: a sample a minute
    // per host, the newest now, so the fleet's sparklines are whole and every host is up.
    let t = Instant::now();
    let now = testkit::monitord::now_ms();
    for minute in (0..FRESH_MINUTES).rev() {
        for (i, name) in names.iter().enumerate() {
            let seq = FRESH_MINUTES - minute;
            let mut s = sample(&format!("pages-{i}"), seq, now - minute * 60_000);
            // CPU that moves like a host's, so the sparklines weigh what real ones do.
            let wave = ((i as i64 * 7 + minute * 13) % 50) as f64;
            s["cpu_percent"] = (5.0 + wave + (minute % 7) as f64 * 3.0).into();
            let r = m.put_sample(name, &s)?;
            anyhow::ensure!(r.status == 200, "{name}: a fresh sample got {}", r.status);
        }
    }
    println!(
        "pages: {} fresh samples sent in {:.0} s (the last hour, a minute apart)",
        FRESH_MINUTES as usize * names.len(),
        t.elapsed().as_secs_f64()
    );
    let web = m.web_addr();
    let mut pages = Vec::new();
    let gzip = ["Accept-Encoding: gzip"];
    // Host pages rotate over the hosts.
    let host = |i: usize| &names[(i * 37) % names.len()];
    let path = |page: &str, i: usize| match page {
        "host 24 h" => format!("/clients/{}?range=24h", host(i)),
        "host 1 y" => format!("/clients/{}?range=1y", host(i)),
        _ => "/".to_owned(),
    };
    for what in ["fleet page", "host 24 h", "host 1 y"] {
        let mut timings = Timings::default();
        let mut wire_bytes = 0;
        for i in 0..requests {
            let t = Instant::now();
            let r = m.web_get(&path(what, i), &gzip)?;
            timings.took.push(t.elapsed());
            anyhow::ensure!(
                r.status == 200,
                "{what}: {} for {}",
                r.status,
                path(what, i)
            );
            anyhow::ensure!(
                r.header("content-encoding") == Some("gzip"),
                "{what}: not gzipped"
            );
            wire_bytes = r.body.len();
        }
        timings.shape = format!("{} KB gzipped", wire_bytes / 1000);
        let painted = painted(m.dir(), &format!("http://{web}{}", path(what, 0)))?;
        pages.push(Page {
            what,
            timings,
            wire_bytes,
            painted,
        });
    }
    server::stop(&mut m)?;
    Ok(pages)
}

/// Headless Chromium's median time to a screenshot of `url` minus that of `about:blank`;
/// `None` when Debian's chromium is not installed.
fn painted(dir: &Path, url: &str) -> anyhow::Result<Option<Duration>> {
    if !browser::installed() {
        return Ok(None);
    }
    let blank = median_run(dir, "about:blank")?;
    let page = median_run(dir, url)?;
    Ok(Some(page.saturating_sub(blank)))
}

fn median_run(dir: &Path, url: &str) -> anyhow::Result<Duration> {
    let mut runs = Vec::with_capacity(BROWSER_RUNS);
    for i in 0..BROWSER_RUNS {
        let profile = dir.join(format!("chromium-profile-{i}"));
        let shot = dir.join("page.png");
        let t = Instant::now();
        let status = browser::headless(&profile)
            .arg("--window-size=1280,900")
            .arg(format!("--screenshot={}", shot.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running chromium")?;
        runs.push(t.elapsed());
        anyhow::ensure!(status.success(), "chromium on {url}: {status}");
        let _ = std::fs::remove_dir_all(&profile);
    }
    runs.sort_unstable();
    Ok(runs[runs.len() / 2])
}
