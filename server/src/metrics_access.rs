//! Who may read `/metrics`: with `DOJO_METRICS_TOKEN` set, whoever presents it as a bearer
//! token; otherwise loopback peers only (a scraper on the same host, or through an SSH tunnel).
//!
//! Behind a reverse proxy on the same host every request comes from loopback: set the token,
//! or do not route `/metrics` through the proxy.

use std::net::IpAddr;

use crate::api::ApiError;
use crate::config::MetricsToken;

/// `Ok` when the caller may read the metrics; otherwise the error to answer with.
pub fn check(
    peer: Option<IpAddr>,
    configured: Option<&MetricsToken>,
    presented: Option<&str>,
) -> Result<(), ApiError> {
    match configured {
        Some(MetricsToken(token)) => match presented {
            Some(presented) if same_secret(presented.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized("invalid metrics token".into())),
            None => {
                Err(ApiError::Unauthorized("metrics need the bearer token DOJO_METRICS_TOKEN sets".into()))
            }
        },
        None if peer.is_some_and(|ip| ip.to_canonical().is_loopback()) => Ok(()),
        None => Err(ApiError::Forbidden(
            "metrics are served to loopback peers only (or set DOJO_METRICS_TOKEN)".into(),
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
        assert!(matches!(check(ip("10.1.2.3"), None, None), Err(ApiError::Forbidden(_))));
        assert!(matches!(check(None, None, None), Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn with_a_token_everyone_needs_it_loopback_included() {
        let token = MetricsToken("s3cret".into());
        assert!(check(ip("10.1.2.3"), Some(&token), Some("s3cret")).is_ok());
        assert!(matches!(check(ip("127.0.0.1"), Some(&token), None), Err(ApiError::Unauthorized(_))));
        assert!(matches!(
            check(ip("127.0.0.1"), Some(&token), Some("s3cre")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            check(ip("127.0.0.1"), Some(&token), Some("s3creT")),
            Err(ApiError::Unauthorized(_))
        ));
    }
}
