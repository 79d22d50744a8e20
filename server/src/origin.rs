//! Which browser origins may drive this server.
//!
//! In dev mode (no JWT key) every caller is an anonymous admin, so any web page a developer
//! visits could otherwise edit local rooms: a cross-origin `fetch` or WebSocket needs no token.
//! There, requests that carry an `Origin` header are accepted only from local origins
//! (`http(s)://localhost|127.0.0.1|[::1]`, any port), from those `DOJO_CORS_ORIGINS` lists
//! instead when it is set (`*`: any), and from the server's own origin when the browser
//! reached it by IP address (a LAN address; a DNS name could be rebound to this server by an
//! attacker's page). Requests without `Origin` (curl, SDKs, the load generator) are not
//! browsers' and pass. Outside dev mode tokens decide, and only the CORS headers use the list.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone)]
pub struct OriginPolicy {
    dev: bool,
    any: bool,
    /// `DOJO_CORS_ORIGINS`, lowercased, without trailing slashes.
    listed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(cors_origins: &[String], dev: bool) -> Self {
        let listed: Vec<String> = cors_origins
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|origin| !origin.is_empty() && origin != "*")
            .collect();
        Self { dev, any: cors_origins.iter().any(|origin| origin.trim() == "*"), listed }
    }

    /// Whether a browser page at `origin` may call the API (the CORS answer), in dev mode.
    pub fn allows(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.listed.is_empty() { is_local_origin(&origin) } else { self.listed.contains(&origin) }
    }

    /// Whether a request carrying `origin`, sent to `host` (its `Host` header), is served.
    pub fn accepts_request(&self, origin: &str, host: Option<&str>) -> bool {
        !self.dev || self.allows(origin) || is_own_ip_origin(origin, host)
    }
}

/// Middleware: refuses (403) a dev-mode request from a foreign origin before any handler, or
/// WebSocket upgrade, runs.
pub async fn refuse_foreign_origins(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|host| host.to_str().ok());
        let accepted = origin.to_str().is_ok_and(|origin| policy.accepts_request(origin, host));
        if !accepted {
            tracing::info!(origin = ?origin, "refused a dev-mode request from a foreign origin");
            let message = "this origin may not use a dev-mode server; list it in DOJO_CORS_ORIGINS";
            return crate::error_body::json_error(crate::error_code::ErrorCode::Forbidden, message);
        }
    }
    next.run(request).await
}

/// `http(s)://localhost`, `127.0.0.1` or `[::1]`, with any port.
fn is_local_origin(origin: &str) -> bool {
    split_origin(origin).is_some_and(|(_, host)| {
        let name = host_name(host);
        name == "localhost" || name == "127.0.0.1" || name == "[::1]"
    })
}

/// The page was served by this server itself, reached by an IP address (which, unlike a DNS
/// name, no other site can point at us).
fn is_own_ip_origin(origin: &str, host: Option<&str>) -> bool {
    let (Some((_, origin_host)), Some(host)) = (split_origin(origin), host) else { return false };
    let name = host_name(origin_host);
    let is_ip = name.parse::<std::net::Ipv4Addr>().is_ok()
        || name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
    is_ip && origin_host.eq_ignore_ascii_case(host)
}

/// `scheme://host[:port]` → (scheme, `host[:port]`), for http and https origins only.
fn split_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme_ok = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    (scheme_ok && !rest.is_empty() && !rest.contains(['/', '@', '?', '#'])).then_some((scheme, rest))
}

/// `host[:port]` → host (an IPv6 literal keeps its brackets); `None`-safe on odd input.
fn host_name(authority: &str) -> &str {
    if let Some(end) = authority.find(']').filter(|_| authority.starts_with('[')) {
        let (name, port) = authority.split_at(end + 1);
        return if port.is_empty() || valid_port(port) { name } else { "" };
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if valid_port(&format!(":{port}")) => name,
        Some(_) => "",
        None => authority,
    }
}

fn valid_port(port: &str) -> bool {
    port.strip_prefix(':').is_some_and(|digits| {
        !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(origins: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&origins.iter().map(|o| o.to_string()).collect::<Vec<_>>(), true)
    }

    #[test]
    fn dev_mode_allows_local_origins_only() {
        let policy = dev(&[]);
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:8787",
            "http://[::1]:3000",
            "http://localhost",
            "https://localhost:1",
        ] {
            assert!(policy.allows(origin), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example:80",
            "http://evil.example:8787",
            "null",
            "file://",
            "http://localhost:80x",
            "http://user@localhost",
            "ws://localhost:1",
        ] {
            assert!(!policy.allows(origin), "{origin}");
            assert!(!policy.accepts_request(origin, Some("127.0.0.1:8787")), "{origin}");
        }
    }

    #[test]
    fn a_list_replaces_the_local_default_and_star_allows_any() {
        let policy = dev(&["https://editor.example/"]);
        assert!(policy.allows("https://editor.example"));
        assert!(!policy.allows("http://localhost:5173"));
        assert!(dev(&["*"]).allows("https://anything.example"));
    }

    #[test]
    fn the_servers_own_page_reached_by_ip_is_accepted_but_not_by_a_dns_name() {
        let policy = dev(&[]);
        assert!(policy.accepts_request("http://192.168.1.5:8787", Some("192.168.1.5:8787")));
        assert!(policy.accepts_request("http://[fe80::1]:8787", Some("[fe80::1]:8787")));
        // DNS rebinding: the attacker's name, pointed at us, is "same origin" too.
        assert!(!policy.accepts_request("http://rebind.evil.example:8787", Some("rebind.evil.example:8787")));
        assert!(!policy.accepts_request("http://192.168.1.5:8787", Some("192.168.1.6:8787")));
    }

    #[test]
    fn outside_dev_mode_every_request_is_served() {
        let policy = OriginPolicy::new(&[], false);
        assert!(policy.accepts_request("https://evil.example", None));
    }
}
