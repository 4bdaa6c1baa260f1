//! What the probe script (`remote/probe.sh`, run by the binary's `remote` module) prints
//! about a host, parsed into a [`Probe`], and the two questions a deploy asks of it: is
//! the agent already there, and is the one running the one the last deploy started. Pure
//! functions over the script's output, in the library so the fuzz targets (`fuzz/`) can call
//! them; a host's output is not trusted to be well-formed.
//!
//! Not here: the script itself or running it (the binary's `remote` and `deploy` modules).

use monitor_core::agent;

/// What the last deploy started, as the probe found it still running.
#[derive(Debug, PartialEq, Eq)]
pub struct Deployed {
    pub version: String,
    pub interval_secs: u64,
    pub settings_sha256: String,
}

/// What the probe script printed.
#[derive(Debug, Default)]
pub struct Probe {
    pub machine: String,
    /// `$HOME` on the host, where the agent's state directory is.
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
        let suffix = format!("/{version}/{}", agent::BINARY);
        self.agents
            .iter()
            .any(|(hash, path)| hash == sha256 && path.ends_with(&suffix))
    }
}
