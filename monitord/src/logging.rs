//! Where monitord's log lines go: the journal when systemd runs it (`JOURNAL_STREAM` set),
//! human-readable stderr otherwise. Journal fields are written without tracing-journald's
//! `F_` prefix, so an event's `client` field is `CLIENT=` and `journalctl -u monitord
//! CLIENT=web1` works. `MONITORD_LOG` takes an `EnvFilter` directive (default `info`).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub fn init() {
    let filter =
        || EnvFilter::try_from_env("MONITORD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter())
                .with(journald.with_field_prefix(None))
                .init();
            return;
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
