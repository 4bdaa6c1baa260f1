//! What the user sees: one line per host as it finishes (on a terminal, also a block redrawn
//! in place with each running host's step and elapsed time), then a summary table (host, result, step, duration, message). With many
//! hosts the table keeps to the ones that need attention, so 500 hosts stay readable. Not here:
//! deciding what succeeded (see [`crate::deploy`]).

use std::io::{IsTerminal as _, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use monitor_core::config::{Auth, Client, Config};

use crate::outcome::{Action, HostResult, Step};

/// Above this many hosts, successful ones are counted instead of listed in the summary.
const LIST_ALL_UP_TO: usize = 50;

/// At most this many running hosts are shown live; the rest are counted.
const LIVE_LINES: usize = 12;

/// Live output while the run goes on: a permanent line per finished host, and on a terminal a
/// block below it, redrawn in place, with each running host's step and elapsed time.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    tty: bool,
    state: Mutex<Live>,
}

#[derive(Debug, Default)]
struct Live {
    done: usize,
    /// Running hosts in start order: name, step, when it started.
    running: Vec<(String, Step, Instant)>,
    /// Lines of the live block currently on screen.
    drawn: usize,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            total,
            tty: std::io::stdout().is_terminal(),
            state: Mutex::default(),
        }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// `host` has reached `step`.
    pub fn step(&self, host: &str, step: Step) {
        let mut live = self.state.lock().expect("progress lock");
        match live.running.iter_mut().find(|(h, _, _)| h == host) {
            Some(entry) => entry.1 = step,
            None => live.running.push((host.to_owned(), step, Instant::now())),
        }
    }

    pub fn done(&self, result: &HostResult) {
        let mut live = self.state.lock().expect("progress lock");
        live.done += 1;
        live.running.retain(|(h, _, _)| *h != result.host);
        let mut out = std::io::stdout().lock();
        self.erase(&mut live, &mut out);
        let _ = writeln!(
            out,
            "{} {} [{}, {}] {}",
            if result.ok { "ok  " } else { "FAIL" },
            result.host,
            result.step,
            seconds(result.duration),
            result.message
        );
        self.draw(&mut live, &mut out);
    }

    /// Redraws the live block (called on a timer, on a terminal only).
    pub fn tick(&self) {
        let mut live = self.state.lock().expect("progress lock");
        let mut out = std::io::stdout().lock();
        self.erase(&mut live, &mut out);
        self.draw(&mut live, &mut out);
    }

    pub fn finish(&self) {
        let mut live = self.state.lock().expect("progress lock");
        let mut out = std::io::stdout().lock();
        self.erase(&mut live, &mut out);
    }

    fn erase(&self, live: &mut Live, out: &mut impl Write) {
        if self.tty && live.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\r\x1b[J", live.drawn);
            live.drawn = 0;
        }
    }

    fn draw(&self, live: &mut Live, out: &mut impl Write) {
        if !self.tty || live.done == self.total {
            let _ = out.flush();
            return;
        }
        let mut lines = vec![format!(
            "  {}/{} hosts done, {} running",
            live.done,
            self.total,
            live.running.len()
        )];
        for (host, step, started) in live.running.iter().take(LIVE_LINES) {
            lines.push(format!("    {host}: {step} {}", seconds(started.elapsed())));
        }
        if live.running.len() > LIVE_LINES {
            lines.push(format!(
                "    … and {} more",
                live.running.len() - LIVE_LINES
            ));
        }
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        live.drawn = lines.len();
        let _ = out.flush();
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The final table.
pub fn summary(results: &[HostResult], action: Action) {
    let failed = results.iter().filter(|r| !r.ok).count();
    let listed: Vec<&HostResult> = if results.len() <= LIST_ALL_UP_TO {
        results.iter().collect()
    } else {
        results.iter().filter(|r| !r.ok).collect()
    };
    println!();
    if !listed.is_empty() {
        let width = listed
            .iter()
            .map(|r| r.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<width$}  {:<6}  {:<12}  {:>8}  MESSAGE",
            "HOST", "RESULT", "STEP", "TIME"
        );
        for r in &listed {
            println!(
                "{:<width$}  {:<6}  {:<12}  {:>8}  {}",
                r.host,
                if r.ok { "ok" } else { "FAILED" },
                r.step.to_string(),
                seconds(r.duration),
                r.message
            );
        }
    }
    let verb = match action {
        Action::Deploy => "deployed",
        Action::Once => "sent a sample",
        Action::Stop => "stopped",
        Action::Status => "running and delivering",
    };
    // --status records no failed hosts (it changes nothing), so --failed would not mean these.
    let again = match action {
        _ if failed == 0 => "",
        Action::Status => " (deploy to those hosts again to restart their agents)",
        _ => " (run again on just those with --failed)",
    };
    println!(
        "{} of {} hosts {verb}, {failed} failed{again}",
        results.len() - failed,
        results.len(),
    );
}

/// `--dry-run`: what would be done, per host, without connecting anywhere.
pub fn dry_run(clients: &[Client], action: Action, config: &Config) {
    let what = match action {
        Action::Deploy => "upload the agent if it differs, (re)start it in continuous mode",
        Action::Once => "upload the agent if it differs, send one sample",
        Action::Stop => "stop the agent",
        Action::Status => "show the agent's status",
    };
    let url = config
        .server
        .url
        .clone()
        .unwrap_or_else(|| "http://<address from $SSH_CONNECTION>:8750".into());
    println!("would {what}; agents send to {url}");
    for c in clients {
        let auth = match &c.auth {
            Auth::Default => "ssh-agent / ~/.ssh/config".to_owned(),
            Auth::Password(_) => "password".to_owned(),
            Auth::PasswordFile(p) => format!("password-file {}", p.display()),
            Auth::Key(k) => format!("key {}", k.display()),
        };
        println!(
            "{}: {}@{} port {}, {auth}, interval {}s",
            c.name,
            c.username,
            c.ip,
            c.port,
            c.interval.as_secs()
        );
    }
}
