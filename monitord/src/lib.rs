//! monitord as a library: `main.rs` is a thin shell over [`serve`], so socket activation,
//! tests on port 0 and benchmarks take one path.
//!
//! A sample's path: [`http`] (open the envelope, validate) → [`store::writer`] (bounded queue,
//! group commit, with [`alerts`] evaluated in the same transaction through the writer's
//! [`store::batch`] seam) → SQLite. [`store::compact`] packs older samples on a timer;
//! [`store::read`] serves the operator commands. [`state`] holds the running config.xml and
//! its reloads; [`clock`] is the one wall clock everything compares with. [`web`] is the
//! read-only web listener (API, `/metrics`, the dashboard) beside ingest, fed by
//! [`telemetry`]'s counters; [`connections`] bounds what idle and slow clients may hold.
//!

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::App;
use monitor_core::MasterKey;
use monitor_core::config::Config;
use monitor_core::masterkey::KeyError;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};

pub mod alerts;
pub mod clock;
pub mod commands;
pub mod connections;
pub mod http;
pub mod logging;
pub mod periodic;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

use clock::Clock;
use connections::{
    INGEST_MAX_CONNECTIONS, OTHER_OPEN_FILES, deepen_backlog, raise_open_file_limit,
};
use periodic::Periodic;

use state::{Shared, Snapshot};
use store::StoreError;
use store::compact::{self, Policy};
use store::history::rollup::LateSamples;
use store::recent::Recent;
use store::writer::{Writer, WriterHandle};

/// How often the daemon packs older raw samples.
pub const COMPACT_EVERY: Duration = Duration::from_secs(5 * 60);
/// How often closed buckets are rolled up and what is past `keep` is deleted.
pub const HISTORY_EVERY: Duration = Duration::from_secs(60);
/// How long SIGTERM waits for in-flight requests.
const SHUTDOWN_GRACE_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] store::lock::LockError),
    #[error("cannot serve on the listening socket: {0}")]
    Listen(std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("web listener: {0:#}")]
    Web(anyhow::Error),
}

/// Serves `PUT /v1/samples/{name}` on `listener` until SIGTERM or SIGINT, then finishes
/// in-flight requests, stores everything queued and returns. SIGHUP reloads config.xml.
/// No web listener: see [`serve_with_web`].
pub async fn serve(listener: TcpListener, config: Config) -> Result<(), ServeError> {
    serve_with_web(listener, None, config).await
}

/// [`serve`], plus the read-only web listener ([`web`]) on `web_listener` when given.
pub async fn serve_with_web(
    listener: TcpListener,
    web_listener: Option<TcpListener>,
    config: Config,
) -> Result<(), ServeError> {
    let master = MasterKey::load(&config.server.key_file)?;
    let database = config.server.database.clone();
    let clock = Clock::from_env();
    // Before anything touches the database: a second daemon must not even migrate it.
    let _lock = store::lock::DaemonLock::acquire(&database)?;
    store::check_integrity(&database)?;
    let conn = store::open_for_writing(&database)?;
    let shared = Arc::new(Shared::new(Snapshot::new(config, &master)));
    let alerts = Arc::new(alerts::Alerts::new(shared.clone(), clock.clone()));
    let mut hooks: Vec<Arc<dyn store::batch::BatchHook>> = vec![alerts.clone()];
    let tiers = shared.snapshot().config.history.tiers.clone();
    if let Some(finest) = tiers.first() {
        hooks.push(Arc::new(LateSamples::new(finest.step, clock.clone())));
    }
    // Only the web listener reads it; registered before the seed reads, so no sample is missed.
    let recent = web_listener.as_ref().map(|_| Arc::new(Recent::new()));
    if let Some(recent) = &recent {
        hooks.push(recent.clone());
    }
    let writer = Writer::start(conn, clock.clone(), hooks).map_err(ServeError::Thread)?;
    let sender = alerts::OutboxSender::start(alerts.clone(), database.clone())
        .map_err(ServeError::Thread)?;
    let host_down =
        alerts::timer::start(alerts.clone(), writer.handle()).map_err(ServeError::Thread)?;
    let compactor = {
        let (clock, database, writer) = (clock.clone(), database.clone(), writer.handle());
        Periodic::start("compactor", COMPACT_EVERY, move || {
            compact_once(&database, &writer, clock.now_ms());
        })
        .map_err(ServeError::Thread)?
    };
    let history = {
        let (clock, shared, writer) = (clock.clone(), shared.clone(), writer.handle());
        Periodic::start("history", HISTORY_EVERY, move || {
            history_once(&database, &writer, &shared, clock.now_ms());
        })
        .map_err(ServeError::Thread)?
    };

    raise_open_file_limit(
        (INGEST_MAX_CONNECTIONS + web::MAX_CONNECTIONS) as u64 + OTHER_OPEN_FILES,
    );
    let in_flight = http::InFlight::default();
    let requests = Arc::new(telemetry::RequestCounts::default());
    let web_server = match (web_listener, recent) {
        (Some(l), Some(recent)) => {
            deepen_backlog(&l, "web");
            seed_recent(&recent, &shared, &clock)?;
            let state = web::WebState {
                shared: shared.clone(),
                pool: Arc::new(web::read::ReadPool::new(
                    shared.snapshot().config.server.database.clone(),
                )),
                clock: clock.clone(),
                requests: requests.clone(),
                writer: writer.handle(),
                recent,
            };
            let config = shared.snapshot();
            Some(Arc::new(
                web::start(l, &config.config, state).map_err(ServeError::Web)?,
            ))
        }
        _ => None,
    };
    let refusals = Arc::new(logging::Budget::new(
        http::REFUSALS_PER_MINUTE,
        Duration::from_secs(60),
    ));
    let ingest = actix_web::web::Data::new(http::Ingest {
        shared: shared.clone(),
        writer: writer.handle(),
        in_flight: in_flight.clone(),
        clock,
        clock_watch: alerts.clock_watch(),
        requests,
        refusals: refusals.clone(),
    });
    let addr = listener.local_addr().map_err(ServeError::Listen)?;
    listener.set_nonblocking(true).map_err(ServeError::Listen)?;
    deepen_backlog(&listener, "ingest");
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let serving = connections::Serving {
        name: "ingest",
        workers,
        max_connections: INGEST_MAX_CONNECTIONS,
        shutdown_grace_secs: SHUTDOWN_GRACE_SECS,
        tls: None,
    };
    let server = connections::serve(listener, serving, move || {
        App::new()
            .app_data(ingest.clone())
            .configure(http::configure)
    })
    .map_err(ServeError::Listen)?;
    tracing::info!("listening on {addr}");

    let handle = server.handle();
    let status = actix_web::rt::spawn(report_status(
        shared.clone(),
        writer.handle(),
        alerts,
        refusals,
    ));
    // Installed before READY=1: a SIGHUP right after it must reload, not kill.
    let signals = Signals::install().map_err(ServeError::Signals)?;
    let signals = actix_web::rt::spawn(handle_signals(
        signals,
        shared,
        handle,
        in_flight,
        web_server.clone(),
    ));
    notify(&[NotifyState::Ready]);
    server.await.map_err(ServeError::Listen)?;
    if let Some(web_server) = &web_server {
        web_server.stop().await;
    }

    status.abort();
    signals.abort();
    writer.shutdown();
    // A delivery in flight is cut off and stays in the outbox for the next start.
    sender.shutdown();
    host_down.stop();
    compactor.stop();
    history.stop();
    tracing::info!("stopped; every accepted sample is stored");
    Ok(())
}

/// Reads every client's newest sample into `recent` before the web listener answers (500
/// clients: ~0.1–0.2 s), then their last hours on a thread of its own, which the first fleet
/// page would otherwise read (~5 ms a client).
fn seed_recent(
    recent: &Arc<Recent>,
    shared: &Arc<Shared>,
    clock: &Clock,
) -> Result<(), ServeError> {
    let snapshot = shared.snapshot();
    let database = &snapshot.config.server.database;
    let mut conn = store::open_read_only(database)?;
    for c in &snapshot.config.clients {
        recent.seed(&mut conn, &c.name, None)?;
    }
    let (recent, clock) = (recent.clone(), clock.clone());
    std::thread::Builder::new()
        .name("recent-seed".into())
        .spawn(move || {
            let config = &snapshot.config;
            for c in &config.clients {
                let hour = Some((c.interval, &config.history, clock.now_ms()));
                if let Err(e) = recent.seed(&mut conn, &c.name, hour) {
                    tracing::warn!(
                        "cannot read the last hour of the clients for the fleet page's \
                         sparklines: {e}; each is read when the page first needs it"
                    );
                    return;
                }
            }
        })
        .map_err(ServeError::Thread)?;
    Ok(())
}

fn notify(state: &[NotifyState]) {
    // Outside systemd there is no NOTIFY_SOCKET and this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

async fn handle_signals(
    signals: Signals,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
    in_flight: http::InFlight,
    web_server: Option<Arc<web::WebListener>>,
) {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // systemd (Type=notify-reload, and ≥ 253 for any RELOADING=1) wants the
                // time the reload began, to tell this reload from an older one.
                match NotifyState::monotonic_usec_now() {
                    Ok(now) => notify(&[NotifyState::Reloading, now]),
                    Err(e) => {
                        tracing::debug!("cannot read CLOCK_MONOTONIC: {e}");
                        notify(&[NotifyState::Reloading]);
                    }
                }
                match shared.reload() {
                    Ok(warnings) => {
                        for w in warnings {
                            tracing::warn!("{w}");
                        }
                        if let Some(w) = &web_server {
                            w.reloaded(&shared.snapshot().config);
                        }
                        // Last: once this is logged, everything reads the new config.xml.
                        tracing::info!("SIGHUP: reloaded config.xml");
                    }
                    Err(e) => state::log_reload_error(&e),
                }
                notify(&[NotifyState::Ready]);
            }
        }
    }
    tracing::info!("stopping: finishing requests in flight and flushing the writer");
    notify(&[NotifyState::Stopping]);
    // actix's own graceful stop sometimes ends at once while a request's body is still
    // arriving, so stop accepting first and wait for the requests we know of ourselves.
    server.pause().await;
    let deadline = Instant::now() + Duration::from_secs(SHUTDOWN_GRACE_SECS);
    while in_flight.count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop(true).await;
}

/// `STATUS=` with clients, samples/s and firing alerts (what `systemctl status` shows), and
/// `WATCHDOG=1` when the unit asks for it; then the counts of refusals not logged one by one
/// in a minute that has ended.
async fn report_status(
    shared: Arc<Shared>,
    writer: WriterHandle,
    alerts: Arc<alerts::Alerts>,
    refusals: Arc<logging::Budget>,
) {
    let every = sd_notify::watchdog_enabled().map_or(Duration::from_secs(10), |w| {
        (w / 2).min(Duration::from_secs(10))
    });
    let mut tick = tokio::time::interval(every);
    let (mut last_count, mut last_at) = (writer.stored_total(), Instant::now());
    loop {
        tick.tick().await;
        let (count, at) = (writer.stored_total(), Instant::now());
        let elapsed = at.duration_since(last_at).as_secs_f64();
        let rate = if elapsed > 0.0 {
            (count - last_count) as f64 / elapsed
        } else {
            0.0
        };
        (last_count, last_at) = (count, at);
        let clients = shared.snapshot().config.clients.len();
        let firing = alerts.firing_count();
        let status = format!(
            "{clients} {}, {rate:.1} samples/s, {firing} {} firing, {count} stored since start",
            plural(clients, "client", "clients"),
            plural(firing, "alert", "alerts"),
        );
        notify(&[NotifyState::Status(&status), NotifyState::Watchdog]);
        for skipped in refusals.flush() {
            http::log_skipped(&skipped);
        }
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// One pass of the history timer: rollups, then expiry, read on a connection of its own and
/// written by the writer. The tiers are those monitord started with (a changed `<history>`
/// takes a restart); each client's interval is the running config's.
fn history_once(database: &Path, writer: &WriterHandle, shared: &Shared, now_ms: i64) {
    let snapshot = shared.snapshot();
    let config = &snapshot.config;
    let interval_of = |name: &str| config.interval_of(name);
    let result = store::open_read_only(database).and_then(|mut conn| {
        let writes = store::background::Writes::Writer(writer);
        store::history::maintain(&mut conn, writes, &config.history, &interval_of, now_ms)
    });
    match result {
        Ok((rolled, expired)) => {
            if rolled.buckets + rolled.late > 0 {
                tracing::debug!(
                    buckets = rolled.buckets,
                    late = rolled.late,
                    "rolled up closed buckets"
                );
            }
            if expired.raw_samples + expired.rollups > 0 {
                tracing::info!(
                    raw_samples = expired.raw_samples,
                    rollups = expired.rollups,
                    "expired history past its keep: {} raw samples, {} rollup buckets",
                    expired.raw_samples,
                    expired.rollups
                );
            }
        }
        Err(e) => pass_failed("rolling up or expiring history", &e),
    }
}

/// One pass of the compaction timer, read on a connection of its own and written by the
/// writer.
fn compact_once(database: &Path, writer: &WriterHandle, now_ms: i64) {
    let result = store::open_read_only(database).and_then(|mut conn| {
        let writes = store::background::Writes::Writer(writer);
        let report = compact::compact(&mut conn, writes, Policy::TIMER, now_ms)?;
        if report.samples > 0 {
            compact::release_free_pages(&mut conn, writes)?;
        }
        Ok(report)
    });
    match result {
        Ok(r) if r.samples > 0 => {
            tracing::info!(
                samples = r.samples,
                blocks = r.blocks,
                "packed older samples"
            );
        }
        Ok(_) => {}
        Err(e) => pass_failed("compaction", &e),
    }
}

/// Logs a background pass that failed: a warning, except when monitord is stopping (the
/// writer stops before the timers do).
fn pass_failed(what: &str, e: &StoreError) {
    match e {
        StoreError::WriterStopped => tracing::debug!("{what} stopped: monitord is stopping"),
        e => tracing::warn!("{what} failed (will retry): {e}"),
    }
}
