//! The harness for these tests: a temporary directory with config.xml, a master key, a
//! known_hosts file and monitor-deploy's state directory; running the real `monitor-deploy`
//! binary against it with a time bound; logins for testkit's sshd; the set-up of a deploy test
//! (sshd, monitord, the agent) and a stand-in HTTP answer. Not here: starting sshd or monitord
//! (testkit does that).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monitor_core::MasterKey;
use testkit::monitord::Monitord;
use testkit::process;
use testkit::sshd::{Sshd, SshdOptions, TestUser};
use testkit::util::{self, TempDir};

/// What one run of monitor-deploy did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The host's line in the summary table (`HOST  RESULT  STEP …`).
    pub fn row(&self, host: &str) -> String {
        let after = self.stdout.rsplit("HOST ").next().unwrap_or("");
        after
            .lines()
            .find(|l| l.split_whitespace().next() == Some(host))
            .unwrap_or_else(|| panic!("no summary row for {host}:\n{self}"))
            .to_owned()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A deployer's working directory: config.xml, master key, known_hosts, `state/`.
#[derive(Debug)]
pub struct Deployer {
    pub dir: TempDir,
    key_file: PathBuf,
}

impl Deployer {
    /// With a fresh master key of its own (for tests that never reach monitord).
    pub fn new() -> Deployer {
        let dir = util::temp_dir("deploy");
        let key_file = dir.path().join("master.key");
        MasterKey::generate(&key_file, 0o600).expect("generate master key");
        Deployer { dir, key_file }
    }

    /// Sharing monitord's master key, so the agents' samples are accepted.
    pub fn with_key(key_file: &Path) -> Deployer {
        Deployer {
            dir: util::temp_dir("deploy"),
            key_file: key_file.to_path_buf(),
        }
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// `--state-dir`: where the failed list goes (known_hosts is given apart, as a user's
    /// `--known-hosts FILE` is).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.xml")
    }

    /// Writes config.xml: `<server url>` when given, and the `<client>` lines.
    pub fn write_config(&self, url: Option<&str>, clients: &[String]) {
        let url = url.map(|u| format!(" url=\"{u}\"")).unwrap_or_default();
        let mut xml = format!(
            "<monitor>\n  <server{url} key-file=\"{}\"/>\n",
            self.key_file.display()
        );
        for c in clients {
            xml.push_str("  ");
            xml.push_str(c);
            xml.push('\n');
        }
        xml.push_str("</monitor>\n");
        fs::write(self.config(), xml).expect("write config.xml");
    }

    /// Runs monitor-deploy with `--config`, `--known-hosts` and `--state-dir` of this directory.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_watching(args, |_| {})
    }

    /// Like [`run`](Self::run), calling `watch(pid)` every few milliseconds while it runs.
    pub fn run_watching(&self, args: &[&str], mut watch: impl FnMut(u32)) -> Run {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_monitor-deploy"))
            .arg("--config")
            .arg(self.config())
            .arg("--known-hosts")
            .arg(self.known_hosts())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn monitor-deploy");
        let limit = Duration::from_secs(180);
        while process::wait_within(&mut child, Duration::from_millis(5)).is_none() {
            watch(child.id());
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().expect("reap");
                panic!(
                    "monitor-deploy {args:?} still running after {limit:?}:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let out = child.wait_with_output().expect("collect output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

/// A `<client>` line for `sshd` logging in as `user` with its key.
pub fn key_client(name: &str, sshd: &Sshd, user: &TestUser, interval: &str) -> String {
    format!(
        r#"<client name="{name}" ip="127.0.0.1" port="{}" username="{}" key="{}" interval="{interval}"/>"#,
        sshd.port(),
        user.name,
        user.key.display()
    )
}

/// A `<client>` line logging in with a password.
pub fn password_client(name: &str, sshd: &Sshd, user: &str, password: &str) -> String {
    format!(
        r#"<client name="{name}" ip="127.0.0.1" port="{}" username="{user}" password="{password}" interval="10s"/>"#,
        sshd.port()
    )
}

/// A login for `sshd` that owns its own home (as root: a fresh account), key authorized.
/// `None` (after printing why) when this machine cannot provide one.
pub fn login(sshd: &Sshd, password: Option<&str>) -> Option<TestUser> {
    if !util::runnable_as_root(
        "a test account with its own home (parallel deploys must not share ~/.cache/monitor-agent)",
    ) {
        return None;
    }
    let user = TestUser::create(password);
    sshd.authorize(&user);
    Some(user)
}

/// A process of `user` named monitor-agent that is not ours: a copy of `sleep` under that
/// name outside `~/.cache/monitor-agent` (the user's own build, say). Killed on drop.
#[derive(Debug)]
pub struct ForeignAgent {
    child: std::process::Child,
    _dir: TempDir,
}

impl ForeignAgent {
    pub fn start(user: &TestUser) -> ForeignAgent {
        use std::os::unix::fs::PermissionsExt as _;
        use std::os::unix::process::CommandExt as _;
        let dir = util::temp_dir("foreign-agent");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let exe = dir.path().join("monitor-agent");
        fs::copy("/bin/sleep", &exe).expect("copy /bin/sleep");
        let child = Command::new(&exe)
            .arg("600")
            .current_dir("/")
            .uid(user.uid())
            .gid(user.gid())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the foreign monitor-agent");
        let pid = child.id();
        util::wait_until(Duration::from_secs(5), "the foreign agent to run", || {
            user.processes("monitor-agent").contains(&pid)
        });
        ForeignAgent { child, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running (not exited, not a zombie).
    pub fn alive(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("poll the foreign agent")
            .is_none()
    }
}

impl Drop for ForeignAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when sshd is installed; else prints why the test is skipped (refused in CI).
pub fn have_sshd() -> bool {
    util::runnable(
        testkit::sshd::sshd_binary().is_some(),
        "sshd is not installed (apt-get install openssh-server)",
    )
}

/// The monitord binary the workspace build left next to this test binary's target directory,
/// and the static agent; `None` (after printing why) when either is missing.
pub fn monitord_and_agent() -> Option<(String, PathBuf)> {
    let monitord = match util::build_output("debug/monitord") {
        Ok(path) => path,
        Err(expected) => {
            util::runnable(
                false,
                &format!(
                    "{} is missing (cargo build -p monitord, or run scripts/test)",
                    expected.display()
                ),
            );
            return None;
        }
    };
    let agent = testkit::agent::binary_or_skip()?;
    Some((monitord.display().to_string(), agent))
}

/// An HTTP server that answers every request with one fixed status and JSON body, for what a
/// real monitord cannot be made to answer in a test (422 for a client clock ten minutes off:
/// the test's clock is monitord's). Stops with the test process.
#[derive(Debug)]
pub struct FixedAnswer {
    addr: std::net::SocketAddr,
}

impl FixedAnswer {
    pub fn start(status: &str, json: &str) -> FixedAnswer {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        FixedAnswer { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Everything a deploy test needs, or `None` when this machine cannot run it (printed).
pub fn setup(names: &[&str]) -> Option<(Monitord, Sshd, Deployer, PathBuf)> {
    if !have_sshd() {
        return None;
    }
    let (monitord_bin, agent) = monitord_and_agent()?;
    if !util::runnable_as_root("test accounts for deploys") {
        return None;
    }
    let monitord = Monitord::start(&monitord_bin, names);
    let server = Sshd::start(SshdOptions::default());
    let deployer = Deployer::with_key(&monitord.key_path());
    Some((monitord, server, deployer, agent))
}

/// For failures that happen before the agent talks to monitord: sshd, a deployer with its
/// own key, the agent.
pub fn setup_without_monitord() -> Option<(Deployer, PathBuf)> {
    if !have_sshd() {
        return None;
    }
    let (_, agent) = monitord_and_agent()?;
    if !util::runnable_as_root("test accounts for deploys") {
        return None;
    }
    Some((Deployer::new(), agent))
}

pub fn agent_arg(agent: &Path) -> String {
    agent.display().to_string()
}
