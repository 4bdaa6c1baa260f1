//! A real monitord process for tests: a temporary directory holding config.xml (listening on
//! `127.0.0.1:0`, database and key file relative to it), a master key made by the real
//! `monitord gen-key`, and the running binary, whose bound address is read from its
//! `listening on ADDR` stderr line. The handle kills the process and removes the directory on
//! drop; stderr is kept so tests can assert on log lines. The web listener (`<web>`, on
//! `127.0.0.1:0` unless [`Monitord::set_web`] says otherwise) is found by its
//! `web listener on ADDR` line, logged before ingest's.
//!
//! Also here: sealing request bodies for the configured clients and a valid sample to seal,
//! so tests craft exactly the request they mean. Not here: anything about what monitord does
//! with a request — that is for the tests to assert.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor_core::{AgentSettings, ClientKeys, MasterKey};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::process;
use crate::util::{self, TempDir};

/// How long monitord may take to migrate its database and bind.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The variable through which a debug build of monitord reads a time offset from a file
/// (`monitord::clock::TEST_OFFSET_ENV`); [`Monitord::advance_clock`] writes that file.
const TIME_OFFSET_ENV: &str = "MONITORD_TEST_TIME_OFFSET_FILE";
const TIME_OFFSET_FILE: &str = "clock-offset";

/// A running (or stopped) monitord with its own directory.
#[derive(Debug)]
pub struct Monitord {
    bin: PathBuf,
    dir: TempDir,
    clients: Vec<String>,
    child: Option<Child>,
    addr: Option<SocketAddr>,
    /// The attributes of config.xml's `<web>` element.
    web: String,
    /// Where the web listener is, from its `web listener on ADDR` line.
    stderr: Arc<Mutex<String>>,
}

/// `<web>` as the handle writes it: on a free loopback port, no users, no TLS.
pub const WEB_DEFAULT: &str = r#"listen="127.0.0.1:0""#;

impl Monitord {
    /// Writes config.xml with `clients` (names; all at 127.0.0.1), generates the master key
    /// with `monitord gen-key`, and starts monitord. `bin` is the test's
    /// `env!("CARGO_BIN_EXE_monitord")`.
    pub fn start(bin: &str, clients: &[&str]) -> Monitord {
        let mut m = Monitord::prepare(bin, clients);
        m.spawn();
        m
    }

    /// Like [`start`](Self::start) but does not start the daemon: for tests of the commands
    /// or of start-up errors.
    pub fn prepare(bin: &str, clients: &[&str]) -> Monitord {
        let dir = util::temp_dir("monitord");
        let m = Monitord {
            bin: PathBuf::from(bin),
            dir,
            clients: clients.iter().map(|c| c.to_string()).collect(),
            child: None,
            addr: None,
            web: WEB_DEFAULT.to_owned(),
            stderr: Arc::new(Mutex::new(String::new())),
        };
        m.write_config();
        // `monitord gen-key PATH`, exactly as an admin types it (no config needed).
        let out = Command::new(&m.bin)
            .arg("gen-key")
            .arg(m.key_path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", m.bin.display()));
        assert!(
            out.status.success(),
            "monitord gen-key failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        m
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.xml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir().join("db.sqlite3")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir().join("master.key")
    }

    /// The config.xml this handle writes for `clients`.
    pub fn config_xml(clients: &[String]) -> String {
        Monitord::config_xml_with_web(clients, WEB_DEFAULT)
    }

    /// [`config_xml`](Self::config_xml) with `web_attrs` as the `<web>` element's attributes.
    pub fn config_xml_with_web(clients: &[String], web_attrs: &str) -> String {
        let mut xml = String::from(
            "<monitor>\n  <server listen=\"127.0.0.1:0\" database=\"db.sqlite3\" key-file=\"master.key\"/>\n",
        );
        for name in clients {
            xml.push_str(&format!(
                "  <client name=\"{name}\" ip=\"127.0.0.1\" username=\"monitor\" interval=\"10s\"/>\n"
            ));
        }
        // After the clients, so a client's line is 3 + its index, as before <web> existed.
        xml.push_str(&format!("  <web {web_attrs}/>\n"));
        xml.push_str("</monitor>\n");
        xml
    }

    fn write_config(&self) {
        fs::write(
            self.config_path(),
            Monitord::config_xml_with_web(&self.clients, &self.web),
        )
        .expect("write config.xml");
    }

    /// Sets the `<web>` element's attributes (paths relative to [`dir`](Self::dir)) and
    /// rewrites config.xml; takes effect at the next start.
    pub fn set_web(&mut self, attrs: &str) {
        self.web = attrs.to_owned();
        self.write_config();
    }

    /// Adds a client to config.xml (the daemon keeps running).
    pub fn add_client(&mut self, name: &str) {
        self.clients.push(name.to_owned());
        // Write a new file and rename it over the old one, as editors and config
        // management do, so the daemon never reads half a file.
        let tmp = self.dir().join("config.xml.new");
        fs::write(
            &tmp,
            Monitord::config_xml_with_web(&self.clients, &self.web),
        )
        .expect("write config.xml");
        fs::rename(&tmp, self.config_path()).expect("replace config.xml");
    }

    /// The master key monitord uses.
    pub fn master_key(&self) -> MasterKey {
        MasterKey::load(&self.key_path()).expect("load the master key gen-key made")
    }

    /// The keys client `name` has (derived from this monitord's master key).
    pub fn keys(&self, name: &str) -> ClientKeys {
        ClientKeys::derive(&self.master_key(), name)
    }

    /// Seals `plaintext` as client `name` would; returns the base64 body.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        monitor_core::envelope::seal(&self.keys(name), name, plaintext)
    }

    /// The agent's settings JSON for client `name`, pointing at this monitord.
    pub fn agent_settings(&self, name: &str) -> String {
        AgentSettings::new(name, &self.keys(name), &self.url(), None).to_json()
    }

    /// Moves monitord's clock (the daemon's and its commands') forward by `by`, at once: a
    /// test sees three minutes of host silence without waiting them out. Samples stamped with
    /// [`Monitord::now_ms`] move with it.
    pub fn advance_clock(&self, by: Duration) {
        let offset = self.clock_offset_ms() + by.as_millis() as i64;
        let tmp = self.dir().join(format!("{TIME_OFFSET_FILE}.new"));
        fs::write(&tmp, offset.to_string()).expect("write the clock offset");
        fs::rename(&tmp, self.dir().join(TIME_OFFSET_FILE)).expect("replace the clock offset");
    }

    fn clock_offset_ms(&self) -> i64 {
        fs::read_to_string(self.dir().join(TIME_OFFSET_FILE))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Now on monitord's clock (the system's, plus what [`advance_clock`](Self::advance_clock)
    /// added): what an agent whose clock is right would stamp a sample with.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.clock_offset_ms()
    }

    /// The environment every monitord process of this handle gets.
    fn clock_env(&self) -> (&'static str, PathBuf) {
        (TIME_OFFSET_ENV, self.dir().join(TIME_OFFSET_FILE))
    }

    /// Starts the daemon (again) and waits for its `listening on` line.
    pub fn spawn(&mut self) {
        self.spawn_with_env(&[]);
    }

    /// Like [`spawn`](Self::spawn) with extra environment variables, e.g. a test's own
    /// `NOTIFY_SOCKET` to read what monitord tells systemd.
    pub fn spawn_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "monitord is already running");
        self.stderr.lock().expect("stderr lock").clear();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(self.config_path())
            .current_dir(self.dir())
            // Outside systemd, whatever runs the tests: log to stderr, bind ourselves.
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("NO_COLOR", "1")
            .env(self.clock_env().0, self.clock_env().1)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let (child, addr) =
            process::spawn_listening(&mut cmd, START_TIMEOUT, Arc::clone(&self.stderr))
                .unwrap_or_else(|why| panic!("monitord: {why}"));
        self.child = Some(child);
        self.addr = Some(addr);
    }

    /// The address monitord listens on now (it changes on restart: port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("monitord was started")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The web listener's address (monitord logs it before it listens for ingest).
    pub fn web_addr(&self) -> SocketAddr {
        let log = self.stderr();
        log.lines()
            .rev()
            .find_map(|line| process::addr_after(line, "web listener on "))
            .unwrap_or_else(|| panic!("monitord logged no `web listener on ADDR`; stderr:\n{log}"))
    }

    /// `GET path` on the web listener (plain HTTP), with `headers` (`Name: value` lines).
    pub fn web_get(&self, path: &str, headers: &[&str]) -> std::io::Result<util::Response> {
        util::get_with(self.web_addr(), path, headers)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("monitord is running").id()
    }

    /// Everything monitord wrote to stderr since it was last started.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// `PUT /v1/samples/{name}` with `body`.
    pub fn put(&self, name: &str, body: &[u8]) -> std::io::Result<util::Response> {
        util::put(self.addr(), &sample_path(name), body)
    }

    /// Seals `sample` for `name` and PUTs it.
    pub fn put_sample(
        &self,
        name: &str,
        sample: &serde_json::Value,
    ) -> std::io::Result<util::Response> {
        let body = self.seal(name, sample.to_string().as_bytes());
        self.put(name, body.as_bytes())
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(60))
    }

    /// Waits (at most `timeout`, else the test fails) for the daemon to exit by itself, e.g.
    /// after a signal sent with [`signal`](Self::signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("monitord is running");
        if let Some(status) = process::wait_within(&mut child, timeout) {
            return status;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "monitord did not exit within {timeout:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Sends a signal by name (`TERM`, `HUP`) to the running daemon.
    pub fn signal(&self, name: &str) {
        // The `kill` program keeps the crate free of unsafe libc calls.
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL (if running) and start again on the same directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs `monitord --config <config.xml> ARGS…` (an operator command) and returns its output.
    pub fn command(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.dir())
            .env_remove("JOURNAL_STREAM")
            .env("NO_COLOR", "1")
            .env(self.clock_env().0, self.clock_env().1)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// Like [`command`](Self::command) but asserts success and returns stdout.
    pub fn command_ok(&self, args: &[&str]) -> String {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "monitord {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `monitord --config <config.xml> ARGS…` expecting it to exit by itself within
    /// `timeout` (e.g. the daemon refusing to start); a process still running then is killed
    /// and the test fails.
    pub fn run_to_exit(&self, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.dir())
            .env_remove("LISTEN_FDS")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env("NO_COLOR", "1");
        process::output_within(&mut cmd, b"", timeout)
            .unwrap_or_else(|e| panic!("monitord {args:?}: {e}"))
    }

    /// `monitord samples NAME --since 1h --json`, parsed.
    pub fn samples(&self, name: &str) -> Vec<serde_json::Value> {
        let out = self.command(&["samples", name, "--since", "1h", "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Nothing stored yet is `[]` and exit 0, not a failure.
        assert!(
            out.status.success(),
            "monitord samples {name} --json failed ({}): {stderr}",
            out.status
        );
        let text = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str(&text) {
            Ok(serde_json::Value::Array(items)) => items,
            _ => panic!("`monitord samples --json` did not print a JSON array: {text:?}"),
        }
    }

    /// `monitord alerts --json`, parsed: `{"states": [...], "outbox": [...]}`.
    pub fn alerts(&self) -> serde_json::Value {
        let text = self.command_ok(&["alerts", "--json"]);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("`monitord alerts --json` is not JSON ({e}): {text:?}"))
    }

    /// `monitord stats --json`, parsed.
    pub fn stats(&self) -> serde_json::Value {
        let text = self.command_ok(&["stats", "--json"]);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("`monitord stats --json` is not JSON ({e}): {text:?}"))
    }

    /// Keeps the directory (database, config.xml, key) after the handle is dropped, with what
    /// monitord wrote to stderr in `monitord.log` there; returns where it is. For a benchmark's
    /// `--keep`, or a failure worth looking at by hand.
    pub fn keep_dir(&mut self) -> &Path {
        let _ = fs::write(self.dir().join("monitord.log"), self.stderr());
        self.dir.disable_cleanup(true);
        self.dir()
    }
}

impl Drop for Monitord {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The URL path for client `name`: names may hold `:` `[` `]`, percent-encoded here.
pub fn sample_path(name: &str) -> String {
    /// Everything but RFC 3986's unreserved characters.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    format!("/v1/samples/{}", utf8_percent_encode(name, SEGMENT))
}

/// Now, in unix milliseconds (the clock `ts` uses).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A complete, valid sample with the given identity; change fields to craft bad ones.
pub fn sample(instance: &str, seq: i64, ts: i64) -> serde_json::Value {
    serde_json::json!({
        "v": 1,
        "agent": "testkit",
        "instance": instance,
        "seq": seq,
        "ts": ts,
        "hostname": "testhost",
        "os": "Linux test",
        "cpu_percent": 12.5,
        "memory": {"total": 8_388_608_000_i64, "used": 2_097_152_000_i64,
                   "available": 6_291_456_000_i64, "percent": 25.0},
        "swap": {"total": 1_048_576_000_i64, "used": 0, "percent": 0.0},
        "uptime_s": 86_400,
        "load": [0.5, 0.25, 0.125],
        "disks": [{"mount": "/", "fs": "ext4", "total": 107_374_182_400_i64,
                   "used": 53_687_091_200_i64, "avail": 48_318_382_080_i64}],
        "processes": 123,
        "top": [{"pid": 1, "name": "init", "cpu_percent": 0.5, "rss": 10_485_760}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(sample_path("web1"), "/v1/samples/web1");
        assert_eq!(sample_path("[::1]:22"), "/v1/samples/%5B%3A%3A1%5D%3A22");
    }
}
