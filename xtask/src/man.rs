//! `xtask man DIR`: the man pages of monitord (section 8, one page for the daemon and one per
//! subcommand: `monitord-check-config.8` …) and of monitor-deploy (section 1), written into DIR
//! by the release binaries themselves (the hidden `monitord man DIR` and
//! `monitor-deploy --man DIR`), so a page is rendered from the very clap definition the shipped
//! binary parses, and `--help` and the man page never drift. `packaging/build-deb` builds the
//! binaries first and gzips the pages into the package. Not here: monitor-agent's page, which is
//! hand-written in `packaging/man/monitor-agent.1` (the agent parses with lexopt, not clap).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, ensure};

use crate::server;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    out: PathBuf,
    /// The monitord binary [default: $CARGO_TARGET_DIR/release/monitord].
    #[arg(long)]
    monitord: Option<PathBuf>,
    /// The monitor-deploy binary [default: $CARGO_TARGET_DIR/release/monitor-deploy].
    #[arg(long)]
    monitor_deploy: Option<PathBuf>,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let how = "cargo build --release -p monitord -p monitor-deploy";
    let monitord =
        server::release_binary(opts.monitord.clone(), "monitord", how, Some("--monitord"))?;
    let deploy = server::release_binary(
        opts.monitor_deploy.clone(),
        "monitor-deploy",
        how,
        Some("--monitor-deploy"),
    )?;
    render(Command::new(monitord).arg("man").arg(&opts.out))?;
    render(Command::new(deploy).arg("--man").arg(&opts.out))?;
    Ok(())
}

/// Runs a program's man page mode; passes on the paths it prints.
fn render(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}
