//! The POSIX `sh` scripts monitor-deploy runs on a host, and the parsing of what they print.
//!
//! Each step is one round trip over the master: the probe learns everything the upload and the
//! start need at once (machine type, the agents already there with their hashes, the address
//! the host sees us come from, and the server's address resolved on the host by `getent`).
//! Values put into scripts are either fixed here or checked to be plain words
//! ([`crate::agentbin`] versions, host names) and single-quoted. Not here: running them.

/// The agent's state directory on the host, parent of the per-version directories.
pub const BASE: &str = "$HOME/.cache/monitor-agent";

/// Stops this user's agent: the one `agent.pid` names and any other live monitor-agent of the
/// user (one started by a boot hook, or left by an older deploy), so a restart never leaves
/// two. SIGTERM, up to 5 s, then SIGKILL; prints `stopped=<pids>` when it stopped any. A zombie
/// counts as gone: where nobody reaps orphans (containers) it would look alive forever.
const STOP_FN: &str = r#"
alive_agent() {
  # Shell builtins only: stop_agent runs this for every process of the user (all of root's).
  c=""; st=""
  { read -r c < "/proc/$1/comm"; } 2>/dev/null
  [ "$c" = monitor-agent ] || return 1
  { read -r st < "/proc/$1/stat"; } 2>/dev/null
  st=${st##*) }
  [ -n "$st" ] && [ "${st%% *}" != Z ]
}
stop_agent() {
  found=""
  for p in $(cat "$base/agent.pid" 2>/dev/null) $(for d in /proc/[0-9]*; do [ -O "$d" ] && echo "${d#/proc/}"; done); do
    case " $found " in *" $p "*) continue;; esac
    alive_agent "$p" && kill "$p" 2>/dev/null && found="$found $p"
  done
  for p in $found; do
    i=0
    while alive_agent "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    alive_agent "$p" && kill -9 "$p" 2>/dev/null
  done
  rm -f "$base/agent.pid"
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

/// Everything the deploy needs to know about a host, in one round trip.
pub fn probe(resolve: Option<&str>) -> String {
    let mut script = format!(
        r#"base="{BASE}"
{STOP_FN}
p=$(cat "$base/agent.pid" 2>/dev/null)
if [ -n "$p" ] && alive_agent "$p"; then
  echo "running=$p"
  echo "running_exe=$(readlink "/proc/$p/exe")"
  echo "running_cmd=$(tr '\0' ' ' < "/proc/$p/cmdline") "
fi
[ -f "$base/settings.json" ] && echo "settings=$(sha256sum "$base/settings.json" | cut -d' ' -f1)"
{PENDING}
echo "machine=$(uname -m)"
echo "conn=${{SSH_CONNECTION:-}}"
for f in "$base"/*/monitor-agent; do
  [ -f "$f" ] && echo "have=$(sha256sum "$f" 2>/dev/null | cut -d' ' -f1) $f"
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

/// What [`probe`] printed.
#[derive(Debug, Default)]
pub struct Probe {
    pub machine: String,
    /// First field of `$SSH_CONNECTION`: our address as the host sees it.
    pub client_addr: Option<String>,
    /// `(sha256, path)` of each agent already on the host.
    pub agents: Vec<(String, String)>,
    /// Addresses `getent ahosts` gave for the server's host name.
    pub resolved: Vec<String>,
    /// The live agent `agent.pid` names: pid, executable, command line.
    pub running: Option<(String, String, String)>,
    /// SHA-256 of the settings file the agent keeps.
    pub settings_sha256: Option<String>,
    /// Bytes of samples the agent has not delivered yet.
    pub pending: u64,
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
                "conn" => {
                    probe.client_addr = value.split_whitespace().next().map(str::to_owned);
                }
                "have" => {
                    if let Some((hash, path)) = value.split_once(' ') {
                        probe.agents.push((hash.to_owned(), path.to_owned()));
                    }
                }
                "running" => probe.running = Some((value.to_owned(), String::new(), String::new())),
                "running_exe" => {
                    if let Some(running) = &mut probe.running {
                        running.1 = value.to_owned();
                    }
                }
                "running_cmd" => {
                    if let Some(running) = &mut probe.running {
                        running.2 = value.to_owned();
                    }
                }
                "settings" => probe.settings_sha256 = Some(value.trim().to_owned()),
                "pending" => probe.pending = value.trim().parse().unwrap_or(0),
                "addr" if !probe.resolved.iter().any(|a| a == value) => {
                    probe.resolved.push(value.to_owned());
                }
                _ => {}
            }
        }
        probe
    }

    /// The pid of an agent already running `version` every `interval_secs` with settings
    /// whose hash is `settings_sha256`, and delivering (nothing spooled): then a deploy has
    /// nothing to do. With samples spooled it is restarted, so its first sample tells whether
    /// monitord is reachable now.
    pub fn running_unchanged(
        &self,
        version: &str,
        interval_secs: u64,
        settings_sha256: &str,
    ) -> Option<&str> {
        let (pid, exe, cmd) = self.running.as_ref()?;
        let same_binary = exe.ends_with(&format!("/.cache/monitor-agent/{version}/monitor-agent"));
        let same_interval = cmd.contains(&format!(" --interval {interval_secs} "));
        let same_settings = self.settings_sha256.as_deref() == Some(settings_sha256);
        let delivering = self.pending == 0;
        (same_binary && same_interval && same_settings && delivering).then_some(pid.as_str())
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
/// `persist=<how>`. `unpersist` removes whatever an earlier deploy installed.
const PERSIST_FN: &str = r#"
unit_text() {
  printf '[Unit]\nDescription=monitord agent (installed by monitor-deploy)\nWants=network-online.target\nAfter=network-online.target\n\n'
  printf '[Service]\nExecStart="%s" --interval %s --dir "%s"\nStandardInput=null\nRestart=on-failure\nRestartSec=10\n\n' "$1" "$2" "$base"
  printf '[Install]\nWantedBy=%s\n' "$3"
}
crontab_without_agent() {
  crontab -l 2>/dev/null | grep -v '# monitor-agent$'
}
persist() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      unit_text "$1" "$2" multi-user.target > /etc/systemd/system/monitor-agent.service &&
        systemctl daemon-reload && systemctl enable monitor-agent.service >/dev/null 2>&1 &&
        { echo persist=systemd; return; }
    elif [ "$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null)" = yes ]; then
      mkdir -p "$HOME/.config/systemd/user" &&
        unit_text "$1" "$2" default.target > "$HOME/.config/systemd/user/monitor-agent.service" &&
        systemctl --user daemon-reload && systemctl --user enable monitor-agent.service >/dev/null 2>&1 &&
        { echo persist=user-unit; return; }
    fi
  fi
  if command -v crontab >/dev/null 2>&1; then
    { crontab_without_agent; echo "@reboot \"$1\" --interval $2 --dir \"$base\" </dev/null >/dev/null 2>&1 # monitor-agent"; } | crontab - &&
      { echo persist=crontab; return; }
  fi
  echo persist=none
}
unpersist() {
  if [ -f /etc/systemd/system/monitor-agent.service ] && [ "$(id -u)" = 0 ]; then
    systemctl disable monitor-agent.service >/dev/null 2>&1
    rm -f /etc/systemd/system/monitor-agent.service && systemctl daemon-reload 2>/dev/null
    echo unpersisted=systemd
  fi
  if [ -f "$HOME/.config/systemd/user/monitor-agent.service" ]; then
    systemctl --user disable monitor-agent.service >/dev/null 2>&1
    rm -f "$HOME/.config/systemd/user/monitor-agent.service"
    echo unpersisted=user-unit
  fi
  if command -v crontab >/dev/null 2>&1 && crontab -l 2>/dev/null | grep -q '# monitor-agent$'; then
    crontab_without_agent | crontab - && echo unpersisted=crontab
  fi
}
"#;

/// Replaces a running agent with `version` in continuous mode (settings on stdin); once its
/// first sample is stored, makes it come back after a reboot.
pub fn start(version: &str, interval_secs: u64) -> String {
    format!(
        r#"base="{BASE}"
{STOP_FN}
{PERSIST_FN}
stop_agent >/dev/null
exe="$base/{version}/monitor-agent"
"$exe" --interval {interval_secs} --detach
rc=$?
# 3: monitord unavailable; the agent keeps the sample and goes on retrying in the
# background, so it must come back after a reboot all the same.
[ $rc = 0 ] || [ $rc = 3 ] || exit $rc
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
    format!("base=\"{BASE}\"\n{STOP_FN}\n{PERSIST_FN}\nunpersist\nstop_agent\nexit 0\n")
}

/// Whether the agent runs, its binary, version and command line, when it last delivered a
/// sample (`last_sent`, unix ms, with the host's clock `now` in seconds to measure it against),
/// and the last line of its log.
pub fn status() -> String {
    format!(
        r#"base="{BASE}"
{STOP_FN}
p=$(cat "$base/agent.pid" 2>/dev/null)
if [ -n "$p" ] && alive_agent "$p"; then
  echo "pid=$p"
  exe=$(readlink "/proc/$p/exe")
  echo "exe=$exe"
  echo "version=$("$exe" --version 2>/dev/null | head -n 1)"
  echo "cmd=$(tr '\0' ' ' < "/proc/$p/cmdline") "
fi
{PENDING}
[ -f "$base/last_sent" ] && echo "last_sent=$(cat "$base/last_sent")"
echo "now=$(date +%s)"
[ -f "$base/agent.log" ] && echo "log=$(tail -n 1 "$base/agent.log")"
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

    #[test]
    fn probe_output_is_parsed() {
        let out = "machine=x86_64\nconn=10.0.0.5 51234 10.0.0.11 22\n\
                   have=abc /home/u/.cache/monitor-agent/0.1.0/monitor-agent\n\
                   addr=10.0.0.5\naddr=10.0.0.5\naddr=fe80::1\n";
        let p = Probe::parse(out);
        assert_eq!(p.machine, "x86_64");
        assert_eq!(p.client_addr.as_deref(), Some("10.0.0.5"));
        assert!(p.has_agent("0.1.0", "abc"));
        assert!(!p.has_agent("0.1.0", "abd"));
        assert!(!p.has_agent("0.2.0", "abc"));
        assert_eq!(p.resolved, ["10.0.0.5", "fe80::1"]);
        assert!(p.running_unchanged("0.1.0", 10, "s").is_none());
        let p = Probe::parse(
            "running=42\nrunning_exe=/h/.cache/monitor-agent/0.1.0/monitor-agent\n\
             running_cmd=/h/.cache/monitor-agent/0.1.0/monitor-agent --interval 10 --dir /h/.cache/monitor-agent \n\
             settings=s\n",
        );
        assert_eq!(p.running_unchanged("0.1.0", 10, "s"), Some("42"));
        let spooling = Probe {
            pending: 120,
            ..Probe::parse(
                "running=42\nrunning_exe=/h/.cache/monitor-agent/0.1.0/monitor-agent\nrunning_cmd=x --interval 10 \nsettings=s\n",
            )
        };
        assert!(spooling.running_unchanged("0.1.0", 10, "s").is_none());
        assert!(p.running_unchanged("0.1.0", 10, "t").is_none());
        assert!(p.running_unchanged("0.1.0", 1, "s").is_none());
        assert!(p.running_unchanged("0.2.0", 10, "s").is_none());
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
