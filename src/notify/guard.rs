//! The SSRF guard: a target whose host resolves to a loopback, private,
//! link-local, shared, multicast or cloud-metadata address is refused unless
//! `[notify] allow_hosts` names it. Checked at delivery time on the
//! addresses the connection will use: [`Guard`] is the HTTP client's DNS
//! resolver (so a name cannot resolve to a public address at check time and
//! a private one at connect time), and literal addresses are checked before
//! sending ([`Guard::check_literal`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A delivery refused by the guard.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused: {host} resolves to {addr}, a loopback/private/link-local address not in [notify] allow_hosts"
)]
pub struct Refused {
    host: String,
    addr: IpAddr,
}

/// Resolves target hosts, refusing internal addresses of hosts not allowed.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Lower-case host names or IP literals allowed anyway.
    allow: Vec<String>,
}

impl Guard {
    /// A guard allowing `allow_hosts` (lower-case).
    pub fn new(allow_hosts: &[String]) -> Guard {
        Guard {
            allow: allow_hosts.to_vec(),
        }
    }

    fn allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allow.iter().any(|a| a.eq_ignore_ascii_case(host))
    }

    /// Refuses a literal address host that is internal and not allowed;
    /// names pass (the resolver checks them).
    ///
    /// # Errors
    /// [`Refused`].
    pub fn check_literal(&self, host: &str) -> Result<(), Refused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(addr) if is_internal(addr) && !self.allowed(host) => Err(Refused {
                host: host.to_owned(),
                addr,
            }),
            _ => Ok(()),
        }
    }

    /// Resolves `host` and refuses it when any of its addresses is
    /// internal, unless the host is allowed.
    ///
    /// # Errors
    /// [`Refused`], or the resolver's failure.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        if !self.allowed(host)
            && let Some(bad) = addrs.iter().find(|a| is_internal(a.ip()))
        {
            return Err(Box::new(Refused {
                host: host.to_owned(),
                addr: bad.ip(),
            }));
        }
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addrs = Guard::resolve(&guard, name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an address is internal: loopback, private, link-local (which
/// holds the cloud metadata service, 169.254.169.254), shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, unique-local IPv6, or
/// an IPv4-mapped IPv6 form of one of them.
pub fn is_internal(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn internal_v4(a: Ipv4Addr) -> bool {
    let [o0, o1, ..] = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o0 == 0
        || (o0 == 100 && (64..128).contains(&o1))
}

fn internal_v6(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognized() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(a.parse().expect("address")), "{a}");
        }
        for a in ["93.184.216.34", "2606:2800:220:1::1", "1.1.1.1"] {
            assert!(!is_internal(a.parse().expect("address")), "{a}");
        }
    }

    #[test]
    fn literal_hosts_are_refused_unless_allowed() {
        let guard = Guard::new(&["127.0.0.1".to_owned()]);
        assert!(guard.check_literal("127.0.0.1").is_ok());
        assert!(guard.check_literal("10.0.0.1").is_err());
        assert!(guard.check_literal("[::1]").is_err());
        assert!(guard.check_literal("hooks.example.com").is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_unless_allowed() {
        let err = Guard::new(&[])
            .resolve("localhost", 80)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("refused"), "{err}");
        let ok = Guard::new(&["localhost".to_owned()])
            .resolve("localhost", 80)
            .await;
        assert!(ok.is_ok());
    }
}
