//! The servers a benchmark runs as child processes: the real release monitord on a temporary
//! directory, and the empty actix-web handler it is compared with.
//!
//! Both announce themselves the same way (a `listening on <ip>:<port>` line on stderr), so one
//! [`Server`] type starts either, reads its port, keeps its log in the temp directory and stops
//! it on drop. Not here: sending requests (see `load`) or reading /proc (see `procstat`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use monitor_core::MasterKey;

/// How long a server may take from spawn to `listening on` (monitord migrates first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process serving HTTP on loopback.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Spawns `command`, copies its stderr to `log`, and waits for `listening on ADDR`.
    pub fn start(mut command: Command, log: &Path) -> anyhow::Result<Server> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut file = std::fs::File::create(log)
            .with_context(|| format!("cannot create log file {}", log.display()))?;
        let (tx, rx) = mpsc::channel();
        // The thread keeps draining stderr after the address is found, so a chatty server
        // never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if let Some(addr) = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.trim_end_matches([',', ';']).parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let server_log = log.to_path_buf();
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => Ok(Server {
                child,
                addr,
                log: server_log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{command:?} did not log `listening on ADDR` within {} s; its log {} ends with:\n{}",
                    START_TIMEOUT.as_secs(),
                    log.display(),
                    tail(log)
                )
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to 30 s for a clean exit (monitord flushes its writer), then SIGKILL.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("cannot run kill(1)")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "server exited with {status} after SIGTERM; see {}:\n{}",
                        self.log.display(),
                        tail(&self.log)
                    );
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("server did not exit within 30 s of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A monitord installation in one directory: config.xml, master.key, db.sqlite3.
#[derive(Debug)]
pub struct MonitordDir {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub master: MasterKey,
}

impl MonitordDir {
    /// Creates the master key with `monitord gen-key` and writes config.xml with `clients`
    /// (each line a `<client …/>` element) under a `<monitor>` root.
    pub fn create(binary: &Path, dir: &Path, clients_xml: &str) -> anyhow::Result<MonitordDir> {
        let key = dir.join("master.key");
        run(Command::new(binary).arg("gen-key").arg(&key))?;
        let master = MasterKey::load(&key).context("reading the key monitord gen-key wrote")?;
        let config = dir.join("config.xml");
        std::fs::write(&config, config_xml(clients_xml))
            .with_context(|| format!("cannot write {}", config.display()))?;
        Ok(MonitordDir {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            config,
            master,
        })
    }

    pub fn start(&self) -> anyhow::Result<Server> {
        let mut command = Command::new(&self.binary);
        command.arg("--config").arg(&self.config);
        command.env("RUST_LOG", "info");
        Server::start(command, &self.dir.join("monitord.log"))
    }

    /// `monitord stats --json`, parsed.
    pub fn stats(&self) -> anyhow::Result<Stats> {
        let out = run(self.command("stats").arg("--json"))?;
        serde_json::from_str(&out).with_context(|| format!("monitord stats --json printed {out:?}"))
    }

    pub fn compact(&self) -> anyhow::Result<String> {
        run(&mut self.command("compact"))
    }

    fn command(&self, sub: &str) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg(sub).arg("--config").arg(&self.config);
        command
    }
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

/// Runs a command to completion and returns its stdout, or an error with its stderr.
fn run(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where cargo puts build output: `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The release monitord, or advice on how to build it.
pub fn monitord_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = given.unwrap_or_else(|| target_dir().join("release/monitord"));
    if !path.is_file() {
        bail!(
            "no monitord binary at {}; build it first with `cargo build --release -p monitord` \
             (or name one with --monitord PATH)",
            path.display()
        );
    }
    Ok(path)
}
