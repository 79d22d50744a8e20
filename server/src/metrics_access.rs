//! Who may read `/metrics`: with `DOJO_METRICS_TOKEN` set, whoever presents it as a bearer
//! token; otherwise loopback peers only (a scraper on the same host, or through an SSH tunnel).
//!
//! Behind a reverse proxy on the same host every request comes from loopback: set the token,
//! or do not route `/metrics` through the proxy.

use std::net::IpAddr;

use axum::response::{IntoResponse, Response};

use crate::config::MetricsToken;
use crate::error_code::ErrorCode;

/// Why a caller may not read the metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsRefused {
    /// A token is configured and the caller did not present it (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// No token is configured and the caller is not on loopback (403).
    #[error("{0}")]
    Forbidden(&'static str),
}

impl IntoResponse for MetricsRefused {
    fn into_response(self) -> Response {
        let code = match self {
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
        };
        crate::error_body::json_error(code, self.to_string())
    }
}

/// `Ok` when the caller may read the metrics; otherwise the error to answer with.
pub fn check(
    peer: Option<IpAddr>,
    configured: Option<&MetricsToken>,
    presented: Option<&str>,
) -> Result<(), MetricsRefused> {
    match configured {
        Some(MetricsToken(token)) => match presented {
            Some(presented) if same_secret(presented.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(MetricsRefused::Unauthorized("invalid metrics token")),
            None => {
                Err(MetricsRefused::Unauthorized("metrics need the bearer token DOJO_METRICS_TOKEN sets"))
            }
        },
        None if peer.is_some_and(|ip| ip.to_canonical().is_loopback()) => Ok(()),
        None => Err(MetricsRefused::Forbidden(
            "metrics are served to loopback peers only (or set DOJO_METRICS_TOKEN)",
        )),
    }
}

/// Compares without stopping at the first difference, so response times do not reveal how
/// much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn without_a_token_only_loopback_peers_read_metrics() {
        assert!(check(ip("127.0.0.1"), None, None).is_ok());
        assert!(check(ip("::1"), None, None).is_ok());
        assert!(check(ip("::ffff:127.0.0.1"), None, None).is_ok());
        assert!(matches!(check(ip("10.1.2.3"), None, None), Err(MetricsRefused::Forbidden(_))));
        assert!(matches!(check(None, None, None), Err(MetricsRefused::Forbidden(_))));
    }

    #[test]
    fn with_a_token_everyone_needs_it_loopback_included() {
        let token = MetricsToken("s3cret".into());
        assert!(check(ip("10.1.2.3"), Some(&token), Some("s3cret")).is_ok());
        assert!(matches!(check(ip("127.0.0.1"), Some(&token), None), Err(MetricsRefused::Unauthorized(_))));
        assert!(matches!(
            check(ip("127.0.0.1"), Some(&token), Some("s3cre")),
            Err(MetricsRefused::Unauthorized(_))
        ));
        assert!(matches!(
            check(ip("127.0.0.1"), Some(&token), Some("s3creT")),
            Err(MetricsRefused::Unauthorized(_))
        ));
    }
}
