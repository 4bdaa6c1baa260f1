//! The alert states in memory ([`Book`]): what [`super::Alerts`] keeps over the
//! `alert_states` table, and the small types both it and [`super::update`] use.
//!
//! Not here: who may change the book and when (see [`super::evaluate`]), how a change is
//! written (see [`super::update`]).

use std::collections::HashMap;
use std::sync::Arc;

use monitor_core::config::Client;

use super::machine::RuleState;
use crate::state::Snapshot;

#[derive(Debug, Default)]
pub struct Book {
    /// Not-ok states by client, then rule name (a handful per client: a list beats a map,
    /// and a lookup by `&str` allocates nothing on the per-sample path).
    pub states: HashMap<String, Vec<(String, Entry)>>,
    /// Index of each client in the running config, rebuilt when a reload swaps it.
    pub clients: ClientIndex,
    /// When each client's last sample arrived (server clock).
    pub last_seen: HashMap<String, i64>,
    /// Changed by a transaction of [`Caller`] whose commit has not been reported yet.
    pub tentative: [bool; 2],
    /// Loaded from the database at least once.
    pub loaded: bool,
    /// Outbox rows were written since the sender was last woken (a spurious wake after a
    /// rollback costs one query; a missed one would delay mail).
    pub wrote_mail: bool,
}

/// Who changes the states, each on its own connection.
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    Writer = 0,
    Timer = 1,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub state: RuleState,
    pub detail: Option<String>,
}

impl Entry {
    /// Whether `other` differs in what is stored: the value alone changes with every sample
    /// and is kept in memory only (the table holds the value at the last change).
    pub fn same_stored(&self, other: &Entry) -> bool {
        let (a, b) = (&self.state, &other.state);
        a.phase == b.phase
            && a.since_ms == b.since_ms
            && a.notified_ms == b.notified_ms
            && self.detail == other.detail
    }
}

#[derive(Debug, Default)]
pub struct ClientIndex {
    /// The snapshot the index was built for (by address; a reload makes a new one).
    pub built_for: usize,
    pub by_name: HashMap<String, usize>,
}

impl ClientIndex {
    pub fn refresh(&mut self, snapshot: &Arc<Snapshot>) {
        let id = Arc::as_ptr(snapshot) as usize;
        if self.built_for != id {
            self.by_name = snapshot
                .config
                .clients
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect();
            self.built_for = id;
        }
    }

    pub fn get<'c>(
        &self,
        config: &'c monitor_core::config::Config,
        name: &str,
    ) -> Option<&'c Client> {
        self.by_name.get(name).and_then(|&i| config.clients.get(i))
    }
}

/// The state of a rule that has none stored: ok.
pub fn ok_entry() -> Entry {
    Entry {
        state: RuleState::OK,
        detail: None,
    }
}
