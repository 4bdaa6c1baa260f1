//! Which agent binary a host gets: the one `--agent PATH` names, else the packaged one for the
//! host's machine (`/usr/lib/monitord/agents/monitor-agent-<uname -m>`, or `…/monitor-agent`
//! for this machine's own architecture), else the build output
//! next to this program (`<target>/x86_64-unknown-linux-gnu/agent/monitor-agent`). Each binary
//! is read and hashed once per run, and its version (`monitor-agent --version`) names the
//! directory it goes to on the host. Not here: uploading it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use monitor_core::agent;
use sha2::{Digest as _, Sha256};

/// Where the Debian package puts the agents, one per machine type.
pub const PACKAGED_DIR: &str = "/usr/lib/monitord/agents";

/// An agent binary, loaded.
#[derive(Debug)]
pub struct AgentBinary {
    pub bytes: Vec<u8>,
    /// Lower-case hex SHA-256, compared with `sha256sum` on the host.
    pub sha256: String,
    /// Safe for a path and a shell word: `[A-Za-z0-9._+-]`.
    pub version: String,
}

#[derive(Debug)]
pub struct AgentSource {
    explicit: Option<PathBuf>,
    loaded: Mutex<HashMap<PathBuf, Arc<AgentBinary>>>,
}

impl AgentSource {
    pub fn new(explicit: Option<PathBuf>) -> anyhow::Result<AgentSource> {
        if let Some(path) = &explicit {
            anyhow::ensure!(
                path.is_file(),
                "--agent {}: no such file (give the static monitor-agent binary to upload)",
                path.display()
            );
        }
        Ok(AgentSource {
            explicit,
            loaded: Mutex::default(),
        })
    }

    /// The agent for a host whose `uname -m` is `machine`.
    pub fn for_machine(&self, machine: &str) -> Result<Arc<AgentBinary>, String> {
        let path = match &self.explicit {
            Some(path) => path.clone(),
            None => candidates(machine)
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    format!(
                        "no agent for machine type `{machine}`: looked in {PACKAGED_DIR}/monitor-agent-{machine} and the build output; give one with --agent PATH"
                    )
                })?,
        };
        if let Some(agent) = self.loaded.lock().expect("agent cache").get(&path) {
            return Ok(agent.clone());
        }
        let agent = Arc::new(load(&path)?);
        self.loaded
            .lock()
            .expect("agent cache")
            .insert(path, agent.clone());
        Ok(agent)
    }
}

fn candidates(machine: &str) -> Vec<PathBuf> {
    let mut paths = vec![Path::new(PACKAGED_DIR).join(format!("{}-{machine}", agent::BINARY))];
    if machine == std::env::consts::ARCH {
        // A package that ships only the agent for its own architecture may leave off the suffix.
        paths.push(Path::new(PACKAGED_DIR).join(agent::BINARY));
    }
    // From <target>/<profile>/monitor-deploy to <target>/<triple>/agent/monitor-agent.
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
    {
        paths.push(target.join(format!(
            "{machine}-unknown-linux-gnu/agent/{}",
            agent::BINARY
        )));
    }
    paths
}

fn load(path: &Path) -> Result<AgentBinary, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read agent {}: {e}", path.display()))?;
    let sha256 = sha256_hex(&bytes);
    let version = std::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace().last().map(str::to_owned)
        })
        .filter(|v| is_safe_word(v))
        // An agent for another machine cannot run here: name its directory by its hash.
        .unwrap_or_else(|| format!("sha256-{}", &sha256[..16]));
    Ok(AgentBinary {
        bytes,
        sha256,
        version,
    })
}

fn is_safe_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

/// Lower-case hex SHA-256 of `bytes`, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
