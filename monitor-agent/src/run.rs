//! The continuous agent: a sample every interval, sent at once when monitord answers, else
//! kept in the spool and retried with capped exponential backoff and jitter; the spool drains
//! oldest first before anything newer goes out. Also the `--detach` dance: first sample in the
//! foreground, then a re-executed copy of the agent in its own session.
//!
//! Not here: measuring (`collect`), HTTP (`send`), the on-disk queue (`spool`).

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use monitor_core::agent::{self, exit, file};

use crate::collect::Collector;
use crate::log::log;
use crate::send::{Endpoint, Verdict};
use crate::spool::{self, Spool};
use crate::state::StateDir;

/// The short measurement the first sample's CPU shares are taken over.
pub const FIRST_MEASURE: Duration = Duration::from_millis(500);
/// The argument a detached agent is re-executed with; not for people (not in `--help`).
pub const DETACHED_FLAG_NAME: &str = "detached-child";

pub struct Agent {
    endpoint: Endpoint,
    state: StateDir,
    collector: Collector,
    spool: Spool,
    interval: Duration,
    failures: u32,
    retry_at: Option<Instant>,
    last_reason: String,
    /// `last_sent` could not be written last time (logged once, not every sample).
    unrecorded: bool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("interval", &self.interval)
            .field("spooled", &self.spool.len())
            .field("failures", &self.failures)
            .finish()
    }
}

impl Agent {
    pub fn new(endpoint: Endpoint, state: &StateDir, interval: Duration) -> anyhow::Result<Agent> {
        let spool = Spool::open(state.path(), spool::MAX_SAMPLES, spool::MAX_BYTES)
            .with_context(|| format!("opening the spool in {}", state.path().display()))?;
        Ok(Agent {
            endpoint,
            state: state.clone(),
            collector: Collector::new()?,
            spool,
            interval,
            failures: 0,
            retry_at: None,
            last_reason: String::new(),
            unrecorded: false,
        })
    }

    /// Samples every interval from `first` on, forever.
    pub fn run(mut self, first: Instant) -> ! {
        log!(
            "monitor-agent {} started: a sample every {}s, instance {}, {} samples spooled",
            env!("CARGO_PKG_VERSION"),
            self.interval.as_secs(),
            self.collector.instance(),
            self.spool.len()
        );
        let mut next_sample = first;
        loop {
            let wake = match self.retry_at {
                Some(at) if !self.spool.is_empty() => at.min(next_sample),
                _ => next_sample,
            };
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            let now = Instant::now();
            if now >= next_sample {
                next_sample += self.interval;
                if next_sample <= now {
                    next_sample = now + self.interval; // suspended or far behind: no burst
                }
                self.take_sample();
            }
            if !self.spool.is_empty() && self.retry_at.is_none_or(|at| Instant::now() >= at) {
                self.drain(next_sample);
            }
        }
    }

    fn take_sample(&mut self) {
        let json = match self.collector.sample() {
            Ok(sample) => serde_json::to_string(&sample).expect("samples always serialize"),
            Err(e) => return log!("collecting a sample failed: {e:#}"),
        };
        if !self.spool.is_empty() || self.retry_at.is_some() {
            return self.keep(&json);
        }
        match self.endpoint.send(&json) {
            Verdict::Stored => self.record_sent(),
            Verdict::Rejected { reason, .. } => dropped(&reason),
            Verdict::Unavailable {
                reason,
                retry_after,
            } => {
                self.keep(&json);
                self.failed(reason, retry_after);
            }
        }
    }

    /// Sends spooled samples oldest first until the spool is empty, monitord fails, or the
    /// next sample is due (collection keeps its schedule during a long drain).
    fn drain(&mut self, until: Instant) {
        // A spool written under keys monitord no longer accepts is refused sample by
        // sample: a few lines say why, a count says how many.
        const REFUSALS_LOGGED: usize = 3;
        let (mut sent, mut refused) = (0, 0);
        while Instant::now() < until {
            let line = match self.spool.front() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    log!("unreadable spool entry dropped: {e}");
                    if let Err(e) = self.spool.pop_front() {
                        log!("the spool cannot be read ({e}); will retry");
                        self.failed(format!("spool: {e}"), None);
                        return;
                    }
                    continue;
                }
            };
            let outcome = self.endpoint.send(&line);
            match outcome {
                Verdict::Stored => {
                    self.answered();
                    sent += 1;
                }
                Verdict::Rejected { reason, .. } => {
                    self.answered();
                    refused += 1;
                    if refused <= REFUSALS_LOGGED {
                        dropped(&reason);
                    }
                }
                Verdict::Unavailable {
                    reason,
                    retry_after,
                } => {
                    self.failed(reason, retry_after);
                    break;
                }
            }
            if let Err(e) = self.spool.pop_front() {
                log!("the spool cannot be updated ({e}); will retry");
                return self.failed(format!("spool: {e}"), None);
            }
        }
        if sent > 0 {
            self.record_sent(); // once per drain, however many it sent
        }
        if refused > REFUSALS_LOGGED {
            log!(
                "monitord refused {} more spooled samples; dropped them",
                refused - REFUSALS_LOGGED
            );
        }
        if self.failures > 0 {
            return;
        }
        self.retry_at = None;
        if sent > 0 && self.spool.is_empty() {
            log!("spool drained: {sent} samples sent");
        }
    }

    fn record_sent(&mut self) {
        match self.state.record_sent() {
            Ok(()) => self.unrecorded = false,
            Err(e) if !self.unrecorded => {
                self.unrecorded = true;
                log!("cannot record the time of the last send in the state directory: {e}");
            }
            Err(_) => {}
        }
    }

    /// monitord answered (stored or refused): the outage, if any, is over.
    fn answered(&mut self) {
        if self.failures > 0 {
            log!(
                "monitord answers again; sending {} spooled samples",
                self.spool.len()
            );
            self.failures = 0;
            self.retry_at = None;
            self.last_reason.clear();
        }
    }

    fn keep(&mut self, json: &str) {
        match self.spool.push(json) {
            Ok(0) => {}
            Ok(n) => log!(
                "spool full ({} samples or {} MB at most): dropped the {n} oldest",
                spool::MAX_SAMPLES,
                spool::MAX_BYTES / (1024 * 1024)
            ),
            Err(e) => log!("a sample is lost: cannot write the spool: {e}"),
        }
    }

    /// Schedules the next try: exponential from 1 s, capped at the interval (at least 30 s,
    /// at most 5 minutes), with jitter so a fleet does not come back in lockstep, and never
    /// sooner than monitord's `Retry-After`.
    fn failed(&mut self, reason: String, retry_after: Option<Duration>) {
        self.failures += 1;
        let cap = self
            .interval
            .clamp(Duration::from_secs(30), Duration::from_secs(300));
        let delay =
            backoff(self.failures, cap, random_fraction()).max(retry_after.unwrap_or_default());
        self.retry_at = Some(Instant::now() + delay);
        if self.failures == 1 || reason != self.last_reason || self.failures % 20 == 0 {
            log!(
                "monitord unavailable ({reason}): {} samples kept in the spool, next try in {}s",
                self.spool.len(),
                delay.as_secs().max(1)
            );
        }
        self.last_reason = reason;
    }
}

/// [`StateDir::record_sent`] for the one-sample modes, where stderr reaches a person.
pub fn recorded(state: &StateDir) {
    if let Err(e) = state.record_sent() {
        eprintln!("monitor-agent: cannot record the time of the last send: {e}");
    }
}

fn dropped(reason: &str) {
    log!("monitord refused a sample ({reason}); dropped it, resending cannot fix that");
}

/// `min(cap, 1 s · 2^(failures−1))`, scaled into its upper half by `jitter` ∈ [0, 1).
fn backoff(failures: u32, cap: Duration, jitter: f64) -> Duration {
    let exp = Duration::from_secs(1u64 << failures.saturating_sub(1).min(20));
    let base = exp.min(cap);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// `--detach`, the foreground part: sends the first sample and reports on stderr, then starts
/// the background agent (replacing one already running from this state directory) unless
/// monitord refused the sample. Returns the exit code.
pub fn detach(state: &StateDir, endpoint: Endpoint, interval: Duration) -> anyhow::Result<u8> {
    if let Some(pid) = state.stop_previous()? {
        eprintln!("monitor-agent: stopped the previous agent (pid {pid})");
    }
    let mut collector = Collector::new()?;
    std::thread::sleep(FIRST_MEASURE);
    let json = serde_json::to_string(&collector.sample()?).expect("samples always serialize");
    let code = match endpoint.send(&json) {
        Verdict::Stored => {
            eprintln!("monitor-agent: first sample stored");
            recorded(state);
            exit::STORED
        }
        Verdict::Rejected { reason, .. } => {
            eprintln!(
                "monitor-agent: {}",
                agent::refusal("the first sample", &reason)
            );
            return Ok(exit::FAILED);
        }
        Verdict::Unavailable { reason, .. } => {
            Spool::open(state.path(), spool::MAX_SAMPLES, spool::MAX_BYTES)
                .and_then(|mut spool| spool.push(&json))
                .with_context(|| format!("keeping the sample in {}", state.path().display()))?;
            eprintln!(
                "monitor-agent: monitord unavailable: {reason}; the agent keeps the sample \
                 and retries in the background"
            );
            exit::UNAVAILABLE
        }
    };
    let exe = std::env::current_exe().context("finding the agent's own executable")?;
    let mut command = Command::new(exe);
    // The child leaves the SSH session's session before it runs any of our code, so the
    // session's end (which may come as soon as this process exits) can never SIGHUP it.
    // The one unsafe block of the workspace: std's documented way to run a call between fork
    // and exec. SAFETY: setsid is async-signal-safe and allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let child = command
        .arg("--interval")
        .arg(interval.as_secs().to_string())
        .arg("--dir")
        .arg(state.path())
        .arg(format!("--{DETACHED_FLAG_NAME}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the background agent")?;
    state.write_pid(child.id())?;
    eprintln!(
        "monitor-agent: running in the background (pid {}), state in {}",
        child.id(),
        state.path().display()
    );
    Ok(code)
}

/// Sends every following log line to the state directory's `agent.log`: for an agent whose
/// stderr leads nowhere (detached, or started by an `@reboot` line).
pub fn log_to_state_dir(state: &StateDir) -> anyhow::Result<()> {
    let path = state.file(file::LOG);
    crate::log::to_file(path.clone(), state.file(file::LOG_ROTATED))
        .with_context(|| format!("opening {}", path.display()))
}

/// `--detach`, the background part, already in a session of its own (see [`detach`]'s spawn):
/// logs to `agent.log` and runs the loop; the first sample was sent by the
/// foreground part, so the next is due one interval from now. The foreground part writes
/// `agent.pid`. Errors are logged, since stderr leads nowhere now.
pub fn detached(state: &StateDir, interval: Duration) -> anyhow::Result<()> {
    log_to_state_dir(state)?;
    std::panic::set_hook(Box::new(|info| log!("panic: {info}")));
    let start = || -> anyhow::Result<Agent> {
        let settings = state.settings(false)?;
        Agent::new(Endpoint::new(&settings)?, state, interval)
    };
    match start() {
        Ok(agent) => agent.run(Instant::now() + interval),
        Err(e) => {
            log!("the background agent cannot start: {e:#}");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(1, cap, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(3, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(10, cap, 1.0), cap);
        assert_eq!(backoff(10, cap, 0.0), cap / 2);
        assert_eq!(backoff(u32::MAX, cap, 1.0), cap);
        let r = random_fraction();
        assert!((0.0..1.0).contains(&r));
    }
}
