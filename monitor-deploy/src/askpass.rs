//! monitor-deploy as its own `SSH_ASKPASS` helper, so passwords from config.xml reach `ssh`
//! without ever being in argv, in another process's environment, or in a file.
//!
//! The deploy run keeps an [`AskpassServer`]: a unix socket in a fresh 0700 directory, holding
//! one random token per ssh master that needs a password. That master is started with
//! `SSH_ASKPASS=<this binary>`, `SSH_ASKPASS_REQUIRE=force` and only the token and the socket
//! path in its environment. When ssh asks, the helper ([`run_as_helper`]) sends the token over
//! the socket and prints what comes back. ssh's prompt does not name the port, so the token is
//! what tells two hosts on one address apart. Each token answers once: a wrong password is not
//! retried until the account locks. Not here: starting ssh (see `ssh`).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use monitor_core::config::Secret;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixListener;

/// Environment variable carrying a master's token; its presence means "act as askpass".
pub const TOKEN_ENV: &str = "MONITOR_DEPLOY_ASKPASS_TOKEN";
/// Environment variable naming the socket of the deploy run.
pub const SOCKET_ENV: &str = "MONITOR_DEPLOY_ASKPASS_SOCKET";

/// When ssh started this process as its askpass helper: answers and returns the exit code.
pub fn run_as_helper() -> Option<ExitCode> {
    let token = std::env::var(TOKEN_ENV).ok()?;
    let socket = std::env::var_os(SOCKET_ENV)?;
    let prompt = std::env::args().nth(1).unwrap_or_default();
    // Only password prompts are ours to answer; host key questions never are (known_hosts
    // policy decides those), and a passphrase belongs to a key config.xml did not give us.
    if !prompt.to_ascii_lowercase().contains("password") {
        eprintln!("monitor-deploy askpass: not answering ssh's question: {prompt}");
        return Some(ExitCode::from(1));
    }
    match fetch(Path::new(&socket), &token) {
        Ok(Some(password)) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(password.as_bytes());
            let _ = out.write_all(b"\n");
            Some(ExitCode::SUCCESS)
        }
        Ok(None) => {
            eprintln!("monitor-deploy askpass: no password (again) for this connection");
            Some(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("monitor-deploy askpass: {e}");
            Some(ExitCode::from(1))
        }
    }
}

fn fetch(socket: &Path, token: &str) -> std::io::Result<Option<String>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.write_all(token.as_bytes())?;
    stream.write_all(b"\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok((!answer.is_empty()).then_some(answer))
}

/// Hands passwords to the askpass helpers of one deploy run.
#[derive(Debug)]
pub struct AskpassServer {
    dir: tempfile::TempDir,
    pending: Arc<Mutex<HashMap<String, Secret>>>,
}

impl AskpassServer {
    /// Binds the socket and serves it on the current tokio runtime until dropped.
    pub fn start() -> anyhow::Result<AskpassServer> {
        // tempfile creates directories 0700: only this user can reach the socket.
        let dir = tempfile::Builder::new()
            .prefix("monitor-deploy-askpass-")
            .tempdir()
            .context("cannot create a private directory for the password helper")?;
        let listener = UnixListener::bind(dir.path().join("socket"))
            .context("cannot create the password helper's socket")?;
        let pending: Arc<Mutex<HashMap<String, Secret>>> = Arc::default();
        let served = pending.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let served = served.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut line = String::new();
                    let mut reader = BufReader::new(read).take(256);
                    if reader.read_line(&mut line).await.is_err() {
                        return;
                    }
                    let password = served.lock().expect("askpass map").remove(line.trim_end());
                    if let Some(password) = password {
                        let _ = write.write_all(password.expose().as_bytes()).await;
                    }
                    let _ = write.shutdown().await;
                });
            }
        });
        Ok(AskpassServer { dir, pending })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// Registers a password for one master; the token goes into that master's environment.
    pub fn register(&self, password: Secret) -> String {
        let token = random_token();
        self.pending
            .lock()
            .expect("askpass map")
            .insert(token.clone(), password);
        token
    }

    /// Forgets a token that was not used (the master failed before asking).
    pub fn forget(&self, token: &str) {
        self.pending.lock().expect("askpass map").remove(token);
    }
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    hex::encode(bytes)
}
