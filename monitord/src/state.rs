//! The configuration monitord is running with, and its reloads.
//!
//! A [`Snapshot`] is one loaded config.xml plus every client's keys, derived once per load
//! (HKDF per request would be waste). Handlers take the current snapshot with
//! [`Shared::snapshot`]; a reload (SIGHUP, or an unknown client after config.xml's mtime
//! changed) swaps in a new one. A file that does not load is logged and the old one kept.
//!
//! Not here: parsing config.xml (monitor-core's `config::load`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use monitor_core::config::{self, Config, Diagnostic};
use monitor_core::masterkey::KeyError;
use monitor_core::{ClientKeys, MasterKey};

/// One loaded configuration and the keys of its clients.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    keys: HashMap<String, (Arc<str>, ClientKeys)>,
    mtime: Option<SystemTime>,
}

impl Snapshot {
    /// Derives every client's keys from `master`.
    pub fn new(config: Config, master: &MasterKey) -> Snapshot {
        let mtime = modified(&config.path);
        let keys = config
            .clients
            .iter()
            .map(|c| {
                let name: Arc<str> = Arc::from(c.name.as_str());
                (c.name.clone(), (name, ClientKeys::derive(master, &c.name)))
            })
            .collect();
        Snapshot {
            config,
            keys,
            mtime,
        }
    }

    /// The client's shared name and keys, when config.xml has it.
    pub fn client(&self, name: &str) -> Option<&(Arc<str>, ClientKeys)> {
        self.keys.get(name)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(config::Invalid),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The current snapshot, shared by every worker.
#[derive(Debug)]
pub struct Shared {
    path: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    last_mtime_check: Mutex<Instant>,
}

impl Shared {
    pub fn new(snapshot: Snapshot) -> Shared {
        Shared {
            path: snapshot.config.path.clone(),
            current: RwLock::new(Arc::new(snapshot)),
            last_mtime_check: Mutex::new(Instant::now()),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("config lock poisoned").clone()
    }

    /// Re-reads config.xml and the master key; on any error the running config stays.
    /// Returns the warnings that concern monitord.
    pub fn reload(&self) -> Result<Vec<Diagnostic>, ReloadError> {
        let loaded = config::load(&self.path).map_err(ReloadError::Config)?;
        let old = self.snapshot();
        if loaded.config.server.database != old.config.server.database
            || loaded.config.server.listen != old.config.server.listen
        {
            tracing::warn!(
                "config.xml changed <server database> or <server listen>; that takes effect after a restart"
            );
        }
        let master = MasterKey::load(&loaded.config.server.key_file)?;
        let snapshot = Snapshot::new(loaded.config, &master);
        *self.current.write().expect("config lock poisoned") = Arc::new(snapshot);
        Ok(loaded
            .warnings
            .into_iter()
            .filter(|w| w.concerns_monitord())
            .collect())
    }

    /// For a request naming an unknown client: reloads when config.xml's modification time
    /// changed, checking at most once a second. True when a new config was loaded.
    pub fn reload_if_changed(&self) -> bool {
        {
            let mut last = self.last_mtime_check.lock().expect("mtime lock poisoned");
            if last.elapsed().as_secs_f64() < 1.0 {
                return false;
            }
            *last = Instant::now();
        }
        if modified(&self.path) == self.snapshot().mtime {
            return false;
        }
        match self.reload() {
            Ok(_) => {
                tracing::info!("config.xml changed; reloaded it");
                true
            }
            Err(e) => {
                log_reload_error(&e);
                false
            }
        }
    }
}

/// One line per problem, so each reads on its own in the journal.
pub fn log_reload_error(e: &ReloadError) {
    match e {
        ReloadError::Config(invalid) => {
            for d in &invalid.errors {
                tracing::error!("{d}");
            }
            tracing::error!("config.xml not reloaded; still running with the previous one");
        }
        ReloadError::Key(k) => {
            tracing::error!("config.xml not reloaded: {k}");
        }
    }
}
