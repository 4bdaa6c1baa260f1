//! `monitord passwd NAME [--users-file PATH]`: adds or replaces one user of the web listener's
//! users-file, keeping every other line (comments too).
//!
//! The password comes from the terminal, twice and unechoed, or from stdin when it is not a
//! terminal (scripts, config management). The file is written atomically (a temporary file in
//! the same directory, fsynced, renamed over the old one): the daemon re-reading it on reload
//! never sees half a file. A new file is 0640 root:monitord when run as root and the group
//! exists (the daemon's user must read it), else 0600; an existing one keeps its mode and owner.

use std::fs::{self, OpenOptions};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use monitor_core::config;

/// Where the users-file is when neither `--users-file` nor `<web users-file>` says.
pub const DEFAULT_USERS_FILE: &str = "/etc/monitord/web.users";
/// bcrypt's cost for new hashes: about 50 ms a check on a current CPU (each distinct header
/// is checked at most once a minute, see [`super::auth`]).
pub const BCRYPT_COST: u32 = 10;

pub fn passwd(
    config_path: &Path,
    name: &str,
    users_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let path = match users_file {
        Some(p) => p,
        None => config::load(config_path)
            .ok()
            .and_then(|l| l.config.web.users_file)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_USERS_FILE)),
    };
    let password = read_password()?;
    let hash = bcrypt::hash(&password, BCRYPT_COST).context("cannot hash the password")?;
    let old = match fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let (text, replaced) = with_user(old.as_deref().unwrap_or(""), name, &hash);
    write_atomically(&path, &text, old.is_some())?;
    let what = if replaced {
        "replaced the password of"
    } else {
        "added"
    };
    eprintln!(
        "{what} user {name} in {} (`systemctl reload monitord` makes a running monitord read it)",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.contains(':')
        || name.starts_with('#')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("{name:?} cannot be a user name: no ':', spaces or control characters, not empty");
    }
    Ok(())
}

/// `text` with `name`'s line replaced by `name:hash` (or appended); true when replaced.
pub fn with_user(text: &str, name: &str, hash: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + hash.len() + name.len() + 2);
    let mut replaced = false;
    for line in text.lines() {
        let is_name = line
            .trim()
            .split_once(':')
            .is_some_and(|(n, _)| n == name && !line.trim_start().starts_with('#'));
        if is_name {
            if !replaced {
                out.push_str(&format!("{name}:{hash}\n"));
                replaced = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(&format!("{name}:{hash}\n"));
    }
    (out, replaced)
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            bail!("no password on stdin (one line is read)");
        }
        return Ok(password);
    }
    let first = prompt("New password: ")?;
    if first.is_empty() {
        bail!("the password is empty");
    }
    let second = prompt("Repeat it: ")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Reads one line from the terminal on stdin with echo off, the prompt on stderr.
fn prompt(text: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::os::unix::io::AsRawFd as _;
    let fd = std::io::stdin().as_raw_fd();
    eprint!("{text}");
    let saved = tcgetattr(fd).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(fd, SetArg::TCSANOW, &quiet).context("cannot turn off the terminal's echo")?;
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    let _ = tcsetattr(fd, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn write_atomically(path: &Path, text: &str, existed: bool) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.new-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> anyhow::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        if existed {
            // Keep the owner and mode an admin gave the file.
            let meta = fs::metadata(path)?;
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
            file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        } else if let Some(gid) = crate::commands::monitord_gid() {
            if std::os::unix::fs::fchown(&file, Some(0), Some(gid)).is_ok() {
                file.set_permissions(fs::Permissions::from_mode(0o640))?;
            }
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    let result = write();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_replaced_in_place_or_appended_and_comments_stay() {
        let text = "# web users\nalice:$2y$05$old\nbob:$2y$05$b\n";
        let (out, replaced) = with_user(text, "alice", "$2b$10$new");
        assert!(replaced);
        assert_eq!(out, "# web users\nalice:$2b$10$new\nbob:$2y$05$b\n");
        let (out, replaced) = with_user(text, "carol", "$2b$10$c");
        assert!(!replaced);
        assert!(out.ends_with("bob:$2y$05$b\ncarol:$2b$10$c\n"), "{out}");
        assert_eq!(with_user("", "a", "h").0, "a:h\n");
    }

    #[test]
    fn names_that_would_break_the_file_are_refused() {
        for bad in ["", "a:b", "a b", "#x", "a\tb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("alice.ops-1").is_ok());
    }
}
