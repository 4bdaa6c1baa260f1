//! The `monitord` binary: command line parsing and exit codes over the library.

use std::process::ExitCode;

use clap::Parser as _;
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("monitord: {e:#}");
            ExitCode::FAILURE
        }
    }
}
