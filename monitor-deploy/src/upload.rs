//! The upload step: the agent binary over SFTP into `~/.cache/monitor-agent/<version>/` on the
//! host, to a temporary name, then renamed, so a running agent or a concurrent reader never
//! sees half a binary; its hash is recorded next to it for the next probe. A failure says
//! which: no SFTP on the host, the connection dropped, or what the file system refused (asked
//! of the host with [`crate::diagnose`]). Not here: deciding whether to upload (the probe's
//! answer, in [`crate::deploy`]).

use std::time::Duration;

use monitor_core::agent::{self, file};
use openssh_sftp_client::{self as sftp, Sftp, SftpOptions, metadata::Permissions};

use crate::agentbin::AgentBinary;
use crate::askpass;
use crate::diagnose::Facts;
use crate::outcome::{Failure, Step};
use crate::ssh::Connection;

/// Uploads `agent` under `home`, the absolute `$HOME` the probe reported: SFTP's start
/// directory need not be the home (`internal-sftp -d`), and the start script finds the agent
/// through `$HOME`. Sets 0700 before the rename. `user` is the login, for the messages.
pub async fn upload(
    conn: &Connection,
    agent: &AgentBinary,
    home: &str,
    user: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let base = format!(
        "{}/{}",
        home.trim_end_matches('/'),
        agent::STATE_DIR_IN_HOME
    );
    let dir = format!("{base}/{}", agent.version);
    let tmp = format!("{dir}/.{}.{}.tmp", agent::BINARY, askpass::random_token());
    let work = async {
        let sftp = match Sftp::from_clonable_session(conn.session.clone(), SftpOptions::default())
            .await
        {
            Ok(sftp) => sftp,
            // The crate's error here is three nested I/O errors that all mean one thing: the
            // channel ended at once. With the connection still up, sshd refused the subsystem.
            Err(e) if conn.session.check().await.is_err() => {
                return Err(dropped(true, "starting SFTP", &e));
            }
            Err(_) => {
                return Err(Failure::new(
                    Step::Upload,
                    "the host ended the SFTP session as soon as it began: its sshd offers no SFTP; check that sshd offers the SFTP subsystem (a `Subsystem sftp internal-sftp` line in the host's sshd_config, then reload sshd)",
                ));
            }
        };
        let written = write_files(&sftp, agent, home, &dir, &tmp).await;
        if written.is_err() {
            // A partial binary must not stay behind (on a full disk it keeps it full).
            let mut fs = sftp.fs();
            let _ = fs.remove_file(&tmp).await;
        }
        let closed = sftp.close().await;
        match (written, closed) {
            (Err((what, e)), _) => Err(explain(conn, agent, user, what, e, timeout).await),
            (Ok(()), Err(e)) => Err(explain(conn, agent, user, "closing SFTP", e, timeout).await),
            (Ok(()), Ok(())) => Ok(()),
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            Step::Upload,
            format!(
                "the upload did not finish within {timeout:?}; check the link to the host, or raise --timeout"
            ),
        )),
    }
}

/// The binary to `tmp`, 0700, renamed into `dir`, then its hash next to it; on failure, what
/// was being done and the error.
async fn write_files(
    sftp: &Sftp,
    agent: &AgentBinary,
    home: &str,
    dir: &str,
    tmp: &str,
) -> Result<(), (&'static str, sftp::Error)> {
    let target = format!("{dir}/{}", agent::BINARY);
    let mut fs = sftp.fs();
    for part in parents(home, dir) {
        // Already there is fine; a real problem shows in the write below.
        let _ = fs.create_dir(&part).await;
    }
    fs.write(tmp, &agent.bytes)
        .await
        .map_err(|e| ("writing the agent", e))?;
    fs.set_permissions(tmp, Permissions::from(0o700))
        .await
        .map_err(|e| ("making it executable (0700)", e))?;
    fs.rename(tmp, &target)
        .await
        .map_err(|e| ("renaming it into place", e))?;
    // Its hash, written after the binary so it is not older: the next probe reads it
    // instead of hashing the binary.
    let hash_tmp = format!("{tmp}.sha256");
    let hash_file = format!("{dir}/{}", file::BINARY_SHA256);
    fs.write(&hash_tmp, format!("{}\n", agent.sha256).as_bytes())
        .await
        .map_err(|e| ("writing its hash", e))?;
    fs.rename(&hash_tmp, &hash_file)
        .await
        .map_err(|e| ("renaming its hash into place", e))?;
    Ok(())
}

/// A failed upload in words. The server answered with an SFTP status: the file system said
/// no, and `diagnose.sh` finds out why (SFTP v3 cannot say). Anything else means the SFTP
/// session ended under us: the whole connection when the master is gone too.
async fn explain(
    conn: &Connection,
    agent: &AgentBinary,
    user: &str,
    what: &str,
    error: sftp::Error,
    timeout: Duration,
) -> Failure {
    let where_ = format!("~/{}/{}", agent::STATE_DIR_IN_HOME, agent.version);
    if let sftp::Error::SftpError(kind, _) = &error {
        let need_kib = (agent.bytes.len() as u64).div_ceil(1024);
        let cause = Facts::gather(conn, &agent.version, true, timeout)
            .await
            .and_then(|facts| facts.write_failure(&where_, user, need_kib));
        return Failure::new(
            Step::Upload,
            cause.unwrap_or_else(|| {
                format!(
                    "{what} to {where_}: the host's SFTP server said {kind:?}; check that user `{user}` can write there"
                )
            }),
        );
    }
    let gone = conn.session.check().await.is_err();
    dropped(gone, &format!("{what} to {where_}"), &error)
}

/// The SFTP session ended under us while `doing`: the whole connection when `gone`.
fn dropped(gone: bool, doing: &str, error: &sftp::Error) -> Failure {
    Failure::new(
        Step::Upload,
        format!(
            "the {} dropped during the upload ({doing}: {}); deploy again (`monitor-deploy --failed`), and if it keeps happening check the host's sshd log (`journalctl -u ssh`) and what lies between (firewall, VPN)",
            if gone {
                "connection to the host"
            } else {
                "SFTP session with the host (its sftp-server ended)"
            },
            format!("{error:#}").trim_end_matches('.')
        ),
    )
}

/// The directories from below `home` down to `dir`, in the order they must be created
/// (`~/.cache`, `~/.cache/monitor-agent`, `~/.cache/monitor-agent/<version>`).
fn parents(home: &str, dir: &str) -> Vec<String> {
    let home = home.trim_end_matches('/');
    let mut made = home.to_owned();
    dir[home.len()..]
        .split('/')
        .filter(|part| !part.is_empty())
        .map(|part| {
            made = format!("{made}/{part}");
            made.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn directories_below_the_home_are_made_in_order() {
        assert_eq!(
            super::parents("/home/u/", "/home/u/.cache/monitor-agent/0.1.0"),
            [
                "/home/u/.cache",
                "/home/u/.cache/monitor-agent",
                "/home/u/.cache/monitor-agent/0.1.0"
            ]
        );
    }
}
