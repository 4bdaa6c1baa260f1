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

use crate::alerts::skew::{CLOCK_RULE, describe as describe_offset};
use crate::alerts::tables as alert_store;
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
    let unit_advice = unit_cannot_write(&config.server.database);
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    if let (Some(advice), true) = (&unit_advice, under_systemd) {
        tracing::warn!("{advice}");
    }
    let serving = crate::serve_with_web(sockets.ingest, sockets.web, config);
    match actix_web::rt::System::new().block_on(serving) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The sandbox shows as "read-only file system" or "unable to open": say why.
        Err(e @ (crate::ServeError::Store(_) | crate::ServeError::Lock(_))) => match unit_advice {
            Some(advice) => bail!("{e}; {advice}"),
            None => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// What the packaged unit may write: `StateDirectory=monitord` under `ProtectSystem=strict`.
const UNIT_WRITABLE: &str = "/var/lib/monitord";
/// Where the package installs the unit; its presence means monitord runs sandboxed.
const UNIT_FILES: [&str; 2] = [
    "/lib/systemd/system/monitord.service",
    "/usr/lib/systemd/system/monitord.service",
];

/// When the packaged unit is installed and `<server database>` lies outside what it may
/// write, the fix (the unit's sandbox would refuse the file with a bare "read-only file
/// system").
pub fn unit_cannot_write(database: &Path) -> Option<String> {
    if database.starts_with(UNIT_WRITABLE) || !UNIT_FILES.iter().any(|f| Path::new(f).exists()) {
        return None;
    }
    let dir = database
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(format!(
        "<server database> {} lies outside {UNIT_WRITABLE}, the only place the packaged \
         monitord.service may write (ProtectSystem=strict): run `systemctl edit monitord` and \
         add `ReadWritePaths={}` under `[Service]`, then restart it",
        database.display(),
        dir.display()
    ))
}

/// The gid of the packaged system group `monitord`, through the system's group database
/// (getgrnam: /etc/group, or whatever NSS serves).
pub(crate) fn monitord_gid() -> Option<u32> {
    nix::unistd::Group::from_name("monitord")
        .ok()
        .flatten()
        .map(|group| group.gid.as_raw())
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
            if let Some(advice) = unit_cannot_write(&loaded.config.server.database) {
                eprintln!("{}: warning: {advice}", path.display());
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
    // An old database without the alert tables is still listed, only without alerts.
    let states = alert_store::load_states(&mut conn).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<19} {:>6} {:>6} {:>6} {:>6}  {:<16}  ALERTS",
        "CLIENT", "LAST SAMPLE (UTC)", "CPU%", "MEM%", "SWAP%", "LOAD1", "DISK"
    )?;
    for c in clients {
        let alerts = alert_notes(&states, &c.name);
        match c.latest {
            Some(s) => writeln!(
                out,
                "{:<24} {:<19} {:>6.2} {:>6.2} {:>6} {:>6}  {:<16}  {alerts}",
                c.name,
                Utc::from_unix_ms(s.ts).date_time(),
                s.cpu_percent,
                s.memory.percent,
                opt(s.swap.as_ref().map(|w| format!("{:.2}", w.percent))),
                opt(s.load.map(|l| format!("{:.2}", l[0]))),
                fullest_disk(&s)
            )?,
            None => writeln!(out, "{:<24} {:<19} {:>37}  {alerts}", c.name, "never", "")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A client's alerts that are not ok, as `monitord clients` lists them: `cpu firing`,
/// `down firing`, `clock 4m12s behind (pending)`.
fn alert_notes(states: &[alert_store::StateRow], client: &str) -> String {
    let notes: Vec<String> = states
        .iter()
        .filter(|s| s.client == client && s.phase != "ok")
        .map(|s| match s.rule.as_str() {
            CLOCK_RULE => format!(
                "clock {} ({})",
                describe_offset((s.value * 1000.0) as i64),
                s.phase
            ),
            rule => format!("{rule} {}", s.phase),
        })
        .collect();
    if notes.is_empty() {
        "-".to_owned()
    } else {
        notes.join(", ")
    }
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
        "{:<19} {:<8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9}  DISK",
        "TIME (UTC)", "INSTANCE", "SEQ", "CPU%", "MEM%", "SWAP%", "LOAD1", "PROCS", "UPTIME"
    )?;
    for s in &samples {
        writeln!(
            out,
            "{:<19} {:<8} {:>8} {:>6.2} {:>6.2} {:>6} {:>6} {:>6} {:>9}  {}",
            Utc::from_unix_ms(s.ts).date_time(),
            short_instance(&s.instance),
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
    let mut instances: Vec<&str> = samples.iter().map(|s| s.instance.as_str()).collect();
    instances.sort_unstable();
    instances.dedup();
    if instances.len() > 1 {
        writeln!(
            out,
            "({} agent instances: SEQ counts per instance, and each new agent process — a \
             restart, a redeploy, monitor-deploy's first-sample run — starts again at 1)",
            instances.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `monitord samples NAME --since D --step S`: buckets of about `S` from the tier that fits.
pub fn series(
    config_path: &Path,
    name: &str,
    since: &str,
    step: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let since_d = parse_duration(since)
        .ok_or_else(|| anyhow!("--since {since:?} is not a duration; use e.g. 30m, 1h, 2d"))?;
    let step_d = parse_duration(step)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow!("--step {step:?} is not a duration; use e.g. 5m, 1h, 1d"))?;
    let config = load_config(config_path, Warnings::Print)?;
    let mut conn = store::open_read_only(&config.server.database)?;
    let now = Clock::from_env().now_ms();
    let to = now;
    let from = now - i64::try_from(since_d.as_millis()).unwrap_or(i64::MAX / 2);
    // One more than fits: the first bucket starts at a whole step before `from`.
    let points = (since_d.as_millis().div_ceil(step_d.as_millis()) + 1) as i64;
    let Some(series) = store::history::series::series(
        &mut conn,
        name,
        config.interval_of(name),
        &config.history,
        (from, to, points),
        now,
    )?
    else {
        if config.client(name).is_none() {
            bail!(
                "unknown client {name:?}: not in {} and never stored (`monitord clients` lists them)",
                config_path.display()
            );
        }
        println!("{}", if json { "null" } else { "no samples" });
        return Ok(ExitCode::SUCCESS);
    };
    if json {
        println!("{}", serde_json::to_string(&series)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{name}: tier {}, buckets of {}",
        series.tier,
        config::format_duration(std::time::Duration::from_millis(series.step_ms as u64))
    )?;
    let shown = [
        "cpu_percent",
        "memory_percent",
        "swap_percent",
        "load1",
        "processes",
    ];
    write!(out, "{:<19}", "BUCKET (UTC)")?;
    for s in shown {
        write!(out, " {:>22}", format!("{s} avg (min-max)"))?;
    }
    writeln!(out)?;
    let times: std::collections::BTreeSet<i64> =
        series.series.values().flatten().map(|p| p.0).collect();
    for t in times {
        write!(out, "{:<19}", Utc::from_unix_ms(t).date_time())?;
        for s in shown {
            let cell = series
                .series
                .get(s)
                .and_then(|points| points.iter().find(|p| p.0 == t))
                .map_or_else(|| "-".to_owned(), |p| format!("{} ({}-{})", p.1, p.2, p.3));
            write!(out, " {cell:>22}")?;
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The first 8 characters of an agent instance id: enough to tell instances apart.
fn short_instance(instance: &str) -> &str {
    instance
        .char_indices()
        .nth(8)
        .map_or(instance, |(i, _)| &instance[..i])
}

pub fn stats(config_path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, Warnings::Print)?;
    let mut conn = store::open_read_only(&config.server.database)?;
    let stats = read::stats(&mut conn)?;
    let tiers = store::history::tier_stats(&mut conn, &config.history)?;
    if json {
        let mut value = serde_json::to_value(&stats)?;
        value["tiers"] = serde_json::to_value(&tiers)?;
        println!("{value}");
    } else {
        println!("clients:          {}", stats.clients);
        println!("samples:          {}", stats.samples);
        println!("database bytes:   {}", stats.db_bytes);
        println!("bytes per sample: {}", stats.bytes_per_sample);
        println!();
        println!(
            "{:<6} {:>10} {:>12} {:>14}  OLDEST (UTC)",
            "TIER", "KEEP", "ROWS", "BYTES"
        );
        for t in &tiers {
            let keep = t.keep_s.map_or_else(
                || "forever".to_owned(),
                |s| config::format_duration(std::time::Duration::from_secs(s as u64)),
            );
            let oldest = t.oldest_ms.map_or_else(
                || "-".to_owned(),
                |ms| Utc::from_unix_ms(ms).date_time().to_string(),
            );
            println!(
                "{:<6} {:>10} {:>12} {:>14}  {oldest}",
                t.name, keep, t.rows, t.bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn compact(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, Warnings::Print)?;
    let mut conn = store::open_existing_for_writing(&config.server.database)?;
    let now = Clock::from_env().now_ms();
    // A process of its own: it writes on its own connection, beside monitord's writer.
    let writes = store::background::Writes::Here;
    let report = compact::compact(&mut conn, writes, compact::Policy::ALL, now)?;
    let interval_of = |name: &str| config.interval_of(name);
    let (rolled, expired) =
        store::history::maintain(&mut conn, writes, &config.history, &interval_of, now)?;
    compact::release_free_pages(&mut conn, writes)?;
    println!(
        "packed {} samples into {} blocks; rolled up {} buckets ({} again for late samples); \
         expired {} raw samples and {} rollup buckets",
        report.samples,
        report.blocks,
        rolled.buckets,
        rolled.late,
        expired.raw_samples,
        expired.rollups
    );
    Ok(ExitCode::SUCCESS)
}
