//! The configuration's model: what a valid config.xml becomes, and the diagnostics that
//! explain an invalid one. Only types here; reading and checking are the sibling modules'.

use std::path::PathBuf;
use std::time::Duration;

/// Default path of config.xml for the installed programs.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/monitord/config.xml";
/// Default `<server listen>` outside systemd.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8750";
/// Default `<server database>`.
pub const DEFAULT_DATABASE: &str = "/var/lib/monitord/db.sqlite3";
/// Default `<server key-file>`.
pub const DEFAULT_KEY_FILE: &str = "/etc/monitord/master.key";
/// Port used in the agent's URL when `<server url>` is absent.
pub const DEFAULT_PORT: u16 = 8750;
/// Default sampling interval of the continuous agent.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The longest sampling interval: monitord computes with multiples of it (host down after
/// 3 × interval), which must not overflow, and a slower agent no longer monitors anything.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The path config.xml was read from, as given.
    pub path: PathBuf,
    pub server: Server,
    pub smtp: Smtp,
    pub history: History,
    /// `<web>`: the read-only web listener.
    pub web: Web,
    pub clients: Vec<Client>,
}

/// `<history>`: raw samples kept `raw`, then each rollup tier, finest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub raw: Duration,
    /// Steps increasing, each a whole multiple of the one before.
    pub tiers: Vec<Tier>,
}

/// One rollup tier: per client and `step`-aligned bucket (UTC), min, max, sum and count
/// of every numeric field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    pub step: Duration,
    pub keep: Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    For(Duration),
    Forever,
}

impl Keep {
    /// The oldest time still kept at `now_ms`, or `None` for forever.
    pub fn cutoff_ms(self, now_ms: i64) -> Option<i64> {
        match self {
            Keep::For(d) => Some(now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Keep::Forever => None,
        }
    }
}

impl Config {
    pub fn client(&self, name: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// A client's sampling interval; the default for a name config.xml no longer has.
    pub fn interval_of(&self, name: &str) -> Duration {
        self.client(name).map_or(DEFAULT_INTERVAL, |c| c.interval)
    }

    /// Effective (client, rule) pairs after defaults; the built-in host-down rule not counted.
    pub fn alert_rule_count(&self) -> usize {
        self.clients.iter().map(|c| c.alerts.len()).sum()
    }

    /// `OK: <N> clients, <M> alert rules`, what `check-config` prints on success.
    pub fn summary(&self) -> String {
        format!(
            "OK: {} clients, {} alert rules",
            self.clients.len(),
            self.alert_rule_count()
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// The URL agents PUT to; `None`: monitor-deploy derives it from `$SSH_CONNECTION`.
    pub url: Option<String>,
    /// `host:port` to bind when not socket-activated.
    pub listen: String,
    /// Resolved against config.xml's directory.
    pub database: PathBuf,
    /// Resolved against config.xml's directory.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Resolved against config.xml's directory.
    pub password_file: Option<PathBuf>,
    /// `None`: `monitord@<host name>`.
    pub from: Option<String>,
    /// A PEM file of extra trusted CAs.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub name: String,
    /// Address or host name to SSH to.
    pub ip: String,
    pub port: u16,
    pub username: String,
    pub auth: Auth,
    /// Addresses alert mail goes to; empty: no mail.
    pub mail: Vec<String>,
    pub interval: Duration,
    /// `tags`: `<defaults>`' tags, then the client's own, each once.
    pub tags: Vec<String>,
    /// Effective rules after `<defaults>`, at most one per kind.
    pub alerts: Vec<AlertRule>,
    /// Line of the `<client>` start tag, for messages.
    pub line: u32,
}

/// How monitor-deploy authenticates to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Neither password nor key given: ssh-agent and ~/.ssh/config apply.
    Default,
    Password(Secret),
    /// Resolved against config.xml's directory.
    PasswordFile(PathBuf),
    /// A private key path, resolved against config.xml's directory.
    Key(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    Memory,
    Cpu,
    Swap,
    Disk,
    Load,
    Processes,
    Uptime,
}

impl AlertKind {
    pub const ALL: [AlertKind; 7] = [
        AlertKind::Memory,
        AlertKind::Cpu,
        AlertKind::Swap,
        AlertKind::Disk,
        AlertKind::Load,
        AlertKind::Processes,
        AlertKind::Uptime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Memory => "memory",
            AlertKind::Cpu => "cpu",
            AlertKind::Swap => "swap",
            AlertKind::Disk => "disk",
            AlertKind::Load => "load",
            AlertKind::Processes => "processes",
            AlertKind::Uptime => "uptime",
        }
    }

    pub fn from_name(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Uptime alerts fire when the value drops *below* the limit (the host rebooted).
    pub fn fires_below(self) -> bool {
        self == AlertKind::Uptime
    }

    pub fn is_percent(self) -> bool {
        matches!(
            self,
            AlertKind::Memory | AlertKind::Cpu | AlertKind::Swap | AlertKind::Disk
        )
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One effective alert of one client.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub kind: AlertKind,
    /// Percent (0–100) for memory/cpu/swap/disk, a number for load/processes, seconds for uptime.
    pub limit: f64,
    /// Where a firing alert resolves (hysteresis); equals `limit` when not given.
    pub clear: f64,
    /// `for`: how long the limit must stay crossed before firing.
    pub hold: Duration,
    /// Re-notify while firing; `None`: never.
    pub repeat: Option<Duration>,
}

impl AlertRule {
    /// Strictly above the limit (uptime: strictly below).
    pub fn breached(&self, value: f64) -> bool {
        if self.kind.fires_below() {
            value < self.limit
        } else {
            value > self.limit
        }
    }

    /// Back at or below `clear` (uptime: at or above).
    pub fn cleared(&self, value: f64) -> bool {
        if self.kind.fires_below() {
            value >= self.clear
        } else {
            value <= self.clear
        }
    }
}

/// A password from config.xml. `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// Which program a diagnostic matters to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every program that reads config.xml.
    Everyone,
    /// Only the deployer: the client's SSH credentials (`key`, `password-file` of `<client>`
    /// and `<defaults>`) exist but this user cannot read them. monitord never reads them,
    /// and as the `monitord` user it is not meant to (they are root's), so it stays quiet.
    Deployer,
}

/// One problem found in config.xml. `Display` is `file:line: element: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub audience: Audience,
    /// The path as given on the command line.
    pub file: String,
    pub line: u32,
    /// The element the problem is in, e.g. `client` or `alert`; empty for file-level problems.
    pub element: String,
    pub message: String,
}

impl Diagnostic {
    /// Whether monitord (the daemon and its commands) should show it: not the deployer's own.
    pub fn concerns_monitord(&self) -> bool {
        self.audience == Audience::Everyone
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = if self.severity == Severity::Warning {
            "warning: "
        } else {
            ""
        };
        // Line 0: about the file as a whole (missing, unreadable), not a place in it.
        if self.line == 0 {
            write!(f, "{}: {prefix}", self.file)?;
        } else {
            write!(f, "{}:{}: {prefix}", self.file, self.line)?;
        }
        if self.element.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.element, self.message)
        }
    }
}

/// A valid configuration and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Every error found (never empty), plus any warnings.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8751";

/// The web listener's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Web {
    /// `enabled="no"` turns the listener off.
    pub enabled: bool,
    /// `host:port` to bind when systemd hands over no `web` socket.
    pub listen: String,
    /// `name:bcrypt-hash` lines; `None`: no authentication (loopback only).
    pub users_file: Option<PathBuf>,
    /// PEM certificate chain and private key; both or neither.
    pub tls: Option<Tls>,
    /// Line of the `<web>` start tag (0 when absent), for messages about it.
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// Resolved against config.xml's directory.
    pub cert_file: PathBuf,
    /// Resolved against config.xml's directory.
    pub key_file: PathBuf,
}

impl Default for Web {
    fn default() -> Web {
        Web {
            enabled: true,
            listen: DEFAULT_WEB_LISTEN.to_string(),
            users_file: None,
            tls: None,
            line: 0,
        }
    }
}
