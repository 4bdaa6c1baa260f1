//! How long and how many connections the two listeners hold.
//!
//! Both listeners are open to anyone who can reach them, so neither lets an idle or slow
//! client hold a connection for long (issue 11; `xtask bench hostile` measures it with 2,000
//! idle and 500 slow connections): a connection has [`REQUEST_HEAD_TIMEOUT`] to send its first
//! request's head (else 408 and close), an idle keep-alive connection is closed after
//! [`KEEP_ALIVE`], a closing one gets [`DISCONNECT_TIMEOUT`] to take our FIN, and an ingest
//! body must arrive within [`crate::http::BODY_TIMEOUT`] (actix has no body timeout of its own). A
//! cap on connections ([`INGEST_MAX_CONNECTIONS`], [`crate::web::MAX_CONNECTIONS`] the web listener's) keeps the open files
//! within the limit [`raise_open_file_limit`] asks for: past it, new connections wait in the
//! kernel's backlog ([`LISTEN_BACKLOG`]) instead of failing `accept` with EMFILE.
//! Not bounded yet: actix's head timer covers only a connection's first request, so a client
//! that completes one request and then dribbles the next head on the same keep-alive
//! connection holds it (checked: still open after 34 s at ~1 byte/s). Agents send
//! `Connection: close`; closing that gap needs a timer around the connection's own reads.

use std::net::TcpListener;
use std::time::Duration;

/// From accept to the end of the first request's head (actix's `client_request_timeout`):
/// then 408 and close. An agent writes its head (~150 bytes) at once, so even with a few TCP
/// retransmissions on a bad link it needs well under this; a slowloris client is gone after it.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle keep-alive connection is closed after this. Agents send `Connection: close`; only
/// benchmarks, curl, browsers and Prometheus reuse connections, and they reconnect cheaply.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Once we close, how long a client that does not take our answer and FIN may keep the socket.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections ingest holds at most, over all its workers (actix's default is 25,000 per
/// worker, unrelated to the open-file limit). A fleet of hundreds needs a few at a time (one
/// per PUT); the rest is headroom for idle and slow clients until their timeouts close them.
pub const INGEST_MAX_CONNECTIONS: usize = 16_384;
/// Pending connections the kernel queues on each listening socket (capped by
/// `net.core.somaxconn`): a burst of connects, or the listeners at their cap, wait there
/// rather than being refused. Rust's `TcpListener::bind` asks for only 128; systemd's socket
/// units ask for 4096 (`Backlog=`), and asking again is harmless.
pub const LISTEN_BACKLOG: usize = 4096;
/// Open files beyond the connections: the database and its WAL, read connections, logs.
pub const OTHER_OPEN_FILES: u64 = 256;

/// Asks the kernel to queue up to [`LISTEN_BACKLOG`] pending connections on `listener`.
pub fn deepen_backlog(listener: &TcpListener, role: &str) {
    use std::os::fd::AsRawFd as _;
    if let Err(e) = nix::sys::socket::listen(listener.as_raw_fd(), LISTEN_BACKLOG) {
        tracing::warn!("cannot deepen the {role} socket's backlog to {LISTEN_BACKLOG}: {e}");
    }
}

/// Raises the soft open-file limit towards `wanted` (as far as the hard limit allows), and
/// warns when it stays below: past it `accept` fails with EMFILE and actix stops accepting for
/// half a second at a time. The packaged unit sets `LimitNOFILE=65536`, so under systemd
/// nothing is raised (the unit's system call filter would refuse it anyway); the soft limit
/// most shells and services start with is 1024.
pub fn raise_open_file_limit(wanted: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= wanted {
        return;
    }
    let target = wanted.min(hard);
    let now = match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => target,
        Err(_) => soft,
    };
    if now < wanted {
        tracing::warn!(
            "the open-file limit is {now} (hard limit {hard}), below the {wanted} the listeners \
             may use: many idle or slow connections could stop monitord accepting; raise it \
             (LimitNOFILE= in the unit, ulimit -n)"
        );
    }
}
