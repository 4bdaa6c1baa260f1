//! How the two listeners are served, and how long and how many connections they hold.
//!
//! Both listeners are open to anyone who can reach them, so neither lets an idle or slow
//! client hold a connection for long (issue 11; `xtask bench hostile` measures it with 2,000
//! idle and 500 slow connections): a connection has [`REQUEST_HEAD_TIMEOUT`] to send its first
//! request's head (else 408 and close), an idle keep-alive connection is closed after
//! [`KEEP_ALIVE`], a closing one gets [`DISCONNECT_TIMEOUT`] to take our FIN, an ingest body
//! must arrive within [`crate::http::BODY_TIMEOUT`] (actix has no body timeout of its own),
//! and every later request of a kept-alive connection must be answered within
//! [`REQUEST_LIMIT`] of its first byte ([`Paced`]: actix's head timer covers only the first).
//! A cap on connections ([`INGEST_MAX_CONNECTIONS`], [`crate::web::MAX_CONNECTIONS`] the web
//! listener's) keeps the open files within the limit [`raise_open_file_limit`] asks for: past
//! it, new connections wait in the kernel's backlog ([`LISTEN_BACKLOG`]) instead of failing
//! `accept` with EMFILE.
//!
//! [`serve`] builds both listeners from actix's parts (what `HttpServer` does), because
//! `HttpServer` does not let one choose the connection type, and [`Paced`] needs to be it.

use std::future::Future as _;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, Request, Response};
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// From a request's first byte to the first byte of its answer, on any request of a
/// connection (the first one is also bounded by [`REQUEST_HEAD_TIMEOUT`]): past it the
/// connection is closed. Above the head and body timeouts together and the writer's
/// [`crate::store::BUSY_TIMEOUT`], so no request that is merely slow to answer is cut.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// From accept to the end of a TLS handshake on the web listener.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection whose requests must keep moving: once a request's first byte has been read,
/// something must be written back within [`REQUEST_LIMIT`], or the next read fails and actix
/// closes the connection. actix's own head timer covers only a connection's first request,
/// so without this a client could complete one request and then dribble the next head on
/// the keep-alive connection for as long as it likes.
#[derive(Debug)]
pub struct Paced<T> {
    io: T,
    deadline: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

impl<T> Paced<T> {
    pub fn new(io: T) -> Paced<T> {
        Paced {
            io,
            deadline: Box::pin(tokio::time::sleep(REQUEST_LIMIT)),
            armed: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Paced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.armed && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "a request was not complete within the limit",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if !this.armed && matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.armed = true;
            let at = tokio::time::Instant::now() + REQUEST_LIMIT;
            this.deadline.as_mut().reset(at);
            // Registers this task's waker with the timer, so a client that then goes
            // silent is cut too, not only one that keeps sending.
            let _ = this.deadline.as_mut().poll(cx);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Paced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.armed = false;
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.armed = false;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A plain or a TLS connection, as both listeners' HTTP service takes them.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Connection for T {}

/// How one listener is served.
#[derive(Debug, Clone)]
pub struct Serving {
    /// `ingest` or `web`, for actix's logs.
    pub name: &'static str,
    pub workers: usize,
    /// Over all workers.
    pub max_connections: usize,
    pub shutdown_grace_secs: u64,
    pub tls: Option<TlsServing>,
}

/// TLS on a listener.
#[derive(Debug, Clone)]
pub struct TlsServing {
    pub config: Arc<rustls::ServerConfig>,
    /// Handshakes in progress at once, per worker: each costs CPU, and a flood of them must
    /// not starve the requests of connections already open.
    pub max_handshakes: usize,
}

/// Serves `listener` with the App `app` makes (one per worker), HTTP/1.1 on [`Paced`]
/// connections, with this module's timeouts. What actix-web's `HttpServer` does, apart from
/// the connection type, which `HttpServer` does not let one choose.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    serving: Serving,
    app: F,
) -> std::io::Result<actix_web::dev::Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let workers = serving.workers.max(1);
    let secure = serving.tls.is_some();
    let http = move || {
        let app = app().into_factory().map_err(|e| e.into().error_response());
        let builder = HttpService::<Paced<Box<dyn Connection>>, _, B>::build()
            .client_request_timeout(REQUEST_HEAD_TIMEOUT)
            .keep_alive(KEEP_ALIVE)
            .client_disconnect_timeout(DISCONNECT_TIMEOUT)
            .local_addr(addr);
        let builder = if secure { builder.secure() } else { builder };
        builder.h1(map_config(app, move |_| AppConfig::default()))
    };
    let builder = actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(serving.max_connections.div_ceil(workers))
        .disable_signals()
        .shutdown_timeout(serving.shutdown_grace_secs);
    let builder = match serving.tls.clone() {
        None => builder.listen(serving.name, listener, move || {
            fn_service(|io: actix_rt::net::TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok::<_, DispatchError>((Paced::new(Box::new(io) as Box<dyn Connection>), peer))
            })
            .and_then(http())
        })?,
        Some(tls) => builder.listen(serving.name, listener, move || {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
            let handshakes = Arc::new(tokio::sync::Semaphore::new(tls.max_handshakes));
            fn_service(move |io: actix_rt::net::TcpStream| {
                let (acceptor, handshakes) = (acceptor.clone(), handshakes.clone());
                async move {
                    let peer = io.peer_addr().ok();
                    let _slot = handshakes.acquire().await;
                    let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io))
                        .await
                        .map_err(|_| DispatchError::SlowRequestTimeout)?
                        .map_err(DispatchError::Io)?;
                    Ok::<_, DispatchError>((Paced::new(Box::new(tls) as Box<dyn Connection>), peer))
                }
            })
            .and_then(http())
        })?,
    };
    Ok(builder.run())
}
