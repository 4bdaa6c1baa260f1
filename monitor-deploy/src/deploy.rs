//! The work on each host, step by step (connect, probe, upload, start / first sample, or stop,
//! or status), and running up to `--jobs` hosts at once so that one slow or broken host never
//! delays the others: every step has its own timeout and a failure ends only that host's run.
//! Not here: how ssh is started ([`crate::ssh`]) or how results are shown ([`crate::report`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use monitor_core::config::{Client, DEFAULT_PORT};
use monitor_core::{AgentSettings, ClientKeys, MasterKey};
use openssh_sftp_client::{Sftp, SftpOptions, metadata::Permissions};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Action;
use crate::agentbin::{self, AgentBinary, AgentSource};
use crate::askpass::{self, AskpassServer};
use crate::remote::{self, Probe};
use crate::report;
use crate::ssh::{self, Connection, SshSetup};

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

/// Where on a host something went wrong (names as the user reads them in the summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Resolve,
    Connect,
    HostKey,
    Auth,
    Upload,
    Start,
    FirstSample,
    Stop,
    Status,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Resolve => "resolve",
            Step::Connect => "connect",
            Step::HostKey => "host key",
            Step::Auth => "auth",
            Step::Upload => "upload",
            Step::Start => "start",
            Step::FirstSample => "first sample",
            Step::Stop => "stop",
            Step::Status => "status",
        })
    }
}

/// A failed step and what to check.
#[derive(Debug, Clone)]
pub struct Failure {
    pub step: Step,
    pub message: String,
}

impl Failure {
    pub fn new(step: Step, message: impl Into<String>) -> Failure {
        Failure {
            step,
            message: message.into(),
        }
    }
}

/// The result for one host.
#[derive(Debug)]
pub struct Outcome {
    pub host: String,
    /// The step reached: the last one done on success, the failed one otherwise.
    pub step: Step,
    /// What was done, or what failed.
    pub message: String,
    pub ok: bool,
    pub duration: Duration,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        self.ok
    }
}

/// Runs `plan` on every client, `plan.jobs` at a time; outcomes in the clients' order.
pub async fn run_all(plan: Arc<Plan>, clients: Vec<Client>) -> anyhow::Result<Vec<Outcome>> {
    let setup = Arc::new(SshSetup {
        known_hosts: plan.known_hosts.clone(),
        strict_host_keys: plan.strict_host_keys,
        timeout: plan.timeout,
        askpass: AskpassServer::start()?,
        self_exe: std::env::current_exe().context("cannot find this program's own path")?,
    });
    let slots = Arc::new(Semaphore::new(plan.jobs));
    let progress = Arc::new(report::Progress::new(clients.len()));
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
            let result = run_host(&plan, &setup, &client, &progress).await;
            let outcome = match result {
                Ok((step, message)) => Outcome {
                    host: client.name.clone(),
                    step,
                    message,
                    ok: true,
                    duration: started.elapsed(),
                },
                Err(failure) => Outcome {
                    host: client.name.clone(),
                    step: failure.step,
                    message: failure.message,
                    ok: false,
                    duration: started.elapsed(),
                },
            };
            progress.done(&outcome);
            (index, outcome)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.context("a host's task panicked")?);
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    progress.finish();
    outcomes.sort_by_key(|(index, _)| *index);
    Ok(outcomes.into_iter().map(|(_, o)| o).collect())
}

/// One host, start to end; the master is closed whatever happened after connecting.
async fn run_host(
    plan: &Plan,
    setup: &SshSetup,
    client: &Client,
    progress: &report::Progress,
) -> Result<(Step, String), Failure> {
    let conn = ssh::connect(setup, client).await?;
    let result = match plan.action {
        Action::Deploy | Action::Once => deploy(plan, &conn, client, progress).await,
        Action::Stop => stop(plan, &conn).await,
        Action::Status => status(plan, &conn, client).await,
    };
    conn.close().await;
    result
}

async fn deploy(
    plan: &Plan,
    conn: &Connection,
    client: &Client,
    progress: &report::Progress,
) -> Result<(Step, String), Failure> {
    let (host_name, port, path) = split_url(plan.server_url.as_deref());
    let resolve = host_name.as_deref().filter(|h| !is_ip_literal(h));
    let out = ssh::run_script(&conn.session, &remote::probe(resolve), None, plan.timeout)
        .await
        .map_err(|e| Failure::new(Step::Upload, format!("cannot inspect the host: {e}")))?;
    let probe = Probe::parse(&out.stdout);
    let (url, host_header) = agent_url(&probe, host_name.as_deref(), port, &path)?;
    let agent = plan
        .agents
        .for_machine(&probe.machine)
        .map_err(|e| Failure::new(Step::Upload, e))?;
    let keys = ClientKeys::derive(&plan.master, &client.name);
    let settings = AgentSettings::new(&client.name, &keys, &url, host_header.as_deref());
    let interval_secs = client.interval.as_secs().max(1);
    let mut did = Vec::new();
    if conn.key_recorded {
        did.push("host key trusted on first use".to_owned());
    }
    let settings_sha256 = agentbin::sha256_hex(settings.to_json().as_bytes());
    let unchanged = probe
        .has_agent(&agent.version, &agent.sha256)
        .then(|| probe.running_unchanged(&agent.version, interval_secs, &settings_sha256));
    if let (Action::Deploy, Some(Some(pid))) = (plan.action, unchanged) {
        // Same binary, settings and interval: restarting would only cost time (the re-deploy
        // of an unchanged fleet is one round trip per host).
        did.push(format!(
            "agent {} already running (pid {pid}) with these settings",
            agent.version
        ));
        return Ok((Step::Start, did.join(", ")));
    }
    if probe.has_agent(&agent.version, &agent.sha256) {
        did.push(format!("agent {} already there", agent.version));
    } else {
        progress.step(&client.name, Step::Upload);
        let home = probe.home.as_deref().filter(|h| h.starts_with('/')).ok_or_else(|| {
            Failure::new(
                Step::Upload,
                format!(
                    "$HOME on the host is {:?}, not an absolute path, so there is no ~/.cache/monitor-agent to upload to; check the user's home directory in the host's passwd",
                    probe.home.as_deref().unwrap_or("")
                ),
            )
        })?;
        upload(conn, &agent, home, plan.timeout).await?;
        did.push(format!(
            "uploaded agent {} ({} KiB)",
            agent.version,
            agent.bytes.len() / 1024
        ));
    }
    let mut input = settings.to_json().into_bytes();
    input.push(b'\n');
    let (script, once) = match plan.action {
        Action::Once => (remote::once(&agent.version), true),
        _ => (
            remote::start(&agent.version, interval_secs, &settings_sha256),
            false,
        ),
    };
    progress.step(&client.name, Step::FirstSample);
    let out = ssh::run_script(&conn.session, &script, Some(&input), plan.timeout)
        .await
        .map_err(|e| Failure::new(Step::Start, format!("starting the agent: {e}")))?;
    match out.code {
        Some(0) => {
            did.push(if once {
                format!("sent one sample to {url}")
            } else {
                format!("running, first sample sent to {url}")
            });
            if !once {
                did.push(boot_note(&out.stdout));
            }
            Ok((Step::FirstSample, did.join(", ")))
        }
        Some(2) => Err(Failure::new(
            Step::Start,
            format!(
                "the agent refused its command line or settings ({}); is the agent ({}) from the same release as monitor-deploy {}?",
                out.stderr,
                agent.version,
                env!("CARGO_PKG_VERSION")
            ),
        )),
        Some(126 | 127) => Err(Failure::new(
            Step::Start,
            format!(
                "the agent cannot be run on the host ({}); check that {} is not on a noexec file system and that the binary fits the machine ({})",
                out.stderr,
                remote::BASE.replace("$HOME", "~"),
                probe.machine
            ),
        )),
        code => Err(Failure::new(
            Step::FirstSample,
            format!(
                "the agent could not deliver its first sample to {url}: {}; check that monitord runs and that this host can reach it (firewall, <server url> in config.xml){}",
                if out.stderr.is_empty() {
                    "no reason given"
                } else {
                    &out.stderr
                },
                // Exit 3 (unavailable): the agent runs on, spooling, and sends once it can.
                if code == Some(3) && !once {
                    format!("; {}", boot_note(&out.stdout))
                } else {
                    String::new()
                }
            ),
        )),
    }
}

/// What the start script said about coming back after a reboot.
fn boot_note(stdout: &str) -> String {
    match stdout.lines().find_map(|l| l.strip_prefix("persist=")) {
        Some("systemd") => "starts at boot (systemd unit monitor-agent.service)".into(),
        Some("user-unit") => "starts at boot (systemd user unit, lingering)".into(),
        Some("crontab") => "starts at boot (@reboot crontab line)".into(),
        _ => "WARNING: the agent will not come back after a reboot (no systemd for this user, no lingering, no crontab on the host)".into(),
    }
}

/// Uploads over SFTP to a temporary name, sets 0700, then renames over the old one, so a
/// running agent or a concurrent reader never sees half a binary. Every path is absolute,
/// under the `home` the probe reported: SFTP's start directory need not be the home
/// (`internal-sftp -d`), and the start script finds the agent through `$HOME`.
async fn upload(
    conn: &Connection,
    agent: &AgentBinary,
    home: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let cache = format!("{}/.cache", home.trim_end_matches('/'));
    let base = format!("{cache}/monitor-agent");
    let dir = format!("{base}/{}", agent.version);
    let tmp = format!("{dir}/.monitor-agent.{}.tmp", askpass::random_token());
    let target = format!("{dir}/monitor-agent");
    let work = async {
        let sftp = Sftp::from_clonable_session(conn.session.clone(), SftpOptions::default())
            .await
            .map_err(|e| {
                format!("{e:#}; check that sshd offers the SFTP subsystem (`Subsystem sftp` in sshd_config)")
            })?;
        let mut fs = sftp.fs();
        for part in [&cache, &base, &dir] {
            // Already there is fine; a real problem shows in the write below.
            let _ = fs.create_dir(part).await;
        }
        fs.write(&tmp, &agent.bytes)
            .await
            .map_err(|e| format!("writing {tmp}: {e:#}"))?;
        fs.set_permissions(&tmp, Permissions::from(0o700))
            .await
            .map_err(|e| format!("chmod 0700 {tmp}: {e:#}"))?;
        fs.rename(&tmp, &target)
            .await
            .map_err(|e| format!("renaming to {target}: {e:#}"))?;
        // Its hash, written after the binary so it is not older: the next probe reads it
        // instead of hashing the binary.
        let hash_tmp = format!("{tmp}.sha256");
        let hash_file = format!("{target}.sha256");
        fs.write(&hash_tmp, format!("{}\n", agent.sha256).as_bytes())
            .await
            .map_err(|e| format!("writing {hash_tmp}: {e:#}"))?;
        fs.rename(&hash_tmp, &hash_file)
            .await
            .map_err(|e| format!("renaming to {hash_file}: {e:#}"))?;
        drop(fs);
        sftp.close().await.map_err(|e| format!("{e:#}"))?;
        Ok::<(), String>(())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(Step::Upload, e)),
        Err(_) => Err(Failure::new(
            Step::Upload,
            format!(
                "the upload did not finish within {timeout:?}; check the link to the host, or raise --timeout"
            ),
        )),
    }
}

async fn stop(plan: &Plan, conn: &Connection) -> Result<(Step, String), Failure> {
    let out = ssh::run_script(&conn.session, &remote::stop(), None, plan.timeout)
        .await
        .map_err(|e| Failure::new(Step::Stop, e))?;
    let stopped = out.stdout.lines().find_map(|l| l.strip_prefix("stopped="));
    let mut message = match stopped {
        Some(pids) => format!("stopped the agent (pid {pids})"),
        None => "no agent was running".to_owned(),
    };
    for how in out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("unpersisted="))
    {
        message.push_str(&format!(", removed its {how} boot hook"));
    }
    Ok((Step::Stop, message))
}

async fn status(
    plan: &Plan,
    conn: &Connection,
    client: &Client,
) -> Result<(Step, String), Failure> {
    let out = ssh::run_script(&conn.session, &remote::status(), None, plan.timeout)
        .await
        .map_err(|e| Failure::new(Step::Status, e))?;
    let field = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    // An agent a boot unit started logs to the journal, not to agent.log.
    let journal = field("journal");
    let log = match (journal, field("log")) {
        (Some(j), _) => format!("; it logs to the journal: {j}"),
        (None, Some(l)) => format!("; last log: {l}"),
        (None, None) => String::new(),
    };
    let pending = field("pending")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0);
    let waiting = if pending > 0 {
        format!(", {pending} bytes of samples NOT YET DELIVERED")
    } else {
        ", nothing waiting to be sent".to_owned()
    };
    let Some(pid) = field("pid") else {
        return Err(Failure::new(
            Step::Status,
            format!("the agent is not running{log}; start it with monitor-deploy NAME"),
        ));
    };
    // The interval the agent runs with; config.xml's when its command line does not say.
    let interval_secs = field("cmd")
        .and_then(|cmd| {
            let mut words = cmd.split_whitespace();
            words.find(|w| *w == "--interval")?;
            words.next()?.parse::<u64>().ok()
        })
        .unwrap_or(client.interval.as_secs())
        .max(1);
    let send = LastSend::judge(
        field("last_sent").and_then(|v| v.parse().ok()),
        field("now").and_then(|v| v.parse().ok()),
        interval_secs,
        pending,
    );
    let message = format!(
        "running, pid {pid}, version {}, {send}{waiting}{log}",
        field("version").unwrap_or("unknown")
    );
    if send.is_delivering() {
        Ok((Step::Status, message))
    } else {
        Err(Failure::new(
            Step::Status,
            format!(
                "{message}; the agent is NOT DELIVERING: check that monitord runs and that this host reaches <server url> ({} on the host says why)",
                journal.unwrap_or("agent.log")
            ),
        ))
    }
}

/// When the agent last delivered a sample, judged against its interval on the host's clock.
#[derive(Debug, PartialEq)]
pub enum LastSend {
    /// `at` (unix ms), `age_secs` before the host's now.
    Recent { at: i64, age_secs: i64 },
    /// Longer ago than [`STALE_INTERVALS`] intervals.
    Stale {
        at: i64,
        age_secs: i64,
        interval_secs: u64,
    },
    /// Nothing recorded and samples waiting: it has never delivered one.
    Never,
    /// Nothing recorded, nothing waiting (an agent too old to record it).
    Unknown,
}

/// A last send older than this many intervals means the agent is not delivering (one missed
/// sample is a hiccup; the agent's retry backoff may take up to an interval more).
const STALE_INTERVALS: u64 = 3;

impl LastSend {
    pub fn judge(
        last_ms: Option<i64>,
        now_secs: Option<i64>,
        interval_secs: u64,
        pending: u64,
    ) -> LastSend {
        match (last_ms, now_secs) {
            (Some(at), Some(now)) => {
                // Both from the host's clock; one stepped back reads as "just now".
                let age_secs = (now - at.div_euclid(1000)).max(0);
                if age_secs as u64 > STALE_INTERVALS * interval_secs {
                    LastSend::Stale {
                        at,
                        age_secs,
                        interval_secs,
                    }
                } else {
                    LastSend::Recent { at, age_secs }
                }
            }
            _ if pending > 0 => LastSend::Never,
            _ => LastSend::Unknown,
        }
    }

    pub fn is_delivering(&self) -> bool {
        matches!(self, LastSend::Recent { .. } | LastSend::Unknown)
    }
}

impl fmt::Display for LastSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |ms: i64| monitor_core::time::Utc::from_unix_ms(ms);
        match self {
            LastSend::Recent { at: ms, age_secs } => {
                write!(f, "last successful send {} ({age_secs} s ago)", at(*ms))
            }
            LastSend::Stale {
                at: ms,
                age_secs,
                interval_secs,
            } => write!(
                f,
                "last successful send {} ({age_secs} s ago: STALE, more than {STALE_INTERVALS} x its {interval_secs} s interval)",
                at(*ms)
            ),
            LastSend::Never => f.write_str("no sample delivered since it started"),
            LastSend::Unknown => {
                f.write_str("last successful send not recorded by this agent version")
            }
        }
    }
}

/// `(host, port, path)` of `<server url>`, when given.
fn split_url(url: Option<&str>) -> (Option<String>, Option<u16>, String) {
    let Some(rest) = url.and_then(|u| u.strip_prefix("http://")) else {
        return (None, None, String::new());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').unwrap_or((v6, ""));
        (
            addr.to_owned(),
            after.strip_prefix(':').and_then(|p| p.parse().ok()),
        )
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()),
            None => (authority.to_owned(), None),
        }
    };
    (Some(host), port, path.trim_end_matches('/').to_owned())
}

fn is_ip_literal(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

fn url_host(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    }
}

/// The URL the agent PUTs to, and the `Host` header when the URL named a host.
fn agent_url(
    probe: &Probe,
    host: Option<&str>,
    port: Option<u16>,
    path: &str,
) -> Result<(String, Option<String>), Failure> {
    let port_suffix = port.map(|p| format!(":{p}")).unwrap_or_default();
    match host {
        Some(host) if is_ip_literal(host) => Ok((
            format!("http://{}{port_suffix}{path}", url_host(host)),
            None,
        )),
        Some(host) => {
            // Prefer IPv4: the address a name is usually meant by on a LAN.
            let addr = probe
                .resolved
                .iter()
                .find(|a| !a.contains(':'))
                .or(probe.resolved.first())
                .ok_or_else(|| {
                    Failure::new(
                        Step::Resolve,
                        format!(
                            "the host cannot resolve monitord's name `{host}` (getent ahosts found nothing): fix DNS or /etc/hosts there, or put an address in <server url>"
                        ),
                    )
                })?;
            Ok((
                format!("http://{}{port_suffix}{path}", url_host(addr)),
                Some(format!("{host}{port_suffix}")),
            ))
        }
        None => {
            let addr = probe.client_addr.as_deref().ok_or_else(|| {
                Failure::new(
                    Step::Resolve,
                    "$SSH_CONNECTION is not set on the host, so the address of monitord is unknown: set <server url> in config.xml",
                )
            })?;
            Ok((format!("http://{}:{DEFAULT_PORT}", url_host(addr)), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_send_is_stale_after_three_intervals_on_the_hosts_clock() {
        let at = 1_795_838_399_500; // 2026-11-28 03:59:59.5 UTC
        let now = 1_795_838_399;
        let recent = LastSend::judge(Some(at), Some(now + 30), 10, 0);
        assert_eq!(recent, LastSend::Recent { at, age_secs: 30 });
        assert!(recent.is_delivering());
        assert_eq!(
            recent.to_string(),
            "last successful send 2026-11-28 03:59:59 UTC (30 s ago)"
        );
        let stale = LastSend::judge(Some(at), Some(now + 31), 10, 0);
        assert!(!stale.is_delivering());
        assert!(
            stale
                .to_string()
                .contains("31 s ago: STALE, more than 3 x its 10 s interval")
        );
        // A host clock stepped back is not an age below zero.
        assert_eq!(
            LastSend::judge(Some(at), Some(now - 5), 10, 0),
            LastSend::Recent { at, age_secs: 0 }
        );
        assert_eq!(LastSend::judge(None, Some(now), 10, 120), LastSend::Never);
        assert!(!LastSend::Never.is_delivering());
        assert_eq!(LastSend::judge(None, Some(now), 10, 0), LastSend::Unknown);
    }
}
