//! The upload step: the agent binary over SFTP into `~/.cache/monitor-agent/<version>/` on the
//! host, to a temporary name, then renamed, so a running agent or a concurrent reader never
//! sees half a binary; its hash is recorded next to it for the next probe. Not here: deciding
//! whether to upload (the probe's answer, in [`crate::deploy`]).

use std::time::Duration;

use monitor_core::agent::{self, file};
use openssh_sftp_client::{Sftp, SftpOptions, metadata::Permissions};

use crate::agentbin::AgentBinary;
use crate::askpass;
use crate::outcome::{Failure, Step};
use crate::ssh::Connection;

/// Uploads `agent` under `home`, the absolute `$HOME` the probe reported: SFTP's start
/// directory need not be the home (`internal-sftp -d`), and the start script finds the agent
/// through `$HOME`. Sets 0700 before the rename.
pub async fn upload(
    conn: &Connection,
    agent: &AgentBinary,
    home: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let base = format!(
        "{}/{}",
        home.trim_end_matches('/'),
        agent::STATE_DIR_IN_HOME
    );
    let dir = format!("{base}/{}", agent.version);
    let tmp = format!("{dir}/.{}.{}.tmp", agent::BINARY, askpass::random_token());
    let target = format!("{dir}/{}", agent::BINARY);
    let work = async {
        let sftp = Sftp::from_clonable_session(conn.session.clone(), SftpOptions::default())
            .await
            .map_err(|e| {
                format!("{e:#}; check that sshd offers the SFTP subsystem (`Subsystem sftp` in sshd_config)")
            })?;
        let mut fs = sftp.fs();
        for part in parents(home, &dir) {
            // Already there is fine; a real problem shows in the write below.
            let _ = fs.create_dir(&part).await;
        }
        fs.write(&tmp, &agent.bytes)
            .await
            .map_err(|e| format!("writing {tmp}: {e:#}"))?;
        fs.set_permissions(&tmp, Permissions::from(0o700))
            .await
            .map_err(|e| format!("chmod 0700 {tmp}: {e:#}"))?;
        fs.rename(&tmp, &target)
            .await
            .map_err(|e| format!("renaming to {target}: {e:#}"))?;
        // Its hash, written after the binary so it is not older: the next probe reads it
        // instead of hashing the binary.
        let hash_tmp = format!("{tmp}.sha256");
        let hash_file = format!("{dir}/{}", file::BINARY_SHA256);
        fs.write(&hash_tmp, format!("{}\n", agent.sha256).as_bytes())
            .await
            .map_err(|e| format!("writing {hash_tmp}: {e:#}"))?;
        fs.rename(&hash_tmp, &hash_file)
            .await
            .map_err(|e| format!("renaming to {hash_file}: {e:#}"))?;
        drop(fs);
        sftp.close().await.map_err(|e| format!("{e:#}"))?;
        Ok::<(), String>(())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(Step::Upload, e)),
        Err(_) => Err(Failure::new(
            Step::Upload,
            format!(
                "the upload did not finish within {timeout:?}; check the link to the host, or raise --timeout"
            ),
        )),
    }
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
