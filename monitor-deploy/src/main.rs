//! `monitor-deploy`: pushes the static agent to the clients listed in config.xml over the system
//! OpenSSH (one ControlMaster per host, SFTP for the upload), starts it, and tells the user
//! exactly which host failed at which step and what to check. Exit 0: every host succeeded;
//! 1: some failed; 2: usage or config error.
//!
//! This file is the command line and the run as a whole; the per-host work is in [`deploy`]
//! (with its steps in [`upload`], [`start`] and [`status`], the scripts they run on the host in
//! [`remote`]), SSH in [`ssh`], the password helper in [`askpass`], output in [`report`] (and,
//! with `--log-journal`, in [`journal`]). The types they share are in [`outcome`], the bottom
//! of the module graph.
//!
//! State of the work and what is left: `monitor-deploy/TODO.md`.

mod agentbin;
mod askpass;
mod cli;
mod deploy;
mod diagnose;
mod journal;
mod outcome;
mod remote;
mod report;
mod server_url;
mod ssh;
mod start;
mod state;
mod status;
mod upload;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, Parser as _};
use monitor_core::MasterKey;
use monitor_core::config::{self, Client, Config};

use cli::Cli;
use outcome::{Action, HostResult};

fn main() -> ExitCode {
    // ssh runs this same binary as its SSH_ASKPASS helper; that mode has no command line.
    if let Some(code) = askpass::run_as_helper() {
        return code;
    }
    let cli = Cli::parse();
    if let Some(dir) = &cli.man {
        return write_man_page(dir);
    }
    if !cli.names_targets() && !cli.every_client() {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "name the clients to deploy to: NAME…, --all, or --failed (--status, --stop and --dry-run alone mean every client)",
            )
            .exit();
    }
    if cli.log_journal {
        journal::init();
    }
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("monitor-deploy: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// monitor-deploy.1 from the clap definition this binary parses; prints its path.
fn write_man_page(dir: &std::path::Path) -> ExitCode {
    let page = clap_mangen::Man::new(Cli::command())
        .section("1")
        .manual("monitord");
    match std::fs::create_dir_all(dir).and_then(|()| page.generate_to(dir)) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "monitor-deploy: cannot write the man page into {}: {e}",
                dir.display()
            );
            ExitCode::from(2)
        }
    }
}

/// `Ok(true)`: every host succeeded; `Ok(false)`: some failed; `Err`: usage or config error.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let loaded = config::load(&cli.config).map_err(|invalid| {
        anyhow::anyhow!("{invalid}\n(nothing was deployed: fix config.xml first)")
    })?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let config = loaded.config;
    let action = if cli.status {
        Action::Status
    } else if cli.stop {
        Action::Stop
    } else if cli.once {
        Action::Once
    } else {
        Action::Deploy
    };
    let state = state::StateDir::open(cli.state_dir.as_deref(), cli.known_hosts.as_deref())?;
    let clients = select(&cli, &config, &state)?;
    if clients.is_empty() {
        if cli.failed {
            println!("nothing to do: the previous run had no failed hosts");
        } else {
            println!(
                "nothing to do: there are no clients in {} (add <client> elements, check them with `monitord check-config`, then deploy)",
                cli.config.display()
            );
        }
        return Ok(true);
    }
    if cli.dry_run {
        report::dry_run(&clients, action, &config);
        return Ok(true);
    }
    let master = MasterKey::load(&config.server.key_file).with_context(
        || "monitor-deploy needs monitord's master key to give each agent its keys",
    )?;
    let agents = agentbin::AgentSource::new(cli.agent.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let plan = deploy::Plan {
        action,
        master,
        server_url: config.server.url.clone(),
        agents,
        timeout: cli.timeout,
        jobs: cli.jobs as usize,
        known_hosts: state.known_hosts.clone(),
        strict_host_keys: cli.strict_host_keys,
    };
    let results = runtime.block_on(deploy::run_all(Arc::new(plan), clients))?;
    if action != Action::Status {
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| !r.is_ok())
            .map(|r| r.host.as_str())
            .collect();
        state.write_failed(&failed)?;
    }
    report::summary(&results, action);
    journal::run_done(&results, action);
    Ok(results.iter().all(HostResult::is_ok))
}

/// The clients named on the command line, in config order; unknown names are a usage error.
fn select(cli: &Cli, config: &Config, state: &state::StateDir) -> anyhow::Result<Vec<Client>> {
    if cli.every_client() {
        return Ok(config.clients.clone());
    }
    let names = if cli.failed {
        state.read_failed()?
    } else {
        cli.names.clone()
    };
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| config.client(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config
            .clients
            .iter()
            .map(|c| c.name.as_str())
            .take(10)
            .collect();
        bail!(
            "no client named {} in {} (clients are named by `name`, else `ip`, else `ip:port`; some known: {})",
            unknown.join(", "),
            cli.config.display(),
            known.join(", ")
        );
    }
    Ok(config
        .clients
        .iter()
        .filter(|c| names.contains(&c.name))
        .cloned()
        .collect())
}
