//! HTTP basic auth for the web listener, when `<web users-file>` is set.
//!
//! The users-file is `name:bcrypt-hash` lines (`$2y$`/`$2b$`/`$2a$`, as `htpasswd -B` and
//! `monitord passwd` write them), `#` comments and blank lines; a file others may access is
//! refused. It is re-read on reload (SIGHUP); a bad file then keeps the users before it.
//!
//! bcrypt is slow on purpose, so two guards keep the listener from being pinned by it:
//! - a verdict cache keyed by the SHA-256 of the whole `Authorization` header: one bcrypt per
//!   distinct header per [`WINDOW`], right or wrong; bounded to [`CACHE_MAX`] entries;
//! - a failure limit per peer address: more than [`MAX_FAILURES`] wrong passwords in a
//!   [`WINDOW`] and that address gets 429 for a [`WINDOW`], before any bcrypt.
//!
//! The check itself runs on actix's blocking pool, never on a worker thread. Not here: which
//! paths exist (everything on the listener is behind this).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// How long a verdict is cached, failures are counted, and an address is refused.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Wrong passwords from one address in a [`WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 10;
/// Distinct `Authorization` headers remembered at most.
pub const CACHE_MAX: usize = 4096;
/// Addresses whose failures are tracked at most (oldest forgotten first).
const PEERS_MAX: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users-file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the users-file {path} may be accessed by other users (mode {mode:04o}): run chmod o-rwx on it"
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error("{path}:{line}: {what}")]
    Line {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// The users of a users-file: name → bcrypt hash. `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Users(HashMap<String, String>);

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Users {
    /// Reads and checks a users-file.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        use std::os::unix::fs::PermissionsExt as _;
        let read = |source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(UsersError::Mode {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Users::parse(&text).map_err(|(line, what)| UsersError::Line {
            path: path.to_path_buf(),
            line,
            what,
        })
    }

    /// Parses users-file text; an error is `(line, what is wrong)`.
    pub fn parse(text: &str) -> Result<Users, (usize, String)> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, hash)) = line.split_once(':') else {
                return Err((i + 1, "expected name:bcrypt-hash".into()));
            };
            if name.is_empty() {
                return Err((i + 1, "the user name is empty".into()));
            }
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                return Err((
                    i + 1,
                    format!(
                        "the hash of {name:?} is not bcrypt ($2y$ or $2b$): write it with \
                         `monitord passwd {name}` or `htpasswd -B`"
                    ),
                ));
            }
            users.insert(name.to_owned(), hash.to_owned());
        }
        Ok(Users(users))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The user, when `name` has `password` (one bcrypt).
    fn verify(&self, name: &str, password: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }
}

/// What the listener knows about authentication: the users (swapped on reload), the verdict
/// cache and the failures per address.
#[derive(Debug)]
pub struct Auth {
    path: PathBuf,
    /// The users and their generation, which each reload bumps.
    users: RwLock<(u64, Arc<Users>)>,
    /// Verdicts with the generation of the users they were checked against.
    verdicts: Mutex<HashMap<[u8; 32], Cached>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    ok: bool,
    at: Instant,
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// What the guard decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No `Authorization: Basic` header.
    Missing,
    Wrong,
    /// Too many failures from this address lately.
    Limited,
}

impl Auth {
    pub fn load(path: &Path) -> Result<Auth, UsersError> {
        let users = Users::load(path)?;
        if users.is_empty() {
            tracing::warn!(
                "the users-file {} has no users: every request to the web listener is refused \
                 (add one with `monitord passwd NAME`)",
                path.display()
            );
        }
        Ok(Auth {
            path: path.to_path_buf(),
            users: RwLock::new((0, Arc::new(users))),
            verdicts: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Re-reads the users-file (`path`: the one the reloaded config.xml names); on error the
    /// users before stay.
    pub fn reload(&self, path: &Path) {
        if path != self.path {
            tracing::warn!(
                "<web users-file> changed to {}; that takes effect after a restart, still \
                 reading {}",
                path.display(),
                self.path.display()
            );
        }
        match Users::load(&self.path) {
            Ok(users) => {
                tracing::info!(
                    users = users.len(),
                    "re-read the users-file {}",
                    self.path.display()
                );
                // A check still running against the old users caches its verdict under the
                // old generation, which no lookup matches any more.
                let mut current = self.users.write().expect("users lock poisoned");
                *current = (current.0 + 1, Arc::new(users));
                drop(current);
                self.verdicts.lock().expect("cache lock poisoned").clear();
            }
            Err(e) => tracing::error!("{e}; keeping the users read before"),
        }
    }

    fn limited(&self, peer: IpAddr, now: Instant) -> bool {
        let failures = self.failures.lock().expect("failures lock poisoned");
        failures
            .get(&peer)
            .and_then(|f| f.blocked_until)
            .is_some_and(|until| now < until)
    }

    fn record_failure(&self, peer: IpAddr, now: Instant) -> u32 {
        let mut failures = self.failures.lock().expect("failures lock poisoned");
        if failures.len() >= PEERS_MAX {
            failures.retain(|_, f| now.duration_since(f.since) < WINDOW);
            if failures.len() >= PEERS_MAX {
                failures.clear();
            }
        }
        let f = failures.entry(peer).or_insert(Failures {
            since: now,
            count: 0,
            blocked_until: None,
        });
        if now.duration_since(f.since) >= WINDOW {
            *f = Failures {
                since: now,
                count: 0,
                blocked_until: None,
            };
        }
        f.count += 1;
        if f.count > MAX_FAILURES {
            f.blocked_until = Some(now + WINDOW);
        }
        f.count
    }

    fn cached(&self, key: &[u8; 32], generation: u64, now: Instant) -> Option<bool> {
        let verdicts = self.verdicts.lock().expect("cache lock poisoned");
        verdicts.get(key).and_then(|c| {
            (c.generation == generation && now.duration_since(c.at) < WINDOW).then_some(c.ok)
        })
    }

    fn remember(&self, key: [u8; 32], verdict: Cached) {
        let now = verdict.at;
        let mut verdicts = self.verdicts.lock().expect("cache lock poisoned");
        if verdicts.len() >= CACHE_MAX {
            verdicts.retain(|_, c| now.duration_since(c.at) < WINDOW);
            if verdicts.len() >= CACHE_MAX {
                // Full of fresh entries: someone is spraying headers; start over rather than
                // grow (the failure limit slows them down).
                verdicts.clear();
            }
        }
        verdicts.insert(key, verdict);
    }

    /// Decides one request from its `Authorization` header (bcrypt, if needed, runs on the
    /// blocking pool).
    pub async fn check(self: &Arc<Self>, peer: IpAddr, header: Option<&[u8]>) -> Verdict {
        let now = Instant::now();
        if self.limited(peer, now) {
            return Verdict::Limited;
        }
        let Some(header) = header else {
            return Verdict::Missing;
        };
        let Some((name, password)) = basic_credentials(header) else {
            return Verdict::Missing;
        };
        let key: [u8; 32] = Sha256::digest(header).into();
        let (generation, users) = self.users.read().expect("users lock poisoned").clone();
        let ok = match self.cached(&key, generation, now) {
            Some(ok) => ok,
            None => {
                let ok = web::block(move || users.verify(&name, &password))
                    .await
                    .unwrap_or(false);
                self.remember(
                    key,
                    Cached {
                        ok,
                        at: now,
                        generation,
                    },
                );
                ok
            }
        };
        if ok {
            Verdict::Allowed
        } else {
            let count = self.record_failure(peer, now);
            tracing::warn!(
                peer = %peer,
                failures = count,
                "web listener: wrong user name or password from {peer} ({count} in the last minute)"
            );
            Verdict::Wrong
        }
    }
}

/// `(name, password)` of an `Authorization: Basic …` header.
fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

fn refusal(status: StatusCode, reason: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((WWW_AUTHENTICATE, r#"Basic realm="monitord""#));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.insert_header((
            actix_web::http::header::RETRY_AFTER,
            WINDOW.as_secs().to_string(),
        ));
    }
    response
        .content_type("application/json")
        .body(serde_json::json!({ "error": reason }).to_string())
}

/// The middleware: every path of the listener passes here when users are set.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(auth) = req.app_data::<web::Data<Arc<Auth>>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let verdict = auth.check(peer, header).await;
    let response = match verdict {
        Verdict::Allowed => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body);
        }
        Verdict::Missing => {
            tracing::debug!(peer = %peer, path = req.path(), "web listener: no credentials from {peer}");
            refusal(StatusCode::UNAUTHORIZED, "authentication required")
        }
        Verdict::Wrong => refusal(StatusCode::UNAUTHORIZED, "wrong user name or password"),
        Verdict::Limited => {
            tracing::debug!(peer = %peer, "web listener: {peer} is refused for a minute after repeated failures");
            refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins from this address; retry in a minute",
            )
        }
    };
    Ok(req.into_response(response).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_lines_comments_and_bad_hashes() {
        let users = Users::parse("# ops\n\nalice:$2y$05$abc\nbob:$2b$10$def\n").unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(Users::parse("alice").unwrap_err().0, 1);
        let (line, what) = Users::parse("# x\nalice:{SHA}abc\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(what.contains("not bcrypt"), "{what}");
        assert!(!format!("{users:?}").contains("$2y$"), "Debug shows hashes");
    }

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            basic_credentials(b"Basic YWxpY2U6czNjcjp0"),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
    }

    #[test]
    fn more_than_ten_failures_a_minute_block_the_address() {
        let auth = Auth {
            path: PathBuf::new(),
            users: RwLock::new((0, Arc::new(Users::default()))),
            verdicts: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        };
        let peer = IpAddr::from([192, 0, 2, 1]);
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            auth.record_failure(peer, now);
        }
        assert!(!auth.limited(peer, now));
        auth.record_failure(peer, now);
        assert!(auth.limited(peer, now));
        assert!(!auth.limited(IpAddr::from([192, 0, 2, 2]), now));
        assert!(!auth.limited(peer, now + WINDOW));
    }
}
