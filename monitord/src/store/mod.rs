//! The SQLite database: opening it the way monitord needs it (WAL, `synchronous = FULL`,
//! `busy_timeout`), the embedded migrations, and the Diesel table definitions.
//!
//! Durability: in WAL mode with `synchronous = FULL` every commit is fsynced before it
//! returns, so a sample answered 200 survives `kill -9` *and* a power loss (on a disk that
//! honours fsync). Group commit makes that one fsync per batch, not per sample.
//!
//! Submodules: [`stored`] (stored precision), [`codec`] (byte layouts), [`writer`] (the one
//! connection that ingests), [`compact`] (packing the raw tier), [`read`] (queries for the
//! operator commands).

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

pub mod codec;
pub mod compact;
pub mod read;
pub mod schema;
pub mod stored;
pub mod writer;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// How long a connection waits for another one's write lock before giving up. The writer
/// answers its batch 503 after this, so it is also the longest a request waits on a lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error(
        "database {path} does not exist yet; monitord creates it when it starts (check <server database> in config.xml)"
    )]
    Missing { path: PathBuf },
    #[error("database {path}: cannot apply migrations: {reason}")]
    Migrate { path: PathBuf, reason: String },
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error(transparent)]
    Corrupt(#[from] codec::Corrupt),
}

fn connect(path: &Path) -> Result<SqliteConnection, StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let url = path
        .to_str()
        .ok_or_else(|| open_err("the path is not valid UTF-8".into()))?;
    let mut conn = SqliteConnection::establish(url).map_err(|e| open_err(e.to_string()))?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = OFF;",
        BUSY_TIMEOUT.as_millis()
    ))
    .map_err(|e| open_err(e.to_string()))?;
    Ok(conn)
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
    let mut conn = connect(path)?;
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
    Ok(conn)
}

/// Opens an existing database for the operator commands. Reads in WAL mode never block
/// monitord's writer, and nothing here takes an exclusive lock.
pub fn open_existing(path: &Path) -> Result<SqliteConnection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    connect(path)
}
