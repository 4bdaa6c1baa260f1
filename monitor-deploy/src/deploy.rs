//! The work on each host, step by step (connect, probe, upload, start / first sample, or stop,
//! or status), and running up to `--jobs` hosts at once so that one slow or broken host never
//! delays the others: every step has its own timeout and a failure ends only that host's run.
//! Not here: how ssh is started ([`crate::ssh`]), the steps' own work ([`crate::upload`],
//! [`crate::start`], [`crate::status`]) or how results are shown ([`crate::report`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use monitor_core::config::Client;
use monitor_core::{AgentSettings, ClientKeys, MasterKey};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::agentbin::{self, AgentBinary, AgentSource};
use crate::askpass::AskpassServer;
use crate::journal;
use crate::outcome::{Action, Failure, HostResult, Step};
use crate::remote::{self, Probe};
use crate::report::Progress;
use crate::server_url::ServerUrl;
use crate::ssh::{self, Connection, SshSetup};
use crate::{start, status, upload};

/// Everything a run needs, shared by all hosts.
#[derive(Debug)]
pub struct Plan {
    pub action: Action,
    pub master: MasterKey,
    pub server_url: Option<String>,
    pub agents: AgentSource,
    pub timeout: Duration,
    pub jobs: usize,
    pub known_hosts: PathBuf,
    pub strict_host_keys: bool,
}

/// Runs `plan` on every client, `plan.jobs` at a time; results in the clients' order.
pub async fn run_all(plan: Arc<Plan>, clients: Vec<Client>) -> anyhow::Result<Vec<HostResult>> {
    let setup = Arc::new(SshSetup {
        known_hosts: plan.known_hosts.clone(),
        strict_host_keys: plan.strict_host_keys,
        timeout: plan.timeout,
        askpass: AskpassServer::start()?,
        self_exe: std::env::current_exe().context("cannot find this program's own path")?,
    });
    let slots = Arc::new(Semaphore::new(plan.jobs));
    let progress = Arc::new(Progress::new(clients.len()));
    let mut tasks = JoinSet::new();
    let ticker = progress.is_tty().then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                every.tick().await;
                progress.tick();
            }
        })
    });
    for (index, client) in clients.into_iter().enumerate() {
        let (plan, setup, slots, progress) =
            (plan.clone(), setup.clone(), slots.clone(), progress.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore never closed");
            let started = Instant::now();
            progress.step(&client.name, Step::Connect);
            let (ok, (step, message)) = match run_host(&plan, &setup, &client, &progress).await {
                Ok(done) => (true, done),
                Err(failure) => (false, (failure.step, failure.message)),
            };
            let result = HostResult {
                host: client.name.clone(),
                step,
                message,
                ok,
                duration: started.elapsed(),
            };
            journal::host_done(&result, plan.action);
            progress.done(&result);
            (index, result)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.context("a host's task panicked")?);
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    progress.finish();
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

/// One host, start to end; the master is closed whatever happened after connecting.
async fn run_host(
    plan: &Plan,
    setup: &SshSetup,
    client: &Client,
    progress: &Progress,
) -> Result<(Step, String), Failure> {
    let conn = ssh::connect(setup, client).await?;
    let result = match plan.action {
        Action::Deploy | Action::Once => deploy(plan, &conn, client, progress).await,
        Action::Stop => status::stop(&conn, plan.timeout).await,
        Action::Status => status::status(&conn, client, plan.timeout).await,
    };
    conn.close().await;
    result
}

/// The default action and `--once`, over an open connection: probe the host, pick its agent,
/// leave an unchanged running agent alone, else upload when the host lacks this binary, then
/// start it and wait for its first sample.
async fn deploy(
    plan: &Plan,
    conn: &Connection,
    client: &Client,
    progress: &Progress,
) -> Result<(Step, String), Failure> {
    let server = ServerUrl::parse(plan.server_url.as_deref());
    let probe = probe(conn, &server, plan.timeout).await?;
    let (url, host_header) = server.for_agent(&probe.resolved, probe.client_addr.as_deref())?;
    let agent = plan
        .agents
        .for_machine(&probe.machine)
        .map_err(|e| Failure::new(Step::Upload, e))?;
    let keys = ClientKeys::derive(&plan.master, &client.name);
    let settings = AgentSettings::new(&client.name, &keys, &url, host_header.as_deref()).to_json();
    let settings_sha256 = agentbin::sha256_hex(settings.as_bytes());
    let interval_secs = client.interval.as_secs().max(1);
    let mut did = Vec::new();
    if conn.key_recorded {
        did.push("host key trusted on first use".to_owned());
    }
    if plan.action == Action::Deploy {
        if let Some(pid) = running_unchanged(&probe, &agent, interval_secs, &settings_sha256) {
            // Same binary, settings and interval: restarting would only cost time (the
            // re-deploy of an unchanged fleet is one round trip per host).
            did.push(format!(
                "agent {} already running (pid {pid}) with these settings",
                agent.version
            ));
            return Ok((Step::Start, did.join(", ")));
        }
    }
    did.push(ensure_uploaded(conn, &probe, &agent, client, progress, plan.timeout).await?);
    progress.step(&client.name, Step::FirstSample);
    let start = start::Start {
        client: &client.name,
        version: &agent.version,
        interval_secs: (plan.action == Action::Deploy).then_some(interval_secs),
        settings_json: &settings,
        settings_sha256: &settings_sha256,
        url: &url,
        machine: &probe.machine,
        user: &client.username,
    };
    did.extend(start::run(conn, &start, plan.timeout).await?);
    Ok((Step::FirstSample, did.join(", ")))
}

/// Everything the next steps need to know about the host, in one round trip.
async fn probe(conn: &Connection, server: &ServerUrl, timeout: Duration) -> Result<Probe, Failure> {
    let script = remote::probe(server.name_to_resolve());
    let out = ssh::run_script(&conn.session, &script, None, timeout)
        .await
        .map_err(|e| Failure::new(Step::Probe, format!("cannot inspect the host: {e}")))?;
    Ok(Probe::parse(&out.stdout))
}

/// The pid of the agent running on the host when it is this binary, started by the last
/// deploy with these settings and interval, and delivering.
fn running_unchanged<'p>(
    probe: &'p Probe,
    agent: &AgentBinary,
    interval_secs: u64,
    settings_sha256: &str,
) -> Option<&'p str> {
    probe
        .has_agent(&agent.version, &agent.sha256)
        .then(|| probe.running_unchanged(&agent.version, interval_secs, settings_sha256))
        .flatten()
}

/// Uploads the agent unless the host has this binary already; says which.
async fn ensure_uploaded(
    conn: &Connection,
    probe: &Probe,
    agent: &AgentBinary,
    client: &Client,
    progress: &Progress,
    timeout: Duration,
) -> Result<String, Failure> {
    if probe.has_agent(&agent.version, &agent.sha256) {
        return Ok(format!("agent {} already there", agent.version));
    }
    progress.step(&client.name, Step::Upload);
    let home = probe.home.as_deref().filter(|h| h.starts_with('/')).ok_or_else(|| {
        Failure::new(
            Step::Upload,
            format!(
                "$HOME on the host is {:?}, not an absolute path, so there is no ~/{} to upload to; check the user's home directory in the host's passwd",
                probe.home.as_deref().unwrap_or(""),
                monitor_core::agent::STATE_DIR_IN_HOME
            ),
        )
    })?;
    upload::upload(conn, agent, home, &client.username, timeout).await?;
    Ok(format!(
        "uploaded agent {} ({} KiB)",
        agent.version,
        agent.bytes.len() / 1024
    ))
}
