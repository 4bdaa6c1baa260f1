//! Where the agent sends its samples: `<server url>` from config.xml (or, without one, the
//! address the host sees our SSH connection come from, at port 8750) turned into the URL the
//! agent PUTs to and its `Host` header. The agent never resolves host names (DESIGN.md), so a
//! name in `<server url>` is resolved on the host by the probe (`getent ahosts`) and kept for
//! the header. Not here: running the probe ([`crate::remote`]).

use std::net::IpAddr;

use monitor_core::config::DEFAULT_PORT;
use url::{Host, Url};

use crate::outcome::{Failure, Step};

/// `<server url>`, split into what the agent's URL is made of. config.xml's validation has
/// made sure it is `http://HOST[:PORT]`.
#[derive(Debug, Clone, Default)]
pub struct ServerUrl {
    host: Option<Host>,
    port: Option<u16>,
}

impl ServerUrl {
    pub fn parse(url: Option<&str>) -> ServerUrl {
        match url.and_then(|u| Url::parse(u).ok()) {
            Some(url) => ServerUrl {
                host: url.host().map(|h| h.to_owned()),
                port: url.port(),
            },
            None => ServerUrl::default(),
        }
    }

    /// The host name the probe must resolve on the host; `None` for an address, or when
    /// config.xml has no `<server url>`.
    pub fn name_to_resolve(&self) -> Option<&str> {
        match &self.host {
            Some(Host::Domain(name)) => Some(name),
            _ => None,
        }
    }

    /// The URL the agent PUTs to, and the `Host` header when `<server url>` named a host:
    /// `resolved` are the addresses the host found for that name, `ssh_client` our address as
    /// the host sees it (the first field of its `$SSH_CONNECTION`).
    pub fn for_agent(
        &self,
        resolved: &[String],
        ssh_client: Option<&str>,
    ) -> Result<(String, Option<String>), Failure> {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        match &self.host {
            Some(Host::Domain(name)) => {
                // Prefer IPv4: the address a name is usually meant by on a LAN.
                let addr = resolved
                    .iter()
                    .find(|a| !a.contains(':'))
                    .or(resolved.first())
                    .and_then(|a| url_host(a))
                    .ok_or_else(|| {
                        Failure::new(
                            Step::Resolve,
                            format!(
                                "the host cannot resolve monitord's name `{name}` (getent ahosts found nothing): fix DNS or /etc/hosts there, or put an address in <server url>"
                            ),
                        )
                    })?;
                Ok((
                    format!("http://{addr}{port}"),
                    Some(format!("{name}{port}")),
                ))
            }
            Some(address) => Ok((format!("http://{address}{port}"), None)),
            None => {
                let addr = ssh_client.and_then(url_host).ok_or_else(|| {
                    Failure::new(
                        Step::Resolve,
                        "$SSH_CONNECTION is not set on the host, so the address of monitord is unknown: set <server url> in config.xml",
                    )
                })?;
                Ok((format!("http://{addr}:{DEFAULT_PORT}"), None))
            }
        }
    }
}

/// An address as a URL's host (`[…]` around IPv6); `None` when it is not an address.
fn url_host(addr: &str) -> Option<String> {
    Some(match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Host::<String>::Ipv4(v4).to_string(),
        IpAddr::V6(v6) => Host::<String>::Ipv6(v6).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_gets_an_address_and_the_name_goes_into_the_host_header() {
        let none: &[String] = &[];
        let by_name = ServerUrl::parse(Some("http://mon.example:8750"));
        assert_eq!(by_name.name_to_resolve(), Some("mon.example"));
        let resolved = ["fe80::1".to_owned(), "10.0.0.5".to_owned()];
        assert_eq!(
            by_name.for_agent(&resolved, None).unwrap(),
            (
                "http://10.0.0.5:8750".to_owned(),
                Some("mon.example:8750".to_owned())
            )
        );
        let v6_only = ["fe80::1".to_owned()];
        assert_eq!(
            by_name.for_agent(&v6_only, None).unwrap().0,
            "http://[fe80::1]:8750"
        );
        let unresolved = by_name.for_agent(none, None).unwrap_err();
        assert_eq!(unresolved.step, Step::Resolve);
        assert!(unresolved.message.contains("`mon.example`"));

        let by_v6 = ServerUrl::parse(Some("http://[::1]:9000"));
        assert_eq!(by_v6.name_to_resolve(), None);
        assert_eq!(
            by_v6.for_agent(none, None).unwrap(),
            ("http://[::1]:9000".to_owned(), None)
        );
        assert_eq!(
            ServerUrl::parse(Some("http://10.0.0.5"))
                .for_agent(none, None)
                .unwrap(),
            ("http://10.0.0.5".to_owned(), None)
        );

        let absent = ServerUrl::parse(None);
        assert_eq!(
            absent.for_agent(none, Some("fd00::7")).unwrap().0,
            "http://[fd00::7]:8750"
        );
        assert_eq!(
            absent.for_agent(none, None).unwrap_err().step,
            Step::Resolve
        );
    }
}
