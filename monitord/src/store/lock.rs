//! One daemon per database: [`DaemonLock`] is an exclusive `flock` on `<database>.lock`,
//! held for as long as monitord serves. Two writers on one file would each keep their own
//! replay guard and id caches, so a second monitord must refuse to start, not interleave.
//!
//! `flock` belongs to the open file: the kernel drops it when the process ends however it
//! ends (`kill -9` included), so a lock is never stale and a left-over file means nothing.
//! The file holds the holder's PID, for the message the second one prints. The operator
//! commands do not take it: they run next to the daemon by design.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FlockArg, flock};

/// Held while monitord serves; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "database {database} is in use by another monitord ({holder}); stop that one first, or give this one another <server database>"
    )]
    Held { database: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock file of `database`: `<database>.lock`, next to it.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl DaemonLock {
    /// Takes the lock of `database` without waiting.
    pub fn acquire(database: &Path) -> Result<DaemonLock, LockError> {
        let path = lock_path(database);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("directory {} does not exist", dir.display()),
                )));
            }
        }
        // A file someone else created (root starting monitord by hand once) may be read-only
        // to us; a lock on a read-only descriptor is just as good, only the PID stays stale.
        let (mut file, writable) = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(file) => (file, true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                (File::open(&path).map_err(io)?, false)
            }
            Err(e) => return Err(io(e)),
        };
        match flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
            Ok(()) => {}
            Err(Errno::EWOULDBLOCK) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let holder = match pid.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}, lock {}", path.display()),
                    Err(_) => format!("lock {}", path.display()),
                };
                return Err(LockError::Held {
                    database: database.to_path_buf(),
                    holder,
                });
            }
            Err(e) => return Err(io(std::io::Error::from(e))),
        }
        if writable {
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
        }
        Ok(DaemonLock { _file: file })
    }
}
