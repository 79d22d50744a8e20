//! Result downloads reach only public addresses.
//!
//! A provider's answer names the URL its result is fetched from, and the fetch runs inside our
//! network: without a check, a hostile or compromised provider account (or a self-hosted model
//! server) could make the worker read cloud metadata (169.254.169.254), a database admin page on
//! 10.0.0.5, or the server itself on 127.0.0.1, and store the answer as the node's output.
//!
//! So the download client connects only to addresses [`is_public`] accepts:
//! - names are resolved by [`PublicResolver`], which drops every non-public address, and the
//!   connection goes to the addresses it returned (no second lookup an attacker's DNS could
//!   answer differently: no rebinding gap);
//! - IP literals never reach a resolver, so [`check_url`] refuses them before the request and
//!   on every redirect ([`redirect_policy`]);
//! - no proxy is used (the proxy would resolve the name instead of us).
//!
//! Operators running model servers on their own network opt out with
//! `DOJO_ALLOW_PRIVATE_DOWNLOADS` ([`super::ProviderConfig::allow_private_downloads`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Redirects followed per download (reqwest's default is 10).
const MAX_REDIRECTS: usize = 5;

/// Why a download was refused: its host is (or resolves only to) a non-public address.
#[derive(Debug, thiserror::Error)]
#[error(
    "the result URL points to a private or reserved address ({host}); downloads reach public addresses only"
)]
pub(crate) struct PrivateAddress {
    pub host: String,
}

/// Whether `ip` is an ordinary public unicast address. Everything a network treats specially
/// is refused: loopback, private (RFC 1918), CGNAT, link-local (cloud metadata lives there),
/// unique-local, unspecified, multicast, broadcast, documentation and benchmarking ranges, and
/// IPv6 forms that embed an IPv4 address are judged by that address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0                                  // "this network", 0.0.0.0
        || a == 10                                        // private
        || a == 127                                       // loopback
        || (a == 100 && (64..128).contains(&b))           // CGNAT 100.64/10
        || (a == 169 && b == 254)                         // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))            // private 172.16/12
        || (a == 192 && b == 168)                         // private
        || (a == 192 && b == 0 && c == 0)                 // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                 // TEST-NET-1
        || (a == 198 && (b == 18 || b == 19))             // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100)              // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)               // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32));
    }
    // 6to4 (2002::/16) carries one in bits 16..48.
    if segments[0] == 0x2002 {
        let v4 = (u32::from(segments[1]) << 16) | u32::from(segments[2]);
        return is_public_v4(Ipv4Addr::from(v4));
    }
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || segments[..6] == [0, 0, 0, 0, 0, 0]            // IPv4-compatible (deprecated), ::/96
        || (segments[0] & 0xfe00) == 0xfc00               // unique-local fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80               // link-local fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0               // site-local (deprecated) fec0::/10
        || (segments[0] & 0xff00) == 0xff00               // multicast ff00::/8
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation 2001:db8::/32
        || segments[..4] == [0x0100, 0, 0, 0]; // discard-only 100::/64
    !refused
}

/// Refuses a URL whose host is a non-public IP literal (names are checked when resolved).
pub(crate) fn check_url(url: &Url) -> Result<(), PrivateAddress> {
    let Some(host) = url.host_str() else { return Err(PrivateAddress { host: String::new() }) };
    // The URL parser has already normalised every spelling of an address (`2130706433`,
    // `0x7f.1`) to dotted decimal, and IPv6 to its bracketed form.
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Err(PrivateAddress { host: ip.to_string() }),
        _ => Ok(()),
    }
}

/// Resolves names with the system resolver and keeps only public addresses; a name with none
/// left fails with [`PrivateAddress`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|addr| is_public(addr.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(PrivateAddress { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Follows at most [`MAX_REDIRECTS`] redirects, each to http(s) and not to a non-public IP
/// literal (a name is checked by the resolver when the redirect is followed).
pub(crate) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        if !matches!(attempt.url().scheme(), "http" | "https") {
            return attempt.error("a redirect to a scheme other than http(s)");
        }
        match check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// The client result downloads go through: public addresses only (filtering resolver, checked
/// redirects, no proxy) unless the configuration allows private ones.
pub(crate) fn download_client(config: &super::ProviderConfig) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("dojo-executor/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.request_timeout.min(std::time::Duration::from_secs(15)));
    let builder = if config.allow_private_downloads {
        builder
    } else {
        builder.dns_resolver(PublicResolver).redirect(redirect_policy()).no_proxy()
    };
    builder.build()
}

/// Whether a failed request was refused by these checks (it is not worth retrying).
pub(crate) fn refused_address(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<PrivateAddress>() {
            return Some(refused.to_string());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_and_reserved_ipv4_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.10",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.0.0.8",
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn ordinary_ipv4_addresses_are_public_including_the_edges_of_private_ranges() {
        for ip in ["8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1"] {
            assert!(public(ip), "{ip} is public");
        }
        assert!(public("169.253.1.1") && public("192.169.0.1") && public("11.0.0.1"));
    }

    #[test]
    fn ipv6_loopback_local_multicast_and_embedded_private_ipv4_are_refused() {
        for ip in [
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
            "::127.0.0.1",
            "100::1",
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn ordinary_ipv6_addresses_are_public() {
        for ip in ["2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(public(ip), "{ip} is public");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_and_names_are_left_to_the_resolver() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(check_url(&url("http://127.0.0.1:8080/x.png")).is_err());
        assert!(check_url(&url("http://[::1]/x.png")).is_err());
        assert!(check_url(&url("http://169.254.169.254/latest/meta-data/")).is_err());
        // The URL parser normalises other spellings of an address.
        assert!(check_url(&url("http://2130706433/x.png")).is_err(), "127.0.0.1 as a number");
        assert!(check_url(&url("http://0x7f.1/x.png")).is_err(), "127.0.0.1 in hex");
        assert!(check_url(&url("https://8.8.8.8/x.png")).is_ok());
        assert!(check_url(&url("https://cdn.example.com/x.png")).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_loopback_answers() {
        let error = match PublicResolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error,
        };
        assert!(refused_address(error.as_ref()).is_some(), "{error}");
    }
}
