//! monitor-agent: measures its host and PUTs the sample, sealed, to monitord.
//!
//! A static binary that monitor-deploy copies to each client; it must stay tiny (≤ 1.5 MB,
//! ≤ 2 MB RSS), so it uses a hand-written HTTP PUT and `lexopt` for its few options.
//! The command line is parsed here; everything else lives in the modules:
//! `collect` (psutil), `proc_stat`, `meminfo`, `disks`, `send` (HTTP), `spool`, `state` (the state directory),
//! `run` (the loop and detaching), `log`.

mod collect;
mod disks;
mod log;
mod meminfo;
mod proc_stat;
mod run;
mod send;
mod spool;
mod state;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use monitor_core::agent::{self, exit};
use monitor_core::settings::SettingsError;

use crate::send::{Endpoint, Verdict};
use crate::state::StateDir;

const HELP: &str = "\
monitor-agent: measure this host and send the sample, sealed, to monitord

Usage:
  monitor-agent --print                   collect one sample and print its JSON (no settings)
  monitor-agent --once                    send one sample and exit
  monitor-agent --interval 10s            send a sample every interval, in the foreground
  monitor-agent --interval 10s --detach   send one sample, then continue in the background

Options:
  --dir PATH       state directory (default ~/.cache/monitor-agent)
  --version        print the version

Settings (name, keys, server URL) are the JSON object monitor-deploy writes to stdin:
  {\"name\": \"web1\", \"enc\": \"<hex>\", \"mac\": \"<hex>\", \"url\": \"http://10.0.0.5:8750\", \"host\": \"<optional>\"}
With stdin empty or a terminal they come from settings.json in the state directory, which
--interval and --detach write whenever settings arrive on stdin.

Exit status of --once and --detach: 0 stored, 1 refused by monitord or failed,
2 bad usage or settings, 3 monitord unavailable (--detach keeps retrying in the background).
";

#[derive(Debug, PartialEq)]
enum Mode {
    Help,
    Version,
    Print,
    Once,
    Interval { every: Duration, detach: bool },
    Detached { every: Duration },
}

#[derive(Debug)]
struct Cli {
    mode: Mode,
    dir: Option<PathBuf>,
}

fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> anyhow::Result<Cli> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_iter(std::iter::once("monitor-agent".into()).chain(args));
    let (mut print, mut once, mut detach, mut detached) = (false, false, false, false);
    let (mut interval, mut dir) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                return Ok(Cli {
                    mode: Mode::Help,
                    dir,
                });
            }
            Short('V') | Long("version") => {
                return Ok(Cli {
                    mode: Mode::Version,
                    dir,
                });
            }
            Long("print") => print = true,
            Long("once") => once = true,
            Long("detach") => detach = true,
            Long(run::DETACHED_FLAG_NAME) => detached = true,
            Long("interval") => interval = Some(parse_interval(&parser.value()?.string()?)?),
            Long("dir") => dir = Some(PathBuf::from(parser.value()?)),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let mode = match (print, once, interval) {
        (true, false, None) => Mode::Print,
        (false, true, None) => Mode::Once,
        (false, false, Some(every)) if detached => Mode::Detached { every },
        (false, false, Some(every)) => Mode::Interval { every, detach },
        (false, false, None) => bail!("choose one of --print, --once or --interval"),
        _ => bail!("--print, --once and --interval exclude each other"),
    };
    if detach && !matches!(mode, Mode::Interval { .. }) {
        bail!("--detach needs --interval");
    }
    Ok(Cli { mode, dir })
}

/// `10`, `10s`, `5m`, `1h30m`; at least one second.
fn parse_interval(text: &str) -> anyhow::Result<Duration> {
    match monitor_core::config::parse_duration(text) {
        Some(d) if d >= Duration::from_secs(1) => Ok(d),
        _ => bail!(
            "--interval takes seconds or a duration such as 10s, 5m or 1h30m (at least 1s), not `{text}`"
        ),
    }
}

fn main() -> ExitCode {
    let cli = match parse_args(std::env::args_os().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("monitor-agent: {e:#} (see --help)");
            return ExitCode::from(exit::USAGE);
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = if e
                .chain()
                .any(|c| c.is::<SettingsError>() || c.is::<Usage>())
            {
                exit::USAGE
            } else {
                exit::FAILED
            };
            eprintln!("monitor-agent: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// A problem the person running the agent must fix in its command line or settings (exit 2).
#[derive(Debug)]
struct Usage(anyhow::Error);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Usage {}

/// The settings (stdin or `settings.json`; kept when `keep`) turned into where to send.
fn endpoint(state: &StateDir, keep: bool) -> anyhow::Result<Endpoint> {
    let settings = state.settings(keep).map_err(Usage)?;
    Ok(Endpoint::new(&settings)?)
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.mode {
        Mode::Help => print!("{HELP}"),
        Mode::Version => println!("monitor-agent {}", env!("CARGO_PKG_VERSION")),
        Mode::Print => {
            let mut collector = collect::Collector::new()?;
            std::thread::sleep(run::FIRST_MEASURE);
            let sample = collector.sample()?;
            println!(
                "{}",
                serde_json::to_string_pretty(&sample).expect("samples always serialize")
            );
        }
        Mode::Once => {
            let state = StateDir::open(cli.dir)?;
            let endpoint = endpoint(&state, false)?;
            let mut collector = collect::Collector::new()?;
            std::thread::sleep(run::FIRST_MEASURE);
            let json =
                serde_json::to_string(&collector.sample()?).expect("samples always serialize");
            return Ok(match endpoint.send(&json) {
                Verdict::Stored => {
                    run::recorded(&state);
                    exit::STORED
                }
                Verdict::Rejected { reason, .. } => {
                    eprintln!("monitor-agent: {}", agent::refusal("the sample", &reason));
                    exit::FAILED
                }
                Verdict::Unavailable { reason, .. } => {
                    eprintln!("monitor-agent: monitord unavailable: {reason}");
                    exit::UNAVAILABLE
                }
            });
        }
        Mode::Interval { every, detach } => {
            let state = StateDir::open(cli.dir)?;
            let endpoint = endpoint(&state, true)?;
            if detach {
                return run::detach(&state, endpoint, every);
            }
            // Started by a boot hook (unit, @reboot) in the foreground. An @reboot line sends
            // stderr to /dev/null: then the state directory's log is the only place its lines
            // can be read (and `monitor-deploy --status` shows them), as for `--detach`.
            if log::stderr_leads_nowhere() {
                run::log_to_state_dir(&state)?;
            }
            // Still the agent of this state directory, so `--status` and the next deploy find
            // it. And the only one: a deploy's detached agent still running (the unit started
            // by hand after a redeploy, say) is stopped first, as `--detach` does.
            if let Some(pid) = state.stop_previous()? {
                log::log!("stopped the previous agent (pid {pid})");
            }
            state.write_pid(std::process::id())?;
            run::Agent::new(endpoint, &state, every)?.run(Instant::now() + run::FIRST_MEASURE);
        }
        Mode::Detached { every } => run::detached(&StateDir::open(cli.dir)?, every)?,
    }
    Ok(exit::STORED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Cli> {
        parse_args(args.iter().map(|a| std::ffi::OsString::from(*a)))
    }

    #[test]
    fn modes() {
        assert_eq!(parse(&["--print"]).unwrap().mode, Mode::Print);
        assert_eq!(parse(&["--once", "--dir", "/x"]).unwrap().mode, Mode::Once);
        assert_eq!(
            parse(&["--interval", "10"]).unwrap().mode,
            Mode::Interval {
                every: Duration::from_secs(10),
                detach: false
            }
        );
        assert_eq!(
            parse(&["--detach", "--interval=1m"]).unwrap().mode,
            Mode::Interval {
                every: Duration::from_secs(60),
                detach: true
            }
        );
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(err(&[]).contains("choose one"));
        assert!(err(&["--print", "--once"]).contains("exclude"));
        assert!(err(&["--once", "--detach"]).contains("--detach needs --interval"));
        assert!(err(&["--interval", "0"]).contains("at least 1s"));
        assert!(err(&["--interval", "ten"]).contains("`ten`"));
        assert!(err(&["--frobnicate"]).contains("frobnicate"));
    }
}
