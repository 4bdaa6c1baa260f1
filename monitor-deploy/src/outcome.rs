//! The words every other module of monitor-deploy shares: what a run does on each host
//! ([`Action`]), the steps of that work as the user reads them ([`Step`]), a failed step with
//! its advice ([`Failure`]) and one host's result ([`HostResult`]). It imports nothing else of
//! the crate: the bottom of the module graph, so the modules above it never import each other
//! for these types.

use std::fmt;
use std::time::Duration;

/// What to do on every selected host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Upload if needed, (re)start in continuous mode.
    Deploy,
    /// Upload if needed, run one sample in the foreground.
    Once,
    Stop,
    Status,
}

/// Where on a host something went wrong, or how far the work got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Resolve,
    Connect,
    HostKey,
    Auth,
    /// Inspecting the host before the upload (machine type, agents already there, the running
    /// agent): part of DESIGN.md's `upload` step, which it prepares, and shown as that.
    Probe,
    Upload,
    Start,
    FirstSample,
    Stop,
    Status,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The names in the summary are DESIGN.md's: resolve, connect, host key, auth, upload,
        // start, first sample (and stop, status for those actions).
        f.write_str(match self {
            Step::Resolve => "resolve",
            Step::Connect => "connect",
            Step::HostKey => "host key",
            Step::Auth => "auth",
            Step::Probe | Step::Upload => "upload",
            Step::Start => "start",
            Step::FirstSample => "first sample",
            Step::Stop => "stop",
            Step::Status => "status",
        })
    }
}

/// A failed step: what went wrong and what to check, in one line.
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

/// What one host's work came to.
#[derive(Debug)]
pub struct HostResult {
    pub host: String,
    /// The step reached: the last one done on success, the failed one otherwise.
    pub step: Step,
    /// What was done, or what failed.
    pub message: String,
    pub ok: bool,
    pub duration: Duration,
}

impl HostResult {
    pub fn is_ok(&self) -> bool {
        self.ok
    }
}
