//! What the user sees: one line per host as it finishes (on a terminal, also a counter line
//! redrawn in place), then a summary table (host, result, step, duration, message). With many
//! hosts the table keeps to the ones that need attention, so 500 hosts stay readable. Not here:
//! deciding what succeeded (see [`crate::deploy`]).

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::Duration;

use monitor_core::config::{Auth, Client, Config};

use crate::Action;
use crate::deploy::Outcome;

/// Above this many hosts, successful ones are counted instead of listed in the summary.
const LIST_ALL_UP_TO: usize = 50;

/// Live per-host lines while the run goes on.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    done: Mutex<usize>,
    tty: bool,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            total,
            done: Mutex::new(0),
            tty: std::io::stdout().is_terminal(),
        }
    }

    pub fn done(&self, outcome: &Outcome) {
        let mut done = self.done.lock().expect("progress lock");
        *done += 1;
        let mut out = std::io::stdout().lock();
        if self.tty {
            // Clear the counter line, print the host's line, redraw the counter below it.
            let _ = write!(out, "\r\x1b[2K");
        }
        let _ = writeln!(
            out,
            "{} {} [{}, {}] {}",
            if outcome.ok { "ok  " } else { "FAIL" },
            outcome.host,
            outcome.step,
            seconds(outcome.duration),
            outcome.message
        );
        if self.tty && *done < self.total {
            let _ = write!(out, "  {}/{} hosts done…", *done, self.total);
        }
        let _ = out.flush();
    }

    pub fn finish(&self) {
        if self.tty {
            print!("\r\x1b[2K");
            let _ = std::io::stdout().flush();
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The final table.
pub fn summary(outcomes: &[Outcome], action: Action) {
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let listed: Vec<&Outcome> = if outcomes.len() <= LIST_ALL_UP_TO {
        outcomes.iter().collect()
    } else {
        outcomes.iter().filter(|o| !o.ok).collect()
    };
    println!();
    if !listed.is_empty() {
        let width = listed
            .iter()
            .map(|o| o.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<width$}  {:<6}  {:<12}  {:>8}  MESSAGE",
            "HOST", "RESULT", "STEP", "TIME"
        );
        for o in &listed {
            println!(
                "{:<width$}  {:<6}  {:<12}  {:>8}  {}",
                o.host,
                if o.ok { "ok" } else { "FAILED" },
                o.step.to_string(),
                seconds(o.duration),
                o.message
            );
        }
    }
    let verb = match action {
        Action::Deploy => "deployed",
        Action::Once => "sent a sample",
        Action::Stop => "stopped",
        Action::Status => "running",
    };
    println!(
        "{} of {} hosts {verb}, {failed} failed{}",
        outcomes.len() - failed,
        outcomes.len(),
        if failed > 0 {
            " (run again on just those with --failed)"
        } else {
            ""
        }
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
