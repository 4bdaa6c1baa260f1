//! The POSIX `sh` scripts monitor-deploy runs on a host, and the parsing of what they print.
//!
//! Each step is one round trip over the master: the probe learns everything the upload and the
//! start need at once (machine type, the agents already there with their hashes, the address
//! the host sees us come from, and the server's address resolved on the host by `getent`).
//! Values put into scripts are either fixed here or checked to be plain words
//! ([`crate::agentbin`] versions, host names) and single-quoted. Not here: running them.

/// The agent's state directory on the host, parent of the per-version directories.
pub const BASE: &str = "$HOME/.cache/monitor-agent";

/// Stops the agent named by `agent.pid` (only if that pid really is a monitor-agent) and waits
/// up to 5 s for it to go; prints `stopped=<pid>` when it stopped one.
/// Stops the agent named by `agent.pid` (only if that pid really is a live monitor-agent) and
/// waits up to 5 s for it to go; prints `stopped=<pid>` when it stopped one. A zombie counts as
/// gone: where nobody reaps orphans (containers) it would otherwise look alive forever.
const STOP_FN: &str = r#"
alive_agent() {
  [ "$(cat /proc/$1/comm 2>/dev/null)" = monitor-agent ] || return 1
  state=$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ]
}
stop_agent() {
  p=$(cat "$base/agent.pid" 2>/dev/null) || return 0
  [ -n "$p" ] || return 0
  if alive_agent "$p"; then
    kill "$p" 2>/dev/null
    i=0
    while alive_agent "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    alive_agent "$p" && kill -9 "$p" 2>/dev/null
    echo "stopped=$p"
  fi
  rm -f "$base/agent.pid"
}
"#;

/// Everything the deploy needs to know about a host, in one round trip.
pub fn probe(resolve: Option<&str>) -> String {
    let mut script = format!(
        r#"base="{BASE}"
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
                "addr" if !probe.resolved.iter().any(|a| a == value) => {
                    probe.resolved.push(value.to_owned());
                }
                _ => {}
            }
        }
        probe
    }

    /// True when the agent of `version` on the host has `sha256`.
    pub fn has_agent(&self, version: &str, sha256: &str) -> bool {
        let suffix = format!("/{version}/monitor-agent");
        self.agents
            .iter()
            .any(|(hash, path)| hash == sha256 && path.ends_with(&suffix))
    }
}

/// Replaces a running agent with `version` in continuous mode (settings on stdin).
pub fn start(version: &str, interval_secs: u64) -> String {
    format!(
        "base=\"{BASE}\"\n{STOP_FN}\nstop_agent >/dev/null\nexec \"$base/{version}/monitor-agent\" --interval {interval_secs} --detach\n"
    )
}

/// Runs `version` once in the foreground (settings on stdin); a running agent is left alone.
pub fn once(version: &str) -> String {
    format!("exec \"{BASE}/{version}/monitor-agent\" --once\n")
}

/// Stops the agent.
pub fn stop() -> String {
    format!("base=\"{BASE}\"\n{STOP_FN}\nstop_agent\nexit 0\n")
}

/// Whether the agent runs, its binary and version, and the last line of its log.
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
fi
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
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
