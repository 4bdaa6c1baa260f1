//! Real OpenSSH servers for the deploy tests: [`Sshd`] runs the system `sshd -D -e` with its own
//! config, throwaway host key, `AuthorizedKeysFile` and pid file, all in a temporary directory,
//! on a free loopback port (or, as root, on port 22 of its own network namespace, a separate
//! "host" with its own address); [`TestUser`] is a login for it; [`SilentPeer`] accepts TCP and never
//! says a word (what a hung host or a firewall that swallows packets looks like).
//!
//! As root, every [`TestUser`] is a fresh system account (`useradd`) with its home in a
//! temporary directory and, when asked, a password: so tests running in parallel never share a
//! `~/.cache/monitor-agent`, and password authentication works (`UsePAM no`: sshd checks
//! `/etc/shadow` itself, which needs root). Without root, sshd runs as the current user and can
//! only let that user in by key; [`TestUser::current`] covers that (the README demo's case).
//! Everything is stopped and removed on drop, an account with its crontab (the first account
//! a test process makes also sweeps the crontabs of test accounts that are gone). Not here: anything about monitor-deploy itself.
//!
//! This file is the server; the accounts are in `users`, the silent peer and the network
//! namespace in `net`, the faults after login in `faults`, and `ssh-keygen` in `keygen`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{self, TempDir};

use keygen::keygen;

mod faults;
mod keygen;
mod net;
mod users;

pub use faults::HostFaults;
pub use net::{Netns, SilentPeer};
pub use users::{TestUser, have_crontab, remove_orphan_crontabs};

/// Where Debian puts sshd; `PATH` of a non-root user often lacks `/usr/sbin`.
const SSHD_CANDIDATES: [&str; 2] = ["/usr/sbin/sshd", "/usr/bin/sshd"];

/// What the server offers.
#[derive(Debug, Clone, Copy)]
pub struct SshdOptions {
    /// Offer the SFTP subsystem (monitor-deploy uploads over it).
    pub sftp: bool,
    /// SFTP starts in a directory other than the user's home (`internal-sftp -d`, as a
    /// site's sshd_config or a ForceCommand may set it): relative paths do not land in `$HOME`.
    pub sftp_elsewhere: bool,
    /// Accept passwords (only meaningful as root, see the module doc).
    pub password: bool,
    /// Run inside a network namespace of its own (root only), reached over a veth link at its
    /// own address on port 22: a separate "host" as far as addresses go.
    pub netns: bool,
    /// SFTP through a wrapper that drops the connection mid-upload for a user flagged with
    /// [`Sshd::drop_next_upload`] (root only: the flag is chowned to that user).
    pub drop_uploads: bool,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            sftp: true,
            sftp_elsewhere: false,
            password: true,
            netns: false,
            drop_uploads: false,
        }
    }
}

/// The system `sshd`, or `None` when it is not installed.
pub fn sshd_binary() -> Option<PathBuf> {
    SSHD_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A running `sshd` on `127.0.0.1:<port>`, or on port 22 of its own address inside a network
/// namespace ([`SshdOptions::netns`]); stopped and its files removed on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    dir: TempDir,
    addr: SocketAddr,
    netns: Option<Netns>,
}

impl Sshd {
    /// Starts sshd; panics with its log when it does not come up within 10 s.
    pub fn start(options: SshdOptions) -> Sshd {
        Sshd::start_inner(options, None)
    }

    /// Starts sshd in a mount namespace of its own (root only), after setting up `faults`
    /// there: the mounts they make are seen by sshd and its sessions only.
    pub fn start_with_faults(options: SshdOptions, faults: &HostFaults) -> Sshd {
        assert!(util::is_root(), "Sshd::start_with_faults needs root");
        Sshd::start_inner(options, Some(faults.script.clone()))
    }

    /// With [`SshdOptions::drop_uploads`]: the next SFTP session of `user` is cut off after a
    /// part of the upload, by killing the sshd process serving its connection.
    pub fn drop_next_upload(&self, user: &TestUser) {
        faults::SftpDrop::flag(self.dir.path(), user);
    }

    /// A temporary directory that lives as long as this server (for a fault's files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn start_inner(options: SshdOptions, faults: Option<String>) -> Sshd {
        let binary = sshd_binary().expect("sshd is not installed: apt-get install openssh-server");
        let mut dir = util::temp_dir("sshd");
        // sshd reads AuthorizedKeysFile as the logging-in user: the path must be reachable.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod sshd dir");
        fs::create_dir(dir.path().join("authorized_keys")).expect("create authorized_keys dir");
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key, "throwaway sshd host key");
        if util::is_root() {
            // sshd refuses to start as root without its privilege-separation directory.
            fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let mut netns = options.netns.then(Netns::create);
        // A loopback port was free a moment ago; another test may take it first, so retry.
        for _attempt in 0..5 {
            let addr = match &netns {
                Some(ns) => SocketAddr::from((ns.host, 22)),
                None => SocketAddr::from(([127, 0, 0, 1], util::free_port())),
            };
            let config = dir.path().join("sshd_config");
            fs::write(&config, sshd_config(dir.path(), &host_key, addr, options))
                .expect("write sshd_config");
            let log = dir.path().join("sshd.log");
            // [ip netns exec NS] [unshare … sh -ec '<faults>; exec "$@"' sh] sshd -D -e -f …
            let mut words: Vec<std::ffi::OsString> = Vec::new();
            if let Some(ns) = &netns {
                words.extend(["ip", "netns", "exec", &ns.name].map(Into::into));
            }
            if let Some(script) = &faults {
                words.extend(
                    [
                        "unshare",
                        "--mount",
                        "--propagation",
                        "private",
                        "--",
                        "sh",
                        "-ec",
                    ]
                    .map(Into::into),
                );
                words.push(format!("d={}\n{script}exec \"$@\"", faults::quote(dir.path())).into());
                words.push("sh".into());
            }
            words.push(binary.clone().into());
            let mut command = Command::new(&words[0]);
            let child = command
                .args(&words[1..])
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).expect("create sshd.log"))
                .spawn()
                .expect("spawn sshd");
            let mut sshd = Sshd {
                child,
                dir,
                addr,
                netns: netns.take(),
            };
            match sshd.wait_listening() {
                Ok(()) => return sshd,
                Err(log) if log.contains("Address already in use") && sshd.netns.is_none() => {
                    dir = sshd.into_dir();
                }
                Err(log) => panic!("sshd did not start:\n{log}"),
            }
        }
        panic!("sshd found no free loopback port after 5 attempts");
    }

    /// Where sshd listens: `127.0.0.1:<port>`, or `<namespace address>:22`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// With [`SshdOptions::netns`]: the address of this machine as the namespace sees it
    /// (the other end of its link), where a server for the namespace's processes can listen.
    pub fn outside_addr(&self) -> Option<Ipv4Addr> {
        self.netns.as_ref().map(|ns| ns.outside)
    }

    /// What sshd logged so far (`-e`: to stderr, kept in a file); for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A `known_hosts` line for this server's real host key, as ssh writes it:
    /// `[127.0.0.1]:<port> ssh-ed25519 AAAA…` (just the address for port 22).
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.dir.path().join("host_ed25519.pub"))
            .expect("read the host public key");
        known_hosts_line(self.addr, &public)
    }

    /// Lets `user` in with its key.
    pub fn authorize(&self, user: &TestUser) {
        let public = fs::read_to_string(user.key.with_extension("pub")).expect("read user pub key");
        let path = self.dir.path().join("authorized_keys").join(&user.name);
        fs::write(&path, public).expect("write authorized_keys");
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let needle = format!(
            "Server listening on {} port {}",
            self.addr.ip(),
            self.addr.port()
        );
        for _ in 0..200 {
            let log = self.log();
            if log.contains(&needle) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("sshd exited ({status}):\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("sshd not listening after 10 s:\n{}", self.log()))
    }

    fn into_dir(mut self) -> TempDir {
        self.stop();
        let dir = util::temp_dir("sshd-unused");
        std::mem::replace(&mut self.dir, dir)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sshd_config(dir: &Path, host_key: &Path, addr: SocketAddr, options: SshdOptions) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut config = format!(
        "ListenAddress {addr}\n\
         HostKey {host_key}\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys/%u\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication {password}\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin yes\n\
         LogLevel VERBOSE\n\
         MaxStartups 500\n\
         MaxSessions 100\n",
        host_key = host_key.display(),
        dir = dir.display(),
        password = yes_no(options.password),
    );
    if options.sftp && options.drop_uploads {
        let wrapper = faults::SftpDrop::install(dir);
        config.push_str(&format!("Subsystem sftp {}\n", wrapper.display()));
    } else if options.sftp {
        config.push_str("Subsystem sftp internal-sftp");
        if options.sftp_elsewhere {
            // Shared by every user of this server (1777, like /tmp).
            let start = dir.join("sftp-start");
            fs::create_dir_all(&start).expect("create the SFTP start directory");
            fs::set_permissions(&start, fs::Permissions::from_mode(0o1777))
                .expect("chmod the SFTP start directory");
            config.push_str(&format!(" -d {}", start.display()));
        }
        config.push('\n');
    }
    config
}

fn known_hosts_line(addr: SocketAddr, public_key: &str) -> String {
    let mut fields = public_key.split_whitespace();
    let kind = fields.next().expect("key type");
    let blob = fields.next().expect("key blob");
    if addr.port() == 22 {
        format!("{} {kind} {blob}", addr.ip())
    } else {
        format!("[{}]:{} {kind} {blob}", addr.ip(), addr.port())
    }
}

/// A `known_hosts` line for `127.0.0.1:<port>` with a key no server has: what a known_hosts
/// file looks like after the host was reinstalled (or is being impersonated).
pub fn foreign_known_hosts_line(port: u16) -> String {
    let dir = util::temp_dir("foreign-key");
    let key = dir.path().join("key");
    keygen(&key, "foreign host key");
    let public = fs::read_to_string(key.with_extension("pub")).expect("read foreign key");
    known_hosts_line(SocketAddr::from(([127, 0, 0, 1], port)), &public)
}
