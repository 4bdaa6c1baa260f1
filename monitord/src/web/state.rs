//! [`WebState`]: what every handler of the web listener shares, and the one way it reads
//! the database (a read-only connection, on the blocking pool, errors as [`ApiError`]).

use std::sync::Arc;

use actix_web::web;

use super::error::ApiError;
use super::read::ReadPool;
use crate::clock::Clock;
use crate::state::Shared;
use crate::store::recent::Recent;
use crate::store::writer::WriterHandle;
use crate::telemetry::RequestCounts;

/// What every web handler shares. Read-only: no writer queue, only counters.
#[derive(Debug, Clone)]
pub struct WebState {
    pub shared: Arc<Shared>,
    pub pool: Arc<ReadPool>,
    pub clock: Clock,
    /// Ingest's answers by status, for `/metrics`.
    pub requests: Arc<RequestCounts>,
    /// For `/metrics` only: samples stored, queue depth, commit durations.
    pub writer: WriterHandle,
    /// Each client's newest sample and last hour, kept by the writer.
    pub recent: Arc<Recent>,
}

impl WebState {
    /// Runs `f` on a read-only connection, on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut diesel::SqliteConnection) -> Result<T, crate::store::StoreError>
        + Send
        + 'static,
    ) -> Result<T, ApiError> {
        let pool = self.pool.clone();
        web::block(move || pool.with(f))
            .await
            .map_err(|_| ApiError::Blocking)?
            .map_err(ApiError::from)
    }
}
