//! `xtask man DIR`: writes the man pages of monitord (section 8, one page for the daemon and
//! one per subcommand, as clap_mangen names them: `monitord-check-config.8` …) and of
//! monitor-deploy (section 1) into DIR, rendered from the very clap definitions the binaries
//! parse (their `cli.rs`, compiled in here by path), so `--help` and the man page never drift.
//! `packaging/build-deb` gzips them into the package. Not here: monitor-agent's page, which is
//! hand-written in `packaging/man/monitor-agent.1` (the agent parses with lexopt, not clap).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

// The binaries' own command lines. Only their `Command` definitions are used here, so the
// fields main.rs reads look unused to this crate.
#[allow(dead_code)]
#[path = "../../monitor-deploy/src/cli.rs"]
mod deploy_cli;
#[allow(dead_code)]
#[path = "../../monitord/src/cli.rs"]
mod monitord_cli;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    out: PathBuf,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    // The derive names a command after the crate compiling it (`xtask` here) unless the
    // definition says otherwise: name monitord explicitly.
    let monitord = monitord_cli::Cli::command()
        .name("monitord")
        .bin_name("monitord");
    write_pages(monitord, "8", &opts.out)?;
    write_pages(deploy_cli::Cli::command(), "1", &opts.out)?;
    Ok(())
}

/// The command's page and, for each visible subcommand, a page of its own (what the parent
/// page's SUBCOMMANDS section refers to).
fn write_pages(cmd: clap::Command, section: &str, out: &Path) -> anyhow::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), section, out)?;
    }
    let page = clap_mangen::Man::new(cmd)
        .section(section)
        .manual("monitord");
    let path = page
        .generate_to(out)
        .with_context(|| format!("cannot write a man page into {}", out.display()))?;
    println!("{}", path.display());
    Ok(())
}
