//! One SSH connection per host: a ControlMaster started with the system `ssh`, then attached
//! with the `openssh` crate's native mux, so every later step (probe, SFTP upload, start) reuses
//! it and `~/.ssh/config`, ssh-agent and ProxyJump keep working.
//!
//! We start the master ourselves instead of `SessionBuilder::connect_mux`, because the crate's
//! launch passes `BatchMode=yes`, which switches askpass off: password hosts could never log
//! in. Key and agent hosts still get `BatchMode=yes` from us, so ssh never waits for a prompt.
//! When the master fails, its log (`-E`) is read to tell the user which step failed (resolve,
//! connect, host key, auth) and what to check. Not here: what runs over the connection.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use monitor_core::config::{Auth, Client, Secret};
use openssh::Session;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::askpass::{self, AskpassServer};
use crate::outcome::{Failure, Step};

/// What every connection of a run shares.
#[derive(Debug)]
pub struct SshSetup {
    pub known_hosts: PathBuf,
    pub strict_host_keys: bool,
    pub timeout: Duration,
    pub askpass: AskpassServer,
    /// This program, which ssh runs as its askpass helper.
    pub self_exe: PathBuf,
}

/// A live master and the session attached to it; the master is told to exit on [`close`].
#[derive(Debug)]
pub struct Connection {
    pub session: Arc<Session>,
    ctl: PathBuf,
    /// Holds the control socket and the master's log; removed on drop.
    _dir: tempfile::TempDir,
    /// The host key was not known and has just been recorded (trust on first use).
    pub key_recorded: bool,
}

impl Connection {
    /// Ends the master (and with it every channel).
    pub async fn close(self) {
        // Over the mux socket when no SFTP clone is left: no extra process per host.
        let session = match Arc::try_unwrap(self.session) {
            Ok(session) => {
                if let Ok(Ok(())) =
                    tokio::time::timeout(Duration::from_secs(5), session.close()).await
                {
                    return;
                }
                None
            }
            Err(shared) => Some(shared),
        };
        drop(session);
        let exit = Command::new("ssh")
            .arg("-S")
            .arg(&self.ctl)
            .args(["-O", "exit", "monitor-deploy-master"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        // A wedged master must not hold up the run; ControlPersist ends it later anyway.
        let _ = tokio::time::timeout(Duration::from_secs(5), exit).await;
    }
}

/// `ip` for port 22, `[ip]:port` otherwise: how ssh names the host in known_hosts.
pub fn known_hosts_name(client: &Client) -> String {
    if client.port == 22 {
        client.ip.clone()
    } else {
        format!("[{}]:{}", client.ip, client.port)
    }
}

/// Starts the master for `client` and attaches to it.
pub async fn connect(setup: &SshSetup, client: &Client) -> Result<Connection, Failure> {
    let password = match &client.auth {
        Auth::Password(secret) => Some(secret.clone()),
        Auth::PasswordFile(path) => Some(read_password_file(path)?),
        Auth::Default | Auth::Key(_) => None,
    };
    let dir = tempfile::Builder::new()
        .prefix("monitor-deploy-ssh-")
        .tempdir()
        .map_err(|e| {
            Failure::new(
                Step::Connect,
                format!("cannot create a control directory: {e}"),
            )
        })?;
    let ctl = dir.path().join("master");
    let log = dir.path().join("log");
    let mut cmd = master_command(setup, client, &ctl, &log);
    let token = password.map(|p| setup.askpass.register(p));
    if let Some(token) = &token {
        cmd.env("SSH_ASKPASS", &setup.self_exe)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env(askpass::TOKEN_ENV, token)
            .env(askpass::SOCKET_ENV, setup.askpass.socket())
            .args([
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
                "-o",
                "NumberOfPasswordPrompts=1",
            ]);
    } else {
        cmd.args(["-o", "BatchMode=yes"]);
    }
    cmd.arg("--").arg(&client.ip);
    // ssh's own ConnectTimeout covers TCP and the banner; this bounds the rest (auth).
    let limit = setup.timeout + Duration::from_secs(2);
    let status = tokio::time::timeout(limit, async { cmd.status().await }).await;
    if let Some(token) = &token {
        setup.askpass.forget(token);
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Err(_) => Err(Failure::new(
            Step::Connect,
            format!(
                "no SSH session with {}:{} within {:?}: the host accepted no login in time; check that it is up and sshd answers (ssh -p {} {}@{})",
                client.ip, client.port, limit, client.port, client.username, client.ip
            ),
        )),
        Ok(Err(e)) => Err(Failure::new(
            Step::Connect,
            format!("cannot run ssh: {e} (is openssh-client installed?)"),
        )),
        Ok(Ok(status)) if !status.success() => Err(classify(setup, client, &log_text).await),
        Ok(Ok(_)) => Ok(Connection {
            session: Arc::new(Session::resume_mux(
                ctl.clone().into_boxed_path(),
                Some(log.into_boxed_path()),
            )),
            ctl,
            _dir: dir,
            key_recorded: log_text.contains("to the list of known hosts"),
        }),
    }
}

fn master_command(setup: &SshSetup, client: &Client, ctl: &Path, log: &Path) -> Command {
    let timeout_s = setup.timeout.as_secs().max(1);
    let mut cmd = Command::new("ssh");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .env_remove(askpass::TOKEN_ENV)
        .env_remove(askpass::SOCKET_ENV)
        .arg("-E")
        .arg(log)
        .arg("-S")
        .arg(ctl)
        .args(["-M", "-f", "-N", "-o"])
        // An idle master (monitor-deploy killed before it could say exit) goes away by itself.
        .arg(format!("ControlPersist={}s", (4 * timeout_s).max(60)))
        .arg("-o")
        .arg(format!("ConnectTimeout={timeout_s}"))
        .args([
            "-o",
            "ServerAliveInterval=10",
            "-o",
            "ServerAliveCountMax=3",
        ])
        .arg("-o")
        .arg(if setup.strict_host_keys {
            "StrictHostKeyChecking=yes"
        } else {
            "StrictHostKeyChecking=accept-new"
        })
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            setup.known_hosts.display()
        ))
        .args(["-o", "HashKnownHosts=no", "-p"])
        .arg(client.port.to_string())
        .arg("-l")
        .arg(&client.username);
    if let Auth::Key(key) = &client.auth {
        cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
    }
    cmd
}

fn read_password_file(path: &Path) -> Result<Secret, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            Step::Auth,
            format!("cannot read password-file {}: {e}", path.display()),
        )
    })?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r']).to_owned()))
}

/// Turns the master's log into the failed step and advice.
async fn classify(setup: &SshSetup, client: &Client, log: &str) -> Failure {
    let target = format!("{}:{}", client.ip, client.port);
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("ssh failed without a message")
        .trim()
        .to_owned();
    if log.contains("Could not resolve hostname") {
        return Failure::new(
            Step::Resolve,
            format!(
                "cannot resolve host name `{}` ({last}); check the client's ip in config.xml and DNS / /etc/hosts on this machine",
                client.ip
            ),
        );
    }
    if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return changed_host_key(setup, client, log).await;
    }
    if log.contains("host key is known for") || log.contains("Host key verification failed") {
        return Failure::new(
            Step::HostKey,
            format!(
                "the host key of {target} is not in {kh} and --strict-host-keys is set; check its fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it with `ssh-keyscan -p {port} {ip} >> {kh}` or deploy once without --strict-host-keys ({last})",
                kh = setup.known_hosts.display(),
                port = client.port,
                ip = client.ip,
            ),
        );
    }
    if log.contains("Permission denied") || log.contains("Too many authentication failures") {
        let advice = match &client.auth {
            Auth::Password(_) | Auth::PasswordFile(_) => format!(
                "wrong password for user `{}`, or sshd does not allow password logins (PasswordAuthentication); check the password in config.xml",
                client.username
            ),
            Auth::Key(key) => format!(
                "the server did not accept key {} for user `{}`; check that its public half is in ~{}/.ssh/authorized_keys on the host",
                key.display(),
                client.username,
                client.username
            ),
            Auth::Default => format!(
                "no key from ssh-agent or ~/.ssh/config was accepted for user `{}`; give `key=` or `password=` in config.xml",
                client.username
            ),
        };
        return Failure::new(Step::Auth, format!("{advice} ({last})"));
    }
    let hint = if log.contains("Connection refused") {
        format!(
            "connection refused by {target}: is sshd running there and listening on port {}?",
            client.port
        )
    } else if log.contains("timed out") {
        format!(
            "{target} did not answer within {:?}: check that the host is up, the port is right and no firewall drops SSH",
            setup.timeout
        )
    } else if log.contains("No route to host") || log.contains("Network is unreachable") {
        format!("{target} is unreachable from here: check the address and the network route")
    } else {
        format!("ssh to {target} failed: check that sshd runs there")
    };
    Failure::new(Step::Connect, format!("{hint} ({last})"))
}

async fn changed_host_key(setup: &SshSetup, client: &Client, log: &str) -> Failure {
    let presented = log
        .lines()
        .skip_while(|l| !l.contains("sent by the remote host is"))
        .nth(1)
        .map(|l| l.trim().trim_end_matches('.').to_owned())
        .unwrap_or_else(|| "(not shown by ssh)".into());
    let name = known_hosts_name(client);
    let recorded = Command::new("ssh-keygen")
        .args(["-l", "-F", &name, "-f"])
        .arg(&setup.known_hosts)
        .stdin(Stdio::null())
        .output()
        .await
        .ok()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter(|w| w.starts_with("SHA256:"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "(unreadable)".into());
    Failure::new(
        Step::HostKey,
        format!(
            "host key CHANGED: {kh} has {recorded} for {name}, the host now presents {presented}; refused. If the host was reinstalled, check the new fingerprint on it, then `ssh-keygen -R '{name}' -f {kh}` and deploy again; otherwise someone may be intercepting the connection",
            kh = setup.known_hosts.display(),
        ),
    )
}

/// A remote command's result.
#[derive(Debug)]
pub struct RemoteOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The command line that runs `script` with `sh` on the host, whatever the user's login shell.
///
/// sshd hands every command to the login shell (`$SHELL -c COMMAND`), and fish, csh and tcsh
/// do not read sh's quoting: csh refuses a newline inside quotes, fish turns `\\` into `\`.
/// So the script travels as one single-quoted word holding only characters every one of them
/// takes literally there: `sh -c 'eval "$(printf "…")"'`, where every other byte of the script
/// (newline, quotes, `\`, `$`, `` ` ``, `%`, `!`, non-ASCII) is a printf octal escape `\NNN`
/// (fish keeps a backslash before a digit; `!` would be csh's history). `printf` is sh's
/// builtin: the cost is one fork of sh.
pub fn posix_command(script: &str) -> String {
    let mut escaped = String::with_capacity(script.len() + script.len() / 4);
    for byte in script.bytes() {
        if byte.is_ascii_alphanumeric() || b" #&()*+,-./:;<=>?@[]^_{|}~".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("\\{byte:03o}"));
        }
    }
    format!("sh -c 'eval \"$(printf \"{escaped}\")\"'")
}

/// Runs `script` with `sh` on the host ([`posix_command`]), `input` on its stdin, within
/// `timeout`.
pub async fn run_script(
    session: &Session,
    script: &str,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<RemoteOutput, String> {
    let run = async {
        let mut cmd = session.raw_command(posix_command(script));
        cmd.stdin(if input.is_some() {
            openssh::Stdio::piped()
        } else {
            openssh::Stdio::null()
        })
        .stdout(openssh::Stdio::piped())
        .stderr(openssh::Stdio::piped());
        let mut child = cmd.spawn().await.map_err(|e| format!("{e:#}"))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin().take()) {
            stdin
                .write_all(input)
                .await
                .map_err(|e| format!("cannot write to the remote command: {e}"))?;
            drop(stdin);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(RemoteOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            // One line, so it fits the summary table's message column.
            stderr: String::from_utf8_lossy(&out.stderr)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        })
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// The same output through every login shell at hand (sh, bash, fish, tcsh, csh, zsh),
    /// for a script with every character sh's quoting and theirs treat specially.
    #[test]
    fn a_script_runs_the_same_through_every_login_shell() {
        let script = "set -f\nx='it''s' y=\"a\\\\b \\$HOME\" z=`echo 100%`\n\
                      printf '%s|%s|%s|%s\\n' \"$x\" \"$y\" \"$z\" \"$(echo '!1 \u{e9}\t*')\"\n\
                      case $x in *s) echo tail;; esac\nexit 3\n";
        let direct = Command::new("sh").args(["-c", script]).output().unwrap();
        assert_eq!(direct.status.code(), Some(3));
        let expected = String::from_utf8_lossy(&direct.stdout).into_owned();
        assert!(
            expected.contains("its|a\\b $HOME|100%|!1 \u{e9}\t*\ntail"),
            "{expected}"
        );
        let command = super::posix_command(script);
        let mut tried = 0;
        for shell in ["sh", "bash", "fish", "tcsh", "csh", "zsh"] {
            let Ok(out) = Command::new(shell).args(["-c", &command]).output() else {
                continue;
            };
            tried += 1;
            assert_eq!(
                (out.status.code(), String::from_utf8_lossy(&out.stdout)),
                (Some(3), expected.as_str().into()),
                "through {shell}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(tried >= 2, "at least sh and bash");
    }
}
