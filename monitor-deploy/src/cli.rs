//! monitor-deploy's command line (clap): the binary parses it, and renders the same definition
//! into its man page (the hidden `monitor-deploy --man DIR`, run by `cargo xtask man`), so the
//! two never drift apart. Not here: the run
//! itself (`main.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};
use monitor_core::config::{self, DEFAULT_CONFIG_PATH};

/// Push and start monitor-agent on the clients of config.xml over SSH.
///
/// Name the clients (NAME…, --all or --failed); --status, --stop and --dry-run without them
/// work on every client.
#[derive(Debug, Parser)]
#[command(name = "monitor-deploy", version)]
#[command(group(ArgGroup::new("targets").args(["all", "names", "failed"])))]
pub struct Cli {
    /// Every client in config.xml.
    #[arg(long)]
    pub all: bool,
    /// Clients by name (as in config.xml: `name`, else `ip`, else `ip:port`).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// config.xml to read.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Hosts worked on at the same time.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub jobs: u32,
    /// Run the agent once in the foreground (one sample) and report, instead of starting it.
    #[arg(long, conflicts_with_all = ["stop", "status"])]
    pub once: bool,
    /// Stop the agent and remove what makes it start at boot.
    #[arg(long, conflicts_with = "status")]
    pub stop: bool,
    /// Show per host whether the agent runs, its version and its last successful send; a host
    /// whose agent has delivered nothing for 3 intervals counts as failed (exit 1).
    #[arg(long)]
    pub status: bool,
    /// Show what would be done; connect nowhere.
    #[arg(long)]
    pub dry_run: bool,
    /// Only the hosts that failed in the previous run.
    #[arg(long)]
    pub failed: bool,
    /// known_hosts file to trust and record host keys in (default: in the state directory).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Where monitor-deploy keeps its state: known_hosts and the hosts that failed in the
    /// previous run (default: /var/lib/monitor-deploy as root, else
    /// ~/.local/state/monitor-deploy).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Refuse hosts whose key is not in known_hosts yet, instead of trusting on first use.
    #[arg(long)]
    pub strict_host_keys: bool,
    /// Limit for each step on each host (`30s`, `2m`, a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Also log each host's result (and the run's) to the journal, with fields HOST, STEP,
    /// RESULT and DURATION_MS: `journalctl -t monitor-deploy HOST=web1`.
    #[arg(long)]
    pub log_journal: bool,
    /// The agent binary to upload (default: the packaged one matching the host, or the build output).
    #[arg(long, value_name = "PATH")]
    pub agent: Option<PathBuf>,
    /// Write the man page into DIR and exit (for packaging; `cargo xtask man`).
    #[arg(long, value_name = "DIR", hide = true, exclusive = true)]
    pub man: Option<PathBuf>,
}

impl Cli {
    /// Whether the command line names its clients; without, --status, --stop and --dry-run
    /// mean every client, and anything else is a usage error.
    pub fn names_targets(&self) -> bool {
        self.all || self.failed || !self.names.is_empty()
    }

    /// Every client: `--all`, or --status, --stop or --dry-run without a target.
    pub fn every_client(&self) -> bool {
        self.all || (!self.names_targets() && (self.status || self.stop || self.dry_run))
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match config::parse_duration(text) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{text}` is not a duration above zero (e.g. `30s`, `2m`, `90`)"
        )),
    }
}
