//! monitor-deploy's own state: the `known_hosts` it trusts and the hosts that failed in the
//! previous run (`failed`). It lives apart from monitord's files so the monitord user can never
//! change SSH trust: `/var/lib/monitor-deploy/` (0700) as root, else
//! `~/.local/state/monitor-deploy/` (DESIGN.md), or the directory `--state-dir` names.
//! `--known-hosts FILE` moves only the known_hosts file: the failed list stays here.

use std::ffi::OsStr;
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
    /// Creates the state directory (`dir`, else the default) when needed; `known_hosts`
    /// (from `--known-hosts`) replaces the one in it.
    pub fn open(dir: Option<&Path>, known_hosts: Option<&Path>) -> anyhow::Result<StateDir> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => default_dir(is_root(), std::env::var_os("HOME").as_deref())?,
        };
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        }
        Ok(StateDir {
            known_hosts: known_hosts.map_or_else(|| dir.join("known_hosts"), Path::to_path_buf),
            failed: dir.join("failed"),
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

/// DESIGN.md's place for the state: `/var/lib/monitor-deploy` for root, else under the home.
fn default_dir(root: bool, home: Option<&OsStr>) -> anyhow::Result<PathBuf> {
    if root {
        return Ok(PathBuf::from("/var/lib/monitor-deploy"));
    }
    let home = home
        .filter(|h| !h.is_empty())
        .context("HOME is not set: give the state directory with --state-dir DIR")?;
    Ok(Path::new(home).join(".local/state/monitor-deploy"))
}

fn is_root() -> bool {
    // /proc/self belongs to the effective user; no unsafe geteuid needed.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lives_where_design_md_says() {
        let home = OsStr::new("/home/ops");
        assert_eq!(
            default_dir(true, Some(home)).unwrap(),
            Path::new("/var/lib/monitor-deploy")
        );
        assert_eq!(
            default_dir(false, Some(home)).unwrap(),
            Path::new("/home/ops/.local/state/monitor-deploy")
        );
        let err = default_dir(false, None).unwrap_err().to_string();
        assert!(err.contains("--state-dir"), "{err}");
    }

    #[test]
    fn the_failed_list_stays_in_the_state_directory_whatever_known_hosts_is() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let elsewhere = tmp.path().join("ssh/known_hosts");
        let state = StateDir::open(Some(&dir), Some(&elsewhere)).unwrap();
        assert_eq!(state.known_hosts, elsewhere);
        state.write_failed(&["web1"]).unwrap();
        assert_eq!(fs::read_to_string(dir.join("failed")).unwrap(), "web1\n");
        assert!(!tmp.path().join("ssh/failed").exists());
    }
}
