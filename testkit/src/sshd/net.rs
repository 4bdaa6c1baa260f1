//! What a host looks like from the network when it is not a healthy sshd on loopback: a
//! [`SilentPeer`] that accepts and never speaks, and a [`Netns`], a network namespace that is a
//! separate "host" with its own address.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::users::random_suffix;

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
