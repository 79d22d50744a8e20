//! Where a webhook may be sent: `http` or `https` URLs whose host is a public address, unless
//! `DOJO_WEBHOOK_ALLOW_PRIVATE` is set (tests, on-premises receivers).
//!
//! A user chooses the URL and the server makes the request from inside our network, so without
//! these checks an endpoint could read cloud metadata (169.254.169.254) or an admin page on
//! 10.0.0.5 and show the answer in the delivery log. The checks run at registration (a clear
//! refusal) and again at every delivery, because a name's DNS answer can change afterwards:
//! the delivery client resolves names with [`PublicResolver`], which drops non-public
//! addresses, and connects to what it returned (no second lookup that DNS rebinding could
//! answer differently); IP literals never reach a resolver, so [`check`] refuses them before the
//! request; redirects are never followed; no proxy is used. What counts as public is the
//! executor's rule for provider downloads ([`dojo_executor::is_public_address`]).

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the URL is not valid: {0}")]
    Invalid(#[from] url::ParseError),
    #[error("webhook URLs must use http or https")]
    Scheme,
    #[error("webhook URLs may not carry a user name or password")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL points to a private or reserved address ({0}); webhooks reach public addresses only")]
    Private(String),
    #[error("the host {0:?} does not resolve")]
    Unresolved(String),
}

/// Parses and checks a webhook URL's shape and, when private targets are refused, an IP
/// literal host. Names are resolved by [`check_resolves`] (registration) and [`PublicResolver`]
/// (delivery).
pub fn check(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    let url = Url::parse(url)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(TargetError::NoHost)?;
    if !allow_private
        && let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
        && !dojo_executor::is_public_address(ip)
    {
        return Err(TargetError::Private(ip.to_string()));
    }
    Ok(url)
}

/// At registration: the name must resolve, and (unless allowed) to at least one public address.
pub async fn check_resolves(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    let Some(host) = url.host_str() else { return Err(TargetError::NoHost) };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup =
        tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((host, port)));
    let found: Vec<SocketAddr> = match lookup.await {
        Ok(Ok(found)) => found.collect(),
        _ => return Err(TargetError::Unresolved(host.to_owned())),
    };
    if found.is_empty() {
        return Err(TargetError::Unresolved(host.to_owned()));
    }
    if !allow_private && !found.iter().any(|addr| dojo_executor::is_public_address(addr.ip())) {
        return Err(TargetError::Private(host.to_owned()));
    }
    Ok(())
}

/// Resolves names with the system resolver and keeps only public addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> =
                found.filter(|addr| dojo_executor::is_public_address(addr.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(TargetError::Private(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The delivery client: no redirects, no proxy, a timeout on every request, and public
/// addresses only unless allowed.
pub fn client(timeout: std::time::Duration, allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("Dojo-Webhooks/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout);
    let builder = if allow_private { builder } else { builder.dns_resolver(PublicResolver) };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_to_public_literals_pass_unless_private_targets_are_allowed() {
        assert!(check("https://hooks.example.com/x", false).is_ok());
        assert!(check("http://8.8.8.8/x", false).is_ok());
        for refused in
            ["http://127.0.0.1:9/x", "http://[::1]/x", "http://169.254.169.254/", "http://10.1.2.3/"]
        {
            assert!(matches!(check(refused, false), Err(TargetError::Private(_))), "{refused}");
            assert!(check(refused, true).is_ok(), "{refused} allowed when private targets are");
        }
        assert!(
            matches!(check("http://2130706433/", false), Err(TargetError::Private(_))),
            "127.0.0.1 as a number"
        );
        assert!(matches!(check("ftp://example.com/", true), Err(TargetError::Scheme)));
        assert!(matches!(check("file:///etc/passwd", true), Err(TargetError::Scheme)));
        assert!(matches!(check("https://user:pw@example.com/", true), Err(TargetError::Credentials)));
        assert!(check("not a url", true).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_registration() {
        let url = check("http://localhost:9/x", false).unwrap();
        assert!(matches!(check_resolves(&url, false).await, Err(TargetError::Private(_))));
        assert!(check_resolves(&url, true).await.is_ok());
    }
}
