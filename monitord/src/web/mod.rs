//! The web listener (`<web>`, default `127.0.0.1:8751`): the read API ([`api`]), `/metrics`
//! ([`metrics`]) and the dashboard ([`pages`]).
//!
//! It is a second actix server ([`crate::connections::serve`]), apart from ingest's: its own socket, workers and App,
//! none of ingest's routes, and no handle on the writer's queue, only on its counters. Reads
//! go through [`read::ReadPool`]'s read-only connections on actix's blocking pool, so nothing
//! here can write the database and a slow query never stalls the listener. With
//! `<web users-file>` every path is behind basic auth ([`auth`]); with `cert-file` + `key-file`
//! it speaks TLS only ([`tls`]).
//!
//! Also here: [`sockets`] (ingest and web sockets from systemd by name) and [`passwd`]
//! (`monitord passwd`). Not here: ingest (see [`crate::http`]).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, web};
use anyhow::Context as _;
use monitor_core::config::Config;

pub mod api;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod pages;
pub mod passwd;
pub mod read;
pub mod sockets;
pub mod state;
pub mod tls;

use auth::Auth;
pub use error::ApiError;
pub use state::WebState;

/// Workers of the web listener: its handlers only wait on the blocking pool.
const WORKERS: usize = 2;
/// How long a stop waits for the web requests in flight.
const SHUTDOWN_GRACE_SECS: u64 = 5;
/// Connections the web listener holds at most, over its workers: a few browsers and a
/// Prometheus need a handful; the rest is headroom for idle and slow clients until the
/// timeouts shared with ingest ([`crate::connections::REQUEST_HEAD_TIMEOUT`], …) close them.
pub const MAX_CONNECTIONS: usize = 4096;
/// TLS handshakes in progress at once, per worker (actix's default for its own acceptor).
const MAX_TLS_HANDSHAKES: usize = 256;

/// The running web listener.
#[derive(Debug)]
pub struct WebListener {
    handle: ServerHandle,
    auth: Option<Arc<Auth>>,
}

/// The routes of the web listener: the API, `/metrics`, the dashboard, and a JSON 404 for
/// everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(api::configure)
        .configure(pages::configure)
        .service(web::resource("/metrics").route(web::get().to(metrics::metrics)));
}

/// Starts serving `listener` as `config`'s `<web>` says (users, TLS); logs
/// `web listener on ADDR`.
pub fn start(
    listener: TcpListener,
    config: &Config,
    state: WebState,
) -> anyhow::Result<WebListener> {
    let auth = match &config.web.users_file {
        Some(path) => Some(Arc::new(Auth::load(path)?)),
        None => None,
    };
    let tls = config
        .web
        .tls
        .as_ref()
        .map(tls::server_config)
        .transpose()?;
    let addr = listener
        .local_addr()
        .context("the web socket has no address")?;
    listener
        .set_nonblocking(true)
        .context("cannot make the web socket non-blocking")?;
    let state = web::Data::new(state);
    let auth_data = auth.clone().map(web::Data::new);
    let serving = crate::connections::Serving {
        name: "web",
        workers: WORKERS,
        max_connections: MAX_CONNECTIONS,
        shutdown_grace_secs: SHUTDOWN_GRACE_SECS,
        tls: tls.map(|config| crate::connections::TlsServing {
            config: Arc::new(config),
            max_handshakes: MAX_TLS_HANDSHAKES,
        }),
    };
    let server: Server = crate::connections::serve(listener, serving, move || {
        let mut app = App::new().app_data(state.clone());
        if let Some(auth) = &auth_data {
            app = app.app_data(auth.clone());
        }
        // Compress outermost: gzip for clients that ask (the fleet page of 500 hosts), after
        // the auth guard has answered or passed the request.
        app.wrap(from_fn(auth::guard))
            .wrap(Compress::default())
            .configure(configure)
            .default_service(web::to(api::not_found))
    })
    .context("cannot serve on the web socket")?;
    let scheme = if config.web.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let users = if auth.is_some() {
        "basic auth"
    } else {
        "no auth"
    };
    // Before ingest's `listening on` line: whoever waits for that one finds this one too.
    tracing::info!("web listener on {addr} ({scheme}, {users})");
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("the web listener stopped: {e}");
        }
    });
    Ok(WebListener { handle, auth })
}

impl WebListener {
    /// After config.xml was reloaded: re-reads the users-file.
    pub fn reloaded(&self, config: &Config) {
        if let (Some(auth), Some(path)) = (&self.auth, &config.web.users_file) {
            auth.reload(path);
        } else if self.auth.is_some() != config.web.users_file.is_some() {
            tracing::warn!(
                "<web users-file> was added or removed; that takes effect after a restart"
            );
        }
    }

    /// Stops accepting and lets requests in flight finish (at most a few seconds).
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}
