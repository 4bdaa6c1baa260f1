//! [`StoreError`]: what can go wrong with the database, worded as advice. Its own file so the
//! store's submodules can name it without importing the store's root, which imports them.

use std::path::PathBuf;

use super::codec;

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
    #[error(
        "database {path} is damaged ({detail}); monitord will not write to it. Keep a copy, then \
         recover what can still be read: `sqlite3 {path} .recover | sqlite3 {path}.recovered` \
         and move {path}.recovered into its place (or move the damaged file away to start \
         with an empty database)"
    )]
    Damaged { path: PathBuf, detail: String },
    /// A background pass's write found rows it read changed (see [`super::background`]):
    /// nothing of that write was kept, and the pass reads them again.
    #[error("rows a background pass read changed before its write; it reads them again")]
    Changed,
    #[error(
        "the writer's transaction could not commit ({0}); the background pass tries again later"
    )]
    NotCommitted(String),
    #[error("monitord's writer has stopped (monitord is shutting down)")]
    WriterStopped,
}
