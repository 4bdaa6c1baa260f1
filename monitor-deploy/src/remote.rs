//! The POSIX `sh` scripts monitor-deploy runs on a host, and the parsing of what they print.
//!
//! Each step is one round trip over the master: the probe learns everything the upload and the
//! start need at once (machine type, the agents already there with their hashes, whether the
//! running agent is the one the last deploy started, the address the host sees us come from,
//! and the server's address resolved on the host by `getent`). Values put into scripts are
//! either fixed here or checked to be plain words ([`crate::agentbin`] versions, hex hashes,
//! host names) and single-quoted. Not here: running them.

/// The agent's state directory on the host, parent of the per-version directories.
pub const BASE: &str = "$HOME/.cache/monitor-agent";

/// `alive_agent PID`: whether PID is a live process named monitor-agent. A zombie counts as
/// gone: where nobody reaps orphans (containers) it would look alive forever. Shell builtins
/// only: the probe runs it on every deploy, and `stop_agent` for every process of the user
/// (all of root's).
const ALIVE_FN: &str = r#"
alive_agent() {
  c=""; st=""
  { read -r c < "/proc/$1/comm"; } 2>/dev/null
  [ "$c" = monitor-agent ] || return 1
  { read -r st < "/proc/$1/stat"; } 2>/dev/null
  st=${st##*) }
  [ -n "$st" ] && [ "${st%% *}" != Z ]
}
"#;

/// `ours PID`: whether PID is an agent of ours: a live monitor-agent that `agent.pid` or the
/// `deployed` stamp names (`$named`), or whose binary is one under [`BASE`] (one started by a
/// boot hook, or left by an older deploy). Another program named monitor-agent (the user's
/// own build, a copy somewhere else) is not. Needs [`ALIVE_FN`].
const OURS_FN: &str = r#"
ours() {
  alive_agent "$1" || return 1
  case " $named " in *" $1 "*) return 0;; esac
  for f in "$base"/*/monitor-agent; do
    [ "/proc/$1/exe" -ef "$f" ] && return 0
  done
  return 1
}
"#;

/// Stops this user's agents ([`OURS_FN`]), so a restart never leaves two: SIGTERM, up to
/// 5 s, then SIGKILL; prints `stopped=<pids>` when it stopped any.
const STOP_FN: &str = r#"
stop_agent() {
  named=""; { read -r named < "$base/agent.pid"; } 2>/dev/null
  d=""; { read -r d < "$base/deployed"; } 2>/dev/null
  named="$named ${d%% *}"
  found=""
  for p in $named $(for d in /proc/[0-9]*; do [ -O "$d" ] && echo "${d#/proc/}"; done); do
    case $p in ''|*[!0-9]*) continue;; esac
    case " $found " in *" $p "*) continue;; esac
    ours "$p" && kill "$p" 2>/dev/null && found="$found $p"
  done
  for p in $found; do
    i=0
    while alive_agent "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    alive_agent "$p" && kill -9 "$p" 2>/dev/null
  done
  rm -f "$base/agent.pid" "$base/deployed"
  [ -z "$found" ] || echo "stopped=${found# }"
}
"#;

/// Prints `pending=<bytes>`: samples the agent has spooled and not delivered yet (`spool`
/// holds them from the byte offset in `spool.head`); more than 0 means it cannot reach monitord.
const PENDING: &str = r#"
if [ -f "$base/spool" ]; then
  size=$(wc -c < "$base/spool"); head=$(cat "$base/spool.head" 2>/dev/null)
  case $head in ''|*[!0-9]*) head=0;; esac
  echo "pending=$((size - head))"
fi
"#;

/// Everything the deploy needs to know about a host, in one round trip, including `$HOME`:
/// the upload goes to that absolute path, as SFTP's start directory need not be the home
/// (`internal-sftp -d`). On an unchanged host
/// it starts no process but the shell: what the last deploy started is read from `deployed`
/// (written by [`start`]) and the agents' hashes from the `monitor-agent.sha256` recorded at
/// upload, with shell builtins; `sha256sum` runs only for a binary newer than its recorded hash
/// (or without one), and `date` only when samples are spooled.
pub fn probe(resolve: Option<&str>) -> String {
    let mut script = format!(
        r#"base="{BASE}"
set -f
{ALIVE_FN}
p=""; {{ read -r p < "$base/agent.pid"; }} 2>/dev/null
if [ -n "$p" ] && alive_agent "$p"; then
  echo "running=$p"
  # The running agent is what the last deploy started: same process, binary and settings.
  d=""; {{ read -r d < "$base/deployed"; }} 2>/dev/null
  set -- $d
  if [ $# = 4 ] && [ "$1" = "$p" ] && [ "/proc/$p/exe" -ef "$base/$2/monitor-agent" ] &&
    ! [ "$base/settings.json" -nt "$base/deployed" ]; then
    echo "deployed=$2 $3 $4"
  fi
  if [ -s "$base/spool" ]; then
    echo "spooled=1"
    l=""; {{ read -r l < "$base/last_sent"; }} 2>/dev/null
    echo "last_sent=$l"
    echo "now=$(date +%s)"
  fi
fi
m=""; {{ read -r m < /proc/sys/kernel/arch; }} 2>/dev/null
echo "machine=${{m:-$(uname -m)}}"
echo "conn=${{SSH_CONNECTION:-}}"
echo "home=$HOME"
set +f
for f in "$base"/*/monitor-agent; do
  [ -f "$f" ] || continue
  h=""
  if [ -f "$f.sha256" ] && ! [ "$f" -nt "$f.sha256" ]; then
    {{ read -r h < "$f.sha256"; }} 2>/dev/null
  fi
  [ -n "$h" ] || h=$(sha256sum "$f" 2>/dev/null | cut -d' ' -f1)
  echo "have=$h $f"
done
"#
    );
    if let Some(name) = resolve {
        script.push_str(&format!(
            "getent ahosts {} | while read -r a t rest; do [ \"$t\" = STREAM ] && echo \"addr=$a\"; done\n",
            quote(name)
        ));
    }
    script.push_str("exit 0\n");
    script
}

/// What the last deploy started, as the probe found it still running.
#[derive(Debug, PartialEq, Eq)]
pub struct Deployed {
    pub version: String,
    pub interval_secs: u64,
    pub settings_sha256: String,
}

/// What [`probe`] printed.
#[derive(Debug, Default)]
pub struct Probe {
    pub machine: String,
    /// `$HOME` on the host, where [`BASE`] is.
    pub home: Option<String>,
    /// First field of `$SSH_CONNECTION`: our address as the host sees it.
    pub client_addr: Option<String>,
    /// `(sha256, path)` of each agent already on the host.
    pub agents: Vec<(String, String)>,
    /// Addresses `getent ahosts` gave for the server's host name.
    pub resolved: Vec<String>,
    /// Pid of the live agent `agent.pid` names.
    pub running: Option<String>,
    /// That agent is the one the last deploy started, with this version, interval and settings.
    pub deployed: Option<Deployed>,
    /// It has samples it could not deliver yet: then `last_sent` (unix ms) and the host's `now`
    /// (unix s) tell whether it delivers at all.
    pub spooled: bool,
    pub last_sent: Option<i64>,
    pub now: Option<i64>,
}

impl Probe {
    pub fn parse(stdout: &str) -> Probe {
        let mut probe = Probe::default();
        for line in stdout.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "machine" => probe.machine = value.trim().to_owned(),
                // As it is: a home may end in a space.
                "home" => probe.home = Some(value.to_owned()).filter(|h| !h.is_empty()),
                "conn" => {
                    probe.client_addr = value.split_whitespace().next().map(str::to_owned);
                }
                "have" => {
                    if let Some((hash, path)) = value.split_once(' ') {
                        probe.agents.push((hash.to_owned(), path.to_owned()));
                    }
                }
                "running" => probe.running = Some(value.trim().to_owned()),
                "deployed" => {
                    let mut words = value.split_whitespace();
                    if let (Some(version), Some(Ok(interval_secs)), Some(sha), None) = (
                        words.next(),
                        words.next().map(str::parse),
                        words.next(),
                        words.next(),
                    ) {
                        probe.deployed = Some(Deployed {
                            version: version.to_owned(),
                            interval_secs,
                            settings_sha256: sha.to_owned(),
                        });
                    }
                }
                "spooled" => probe.spooled = true,
                "last_sent" => probe.last_sent = value.trim().parse().ok(),
                "now" => probe.now = value.trim().parse().ok(),
                "addr" if !probe.resolved.iter().any(|a| a == value) => {
                    probe.resolved.push(value.to_owned());
                }
                _ => {}
            }
        }
        probe
    }

    /// The pid of an agent that the last deploy started with `version`, `interval_secs` and
    /// settings whose hash is `settings_sha256`, and that is delivering (nothing spooled, or a
    /// successful send recently enough for `--status` to call it delivering): then a deploy
    /// has nothing to do. Otherwise it is restarted, so its first sample tells whether
    /// monitord is reachable now.
    pub fn running_unchanged(
        &self,
        version: &str,
        interval_secs: u64,
        settings_sha256: &str,
    ) -> Option<&str> {
        let wanted = Deployed {
            version: version.to_owned(),
            interval_secs,
            settings_sha256: settings_sha256.to_owned(),
        };
        let delivering = !self.spooled
            || crate::last_send::LastSend::judge(self.last_sent, self.now, interval_secs, 1)
                .is_delivering();
        (self.deployed.as_ref() == Some(&wanted) && delivering)
            .then_some(self.running.as_deref())
            .flatten()
    }

    /// True when the agent of `version` on the host has `sha256`.
    pub fn has_agent(&self, version: &str, sha256: &str) -> bool {
        let suffix = format!("/{version}/monitor-agent");
        self.agents
            .iter()
            .any(|(hash, path)| hash == sha256 && path.ends_with(&suffix))
    }
}

/// How the agent comes back after a reboot, chosen on the host in this order: a system unit
/// when the SSH user is root and systemd runs; a user unit when the user lingers; an `@reboot`
/// crontab line; else nothing (`persist=none`, the summary warns). Each starts the agent in the
/// foreground with `</dev/null`, so it reads the settings file the deploy left. Prints
/// `persist=<how>` and removes the other hooks an earlier deploy may have installed, so only
/// one starts an agent at boot. `unpersist` removes them all (the crontab too when our line
/// was all it held).
const PERSIST_FN: &str = r#"
# In a unit's ExecStart systemd reads % as a specifier (%% is one %) everywhere, and in the
# arguments also $ as a variable ($$ is one $) and \ " as escapes inside "". The program's
# path gets no variables and may not hold \ " ' at all: unit_safe says whether it can be used.
unit_program() { printf '%s' "$1" | sed 's/%/%%/g'; }
unit_arg() { printf '%s' "$1" | sed -e 's/[\\"]/\\&/g' -e 's/%/%%/g' -e 's/[$]/$$/g'; }
unit_safe() {
  case $1 in *[\\\"\']*) return 1;; esac
}
unit_text() {
  printf '[Unit]\nDescription=monitord agent (installed by monitor-deploy)\nWants=network-online.target\nAfter=network-online.target\n\n'
  printf '[Service]\nExecStart="%s" --interval %s --dir "%s"\nStandardInput=null\nRestart=on-failure\nRestartSec=10\n\n' "$(unit_program "$1")" "$2" "$(unit_arg "$base")"
  printf '[Install]\nWantedBy=%s\n' "$3"
}
# A path as one word of a crontab command: single-quoted for sh, and \% for cron, which
# would cut the command at a bare %.
cron_word() { printf "'%s'" "$(printf '%s' "$1" | sed -e "s/'/'\\\\''/g" -e 's/%/\\%/g')"; }
cron_line() {
  printf '@reboot %s --interval %s --dir %s </dev/null >/dev/null 2>&1 # monitor-agent\n' "$(cron_word "$1")" "$2" "$(cron_word "$base")"
}
crontab_without_agent() {
  crontab -l 2>/dev/null | grep -v '# monitor-agent$'
}
persist() {
  how=none
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && unit_safe "$1"; then
    if [ "$(id -u)" = 0 ]; then
      unit_text "$1" "$2" multi-user.target > /etc/systemd/system/monitor-agent.service &&
        systemctl daemon-reload && systemctl enable monitor-agent.service >/dev/null 2>&1 &&
        how=systemd
    elif [ "$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null)" = yes ]; then
      mkdir -p "$HOME/.config/systemd/user" &&
        unit_text "$1" "$2" default.target > "$HOME/.config/systemd/user/monitor-agent.service" &&
        systemctl --user daemon-reload && systemctl --user enable monitor-agent.service >/dev/null 2>&1 &&
        how=user-unit
    fi
  fi
  if [ $how = none ] && command -v crontab >/dev/null 2>&1; then
    { crontab_without_agent; cron_line "$1" "$2"; } | crontab - && how=crontab
  fi
  # One hook only: one an earlier deploy chose (before lingering was switched on, say) would
  # start a second agent at boot. With none installed now, the old one is better than nothing.
  if [ $how != none ]; then
    [ $how = systemd ] || unpersist_system >/dev/null
    [ $how = user-unit ] || unpersist_user >/dev/null
    [ $how = crontab ] || unpersist_crontab >/dev/null
  fi
  echo "persist=$how"
}
unpersist_system() {
  if [ -f /etc/systemd/system/monitor-agent.service ] && [ "$(id -u)" = 0 ]; then
    systemctl disable monitor-agent.service >/dev/null 2>&1
    rm -f /etc/systemd/system/monitor-agent.service && systemctl daemon-reload 2>/dev/null
    echo unpersisted=systemd
  fi
}
unpersist_user() {
  if [ -f "$HOME/.config/systemd/user/monitor-agent.service" ]; then
    systemctl --user disable monitor-agent.service >/dev/null 2>&1
    rm -f "$HOME/.config/systemd/user/monitor-agent.service"
    echo unpersisted=user-unit
  fi
}
unpersist_crontab() {
  if command -v crontab >/dev/null 2>&1 && crontab -l 2>/dev/null | grep -q '# monitor-agent$'; then
    rest=$(crontab_without_agent)
    # Ours was the only line: no crontab at all then, as before the deploy.
    if printf '%s\n' "$rest" | grep -q '[^[:space:]]'; then
      printf '%s\n' "$rest" | crontab - && echo unpersisted=crontab
    else
      crontab -r && echo unpersisted=crontab
    fi
  fi
}
unpersist() {
  unpersist_system
  unpersist_user
  unpersist_crontab
}
"#;

/// Replaces a running agent with `version` in continuous mode (settings, whose hash is
/// `settings_sha256`, on stdin); once its first sample is stored, makes it come back after a
/// reboot, and records in `deployed` what runs (pid, version, interval, settings hash) for the
/// next [`probe`].
pub fn start(version: &str, interval_secs: u64, settings_sha256: &str) -> String {
    format!(
        r#"base="{BASE}"
{ALIVE_FN}
{OURS_FN}
{STOP_FN}
{PERSIST_FN}
stop_agent >/dev/null
exe="$base/{version}/monitor-agent"
"$exe" --interval {interval_secs} --detach
rc=$?
# 3: monitord unavailable; the agent keeps the sample and goes on retrying in the
# background, so it must come back after a reboot all the same.
[ $rc = 0 ] || [ $rc = 3 ] || exit $rc
p=""; {{ read -r p < "$base/agent.pid"; }} 2>/dev/null
[ -z "$p" ] || echo "$p {version} {interval_secs} {settings_sha256}" > "$base/deployed"
persist "$exe" {interval_secs}
exit $rc
"#
    )
}

/// Runs `version` once in the foreground (settings on stdin); a running agent is left alone.
pub fn once(version: &str) -> String {
    format!("exec \"{BASE}/{version}/monitor-agent\" --once\n")
}

/// Stops the agent.
pub fn stop() -> String {
    format!(
        "base=\"{BASE}\"\n{ALIVE_FN}\n{OURS_FN}\n{STOP_FN}\n{PERSIST_FN}\nunpersist\nstop_agent\nexit 0\n"
    )
}

/// Whether the agent runs, its binary, version and command line, when it last delivered a
/// sample (`last_sent`, unix ms, with the host's clock `now` in seconds to measure it against),
/// and the last line of its log. A detached agent writes `agent.log`, and so does one an
/// `@reboot` line started (stderr on /dev/null); one a boot unit started (its cgroup says so)
/// logs to the journal, the file then holds an earlier agent's lines, and `journal=` says
/// where its log is instead.
pub fn status() -> String {
    format!(
        r#"base="{BASE}"
{ALIVE_FN}
journal=""
p=$(cat "$base/agent.pid" 2>/dev/null)
if [ -n "$p" ] && alive_agent "$p"; then
  echo "pid=$p"
  exe=$(readlink "/proc/$p/exe")
  echo "exe=$exe"
  echo "version=$("$exe" --version 2>/dev/null | head -n 1)"
  echo "cmd=$(tr '\0' ' ' < "/proc/$p/cmdline") "
  case $(cat "/proc/$p/cgroup" 2>/dev/null) in
    */user@*/monitor-agent.service*) journal="journalctl --user -u monitor-agent.service";;
    */monitor-agent.service*) journal="journalctl -u monitor-agent.service";;
  esac
fi
{PENDING}
[ -f "$base/last_sent" ] && echo "last_sent=$(cat "$base/last_sent")"
echo "now=$(date +%s)"
if [ -n "$journal" ]; then
  echo "journal=$journal"
elif [ -f "$base/agent.log" ]; then
  echo "log=$(tail -n 1 "$base/agent.log")"
fi
exit 0
"#
    )
}

/// Single-quotes `word` for sh.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A home whose name starts with `prefix`, holding an agent where a deploy puts it:
    /// `(home, base, exe)` with `exe` = `base/0.1.0/monitor-agent` (not written yet).
    fn agent_home(prefix: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let home = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let base = home.path().join(".cache/monitor-agent");
        let exe = base.join("0.1.0/monitor-agent");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        (home, base, exe)
    }

    /// `sh -c` running `call` after [`PERSIST_FN`]'s functions, with `$1` = `arg`.
    fn persist_sh(call: &str, arg: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(format!("{PERSIST_FN}\n{call}"))
            .arg("sh")
            .arg(arg);
        sh
    }

    #[test]
    fn probe_output_is_parsed() {
        let out = "machine=x86_64\nconn=10.0.0.5 51234 10.0.0.11 22\nhome=/home/u s \n\
                   have=abc /home/u/.cache/monitor-agent/0.1.0/monitor-agent\n\
                   addr=10.0.0.5\naddr=10.0.0.5\naddr=fe80::1\n";
        let p = Probe::parse(out);
        assert_eq!(p.machine, "x86_64");
        assert_eq!(p.home.as_deref(), Some("/home/u s "));
        assert_eq!(p.client_addr.as_deref(), Some("10.0.0.5"));
        assert!(p.has_agent("0.1.0", "abc"));
        assert!(!p.has_agent("0.1.0", "abd"));
        assert!(!p.has_agent("0.2.0", "abc"));
        assert_eq!(p.resolved, ["10.0.0.5", "fe80::1"]);
        assert!(p.running_unchanged("0.1.0", 10, "s").is_none());
        let p = Probe::parse("running=42\ndeployed=0.1.0 10 s\n");
        assert_eq!(p.running_unchanged("0.1.0", 10, "s"), Some("42"));
        assert!(p.running_unchanged("0.1.0", 10, "t").is_none());
        assert!(p.running_unchanged("0.1.0", 1, "s").is_none());
        assert!(p.running_unchanged("0.2.0", 10, "s").is_none());
        // Samples spooled: left alone only while the last send is recent (3 intervals).
        let spooling = |ago: i64| {
            Probe::parse(&format!(
                "running=42\ndeployed=0.1.0 10 s\nspooled=1\nlast_sent={}\nnow=1800000000\n",
                (1_800_000_000 - ago) * 1000
            ))
        };
        assert_eq!(spooling(25).running_unchanged("0.1.0", 10, "s"), Some("42"));
        assert!(spooling(31).running_unchanged("0.1.0", 10, "s").is_none());
        let never = Probe::parse("running=42\ndeployed=0.1.0 10 s\nspooled=1\nnow=1800000000\n");
        assert!(never.running_unchanged("0.1.0", 10, "s").is_none());
        // A stamp without a live agent means nothing.
        assert!(
            Probe::parse("deployed=0.1.0 10 s\n")
                .running_unchanged("0.1.0", 10, "s")
                .is_none()
        );
    }

    /// The probe, run by the real `sh` on a state directory made here, with a live process
    /// named monitor-agent: the unchanged case starts nothing but the shell and reports the
    /// stamp; a binary changed after its hash was recorded is hashed again.
    #[test]
    fn probe_reads_the_stamp_and_recorded_hashes() {
        use std::os::unix::fs::PermissionsExt as _;
        use std::process::Command;
        let home = tempfile::tempdir().unwrap();
        let base = home.path().join(".cache/monitor-agent");
        let dir = base.join("0.1.0");
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("monitor-agent");
        std::fs::copy("/bin/sleep", &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut agent = Command::new(&exe).arg("30").spawn().unwrap();
        let pid = agent.id();
        std::fs::write(base.join("settings.json"), "{}").unwrap();
        std::fs::write(base.join("agent.pid"), format!("{pid}\n")).unwrap();
        std::fs::write(base.join("deployed"), format!("{pid} 0.1.0 10 feed\n")).unwrap();
        std::fs::write(dir.join("monitor-agent.sha256"), "recorded\n").unwrap();
        let run = || {
            let out = Command::new("sh")
                .arg("-c")
                .arg(probe(None))
                .env("HOME", home.path())
                .output()
                .unwrap();
            assert!(out.status.success());
            Probe::parse(&String::from_utf8_lossy(&out.stdout))
        };
        let p = run();
        assert_eq!(p.running.as_deref(), Some(pid.to_string().as_str()));
        assert_eq!(
            p.running_unchanged("0.1.0", 10, "feed"),
            Some(pid.to_string().as_str())
        );
        assert!(p.has_agent("0.1.0", "recorded"));
        assert_eq!(p.machine, std::env::consts::ARCH);
        assert_eq!(p.home.as_deref(), home.path().to_str());

        // Settings changed since the deploy: no longer what the deploy started.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(base.join("settings.json"), "{ }").unwrap();
        assert!(run().deployed.is_none());
        std::fs::write(base.join("deployed"), format!("{pid} 0.1.0 10 feed\n")).unwrap();
        assert!(run().deployed.is_some());

        // The binary replaced after its hash was recorded: hashed again, not trusted, and the
        // running agent is no longer that binary.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("new"), b"other").unwrap();
        std::fs::rename(dir.join("new"), &exe).unwrap();
        let p = run();
        assert!(p.deployed.is_none());
        assert!(!p.has_agent("0.1.0", "recorded"));
        assert!(p.has_agent("0.1.0", &crate::agentbin::sha256_hex(b"other")));
        let _ = agent.kill();
        let _ = agent.wait();
        assert!(run().running.is_none());
    }

    /// The unit the start script installs for boot (system unit for root, user unit where
    /// lingering is on) passes `systemd-analyze verify` both ways, for a home with a space and
    /// one with `%` and `$` (a specifier and a variable, were they not escaped; verify checks
    /// that the program's path, resolved, is the binary). Booting with it is for the nspawn
    /// system test; this checks the text systemd will read.
    #[test]
    fn boot_units_pass_systemd_analyze_verify() {
        use std::process::Command;
        let have = Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !testkit::util::runnable(
            have,
            "systemd-analyze is not installed (apt install systemd)",
        ) {
            return;
        }
        for prefix in ["home with space ", "home 100% $USER %h "] {
            let (home, base, exe) = agent_home(prefix);
            std::fs::copy("/bin/true", &exe).unwrap();
            let runtime = tempfile::tempdir().unwrap(); // --user wants a runtime directory
            for (target, scope) in [
                ("multi-user.target", "--system"),
                ("default.target", "--user"),
            ] {
                let out = persist_sh(
                    &format!("unit_safe \"$1\" && unit_text \"$1\" 10 {target}"),
                    &exe,
                )
                .env("base", &base)
                .output()
                .unwrap();
                assert!(out.status.success());
                let unit_dir = home.path().join(scope.trim_start_matches('-'));
                std::fs::create_dir_all(&unit_dir).unwrap();
                let unit = unit_dir.join("monitor-agent.service");
                std::fs::write(&unit, &out.stdout).unwrap();
                let verify = Command::new("systemd-analyze")
                    .args([scope, "verify"])
                    .arg(&unit)
                    .env("XDG_RUNTIME_DIR", runtime.path())
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                let complaints = String::from_utf8_lossy(&verify.stderr);
                assert!(
                    verify.status.success() && !complaints.contains("monitor-agent"),
                    "{scope} unit:\n{text}\nsystemd-analyze verify: {complaints}"
                );
                assert!(text.contains(&format!("WantedBy={target}")), "{text}");
            }
        }
    }

    /// A path systemd refuses as a program (it holds `"`, `'` or `\\`) gets no unit: the
    /// crontab line is used instead.
    #[test]
    fn unit_safe_refuses_what_systemd_refuses() {
        for (path, safe) in [
            ("/home/a b/x", true),
            ("/home/a%b$c/x", true),
            ("/home/a\"b/x", false),
            ("/home/a'b/x", false),
            ("/home/a\\b/x", false),
        ] {
            let ok = persist_sh("unit_safe \"$1\"", path)
                .status()
                .unwrap()
                .success();
            assert_eq!(ok, safe, "{path}");
        }
    }

    /// The `@reboot` line for a home holding what sh and cron would read otherwise (`%` cuts a
    /// cron command, `$ " ' \\` are special to sh), put through cron's own rule (`\\%` is a
    /// `%`, a bare `%` ends the command: do_command.c) and run by sh, runs the agent with
    /// exactly its path and `--dir`.
    #[test]
    fn cron_line_survives_cron_and_sh() {
        use std::os::unix::fs::PermissionsExt as _;
        use std::process::Command;
        let (_home, base, exe) = agent_home(r#"home 100% $USER 'q' "d" \n "#);
        // Stands in for the agent: records how it was called.
        std::fs::write(
            &exe,
            "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > \"${0%/*}/args\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = persist_sh("cron_line \"$1\" 10", &exe)
            .env("base", &base)
            .output()
            .unwrap();
        assert!(out.status.success());
        let line = String::from_utf8(out.stdout).unwrap();
        let line = line.trim_end_matches('\n');
        assert!(line.ends_with("# monitor-agent"), "{line}");
        let mut command = String::new();
        let mut chars = line.strip_prefix("@reboot ").expect("@reboot").chars();
        while let Some(c) = chars.next() {
            match (c, chars.clone().next()) {
                ('\\', Some('%')) => {
                    command.push('%');
                    chars.next();
                }
                ('%', _) => panic!("a bare % cron would cut the command at: {line}"),
                _ => command.push(c),
            }
        }
        let run = Command::new("sh").arg("-c").arg(&command).status().unwrap();
        assert!(run.success(), "{command}");
        let args = std::fs::read_to_string(exe.with_file_name("args")).unwrap();
        let expected = format!(
            "{}\n--interval\n10\n--dir\n{}\n",
            exe.display(),
            base.display()
        );
        assert_eq!(args, expected, "{line}");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
