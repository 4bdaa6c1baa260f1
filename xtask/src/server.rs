//! The servers a benchmark runs as child processes: the real release monitord on a temporary
//! directory (testkit's [`Monitord`], the handle the tests use), and the empty actix-web
//! handler it is compared with (started the same way, through testkit's
//! [`spawn_listening`](testkit::process::spawn_listening)).
//!
//! Only what is particular to the benchmarks is here: their config.xml, the typed
//! `monitord stats --json`, the release binaries. Not here: sending requests (see `load`) or
//! reading /proc (see `procstat`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, ensure};
use testkit::monitord::Monitord;

/// How long a server may take from spawn to `listening on` (monitord migrates first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The monitord at `binary` on a temporary directory of its own whose config.xml holds
/// `clients_xml` (each line a `<client …/>` element, or a `<defaults>` block), its master key
/// made by `monitord gen-key`; not started yet (see [`start`]). [`Monitord::keep_dir`] keeps
/// the directory.
pub fn prepare_monitord(binary: &Path, clients_xml: &str) -> anyhow::Result<Monitord> {
    let binary = binary
        .to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8", binary.display()))?;
    let monitord = Monitord::prepare(binary, &[]);
    std::fs::write(monitord.config_path(), config_xml(clients_xml))?;
    Ok(monitord)
}

/// Starts it, logging at info level, and waits until it listens.
pub fn start(monitord: &mut Monitord) {
    monitord.spawn_with_env(&[("RUST_LOG", "info")]);
}

/// SIGTERM, and a clean exit (monitord flushes its writer) within 60 s, else an error.
pub fn stop(monitord: &mut Monitord) -> anyhow::Result<()> {
    let status = monitord.terminate();
    ensure!(
        status.success(),
        "monitord exited with {status} after SIGTERM; its log ends with:\n{}",
        tail(&monitord.stderr())
    );
    Ok(())
}

/// A config.xml whose database, key and port-0 listener are all relative to its directory.
pub fn config_xml(clients_xml: &str) -> String {
    format!(
        "<monitor>\n  <server listen=\"127.0.0.1:0\" database=\"db.sqlite3\" key-file=\"master.key\"/>\n{clients_xml}</monitor>\n"
    )
}

/// What `monitord stats --json` reports (docs/DESIGN.md's keys).
#[derive(Debug, serde::Deserialize)]
pub struct Stats {
    pub clients: u64,
    pub samples: u64,
    pub db_bytes: u64,
    pub bytes_per_sample: Option<f64>,
}

/// `monitord stats --json`, typed.
pub fn stats(monitord: &Monitord) -> anyhow::Result<Stats> {
    Ok(serde_json::from_value(monitord.stats())?)
}

/// The empty actix-web handler (`xtask empty-handler`), killed on drop.
#[derive(Debug)]
pub struct EmptyHandler {
    child: Child,
    pub addr: std::net::SocketAddr,
}

impl EmptyHandler {
    pub fn start(workers: usize) -> anyhow::Result<EmptyHandler> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .args(["empty-handler", "--workers", &workers.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let log = Arc::new(Mutex::new(String::new()));
        let (child, addr) = testkit::process::spawn_listening(&mut command, START_TIMEOUT, log)
            .map_err(|why| anyhow!("the empty handler: {why}"))?;
        Ok(EmptyHandler { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for EmptyHandler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log, for error messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `given`, or the release binary `name` where cargo left it (testkit's rule for build
/// outputs); else an error saying how to build it (`how`) and which option names another.
pub fn release_binary(
    given: Option<PathBuf>,
    name: &str,
    how: &str,
    option: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => testkit::util::build_output(&format!("release/{name}")).map_err(|expected| {
            let or = option.map_or(String::new(), |o| format!(" (or name one with {o} PATH)"));
            anyhow!(
                "no {name} at {}; build it first with `{how}`{or}",
                expected.display()
            )
        })?,
    };
    ensure!(path.is_file(), "no {name} at {}", path.display());
    Ok(path)
}

/// The release monitord, or advice on how to build it.
pub fn monitord_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    release_binary(
        given,
        "monitord",
        "cargo build --release -p monitord",
        Some("--monitord"),
    )
}

/// `given`, or the static agent by testkit's one rule for finding it.
pub fn agent_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => testkit::agent::find_binary()
            .map_err(|why| anyhow!("{why} (or name one with --agent PATH)"))?,
    };
    ensure!(path.is_file(), "no static agent at {}", path.display());
    Ok(path)
}
