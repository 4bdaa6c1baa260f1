//! Hosts with something wrong after login, for monitor-deploy's fault tests: [`HostFaults`] are
//! set up as root in a mount namespace of the sshd's own (`unshare --mount --propagation
//! private`) just before sshd starts, so a read-only, `noexec` or full home, or another machine
//! type, exists only for that sshd and its sessions, and goes away with it whatever happens to
//! the test; and [`SftpDrop`], an SFTP server that closes the whole connection partway through an
//! upload, once per flagged user. Not here: the server itself (`mod.rs`).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::users::TestUser;

/// What is wrong on a host, as a root shell script run in sshd's own mount namespace before
/// sshd starts (see [`Sshd::start_with_faults`](super::Sshd::start_with_faults)), with `$d`
/// the server's own directory. Every fault
/// names the account it hits; the others on the same server are healthy.
#[derive(Debug, Default, Clone)]
pub struct HostFaults {
    pub(super) script: String,
}

impl HostFaults {
    pub fn new() -> HostFaults {
        HostFaults::default()
    }

    /// The user's home on a read-only mount (a bind mount of itself, read-only): nothing under
    /// it can be written, `~/.cache` included, as on a host whose /home is mounted `ro`.
    pub fn read_only_home(mut self, user: &TestUser) -> HostFaults {
        let home = quote(&user.home);
        self.line(&format!("mount --bind -o ro {home} {home}"));
        self
    }

    /// The user's home on a `noexec` mount: files can be written there, not executed.
    pub fn noexec_home(mut self, user: &TestUser) -> HostFaults {
        let home = quote(&user.home);
        self.line(&format!("mount --bind -o noexec {home} {home}"));
        self
    }

    /// The user's home on a 256 KiB file system (tmpfs) filled to the last block: logins
    /// work, writing anything there fails with ENOSPC.
    pub fn full_home(mut self, user: &TestUser) -> HostFaults {
        let home = quote(&user.home);
        self.line(&format!(
            "mount -t tmpfs -o size=256k,mode=0755,uid={},gid={} monitord-test-full {home}",
            user.uid(),
            user.gid()
        ));
        self.line(&format!(
            "dd if=/dev/zero of={home}/filler bs=4k 2>/dev/null || true"
        ));
        self
    }

    /// The kernel reports `machine` (`/proc/sys/kernel/arch`, which is `uname -m`'s answer and
    /// what monitor-deploy's probe reads) for every login on this server: a host of another
    /// machine type as far as the deployer can tell. Programs still run as on this machine.
    pub fn machine(mut self, machine: &str) -> HostFaults {
        assert!(
            machine
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "machine type {machine:?}"
        );
        // $d: the server's own directory (set by the caller of this script).
        self.line(&format!("echo {machine} > \"$d/arch\""));
        self.line("mount --bind \"$d/arch\" /proc/sys/kernel/arch");
        self
    }

    fn line(&mut self, line: &str) {
        self.script.push_str(line);
        self.script.push('\n');
    }
}

/// The SFTP subsystem of a server that drops connections mid-upload: for a user flagged with
/// [`Sshd::drop_next_upload`](super::Sshd::drop_next_upload), the real `sftp-server` gets the
/// first [`SftpDrop::LIMIT`] bytes of the session at most (`dd`: passed on as they come,
/// where `head -c` would wait for a full buffer the client never sends before an answer), and then the sshd process serving that
/// user's connection is killed, so the TCP connection closes as when the host crashes or a
/// firewall resets it; the flag is used up, so the next upload works. Other users get the
/// plain `sftp-server`.
#[derive(Debug)]
pub(super) struct SftpDrop;

impl SftpDrop {
    /// Bytes of SFTP requests let through: enough for the directories and a first part of the
    /// agent binary (1.4 MB), never the whole of it.
    pub const LIMIT: usize = 256 * 1024;

    /// Writes the wrapper into `dir` (with its flag directory); returns the wrapper's path.
    pub(super) fn install(dir: &Path) -> std::path::PathBuf {
        let flags = dir.join("sftp-drop");
        fs::create_dir_all(&flags).expect("create the sftp-drop flag directory");
        // Sticky and world-writable: a flagged user removes its own flag (chowned to it).
        fs::set_permissions(&flags, fs::Permissions::from_mode(0o1777)).expect("chmod flags");
        let wrapper = dir.join("sftp-drop.sh");
        let script = format!(
            r#"#!/bin/sh
# monitord-test: an sftp-server whose connection drops mid-upload, once per flag file.
flag={flags}/$(id -un)
if [ -e "$flag" ] && rm -f "$flag"; then
  # The sshd process of this connection: the nearest ancestor named sshd (or sshd-session).
  s=$PPID; found=""
  while [ "$s" -gt 1 ]; do
    c=""; read -r c < /proc/$s/comm || break
    case $c in sshd|sshd-session) found=$s; break;; esac
    st=""; read -r st < /proc/$s/stat || break
    st=${{st##*) }}
    set -- $st
    s=$2
  done
  {{ dd bs=4k count={reads} 2>/dev/null; [ -z "$found" ] || kill -9 "$found"; }} | {server}
  exit 1
fi
exec {server}
"#,
            flags = quote(&flags),
            reads = Self::LIMIT / 4096,
            server = SFTP_SERVER,
        );
        fs::write(&wrapper, script).expect("write the sftp-drop wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        wrapper
    }

    /// Flags `user`: its next SFTP session drops.
    pub(super) fn flag(dir: &Path, user: &TestUser) {
        let flag = dir.join("sftp-drop").join(&user.name);
        fs::write(&flag, "").expect("write the sftp-drop flag");
        let status = std::process::Command::new("chown")
            .arg(&user.name)
            .arg(&flag)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {}", flag.display());
    }
}

/// Debian's stand-alone SFTP server (internal-sftp cannot be wrapped).
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// A path quoted for sh.
pub(super) fn quote(path: &Path) -> String {
    shell_escape::unix::escape(path.display().to_string().into()).into_owned()
}
