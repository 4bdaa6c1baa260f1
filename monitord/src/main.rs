//! The `monitord` binary: command line parsing and exit codes over the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};
use monitord::commands;

// Request handlers allocate what the writer thread frees; glibc's malloc spends a tenth of
// the daemon's CPU on that hand-over under load, mimalloc a fraction of it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    let result = match cli.command {
        None => {
            monitord::logging::init();
            commands::serve(&config)
        }
        Some(Command::GenKey { path }) => commands::gen_key(&config, path),
        Some(Command::CheckConfig { path }) => commands::check_config(&path.unwrap_or(config)),
        Some(Command::Clients) => commands::clients(&config),
        Some(Command::Samples {
            name,
            since,
            json,
            step,
        }) => match step {
            Some(step) => commands::series(&config, &name, &since, &step, json),
            None => commands::samples(&config, &name, &since, json),
        },
        Some(Command::Stats { json }) => commands::stats(&config, json),
        Some(Command::Compact) => commands::compact(&config),
        Some(Command::Alerts { json }) => monitord::alerts::cli::alerts_command(&config, json),
        Some(Command::SendTestMail { address }) => {
            monitord::alerts::cli::send_test_mail_command(&config, &address)
        }
        Some(Command::Passwd { name, users_file }) => {
            monitord::web::passwd::passwd(&config, &name, users_file)
        }
        Some(Command::Man { dir }) => write_man_pages(Cli::command(), &dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("monitord: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Section 8 pages of `cmd` and, for each visible subcommand, one of its own (what the
/// parent page's SUBCOMMANDS section refers to: `monitord-check-config.8` …); prints each path.
fn write_man_pages(cmd: clap::Command, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub.clone(), dir)?;
    }
    let page = clap_mangen::Man::new(cmd).section("8").manual("monitord");
    let path = std::fs::create_dir_all(dir)
        .and_then(|()| page.generate_to(dir))
        .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
