//! The agent's log: short human lines, `2026-11-28T04:10:00Z message`, on stderr in the
//! foreground and in `agent.log` in the state directory once detached (or in the foreground
//! when stderr is /dev/null, as an @reboot line leaves it).
//!
//! The file is bounded: past [`MAX_LOG_BYTES`] it is renamed to `agent.log.1` (replacing the
//! previous one) and a new file starts, so a host where monitord stays unreachable for months
//! never fills its disk with our lines. Not a logging framework: the agent writes a few lines an
//! hour, from one thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Size at which `agent.log` is rotated to `agent.log.1`.
pub const MAX_LOG_BYTES: u64 = 512 * 1024;

enum Sink {
    Stderr,
    File {
        path: PathBuf,
        rotated: PathBuf,
        file: File,
        size: u64,
    },
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);

/// Sends every following line to `path` (appending), renamed to `rotated` at
/// [`MAX_LOG_BYTES`].
pub fn to_file(path: PathBuf, rotated: PathBuf) -> std::io::Result<()> {
    let file = open_append(&path)?;
    let size = file.metadata()?.len();
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Sink::File {
        path,
        rotated,
        file,
        size,
    };
    Ok(())
}

fn open_append(path: &PathBuf) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Whether stderr is /dev/null (an @reboot line's `2>&1` to it, say): lines written there are
/// lost, so a continuous agent writes them to its state directory's log instead.
pub fn stderr_leads_nowhere() -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match (
        std::fs::metadata("/proc/self/fd/2"),
        std::fs::metadata("/dev/null"),
    ) {
        (Ok(fd), Ok(null)) => fd.file_type().is_char_device() && fd.rdev() == null.rdev(),
        _ => false,
    }
}

/// Writes one line. Failing to log is not worth stopping the agent for, so errors are dropped.
pub fn line(args: std::fmt::Arguments<'_>) {
    let text = format!("{} {args}\n", timestamp(SystemTime::now()));
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    match &mut *sink {
        Sink::Stderr => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        Sink::File {
            path,
            rotated,
            file,
            size,
        } => {
            if *size + text.len() as u64 > MAX_LOG_BYTES {
                let _ = std::fs::rename(&*path, &*rotated);
                if let Ok(fresh) = open_append(path) {
                    *file = fresh;
                    *size = 0;
                }
            }
            if file.write_all(text.as_bytes()).is_ok() {
                *size += text.len() as u64;
            }
        }
    }
}

/// `log!("sent {n} samples")`: one line to the current sink.
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::line(format_args!($($arg)*)) };
}
pub(crate) use log;

/// RFC 3339 UTC to the second.
pub fn timestamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    monitor_core::time::Utc::from_unix_secs(secs as i64).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(timestamp(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(at(1_795_838_399)), "2026-11-28T03:59:59Z");
    }
}
