//! A per-client-IP rate limit for the routes that take no token (catalog, OpenAPI, webhooks,
//! dev tokens, readiness), which the per-user limit cannot reach. `/healthz` is exempt: load
//! balancers poll it and it costs nothing.
//!
//! The address is the TCP peer's (`http_server` puts it in each request). Behind a reverse
//! proxy every client shares the proxy's address, so the limit then applies to all of them
//! together: rate-limit per client at the proxy instead, or raise `DOJO_PUBLIC_RATE`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::ReasonLabel;
use crate::state::AppState;

/// Refuses the request with 429 (and `Retry-After`) when its client IP is over its budget.
pub async fn limit_by_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let limiter = state.public_limiter();
    if let Err(not_until) = limiter.check_key(&client_key(peer)) {
        state.metrics().rate_limited.get_or_create(&ReasonLabel { reason: "public" }).inc();
        let retry_after_s = crate::rate::retry_after_secs(limiter, &not_until);
        return crate::error_body::too_many_requests(retry_after_s);
    }
    next.run(request).await
}

/// The bucket a client IP draws from: the address itself for IPv4, its /64 for IPv6 (one
/// host usually holds a whole /64, so single addresses would be free to rotate through).
pub fn client_key(peer: Option<IpAddr>) -> String {
    match peer.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => {
            let segments = ip.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", segments[0], segments[1], segments[2], segments[3])
        }
        // Only requests that did not come through the listener (tests driving the router).
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_ipv4_ones_do_not() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_ne!(client_key(Some(a)), client_key(Some(c)));
        assert_ne!(
            client_key(Some("10.0.0.1".parse().unwrap())),
            client_key(Some("10.0.0.2".parse().unwrap()))
        );
        // An IPv4 client on a dual-stack socket counts as itself.
        assert_eq!(client_key(Some("::ffff:10.0.0.1".parse().unwrap())), "10.0.0.1");
        assert_eq!(client_key(None), "unknown");
    }
}
