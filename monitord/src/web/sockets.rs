//! The two listening sockets, ingest and web: from systemd by name when socket-activated
//! (`monitord.socket` has `FileDescriptorName=ingest`, `monitord-web.socket`
//! `FileDescriptorName=web`), else bound from config.xml.
//!
//! `listenfd` takes the fds (`LISTEN_FDS`, `LISTEN_PID`) but knows no names, so
//! `LISTEN_FDNAMES` is read here: systemd lists one name per fd, colon-separated, in fd order.
//! Backwards compatible: a single fd not named `web` is ingest (an older `monitord.socket`
//! without a name passes `monitord.socket`, a hand-made one `unknown`). A name that is neither
//! is refused rather than guessed.

use std::net::TcpListener;

use anyhow::Context as _;
use monitor_core::config::Config;

/// Which fd index (0-based, fd 3 + index) serves what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Assignment {
    pub ingest: Option<usize>,
    pub web: Option<usize>,
}

/// Maps the `count` fds systemd passed to their roles by `names` (`LISTEN_FDNAMES`).
pub fn assign(count: usize, names: Option<&str>) -> Result<Assignment, String> {
    let names: Vec<&str> = names.map(|n| n.split(':').collect()).unwrap_or_default();
    if count == 0 {
        return Ok(Assignment::default());
    }
    if count == 1 && names.first() != Some(&"web") {
        return Ok(Assignment {
            ingest: Some(0),
            web: None,
        });
    }
    if names.len() != count {
        return Err(format!(
            "systemd passed {count} sockets but LISTEN_FDNAMES names {}: give each socket unit \
             FileDescriptorName=ingest or FileDescriptorName=web",
            names.len()
        ));
    }
    let mut out = Assignment::default();
    for (i, name) in names.iter().enumerate() {
        let slot = match *name {
            "ingest" => &mut out.ingest,
            "web" => &mut out.web,
            other => {
                return Err(format!(
                    "systemd passed a socket named {other:?} (fd {}): expected \
                     FileDescriptorName=ingest or FileDescriptorName=web in its socket unit",
                    3 + i
                ));
            }
        };
        if slot.is_some() {
            return Err(format!(
                "systemd passed two sockets named {name:?}: one socket unit per name"
            ));
        }
        *slot = Some(i);
    }
    Ok(out)
}

/// The sockets monitord serves on; `web` is `None` when `<web enabled="no">`.
#[derive(Debug)]
pub struct Sockets {
    pub ingest: TcpListener,
    pub web: Option<TcpListener>,
}

/// Takes the sockets systemd passed, binding what is missing from config.xml.
pub fn take(config: &Config) -> anyhow::Result<Sockets> {
    let names = std::env::var("LISTEN_FDNAMES").ok();
    let mut fds = listenfd::ListenFd::from_env();
    let roles = assign(fds.len(), names.as_deref()).map_err(anyhow::Error::msg)?;
    if fds.len() > 0 {
        let passed: Vec<String> = [("ingest", roles.ingest), ("web", roles.web)]
            .into_iter()
            .filter_map(|(role, i)| i.map(|i| format!("{role} (fd {})", 3 + i)))
            .collect();
        tracing::info!("sockets from systemd: {}", passed.join(", "));
    }
    let mut take = |index: Option<usize>, role: &str| -> anyhow::Result<Option<TcpListener>> {
        let Some(i) = index else { return Ok(None) };
        fds.take_tcp_listener(i).with_context(|| {
            format!(
                "the {role} socket systemd passed (fd {}) is not a TCP listening socket",
                3 + i
            )
        })
    };
    let ingest = take(roles.ingest, "ingest")?;
    let web = take(roles.web, "web")?;
    let ingest = match ingest {
        Some(l) => l,
        None => {
            let listen = &config.server.listen;
            TcpListener::bind(listen).with_context(|| {
                format!("cannot listen on {listen} (<server listen> in config.xml): is another monitord running?")
            })?
        }
    };
    if !config.web.enabled {
        if web.is_some() {
            tracing::warn!(
                "systemd passed a web socket but <web enabled=\"no\">: not serving it \
                 (systemctl disable --now monitord-web.socket)"
            );
        }
        return Ok(Sockets { ingest, web: None });
    }
    let web = match web {
        Some(l) => Some(l),
        None => bind_web(config),
    };
    Ok(Sockets { ingest, web })
}

/// Binds `<web listen>`. A failure is logged, not fatal: ingest and alerts matter more than the
/// read API, so monitord then serves without its web listener.
fn bind_web(config: &Config) -> Option<TcpListener> {
    let listen = &config.web.listen;
    let result = if listen == &config.server.listen && !listen.ends_with(":0") {
        Err(format!(
            "<web listen> and <server listen> are both {listen}: give them different ports"
        ))
    } else {
        TcpListener::bind(listen).map_err(|e| {
            format!(
                "cannot listen on {listen} (<web listen> in config.xml, default \
                 127.0.0.1:8751): {e}; is another monitord running?"
            )
        })
    };
    match result {
        Ok(l) => Some(l),
        Err(why) => {
            tracing::error!(
                "{why}; serving ingest without the web listener (no /api/v1, no /metrics) \
                 until this is fixed and monitord restarted; <web enabled=\"no\"> silences this"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(count: usize, names: Option<&str>) -> (Option<usize>, Option<usize>) {
        let a = assign(count, names).unwrap();
        (a.ingest, a.web)
    }

    #[test]
    fn sockets_are_taken_by_name_in_any_order() {
        assert_eq!(roles(2, Some("ingest:web")), (Some(0), Some(1)));
        assert_eq!(roles(2, Some("web:ingest")), (Some(1), Some(0)));
        assert_eq!(roles(1, Some("web")), (None, Some(0)));
        assert_eq!(roles(1, Some("ingest")), (Some(0), None));
        assert_eq!(roles(0, None), (None, None));
    }

    #[test]
    fn one_unnamed_socket_is_ingest_as_before() {
        assert_eq!(roles(1, None), (Some(0), None));
        assert_eq!(roles(1, Some("monitord.socket")), (Some(0), None));
        assert_eq!(roles(1, Some("unknown")), (Some(0), None));
    }

    #[test]
    fn unknown_duplicate_or_missing_names_are_refused() {
        assert!(assign(2, None).unwrap_err().contains("FileDescriptorName"));
        assert!(assign(2, Some("ingest:x")).unwrap_err().contains("\"x\""));
        assert!(
            assign(2, Some("web:web"))
                .unwrap_err()
                .contains("two sockets")
        );
        assert!(assign(3, Some("ingest:web")).is_err());
    }
}
