//! What each `monitord` subcommand does; `main.rs` only parses the command line. Errors carry
//! context for a person (`anyhow`); the exit codes are listed in `monitord --help`.
//!
//! The operator commands (clients, samples, stats, compact) open the database next to a
//! running monitord: the reading ones read-only (through WAL, never blocking it), and compact
//! takes the write lock one chunk at a time. None of them creates the database: run as root,
//! that would leave a file the monitord user cannot open.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use monitor_core::MasterKey;
use monitor_core::config::{self, Config, DEFAULT_KEY_FILE, parse_duration};
use monitor_core::sample::Sample;
use monitor_core::time::Utc;

use crate::clock::Clock;
use crate::store::{self, compact, read};

/// Where a command's config.xml warnings go: the daemon logs them (to the journal under
/// systemd); every other command prints them on stderr, for the person who ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warnings {
    Log,
    Print,
}

/// Loads config.xml, reporting its warnings that concern monitord, and printing every
/// problem (stderr, one per line) when it is invalid.
pub fn load_config(path: &Path, warnings: Warnings) -> anyhow::Result<Config> {
    match config::load(path) {
        Ok(loaded) => {
            for w in loaded.warnings.iter().filter(|w| w.concerns_monitord()) {
                match warnings {
                    Warnings::Log => tracing::warn!("{w}"),
                    Warnings::Print => eprintln!("{w}"),
                }
            }
            Ok(loaded.config)
        }
        Err(invalid) => {
            for e in &invalid.errors {
                eprintln!("{e}");
            }
            bail!(
                "{} has {} problem(s); fix them first (`monitord check-config`)",
                path.display(),
                invalid.errors.len()
            )
        }
    }
}

pub fn serve(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, Warnings::Log)?;
    let sockets = crate::web::sockets::take(&config)?;
    actix_web::rt::System::new().block_on(crate::serve_with_web(
        sockets.ingest,
        sockets.web,
        config,
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The gid of group `monitord` from /etc/group (the packaged system group lives there).
pub(crate) fn monitord_gid() -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == "monitord").then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

pub fn gen_key(config_path: &Path, path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = match path {
        Some(p) => p,
        None => match config::load(config_path) {
            Ok(loaded) => loaded.config.server.key_file,
            Err(_) => PathBuf::from(DEFAULT_KEY_FILE),
        },
    };
    MasterKey::generate(&path, 0o600)?;
    let mut mode = "0600";
    if let Some(gid) = monitord_gid() {
        // Only root can hand the file to root:monitord; anyone else keeps a private 0600 key.
        if std::os::unix::fs::chown(&path, Some(0), Some(gid)).is_ok() {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
            mode = "0640 root:monitord";
        }
    }
    eprintln!("created master key {} (mode {mode})", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    match config::load(path) {
        Ok(loaded) => {
            for w in loaded.warnings.iter().filter(|w| w.concerns_monitord()) {
                eprintln!("{w}");
            }
            println!("{}", loaded.config.summary());
            Ok(ExitCode::SUCCESS)
        }
        Err(invalid) => {
            for w in invalid.warnings.iter().filter(|w| w.concerns_monitord()) {
                eprintln!("{w}");
            }
            for e in &invalid.errors {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The database of config.xml, opened read-only next to a running monitord.
fn open_database(config_path: &Path) -> anyhow::Result<diesel::SqliteConnection> {
    let config = load_config(config_path, Warnings::Print)?;
    Ok(store::open_read_only(&config.server.database)?)
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn fullest_disk(s: &Sample) -> String {
    s.fullest_disk().map_or_else(
        || "-".into(),
        |d| format!("{:.1}% {}", d.percent(), d.mount),
    )
}

pub fn clients(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, Warnings::Print)?;
    let mut conn = store::open_read_only(&config.server.database)?;
    let mut clients = read::clients_latest(&mut conn)?;
    // Clients in config.xml that never sent a sample are what an operator looks for first.
    for c in &config.clients {
        if !clients.iter().any(|known| known.name == c.name) {
            clients.push(read::ClientLatest {
                name: c.name.clone(),
                latest: None,
            });
        }
    }
    clients.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<19} {:>6} {:>6} {:>6} {:>6}  DISK",
        "CLIENT", "LAST SAMPLE (UTC)", "CPU%", "MEM%", "SWAP%", "LOAD1"
    )?;
    for c in clients {
        match c.latest {
            Some(s) => writeln!(
                out,
                "{:<24} {:<19} {:>6.2} {:>6.2} {:>6} {:>6}  {}",
                c.name,
                Utc::from_unix_ms(s.ts).date_time(),
                s.cpu_percent,
                s.memory.percent,
                opt(s.swap.as_ref().map(|w| format!("{:.2}", w.percent))),
                opt(s.load.map(|l| format!("{:.2}", l[0]))),
                fullest_disk(&s)
            )?,
            None => writeln!(out, "{:<24} {:<19}", c.name, "never")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn samples(
    config_path: &Path,
    name: &str,
    since: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let since_text = since;
    let since = parse_duration(since)
        .ok_or_else(|| anyhow!("--since {since:?} is not a duration; use e.g. 30m, 1h, 2d"))?;
    let config = load_config(config_path, Warnings::Print)?;
    let mut conn = store::open_read_only(&config.server.database)?;
    let from =
        Clock::from_env().now_ms() - i64::try_from(since.as_millis()).unwrap_or(i64::MAX / 2);
    // A client of config.xml that has not sent yet simply has no samples; a name neither
    // config.xml nor the database knows is most likely a typo.
    let samples = match read::samples_since(&mut conn, name, from)? {
        Some(samples) => samples,
        None if config.client(name).is_some() => Vec::new(),
        None => bail!(
            "unknown client {name:?}: not in {} and never stored (`monitord clients` lists them)",
            config_path.display()
        ),
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &samples)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if samples.is_empty() {
        writeln!(out, "no samples from {name} in the last {since_text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<19} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9}  DISK",
        "TIME (UTC)", "SEQ", "CPU%", "MEM%", "SWAP%", "LOAD1", "PROCS", "UPTIME"
    )?;
    for s in &samples {
        writeln!(
            out,
            "{:<19} {:>8} {:>6.2} {:>6.2} {:>6} {:>6} {:>6} {:>9}  {}",
            Utc::from_unix_ms(s.ts).date_time(),
            s.seq,
            s.cpu_percent,
            s.memory.percent,
            opt(s.swap.as_ref().map(|w| format!("{:.2}", w.percent))),
            opt(s.load.map(|l| format!("{:.2}", l[0]))),
            opt(s.processes),
            opt(s
                .uptime_s
                .map(|u| config::format_duration(std::time::Duration::from_secs(u as u64)))),
            fullest_disk(s)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn stats(config_path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let mut conn = open_database(config_path)?;
    let stats = read::stats(&mut conn)?;
    if json {
        println!("{}", serde_json::to_string(&stats)?);
    } else {
        println!("clients:          {}", stats.clients);
        println!("samples:          {}", stats.samples);
        println!("database bytes:   {}", stats.db_bytes);
        println!("bytes per sample: {}", stats.bytes_per_sample);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn compact(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, Warnings::Print)?;
    let mut conn = store::open_existing_for_writing(&config.server.database)?;
    let report = compact::compact(&mut conn, compact::Policy::ALL, Clock::from_env().now_ms())?;
    compact::release_free_pages(&mut conn)?;
    println!(
        "packed {} samples into {} blocks",
        report.samples, report.blocks
    );
    Ok(ExitCode::SUCCESS)
}
