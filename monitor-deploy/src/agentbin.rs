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
            None => {
                let paths = candidates(machine);
                match paths.iter().find(|p| p.is_file()) {
                    Some(found) => found.clone(),
                    None => {
                        let looked = paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(format!(
                            "no agent for machine type `{machine}` here: looked for {looked}; install the agent built for {machine} as {PACKAGED_DIR}/{}-{machine}, or give it with --agent PATH",
                            agent::BINARY
                        ));
                    }
                }
            }
        };
        let cached = self.loaded.lock().expect("agent cache").get(&path).cloned();
        let agent = match cached {
            Some(agent) => agent,
            None => {
                let agent = Arc::new(load(&path)?);
                self.loaded
                    .lock()
                    .expect("agent cache")
                    .insert(path.clone(), agent.clone());
                agent
            }
        };
        match elf_machine(&agent.bytes) {
            Some(built_for) if !runs_on(built_for, machine) => Err(format!(
                "{} is a program for {built_for} and the host is {machine}: it cannot run there; give the agent built for {machine} with --agent PATH, or run without --agent to use {PACKAGED_DIR}/{}-{machine}",
                path.display(),
                agent::BINARY
            )),
            _ => Ok(agent),
        }
    }
}

/// The machine an ELF executable is built for, by its header's `e_machine`, in `uname -m`
/// words; `None` for what is not ELF or a machine not listed.
fn elf_machine(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let field = [bytes[18], bytes[19]];
    // EI_DATA (byte 5): 1 little-endian, 2 big-endian.
    let e_machine = match bytes[5] {
        1 => u16::from_le_bytes(field),
        2 => u16::from_be_bytes(field),
        _ => return None,
    };
    Some(match e_machine {
        3 => "i686",
        40 => "arm",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv64",
        21 => "ppc64",
        22 => "s390x",
        _ => return None,
    })
}

/// Whether a program built for `built_for` (an [`elf_machine`] word) runs on a host whose
/// `uname -m` is `machine`; a machine type not known here is given the benefit of the doubt.
fn runs_on(built_for: &str, machine: &str) -> bool {
    let family = match machine {
        "x86_64" | "amd64" => &["x86_64", "i686"][..],
        "i386" | "i486" | "i586" | "i686" => &["i686"][..],
        "aarch64" | "arm64" => &["aarch64", "arm"][..],
        m if m.starts_with("armv") || m == "arm" => &["arm"][..],
        "riscv64" => &["riscv64"][..],
        "ppc64" | "ppc64le" => &["ppc64"][..],
        "s390x" => &["s390x"][..],
        _ => return true,
    };
    family.contains(&built_for)
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
        paths.push(target.join(agent::built_under_target(machine)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class_data: u8, machine: u16) -> Vec<u8> {
        let mut bytes = b"\x7fELF\x02".to_vec();
        bytes.push(class_data);
        bytes.resize(18, 0);
        let field = if class_data == 1 {
            machine.to_le_bytes()
        } else {
            machine.to_be_bytes()
        };
        bytes.extend(field);
        bytes.resize(64, 0);
        bytes
    }

    #[test]
    fn an_agent_fits_the_machines_that_can_run_it() {
        assert_eq!(elf_machine(&elf(1, 62)), Some("x86_64"));
        assert_eq!(elf_machine(&elf(1, 183)), Some("aarch64"));
        assert_eq!(elf_machine(&elf(2, 22)), Some("s390x"));
        assert_eq!(elf_machine(b"#!/bin/sh\necho agent\n"), None);
        assert!(runs_on("x86_64", "x86_64") && runs_on("i686", "x86_64"));
        assert!(!runs_on("x86_64", "aarch64") && !runs_on("aarch64", "x86_64"));
        assert!(runs_on("arm", "armv7l") && !runs_on("aarch64", "armv7l"));
        assert!(
            runs_on("x86_64", "mips64"),
            "unknown host machine: not refused"
        );
        // This test binary is an ELF for this machine.
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(runs_on(elf_machine(&own).unwrap(), std::env::consts::ARCH));
    }
}
