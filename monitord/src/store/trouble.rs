//! What the writer says when batches cannot be committed: one line when a run of failures
//! starts (what is wrong, from SQLite's message, and what to do), a reminder at most every
//! [`TROUBLE_REMINDER`], and one line when samples are stored again. Agents keep what was
//! answered 503 and resend it, so the lines say so: nothing is lost while this lasts.
//!
//! Not here: the commit itself (see [`super::writer`]).

use std::time::{Duration, Instant};

use diesel::prelude::*;

/// How often the log repeats that batches still cannot be committed.
const TROUBLE_REMINDER: Duration = Duration::from_secs(60);

/// A run of batches that could not be committed, logged as an operator needs it: one line
/// when it starts (what is wrong, what to do), a reminder at most every
/// [`TROUBLE_REMINDER`], and one line when samples are stored again. Agents keep what was
/// answered 503 and resend it, so the lines say so: nothing is lost while this lasts.
pub(super) struct Trouble {
    /// The database file, named in the advice.
    database: String,
    run: Option<TroubleRun>,
}

impl Trouble {
    /// For the database behind `conn`.
    pub(super) fn new(conn: &mut SqliteConnection) -> Trouble {
        Trouble {
            database: database_file(conn),
            run: None,
        }
    }
}

struct TroubleRun {
    since: Instant,
    reminded: Instant,
    batches: u64,
    samples: u64,
}

impl Trouble {
    pub(super) fn failed(&mut self, error: &diesel::result::Error, samples: usize) {
        let now = Instant::now();
        let run = self.run.get_or_insert(TroubleRun {
            since: now,
            reminded: now,
            batches: 0,
            samples: 0,
        });
        run.batches += 1;
        run.samples += samples as u64;
        if run.batches == 1 {
            tracing::warn!(
                samples,
                "cannot store samples, answering 503 until this is fixed (agents keep them and \
                 retry): {error}: {}",
                advice(error, &self.database)
            );
        } else if now.duration_since(run.reminded) >= TROUBLE_REMINDER {
            run.reminded = now;
            tracing::warn!(
                samples = run.samples,
                "still cannot store samples after {} s ({} batches, {} samples answered 503): {error}: {}",
                run.since.elapsed().as_secs(),
                run.batches,
                run.samples,
                advice(error, &self.database)
            );
        }
    }

    pub(super) fn recovered(&mut self) {
        if let Some(run) = self.run.take() {
            tracing::info!(
                samples = run.samples,
                "storing again after {} s; {} samples were answered 503 meanwhile and their \
                 agents resend them",
                run.since.elapsed().as_secs(),
                run.samples
            );
        }
    }
}

/// What an operator can do about a failed commit, from SQLite's message.
fn advice(error: &diesel::result::Error, database: &str) -> String {
    let message = error.to_string();
    if message.contains("full") {
        format!("free space on the filesystem holding {database}")
    } else if message.contains("locked") || message.contains("busy") {
        format!(
            "another process holds the write lock of {database} longer than {} s (a sqlite3 \
             shell or a backup tool?): end its transaction",
            super::BUSY_TIMEOUT.as_secs()
        )
    } else if message.contains("readonly") || message.contains("read-only") {
        format!("make {database} and its directory writable by monitord's user")
    } else if message.contains("I/O") {
        format!("the disk holding {database} reports errors: check `dmesg` and the disk")
    } else {
        format!("check {database} and the filesystem it is on")
    }
}

/// The file behind `conn`'s main database, as SQLite names it.
pub(super) fn database_file(conn: &mut SqliteConnection) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .get_result::<Row>(conn)
        .map_or_else(|_| "the database".to_owned(), |row| row.file)
}
