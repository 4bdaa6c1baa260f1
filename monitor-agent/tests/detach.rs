//! `--interval N --detach`: the first sample is reported in the foreground, then the agent
//! goes on in its own session, named by `agent.pid`; a second start replaces it, detached or
//! in the foreground (a boot hook's).

use std::process::Command;
use std::time::Duration;

use crate::util::{self, TempDir};

/// The pid in `agent.pid`; the process is SIGKILLed when this is dropped.
struct Background(u32);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}

/// Fields of /proc/PID/stat after the name: [state, ppid, pgrp, session, …].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(") ")?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z")
}

fn wait_for(what: &str, done: impl FnMut() -> bool) {
    util::wait_until(Duration::from_secs(20), what, done);
}

fn detach(dir: &TempDir, stdin: &str) -> (std::process::Output, Background) {
    let out = util::run(
        &[
            "--interval",
            "1",
            "--detach",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        stdin,
    );
    let pid: u32 = std::fs::read_to_string(dir.path().join("agent.pid"))
        .unwrap_or_else(|e| panic!("no agent.pid ({e}); stderr: {}", util::stderr(&out)))
        .trim()
        .parse()
        .unwrap();
    (out, Background(pid))
}

#[test]
fn detached_agent_runs_in_its_own_session_and_a_new_start_replaces_it() {
    let dir = util::temp_dir("detach");
    // monitord is away: the first sample is reported as not delivered (exit 3), yet the
    // agent goes on in the background and spools until it comes back.
    let (out, first) = detach(&dir, &util::settings_json(&util::closed_port_url()));
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("unavailable") && err.contains("background"),
        "{err}"
    );
    assert!(
        running(first.0),
        "the background agent is not running; {err}"
    );
    let fields = stat_fields(first.0).unwrap();
    let my_session = stat_fields(std::process::id()).unwrap()[3].clone();
    assert_eq!(
        fields[3],
        first.0.to_string(),
        "not a session leader: {fields:?}"
    );
    assert_ne!(fields[3], my_session);
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", first.0)).unwrap();
        assert_eq!(target.to_str(), Some("/dev/null"), "fd {fd}");
    }
    let log = dir.path().join("agent.log");
    wait_for("the background agent's log and spool", || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let spooled = std::fs::read_to_string(dir.path().join("spool"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        log.contains("started") && spooled >= 2
    });
    // Nothing reached monitord, so there is no time of a last successful send to show.
    assert!(!dir.path().join("last_sent").exists());

    // A second start (settings now from settings.json: stdin is empty) stops the first.
    let (out, second) = detach(&dir, "");
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("stopped the previous agent (pid {})", first.0)),
        "{err}"
    );
    assert_ne!(first.0, second.0);
    assert!(!running(first.0), "the old agent still runs");
    assert!(running(second.0));
}

/// A boot hook's agent (`--interval` in the foreground, settings from the file) started while a
/// deploy's detached agent still runs, as `systemctl start` of the unit after a redeploy does:
/// it stops that one and takes over `agent.pid`, so one agent runs per state directory.
#[test]
fn a_foreground_agent_replaces_the_detached_one() {
    let dir = util::temp_dir("foreground");
    let (_, detached) = detach(&dir, &util::settings_json(&util::closed_port_url()));
    assert!(running(detached.0));
    let mut foreground = Command::new(util::agent())
        .args(["--interval", "1", "--dir", dir.path().to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let me = foreground.id();
    let _kill_on_panic = Background(me);
    wait_for("the foreground agent in agent.pid", || {
        std::fs::read_to_string(dir.path().join("agent.pid"))
            .is_ok_and(|p| p.trim() == me.to_string())
    });
    let stopped = !running(detached.0);
    let _ = foreground.kill();
    let out = foreground.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(stopped, "the detached agent still runs; {err}");
    assert!(
        err.contains(&format!("stopped the previous agent (pid {})", detached.0)),
        "{err}"
    );
}

/// The agent an @reboot line starts has stderr on /dev/null: its lines go to `agent.log`
/// instead, where `monitor-deploy --status` reads them; with stderr anywhere else (a unit's
/// journal, a terminal) they stay there.
#[test]
fn a_foreground_agent_without_stderr_logs_to_its_state_directory() {
    for (stderr_null, tag) in [(true, "cron"), (false, "unit")] {
        let dir = util::temp_dir(tag);
        // Settings in place, as a deploy leaves them (the agent reads the file at boot).
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, util::settings_json(&util::closed_port_url())).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut agent = Command::new(util::agent())
            .args(["--interval", "1", "--dir", dir.path().to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .stderr(if stderr_null {
                std::process::Stdio::null()
            } else {
                std::process::Stdio::piped()
            })
            .spawn()
            .unwrap();
        // Else a failed wait would leave it running, holding the test's stdout open.
        let _kill_on_panic = Background(agent.id());
        let log = dir.path().join("agent.log");
        let logged = |what: &str| std::fs::read_to_string(&log).is_ok_and(|l| l.contains(what));
        if stderr_null {
            wait_for("the started line in agent.log", || logged("started"));
            wait_for("the outage in agent.log", || logged("monitord unavailable"));
        } else {
            wait_for("agent.pid", || dir.path().join("agent.pid").exists());
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = agent.kill();
        let out = agent.wait_with_output().unwrap();
        if !stderr_null {
            assert!(!log.exists(), "agent.log written with stderr to a pipe");
            assert!(
                util::stderr(&out).contains("started"),
                "{}",
                util::stderr(&out)
            );
        }
    }
}
