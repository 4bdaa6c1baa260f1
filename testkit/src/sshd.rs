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

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::util::{self, TempDir};

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
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            sftp: true,
            sftp_elsewhere: false,
            password: true,
            netns: false,
        }
    }
}

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
            let mut command = match &netns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", &ns.name]).arg(&binary);
                    c
                }
                None => Command::new(&binary),
            };
            let child = command
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
    if options.sftp {
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

fn keygen(path: &Path, comment: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// A login for [`Sshd`]: a user name, a private key (authorize it with [`Sshd::authorize`]),
/// a home directory and, for accounts made as root, an optional password.
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

fn random_suffix() -> String {
    let mut bytes = [0u8; 5];
    getrandom_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom_bytes(buf: &mut [u8]) {
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
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

/// A loopback TCP listener that accepts connections and never sends a byte: ssh waits for a
/// banner that does not come. Accepted connections are held open until drop.
#[derive(Debug)]
pub struct SilentPeer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentPeer {
    pub fn start() -> SilentPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind silent peer");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SilentPeer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A network namespace joined to this one by a veth pair with a /30 of its own in
/// 10.<200..249>.0.0/16: `outside` is this machine's end, `host` the namespace's. Deleted
/// (with its link) on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    pub host: Ipv4Addr,
    pub outside: Ipv4Addr,
}

impl Netns {
    /// Creates the namespace; needs root.
    pub fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 16_000, "too many namespaces in one test run");
        // The process id spreads concurrent test binaries over different /16s.
        let second = 200 + (std::process::id() % 50) as u8;
        let base = n * 4;
        let (third, fourth) = ((base / 256) as u8, (base % 256) as u8);
        let outside = Ipv4Addr::new(10, second, third, fourth + 1);
        let host = Ipv4Addr::new(10, second, third, fourth + 2);
        let name = format!("mdt{}", random_suffix());
        let (out_if, in_if) = (format!("{name}o"), format!("{name}i"));
        let ns = Netns {
            name: name.clone(),
            host,
            outside,
        };
        let steps: [&[&str]; 9] = [
            &["netns", "add", &name],
            &[
                "link", "add", &out_if, "type", "veth", "peer", "name", &in_if,
            ],
            &["link", "set", &in_if, "netns", &name],
            &["addr", "add", &format!("{outside}/30"), "dev", &out_if],
            &["link", "set", &out_if, "up"],
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{host}/30"),
                "dev",
                &in_if,
            ],
            &["-n", &name, "link", "set", &in_if, "up"],
            &["-n", &name, "link", "set", "lo", "up"],
            // Every address of this machine (another namespace's `outside` too) is reachable.
            &[
                "-n",
                &name,
                "route",
                "add",
                "default",
                "via",
                &outside.to_string(),
            ],
        ];
        for args in steps {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(
                out.status.success(),
                "ip {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its end of the link, and with it ours.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}o", self.name)])
            .stderr(Stdio::null())
            .status();
    }
}
