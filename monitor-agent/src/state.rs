//! The state directory (`~/.cache/monitor-agent/` or `--dir`): where the settings, the pid of
//! the detached agent, the spool and the log live.
//!
//! | file | what |
//! |---|---|
//! | `settings.json` | the settings last received on stdin (mode 0600: it holds the keys) |
//! | `agent.pid` | pid of the continuous agent, detached or started by a boot hook (what monitor-deploy reads) |
//! | `last_sent` | unix milliseconds when monitord last stored a sample from this agent (`monitor-deploy --status` shows it) |
//! | `spool`, `spool.head` | unsent samples (see `spool`) |
//! | `agent.log`, `agent.log.1` | the log of the detached agent (and of a foreground one whose stderr is /dev/null), size-bounded |
//!
//! Not here: what the files hold beyond reading and writing them.

use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use monitor_core::AgentSettings;
use monitor_core::agent::{self, file};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// `--dir PATH`, else `$HOME/.cache/monitor-agent`; created (0700) when missing.
    pub fn open(dir: Option<PathBuf>) -> anyhow::Result<StateDir> {
        let dir = match dir {
            Some(dir) => dir,
            None => match std::env::var_os("HOME") {
                Some(home) if !home.is_empty() => {
                    PathBuf::from(home).join(agent::STATE_DIR_IN_HOME)
                }
                _ => bail!("HOME is not set: pass the state directory with --dir PATH"),
            },
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        // An absolute path, so a re-executed detached agent finds it whatever its cwd.
        let dir = fs::canonicalize(&dir)
            .with_context(|| format!("resolving the state directory {}", dir.display()))?;
        Ok(StateDir { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The settings from stdin, or from `settings.json` when stdin is a terminal or empty.
    /// With `keep`, settings that arrived on stdin are saved for later starts (a reboot).
    pub fn settings(&self, keep: bool) -> anyhow::Result<AgentSettings> {
        let mut input = Vec::new();
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            stdin
                .lock()
                .read_to_end(&mut input)
                .context("reading settings from stdin")?;
        }
        if !input.iter().all(u8::is_ascii_whitespace) {
            let settings = AgentSettings::parse(&input).context("settings on stdin")?;
            if keep {
                self.save_settings(&settings)?;
            }
            return Ok(settings);
        }
        let path = self.file(file::SETTINGS);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no settings: pipe the settings JSON ({{\"name\", \"enc\", \"mac\", \"url\"}}) \
                 to stdin, or deploy with monitor-deploy ({} does not exist)",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        AgentSettings::parse(&text).with_context(|| format!("settings file {}", path.display()))
    }

    fn save_settings(&self, settings: &AgentSettings) -> anyhow::Result<()> {
        let path = self.file(file::SETTINGS);
        write_private(&path, settings.to_json().as_bytes())
            .with_context(|| format!("saving settings to {}", path.display()))
    }

    /// Records the continuous agent's pid.
    pub fn write_pid(&self, pid: u32) -> anyhow::Result<()> {
        let path = self.file(file::PID);
        write_private(&path, format!("{pid}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Records that monitord stored a sample just now, in `last_sent` (unix milliseconds,
    /// 13 digits and a newline), without an fsync: it is written once per sample (or per
    /// drain), and a crash that loses it only makes the recorded time older.
    ///
    /// The number is overwritten in place, with one `pwrite` of the same 14 bytes. Replacing
    /// the file by rename each time cost 8 % of the agent's CPU per sample (ext4 creates an
    /// inode, flushes the new file's data on the rename over the old one, and evicts the old
    /// inode). The price: a reader racing that write, a window of nanoseconds per interval,
    /// could see digits of both times. A file of any other length (the first one, or one
    /// written by hand) is replaced by rename, as before.
    pub fn record_sent(&self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let text = format!("{ms:013}\n");
        let path = self.file(file::LAST_SENT);
        if let Ok(file) = fs::OpenOptions::new().write(true).open(&path) {
            if file.metadata()?.len() == text.len() as u64 {
                return file.write_all_at(text.as_bytes(), 0);
            }
        }
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        fs::write(&tmp, &text)?;
        fs::rename(&tmp, &path)
    }

    /// Stops the agent `agent.pid` names, if it is a live monitor-agent other than this
    /// process: SIGTERM, then SIGKILL after 5 s. Returns its pid when one was stopped.
    pub fn stop_previous(&self) -> anyhow::Result<Option<u32>> {
        let Some(pid) = fs::read_to_string(self.file(file::PID))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            return Ok(None);
        };
        if pid == std::process::id() || !is_agent(pid) {
            return Ok(None);
        }
        let target = Pid::from_raw(pid as i32);
        kill(target, Signal::SIGTERM)
            .with_context(|| format!("stopping the previous agent (pid {pid})"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_agent(pid) {
            if Instant::now() > deadline {
                let _ = kill(target, Signal::SIGKILL);
                std::thread::sleep(Duration::from_millis(100));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(pid))
    }
}

/// Whether `pid` is a live (not zombie) process with our command name, so a pid file left by
/// a crash and reused by some unrelated process never gets that process killed.
fn is_agent(pid: u32) -> bool {
    let comm = |p: &str| fs::read_to_string(format!("/proc/{p}/comm")).ok();
    let alive = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false);
    alive && comm(&pid.to_string()).is_some() && comm(&pid.to_string()) == comm("self")
}

/// Writes a file readable by its owner only, replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Per-process temporary name: two agents starting at once never share it.
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp); // a leftover could carry a wider mode
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn last_sent(state: &StateDir) -> String {
        fs::read_to_string(state.file("last_sent")).unwrap()
    }

    #[test]
    fn last_sent_is_the_latest_time_in_unix_ms_whatever_was_there() {
        let temp = TempDir::new("agent-last-sent");
        let state = StateDir::open(Some(temp.0.clone())).unwrap();
        let ms = |text: &str| -> u128 {
            assert_eq!(text.len(), 14, "{text:?}");
            text.strip_suffix('\n').unwrap().parse().unwrap()
        };
        let now = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };

        let before = now();
        state.record_sent().unwrap();
        let first = ms(&last_sent(&state));
        assert!(first >= before && first <= now());

        std::thread::sleep(Duration::from_millis(5));
        state.record_sent().unwrap();
        let second = ms(&last_sent(&state));
        assert!(second > first);

        // Something else wrote it: longer, or shorter (an old agent with a clock at 1970).
        for other in ["a line longer than fourteen bytes\n", "0\n"] {
            fs::write(state.file("last_sent"), other).unwrap();
            state.record_sent().unwrap();
            assert!(ms(&last_sent(&state)) >= second);
        }
        let names: Vec<_> = fs::read_dir(&temp.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["last_sent"], "no temporary file is left behind");
    }
}
