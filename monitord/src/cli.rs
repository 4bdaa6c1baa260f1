//! monitord's command line (clap): the binary parses it, and renders the same definition into
//! its man pages (the hidden `monitord man DIR`, run by `cargo xtask man`), so the two never
//! drift apart. Not here: what the
//! commands do (`monitord::commands`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use monitor_core::config::DEFAULT_CONFIG_PATH;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (check-config: the file is valid, warnings may have been printed)
  1  failure: invalid config.xml, missing or unsafe master key, gen-key refusing to overwrite,
     database not reachable, unknown client, or the daemon failed while serving
  2  usage error (unknown option or subcommand)";

/// Receives sealed samples from monitor-agent over HTTP and stores them in SQLite.
///
/// Without a subcommand, serves `PUT /v1/samples/{name}` on the socket systemd passes
/// (LISTEN_FDS) or on `<server listen>` from config.xml. The operator commands read the
/// database while monitord runs and never lock it exclusively.
#[derive(Debug, Parser)]
#[command(name = "monitord", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// config.xml to read.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new master key (refuses to overwrite one).
    ///
    /// PATH defaults to <server key-file> of config.xml, else /etc/monitord/master.key.
    /// Mode 0640 root:monitord when run as root and group monitord exists, else 0600.
    GenKey { path: Option<PathBuf> },
    /// Check config.xml: `OK: N clients, M alert rules` on stdout and warnings on stderr
    /// (exit 0), or every problem on stderr, one per line (exit 1).
    CheckConfig {
        /// Defaults to --config.
        path: Option<PathBuf>,
    },
    /// Each client with its last sample time and latest values.
    Clients,
    /// A client's stored samples, oldest first.
    Samples {
        name: String,
        /// How far back, e.g. 30m, 1h, 2d.
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        since: String,
        /// One JSON array of samples with the sample's own field names, as stored (with
        /// --step: the series object of the read API).
        #[arg(long)]
        json: bool,
        /// Buckets of this span (avg, min, max) from the history tier that fits, instead of
        /// every sample, e.g. 1h over --since 30d.
        #[arg(long, value_name = "DURATION")]
        step: Option<String>,
    },
    /// Clients, stored samples, database size and bytes per sample, and each history tier.
    Stats {
        /// JSON with keys clients, samples, db_bytes, bytes_per_sample.
        #[arg(long)]
        json: bool,
    },
    /// Pack every raw sample into dense blocks, roll up closed buckets and expire what is
    /// past its keep, now (the daemon also does all three on timers).
    Compact,
    /// Every alert rule's state (ok, pending, firing) and the mail outbox.
    Alerts {
        /// One JSON object: `states` (client, rule, phase, since_ms, value, detail,
        /// condition) and `outbox` (id, message_id, recipient, client, rule, subject, status,
        /// attempts, created_ms, next_attempt_ms, last_error, done_ms), newest first.
        #[arg(long)]
        json: bool,
    },
    /// Send one test mail with the <smtp> settings (exit 0 once the server accepted it).
    SendTestMail { address: String },
    /// Add a user of the web listener, or replace their password (bcrypt).
    ///
    /// The password is read twice from the terminal, or once from stdin when it is not a
    /// terminal. The file is written atomically; a new one is 0640 root:monitord when run as
    /// root and the group exists, else 0600. `systemctl reload monitord` makes the daemon
    /// read it.
    Passwd {
        /// The user name (no ':' or spaces).
        name: String,
        /// Defaults to <web users-file> of config.xml, else /etc/monitord/web.users.
        #[arg(long, value_name = "PATH")]
        users_file: Option<PathBuf>,
    },
    /// Write monitord's man pages into DIR (for packaging; `cargo xtask man`).
    #[command(hide = true)]
    Man { dir: PathBuf },
}
