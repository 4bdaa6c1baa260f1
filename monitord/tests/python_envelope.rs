//! The envelope against an independent implementation: `tests/python/envelope.py`, written
//! from DESIGN.md's text with Python's `cryptography` package and none of our code. Both
//! ways: its bodies are accepted by a real monitord, and ours (from monitor-core and from the
//! real agent) open there.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use monitor_core::{AgentSettings, ClientKeys, MasterKey};
use testkit::monitord::{Monitord, now_ms, sample};
use testkit::{agent, util};

use crate::support::{bin, expect_status, secrets_of};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/envelope.py")
}

/// True when `python3` can import `cryptography`; outside CI a missing one skips, with a reason.
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    util::runnable(
        ok,
        "python3 with the `cryptography` package is not installed",
    )
}

/// Runs `envelope.py COMMAND KEYFILE NAME` with `input` on stdin.
fn python(command: &str, key_file: &Path, name: &str, input: &[u8]) -> std::process::Output {
    let mut child = Command::new("python3")
        .arg(script())
        .args([command, key_file.to_str().unwrap(), name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn our_sealed_bodies_open_in_python() {
    if !python_ready() {
        return;
    }
    let dir = util::temp_dir("pyenv");
    let key_file = dir.path().join("master.key");
    let master = MasterKey::generate(&key_file, 0o600).unwrap();
    for name in ["web1", "[2001:db8::1]:2222", "a.b_c-d"] {
        let plain = sample("py", 1, now_ms()).to_string();
        let body = monitor_core::envelope::seal(
            &ClientKeys::derive(&master, name),
            name,
            plain.as_bytes(),
        );
        let out = python("open", &key_file, name, body.as_bytes());
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), plain, "{name}");
        // Python is not just agreeing with anything: the wrong name is refused.
        let out = python("open", &key_file, "other", body.as_bytes());
        assert!(!out.status.success(), "{name} opened as another client");
    }
    // And the other direction without a server: Python seals, monitor-core opens.
    let plain = b"{\"hello\":1}";
    let out = python("seal", &key_file, "web1", plain);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened = monitor_core::Envelope::decode(&out.stdout)
        .unwrap()
        .open(&ClientKeys::derive(&master, "web1"), "web1")
        .unwrap();
    assert_eq!(opened, plain);
}

#[test]
fn python_sealed_samples_are_stored_by_monitord() {
    if !python_ready() {
        return;
    }
    let m = Monitord::start(bin(), &["web1", "web2"]);
    let secrets = secrets_of(&m, &["web1", "web2"]);
    let s = sample("python", 42, now_ms());
    let out = python("seal", &m.key_path(), "web1", s.to_string().as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = out.stdout;
    expect_status(
        &m.put("web1", &body).unwrap(),
        200,
        "python-sealed sample",
        &secrets,
    );
    expect_status(
        &m.put("web2", &body).unwrap(),
        401,
        "python-sealed for web1, sent as web2",
        &secrets,
    );
    let stored = m.samples("web1");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["seq"], 42);
    assert_eq!(stored[0]["instance"], "python");
}

/// The Python envelope server (`envelope.py serve`), killed on drop.
struct PythonServer {
    child: Child,
    addr: String,
}

impl PythonServer {
    fn start(key_file: &Path, out: &Path) -> PythonServer {
        let mut child = Command::new("python3")
            .arg(script())
            .args(["serve", key_file.to_str().unwrap(), out.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("python server said {line:?}"))
            .to_owned();
        PythonServer { child, addr }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_real_agent_is_understood_by_python() {
    if !python_ready() {
        return;
    }
    let dir = util::temp_dir("pyagent");
    let key_file = dir.path().join("master.key");
    let master = MasterKey::generate(&key_file, 0o600).unwrap();
    let received = dir.path().join("received.jsonl");
    let server = PythonServer::start(&key_file, &received);
    let name = "web1";
    let settings = AgentSettings::new(
        name,
        &ClientKeys::derive(&master, name),
        &format!("http://{}", server.addr),
        None,
    )
    .to_json();
    let state = dir.path().join("agent");
    std::fs::create_dir(&state).unwrap();
    for _ in 0..2 {
        agent::once(&settings, &state);
    }
    let text = std::fs::read_to_string(&received).expect("the python server stored samples");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        assert_eq!(line["name"], name);
        assert_eq!(line["sample"]["v"], 1);
        assert!(
            line["sample"]["memory"]["total"].as_i64().unwrap_or(0) > 0,
            "{line}"
        );
    }
    let identity =
        |l: &serde_json::Value| (l["sample"]["instance"].clone(), l["sample"]["seq"].clone());
    assert_ne!(
        identity(&lines[0]),
        identity(&lines[1]),
        "two distinct samples"
    );
    drop(server);
}
