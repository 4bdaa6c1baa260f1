//! Project chores that are programs, not tests: the benchmarks.
//!
//! - `xtask bench ingest`: release monitord against an empty actix-web handler (`ingest`).
//! - `xtask bench agent`: the static agent against Debian's node exporter (`agent`).
//! - `xtask bench hostile`: monitord under idle and slow connections, both listeners (`hostile`).
//! - `xtask bench deploy N`: monitor-deploy against plain ssh+scp and ansible (`deploy`).
//! - `xtask man DIR`: the man pages, written by the programs themselves (`man`).
//! - `xtask imports`: the import cycles between the files of each crate (`imports`; its test
//!   runs the same check in `cargo test`).
//! - `xtask bench history`: a year of a fleet in the store: bytes per tier, read times, and
//!   ingest with rollups and expiry running against ingest without (`history`).
//!
//! Each starts real processes (on loopback or in namespaces it makes), bounds every phase in time
//! and count, and prints its numbers next to a baseline measured in the same run. Not here:
//! anything a test asserts.

// monitord's allocator: `bench history` runs monitord's store in this process, and its
// generator thread allocates what the writer frees, as the daemon's request handlers do.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agent;
mod deploy;
mod empty;
mod fleet;
mod history;
mod hostile;
mod imports;
mod ingest;
mod load;
mod man;
mod procstat;
mod server;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    about = "Benchmarks for monitord, monitor-agent and monitor-deploy (see xtask/README.md)"
)]
enum Cli {
    /// Run a benchmark.
    #[command(subcommand)]
    Bench(Bench),
    /// Write the man pages of monitord and monitor-deploy (rendered by the release binaries).
    Man(man::Options),
    /// Check that no two files of a crate import each other, directly or round a cycle.
    Imports(imports::Options),
    /// The empty actix-web handler `bench ingest` compares monitord with (run by it).
    #[command(hide = true)]
    EmptyHandler {
        #[arg(long)]
        workers: usize,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Committed samples/s and latency of the release monitord vs an empty handler.
    Ingest(ingest::Options),
    /// Peak RSS, CPU and binary size of the static agent vs prometheus-node-exporter.
    Agent(agent::Options),
    /// Agents' latency and monitord's memory under 2,000 idle and 500 slow connections.
    Hostile(hostile::Options),
    /// monitor-deploy on N namespaced sshd hosts vs plain ssh+scp and ansible (root).
    Deploy(deploy::Options),
    /// A year of 500 hosts in the store: bytes per tier, series and clients read times,
    /// ingest with rollups and expiry running vs without.
    History(history::Options),
}

fn main() {
    let result = match Cli::parse() {
        Cli::Bench(Bench::Ingest(opts)) => ingest::run(&opts),
        Cli::Bench(Bench::Agent(opts)) => agent::run(&opts),
        Cli::Bench(Bench::Deploy(opts)) => deploy::run(&opts),
        Cli::Bench(Bench::Hostile(opts)) => hostile::run(&opts),
        Cli::Bench(Bench::History(opts)) => history::run(&opts),
        Cli::Man(opts) => man::run(&opts),
        Cli::Imports(opts) => imports::run(&opts),
        Cli::EmptyHandler { workers } => empty::serve(workers),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}
