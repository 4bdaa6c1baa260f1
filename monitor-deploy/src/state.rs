//! monitor-deploy's own state: the `known_hosts` it trusts and the hosts that failed in the
//! previous run (`failed`, next to `known_hosts`). It lives apart from monitord's files so the
//! monitord user can never change SSH trust: `/var/lib/monitor-deploy/` (0700) as root, else
//! `$XDG_STATE_HOME/monitor-deploy` or `~/.local/state/monitor-deploy/`.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

#[derive(Debug)]
pub struct StateDir {
    pub known_hosts: PathBuf,
    failed: PathBuf,
}

impl StateDir {
    /// Creates the state directory when needed; `known_hosts` (from `--known-hosts`) moves
    /// both files next to it.
    pub fn open(known_hosts: Option<&Path>) -> anyhow::Result<StateDir> {
        let known_hosts = match known_hosts {
            Some(path) => path.to_path_buf(),
            None => default_dir()?.join("known_hosts"),
        };
        let dir = known_hosts
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        }
        Ok(StateDir {
            failed: dir.join("failed"),
            known_hosts,
        })
    }

    /// The hosts that failed in the previous run, one name per line.
    pub fn read_failed(&self) -> anyhow::Result<Vec<String>> {
        match fs::read_to_string(&self.failed) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "--failed: no previous run is recorded in {} (run with --all or host names first)",
                self.failed.display()
            ),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.failed.display())),
        }
    }

    /// Replaces the failed-hosts list (atomically: a crash never leaves half a list).
    pub fn write_failed(&self, hosts: &[&str]) -> anyhow::Result<()> {
        let tmp = self.failed.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            for host in hosts {
                writeln!(file, "{host}")?;
            }
            file.sync_all()?;
            fs::rename(&tmp, &self.failed)
        };
        write().with_context(|| {
            format!(
                "cannot record the failed hosts in {}",
                self.failed.display()
            )
        })
    }
}

fn default_dir() -> anyhow::Result<PathBuf> {
    if is_root() {
        return Ok(PathBuf::from("/var/lib/monitor-deploy"));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(state).join("monitor-deploy"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("HOME is not set: give the state location with --known-hosts FILE")?;
    Ok(PathBuf::from(home).join(".local/state/monitor-deploy"))
}

fn is_root() -> bool {
    // /proc/self belongs to the effective user; no unsafe geteuid needed.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
