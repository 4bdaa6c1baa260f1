//! The SQLite database: opening it the way monitord needs it (WAL, `synchronous = FULL`,
//! `busy_timeout`), the embedded migrations, and the Diesel table definitions.
//!
//! Durability: WAL mode with `synchronous = FULL`, because the promise is that a sample
//! answered 200 is never lost. Each commit fsyncs the WAL before it returns, so what got a
//! 200 survives a power loss or kernel crash, not only `kill -9` of monitord (which NORMAL
//! already survived: there the WAL reached the disk only at checkpoints). The writer commits
//! a whole batch at once (group commit), so that is one fsync per batch, not per sample, and
//! requests arriving during the fsync fill the next batch. Measured with `xtask bench ingest`
//! (2 vCPU VM, ext4 on virtio, fsync ≈ 0.7 ms), FULL and NORMAL interleaved in one session:
//! 29,097 vs 29,508 and 23,396 vs 21,643 committed samples/s at peak: no cost measurable
//! above the run-to-run noise. On a disk with slow fsyncs the batches grow and latency with
//! them; throughput holds as long as a batch (up to 4,096 samples) covers one fsync.
//!
//! Submodules: [`stored`] (stored precision), [`codec`] (byte layouts), [`writer`] (the one
//! connection that ingests) and [`batch`] (its seam: what runs with each batch), [`compact`]
//! (packing the raw tier), [`history`] (rollup tiers, expiry, ranges for the API), [`read`]
//! (queries for the operator commands), [`recent`] (each client's newest sample and last hour,
//! in memory, for the fleet listing), [`lock`] (one daemon per database), [`background`]
//! (how background passes read, and hand their writes to the writer) and `handoff` (those
//! writes in the writer's queue, and their share of its time).

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

pub use error::StoreError;

pub mod background;
pub mod batch;
pub mod codec;
pub mod compact;
mod error;
mod handoff;
pub mod history;
mod ids;
pub mod lock;
pub mod read;
pub mod recent;
pub mod schema;
pub mod seen;
pub mod stored;
pub mod top;
mod trouble;
pub mod writer;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// How long a connection waits for another one's write lock before giving up. The writer
/// answers its batch 503 after this, so it is also the longest a request waits on a lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// How a connection opens the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// `path` as a read-only SQLite URI (`file:…?mode=ro`), escaping what a URI gives a meaning to.
fn read_only_uri(path: &str) -> String {
    // `file:///abs` for an absolute path (`file://x` would name a host), `file:rel` otherwise.
    let mut out = String::from(if path.starts_with('/') {
        "file://"
    } else {
        "file:"
    });
    for c in path.chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("?mode=ro");
    out
}

fn connect(path: &Path, access: Access) -> Result<SqliteConnection, StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let text = path
        .to_str()
        .ok_or_else(|| open_err("the path is not valid UTF-8".into()))?;
    let url = match access {
        // A plain path: SQLite creates the file when it is missing.
        Access::ReadWrite => text.to_owned(),
        Access::ReadOnly => read_only_uri(text),
    };
    let mut conn = SqliteConnection::establish(&url).map_err(|e| open_err(e.to_string()))?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = OFF;",
        BUSY_TIMEOUT.as_millis()
    ))
    .map_err(|e| open_err(e.to_string()))?;
    Ok(conn)
}

/// Refuses a database file that fails SQLite's `PRAGMA quick_check` (or is not a database
/// at all), before anything writes to it: migrating or checkpointing a damaged file could
/// lose what a recovery would still find. A missing file is fine (it is created).
pub fn check_integrity(path: &Path) -> Result<(), StoreError> {
    if !path.exists() {
        return Ok(());
    }
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let mut conn = open_read_only(path)?;
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        quick_check: String,
    }
    // Up to 5 problems: enough to say what is wrong without flooding the message.
    let found = diesel::sql_query("PRAGMA quick_check(5)")
        .load::<Check>(&mut conn)
        .map_err(|e| damaged(e.to_string()))?;
    match found.as_slice() {
        [only] if only.quick_check == "ok" => Ok(()),
        problems => Err(damaged(format!(
            "PRAGMA quick_check: {}",
            problems
                .iter()
                .map(|p| p.quick_check.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// Opens (creating if needed) the database for writing and brings its schema up to date.
pub fn open_for_writing(path: &Path) -> Result<SqliteConnection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                reason: format!("directory {} does not exist", dir.display()),
            });
        }
    }
    let mut conn = connect(path, Access::ReadWrite)?;
    // auto_vacuum only takes effect on a new, empty database: it lets `compact` hand freed
    // pages back to the file system.
    conn.batch_execute(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
    )
    .map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migrate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    // What SQL cannot migrate: rollup buckets of one row each into packs (once; a database
    // that never had them does nothing here).
    let moved = history::pack::convert_legacy(&mut conn).map_err(|e| StoreError::Migrate {
        path: path.to_path_buf(),
        reason: format!("cannot move rollup buckets into packs: {e}"),
    })?;
    if moved > 0 {
        tracing::info!("moved {moved} rollup buckets into packs (a one-time change of layout)");
    }
    Ok(conn)
}

fn must_exist(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        Ok(())
    } else {
        Err(StoreError::Missing {
            path: path.to_path_buf(),
        })
    }
}

/// Opens an existing database to write next to monitord (the compaction timer, the alert
/// sender); never creates one.
pub fn open_existing(path: &Path) -> Result<SqliteConnection, StoreError> {
    must_exist(path)?;
    connect(path, Access::ReadWrite)
}

/// [`open_for_writing`] for `monitord compact`: migrates, but never creates a database, which
/// run as root would be a file monitord cannot open.
pub fn open_existing_for_writing(path: &Path) -> Result<SqliteConnection, StoreError> {
    must_exist(path)?;
    open_for_writing(path)
}

/// Opens an existing database read-only (`mode=ro`), for the commands that only read. Reads
/// in WAL mode never block monitord's writer, and such a connection can neither write nor
/// checkpoint. Run as root, SQLite still creates the `-wal`/`-shm` files if monitord is not
/// running, but gives them the database file's owner, so monitord can open them afterwards.
pub fn open_read_only(path: &Path) -> Result<SqliteConnection, StoreError> {
    must_exist(path)?;
    connect(path, Access::ReadOnly)
}

#[cfg(test)]
mod tests;
