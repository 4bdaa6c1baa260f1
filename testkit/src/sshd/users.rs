//! [`TestUser`]: a login for [`Sshd`](super::Sshd). As root a fresh system account with its own
//! home (and, when asked, a password), removed with its crontab on drop; without root the
//! current user. Also the crontab helpers the deploy tests read and write with.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{self, TempDir};

use super::keygen::keygen;

/// True when `crontab` can run; else prints why the test is skipped (refused in CI).
pub fn have_crontab() -> bool {
    util::runnable(
        Command::new("crontab")
            .arg("-V")
            .stderr(Stdio::null())
            .output()
            .is_ok(),
        "crontab is not installed (apt-get install cron)",
    )
}

/// A login for [`Sshd`](super::Sshd): a user name, a private key (authorize it with
/// [`Sshd::authorize`](super::Sshd::authorize)), a home directory and, for accounts made as
/// root, an optional password.
#[derive(Debug)]
pub struct TestUser {
    pub name: String,
    pub home: PathBuf,
    /// Private key; its public half is next to it with `.pub`.
    pub key: PathBuf,
    pub password: Option<String>,
    /// Created with `useradd`, removed with `userdel` on drop.
    created: bool,
    _dir: TempDir,
    _home_dir: Option<TempDir>,
}

impl TestUser {
    /// A fresh system account with its home in a temporary directory; needs root (check with
    /// [`util::runnable_as_root`] first). `password`: also set this password.
    pub fn create(password: Option<&str>) -> TestUser {
        assert!(util::is_root(), "TestUser::create needs root");
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(remove_orphan_crontabs);
        let dir = util::temp_dir("user");
        let key = dir.path().join("id_ed25519");
        keygen(&key, "test user key");
        // The home must be reachable by the new user, so its parent is world-searchable.
        let home_parent = util::temp_dir("home");
        fs::set_permissions(home_parent.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod home parent");
        let name = format!("{USER_PREFIX}{}", random_suffix());
        let home = home_parent.path().join(&name);
        let status = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", "--home-dir"])
            .arg(&home)
            .arg(&name)
            .status()
            .expect("run useradd");
        assert!(status.success(), "useradd {name} failed");
        let user = TestUser {
            name,
            home,
            key,
            password: password.map(str::to_owned),
            created: true,
            _dir: dir,
            _home_dir: Some(home_parent),
        };
        // Without a password useradd leaves the account locked (`!`), and sshd without PAM
        // refuses locked accounts even for keys; `*` means "no password login" instead.
        if password.is_none() {
            let status = Command::new("usermod")
                .args(["-p", "*", &user.name])
                .status()
                .expect("run usermod");
            assert!(status.success(), "usermod -p '*' {}", user.name);
        }
        if let Some(password) = password {
            let mut child = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .spawn()
                .expect("run chpasswd");
            let line = format!("{}:{password}\n", user.name);
            child
                .stdin
                .take()
                .expect("chpasswd stdin")
                .write_all(line.as_bytes())
                .expect("write to chpasswd");
            assert!(child.wait().expect("wait chpasswd").success(), "chpasswd");
        }
        user
    }

    /// The user running the tests, with a fresh key; no password. Its home is the real one.
    pub fn current() -> TestUser {
        let dir = util::temp_dir("user");
        let key = dir.path().join("id_ed25519");
        keygen(&key, "test user key");
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| whoami());
        let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
        TestUser {
            name,
            home,
            key,
            password: None,
            created: false,
            _dir: dir,
            _home_dir: None,
        }
    }

    /// Pids of this user's processes whose command name is `comm`, read from `/proc`.
    pub fn processes(&self, comm: &str) -> Vec<u32> {
        let uid = self.uid();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let status = fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let name = status
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("Name:");
            let owner = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|u| u.parse::<u32>().ok());
            // A zombie has exited; where nobody reaps orphans (containers) it lingers.
            let zombie = status
                .lines()
                .find_map(|l| l.strip_prefix("State:"))
                .is_some_and(|state| state.trim_start().starts_with('Z'));
            if name.trim() == comm && owner == Some(uid) && !zombie {
                pids.push(pid);
            }
        }
        pids
    }

    /// This user's crontab as `crontab -l` shows it, `None` when the user has none.
    pub fn crontab(&self) -> Option<String> {
        let out = Command::new("crontab")
            .args(["-l", "-u", &self.name])
            .output()
            .expect("run crontab -l");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Installs `text` as this user's crontab (root only).
    pub fn set_crontab(&self, text: &str) {
        let mut child = Command::new("crontab")
            .args(["-u", &self.name, "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run crontab");
        child
            .stdin
            .take()
            .expect("crontab stdin")
            .write_all(text.as_bytes())
            .expect("write the crontab");
        assert!(child.wait().expect("wait crontab").success(), "crontab -u");
    }

    /// Makes `shell` the account's login shell (root only): sshd runs every command of a
    /// session as `shell -c COMMAND`.
    pub fn set_shell(&self, shell: &str) {
        let status = Command::new("usermod")
            .args(["--shell", shell, &self.name])
            .status()
            .expect("run usermod");
        assert!(status.success(), "usermod --shell {shell} {}", self.name);
    }

    /// The account's user id.
    pub fn uid(&self) -> u32 {
        self.id("-u")
    }

    /// The account's primary group id.
    pub fn gid(&self) -> u32 {
        self.id("-g")
    }

    fn id(&self, flag: &str) -> u32 {
        let out = Command::new("id")
            .args([flag, &self.name])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`id {flag} {}` gave no number", self.name))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        // Processes the test left behind (a detached agent) would keep the account busy.
        for pid in self.processes("monitor-agent") {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        // userdel leaves the crontab (deploys install an @reboot line) in cron's spool, where
        // cron would try it at the next boot for a user that no longer exists.
        let _ = Command::new("crontab")
            .args(["-r", "-u", &self.name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // -f: an exited-but-unreaped process of the account must not keep it alive.
        let _ = Command::new("userdel")
            .arg("-f")
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

/// Test accounts are `mdt` and 10 hex digits ([`random_suffix`]).
const USER_PREFIX: &str = "mdt";

/// Where Debian's cron keeps each user's crontab, in a file named after the user.
const CRONTAB_SPOOL: &str = "/var/spool/cron/crontabs";

fn is_test_user_name(name: &str) -> bool {
    name.strip_prefix(USER_PREFIX).is_some_and(|hex| {
        hex.len() == 10
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Removes the crontabs of test accounts that no longer exist: what runs before [`TestUser`]
/// removed crontabs (or that were killed before their drop) left in cron's spool. Runs once
/// per test process, as root. The spool is listed before the account database is read, so a
/// crontab installed meanwhile belongs to an account this read sees: a live one is never
/// touched.
pub fn remove_orphan_crontabs() {
    let Ok(entries) = fs::read_dir(CRONTAB_SPOOL) else {
        return;
    };
    let candidates: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_test_user_name(name))
        .collect();
    if candidates.is_empty() {
        return;
    }
    let Ok(passwd) = fs::read_to_string("/etc/passwd") else {
        return;
    };
    let accounts: std::collections::HashSet<&str> =
        passwd.lines().filter_map(|l| l.split(':').next()).collect();
    for name in candidates {
        if !accounts.contains(name.as_str()) {
            let _ = fs::remove_file(Path::new(CRONTAB_SPOOL).join(&name));
        }
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(super) fn random_suffix() -> String {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the OS's random source");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crontab_of(name: &str) -> PathBuf {
        Path::new(CRONTAB_SPOOL).join(name)
    }

    /// A test account's crontab goes with the account, and the sweep removes those of
    /// accounts that are gone while keeping those of live ones.
    #[test]
    fn test_accounts_leave_no_crontab_behind() {
        if !util::runnable_as_root("test accounts") || !have_crontab() {
            return;
        }
        let user = TestUser::create(None);
        user.set_crontab("@reboot true # test\n");
        let live = crontab_of(&user.name);
        assert!(live.is_file(), "{} installed", live.display());

        // Named like a test account that no longer exists, as earlier runs left them.
        let orphan_name = format!("{USER_PREFIX}{}", random_suffix());
        let orphan = crontab_of(&orphan_name);
        fs::write(&orphan, "@reboot true\n").expect("write an orphan crontab");
        remove_orphan_crontabs();
        assert!(!orphan.exists(), "{} removed", orphan.display());
        assert!(live.is_file(), "the live account's crontab is kept");

        drop(user);
        assert!(
            !live.exists(),
            "{} removed with its account",
            live.display()
        );
    }

    #[test]
    fn test_user_names() {
        assert!(is_test_user_name("mdt00476e74e9"));
        assert!(!is_test_user_name("mdt00476e74e"));
        assert!(!is_test_user_name("mdt00476e74eg"));
        assert!(!is_test_user_name("mdtx"));
        assert!(!is_test_user_name("root"));
    }
}
