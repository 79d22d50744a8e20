//! The client's address when Dojo runs behind a load balancer: the TCP peer is then the proxy,
//! and per-address limits (the public rate, unauthenticated sockets per address) and the
//! loopback rule of `/metrics` would treat every client as the proxy. Only proxies the operator
//! lists are believed about `X-Forwarded-For`; from anyone else the header is ignored, since a
//! client can write whatever it likes there.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Entries of `X-Forwarded-For` looked at, at most: a chain of proxies is short, and the header
/// is otherwise only bounded by the request head's size.
const MAX_HOPS: usize = 16;

/// Parses one `--trusted-proxies` entry: an address (`10.0.0.7`) or a range (`10.0.0.0/8`).
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR range"))
}

/// The address requests on a connection from `peer` are attributed to: `peer` itself unless it
/// is a trusted proxy; then, walking `X-Forwarded-For` from the right (the entry the nearest
/// proxy added), the first address that is not a trusted proxy. An entry that is not an address
/// stops the walk at the last proxy that vouched for it.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = canonical(peer.ip());
    if !is_trusted(client) {
        return peer;
    }
    // Several header lines are one comma-separated list, in order.
    let lines: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
    let hops = lines.iter().rev().flat_map(|line| line.rsplit(',')).take(MAX_HOPS);
    for hop in hops {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    SocketAddr::new(client, peer.port())
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or `203.0.113.7:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip())).map(canonical)
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:192.0.2.1`) as the IPv4 address, so that
/// ranges and per-address limits see one address, whichever way it arrived.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        headers
    }

    fn proxies(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|entry| parse_proxy(entry).unwrap()).collect()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn ip(addr: SocketAddr) -> String {
        addr.ip().to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let claimed = headers(&["198.51.100.9"]);
        assert_eq!(ip(client_addr(peer("203.0.113.5"), &claimed, &[])), "203.0.113.5");
        assert_eq!(ip(client_addr(peer("203.0.113.5"), &claimed, &proxies(&["10.0.0.0/8"]))), "203.0.113.5");
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        let forwarded = headers(&["198.51.100.9"]);
        assert_eq!(ip(client_addr(peer("10.1.2.3"), &forwarded, &trusted)), "198.51.100.9");
        assert_eq!(client_addr(peer("127.0.0.1"), &forwarded, &trusted).port(), 40000);
        // No header: the proxy's own request (a health check) is the proxy's.
        assert_eq!(ip(client_addr(peer("10.1.2.3"), &HeaderMap::new(), &trusted)), "10.1.2.3");
    }

    #[test]
    fn what_a_client_wrote_before_the_proxies_is_not_believed() {
        // The client sent "X-Forwarded-For: 127.0.0.1" to look local; the edge proxy appended the
        // real address, an inner proxy appended the edge's.
        let trusted = proxies(&["10.0.0.0/8"]);
        let forwarded = headers(&["127.0.0.1, 198.51.100.9", "10.0.0.2"]);
        assert_eq!(ip(client_addr(peer("10.0.0.1"), &forwarded, &trusted)), "198.51.100.9");
    }

    #[test]
    fn garbage_stops_at_the_last_proxy_that_vouched() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(ip(client_addr(peer("10.0.0.1"), &headers(&["not-an-ip"]), &trusted)), "10.0.0.1");
        assert_eq!(ip(client_addr(peer("10.0.0.1"), &headers(&["unknown, 10.0.0.2"]), &trusted)), "10.0.0.2");
        let many = vec!["10.0.0.3"; 1000].join(",");
        assert_eq!(ip(client_addr(peer("10.0.0.1"), &headers(&[&many]), &trusted)), "10.0.0.3");
    }

    #[test]
    fn addresses_with_ports_and_mapped_ipv6_are_understood() {
        let trusted = proxies(&["::1", "10.0.0.0/8"]);
        assert_eq!(ip(client_addr(peer("::1"), &headers(&["[2001:db8::7]:443"]), &trusted)), "2001:db8::7");
        assert_eq!(
            ip(client_addr(peer("::ffff:10.0.0.1"), &headers(&["198.51.100.9:5000"]), &trusted)),
            "198.51.100.9"
        );
    }

    #[test]
    fn proxy_entries_parse_as_addresses_or_ranges() {
        assert!(parse_proxy("10.0.0.7").is_ok());
        assert!(parse_proxy(" 10.0.0.0/8 ").is_ok());
        assert!(parse_proxy("fd00::/8").is_ok());
        assert!(parse_proxy("haproxy").is_err());
        assert!(parse_proxy("10.0.0.0/33").is_err());
    }
}
