//! The HTTP side every provider shares: one attempt with a timeout and a bounded body, retries with
//! exponential backoff and jitter (`backon`) that honour `Retry-After`, readable errors from each
//! provider's error bodies, bounded downloads, and the remote cancel sent when a job is abandoned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod cancel;
mod messages;

pub(crate) use cancel::RemoteCancel;
#[cfg(test)]
use messages::seconds_in_text;
pub(crate) use messages::{body_retry_after, error_message, header_retry_after, plain_text, truncate};

use super::public_address::{check_url, refused_address};
use super::{ApiKey, ProviderConfig, RetryPolicy};
use crate::catalog::ProviderName;
use crate::node::NodeError;
use crate::preview::{MAX_PREVIEW_IMAGE_BYTES, PREVIEW_DOWNLOAD_TIMEOUT};

/// Error and status bodies are small; anything bigger is not worth reading into a message.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// What a provider message may add to a node's error (it is shown on the canvas).
const MAX_MESSAGE_CHARS: usize = 400;

/// How one call to a provider failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallError {
    /// The provider answered with an error status.
    Status { status: u16, message: String, retry_after: Option<Duration>, retryable: bool },
    /// No (complete) answer within the request's timeout.
    Timeout(Duration),
    /// The connection failed (refused, reset, DNS, TLS…).
    Network(String),
    /// The answer was bigger than we accept.
    TooLarge { max: u64 },
    /// The answer was not what the provider documents.
    Invalid(String),
    /// We would not send it: the result URL points to a non-public address.
    Refused(String),
}

impl CallError {
    /// 429, 408, most 5xx, timeouts and connection failures are worth another attempt; other
    /// 4xx say the request itself is wrong and would fail the same way again.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            CallError::Status { retryable, .. } => *retryable,
            CallError::Timeout(_) | CallError::Network(_) => true,
            CallError::TooLarge { .. } | CallError::Invalid(_) | CallError::Refused(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { status, message, retry_after, .. } => {
                match (*status, message.is_empty()) {
                    (429, true) => write!(f, "rate limited (HTTP 429)")?,
                    (429, false) => write!(f, "rate limited: {message} (HTTP 429)")?,
                    (_, true) => write!(f, "HTTP {status}")?,
                    (_, false) => write!(f, "{message} (HTTP {status})")?,
                }
                if let Some(wait) = retry_after.filter(|_| *status == 429) {
                    write!(f, "; the provider asks to wait {} s", wait.as_secs_f64().ceil())?;
                }
                Ok(())
            }
            CallError::Timeout(limit) => write!(f, "no answer within {}", seconds(*limit)),
            CallError::Network(reason) => write!(f, "could not reach the provider: {reason}"),
            CallError::TooLarge { max } => write!(f, "the answer is larger than the {} limit", bytes(*max)),
            CallError::Invalid(reason) => write!(f, "unexpected answer: {reason}"),
            CallError::Refused(reason) => f.write_str(reason),
        }
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1024 * 1024 && n % (1024 * 1024) == 0 => format!("{} MiB", n / (1024 * 1024)),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KiB", n / 1024),
        n => format!("{n}-byte"),
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0} s") } else { format!("{s:.1} s") }
}

/// A call that failed for good: the last error and how many attempts were made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub error: CallError,
    pub attempts: usize,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

/// A complete answer with a 2xx status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::Invalid(format!("bad JSON: {e}")))
    }

    pub(crate) fn content_type(&self) -> Option<&str> {
        content_type(&self.headers)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) fn content_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or(value).trim())
}

/// One provider's HTTP client with its limits. Cheap to clone (the client is shared).
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    pub provider: ProviderName,
    retry: RetryPolicy,
    pub request_timeout: Duration,
    pub generation_timeout: Duration,
    pub download_timeout: Duration,
    pub max_download_bytes: u64,
    /// Fetches results: connects to public addresses only unless `allow_private_downloads`
    /// (see [`super::public_address`]). `None`: this client downloads nothing.
    downloads: Option<reqwest::Client>,
    allow_private_downloads: bool,
}

impl Http {
    pub(crate) fn new(client: reqwest::Client, provider: ProviderName, config: &ProviderConfig) -> Self {
        Self {
            client,
            provider,
            retry: config.retry,
            request_timeout: config.request_timeout,
            generation_timeout: config.generation_timeout,
            download_timeout: config.download_timeout,
            max_download_bytes: config.max_download_bytes,
            downloads: None,
            allow_private_downloads: config.allow_private_downloads,
        }
    }

    /// The client result downloads go through ([`super::public_address::download_client`]).
    pub(crate) fn with_downloads(mut self, client: reqwest::Client) -> Self {
        self.downloads = Some(client);
        self
    }

    pub(crate) fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// The largest answer body read for an API call: enough for a base64 image of the largest
    /// download we accept (base64 is 4/3 of the bytes), plus the JSON around it.
    pub(crate) fn max_api_body(&self) -> u64 {
        self.max_download_bytes.saturating_mul(4) / 3 + 1024 * 1024
    }

    /// Sends the request `build` makes (again for each attempt), retrying what is worth
    /// retrying within the retry budget, and returns a 2xx answer read in full (at most
    /// `max_body` bytes).
    pub(crate) async fn call<F>(
        &self,
        what: &str,
        timeout: Duration,
        max_body: u64,
        build: F,
    ) -> Result<Reply, Failure>
    where
        F: Fn() -> Result<RequestBuilder, CallError>,
    {
        self.call_with(self.retry, what, timeout, max_body, build).await
    }

    /// [`call`](Self::call) under another retry policy.
    async fn call_with<F>(
        &self,
        policy: RetryPolicy,
        what: &str,
        timeout: Duration,
        max_body: u64,
        build: F,
    ) -> Result<Reply, Failure>
    where
        F: Fn() -> Result<RequestBuilder, CallError>,
    {
        let attempts = AtomicUsize::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.initial_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_attempts.saturating_sub(1))
            .with_jitter();
        let attempt = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let request = build()?.timeout(timeout);
            let response = request.send().await.map_err(|e| transport_error(&e, timeout))?;
            read_reply(response, timeout, max_body).await
        };
        let provider = self.provider;
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(CallError::retryable)
            .adjust(|error, next| {
                // `next` is None once the budget is spent; a Retry-After never extends it.
                let next = next?;
                match error.retry_after() {
                    // Waiting longer than we are willing to is giving up: say so now.
                    Some(wait) if wait > policy.max_retry_after => None,
                    Some(wait) => Some(wait),
                    None => Some(next),
                }
            })
            .notify(|error, wait| {
                let wait_ms = wait.as_millis() as u64;
                tracing::warn!(%provider, what, %error, wait_ms, "provider call failed; retrying");
            })
            .await
            .map_err(|error| Failure { error, attempts: attempts.load(Ordering::Relaxed) })
    }

    /// Fetches a result file (no credentials are sent: result URLs are capabilities on the
    /// provider's CDN), at most `max_download_bytes`. `data:` URIs are decoded in place.
    pub(crate) async fn download(&self, url: &str) -> Result<Downloaded, Failure> {
        self.fetch(url, self.max_download_bytes, self.download_timeout, self.retry).await
    }

    /// Fetches an intermediate image for a live preview the way results are fetched (same
    /// address checks, no credentials), but within the preview bounds: at most
    /// [`MAX_PREVIEW_IMAGE_BYTES`], one attempt of at most [`PREVIEW_DOWNLOAD_TIMEOUT`].
    pub(crate) async fn download_preview(&self, url: &str) -> Result<Downloaded, Failure> {
        let once = RetryPolicy { max_attempts: 1, ..self.retry };
        let max = MAX_PREVIEW_IMAGE_BYTES.min(self.max_download_bytes);
        self.fetch(url, max, PREVIEW_DOWNLOAD_TIMEOUT.min(self.download_timeout), once).await
    }

    async fn fetch(
        &self,
        url: &str,
        max_bytes: u64,
        timeout: Duration,
        policy: RetryPolicy,
    ) -> Result<Downloaded, Failure> {
        if let Some(data) = url.strip_prefix("data:") {
            return decode_data_uri(data, max_bytes).map_err(|error| Failure { error, attempts: 1 });
        }
        let parsed = Url::parse(url).map_err(|_| Failure {
            error: CallError::Invalid("the result URL is not a URL".into()),
            attempts: 1,
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Failure {
                error: CallError::Invalid(format!("the result URL has scheme {}", parsed.scheme())),
                attempts: 1,
            });
        }
        let refused = |message: String| Failure { error: CallError::Refused(message), attempts: 1 };
        if !self.allow_private_downloads {
            // IP literals never reach the filtering resolver: checked here (and on redirects).
            check_url(&parsed).map_err(|e| refused(e.to_string()))?;
        }
        let Some(client) = &self.downloads else {
            return Err(refused("this client does not download results".into()));
        };
        let reply =
            self.call_with(policy, "downloading the result", timeout, max_bytes, || {
                Ok(client.get(parsed.clone()))
            })
            .await?;
        let content_type = reply.content_type().map(str::to_owned);
        Ok(Downloaded { bytes: reply.body, content_type, url: Some(url.to_owned()) })
    }

    /// Turns a failure into the node's error, worded for the canvas.
    pub(crate) fn error(&self, what: &str, failure: Failure) -> NodeError {
        NodeError::Provider { provider: self.provider, message: format!("{what}: {failure}") }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> NodeError {
        NodeError::Provider { provider: self.provider, message: message.into() }
    }

    /// A URL from a provider's answer (to poll, fetch or cancel a job) if it is on the origin of
    /// `base` (it will carry our key, see [`same_origin`]), else `fallback`, the documented one;
    /// `what` names it when even that does not parse.
    pub(crate) fn trusted(
        &self,
        base: &Url,
        given: Option<&str>,
        fallback: String,
        what: &str,
    ) -> Result<Url, NodeError> {
        if let Some(url) = given.and_then(|u| same_origin(u, base)) {
            return Ok(url);
        }
        Url::parse(&fallback).map_err(|_| self.invalid(format!("{what} could not be built")))
    }
}

/// `{base}/{path}`, whether or not the configured base URL ends with a slash.
pub(crate) fn join(base: &Url, path: &str) -> String {
    format!("{}/{path}", base.as_str().trim_end_matches('/'))
}

/// A downloaded (or decoded) result, before its type is checked.
#[derive(Debug)]
pub(crate) struct Downloaded {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// Where it came from, for file-extension hints.
    pub url: Option<String>,
}

fn decode_data_uri(data: &str, max: u64) -> Result<Downloaded, CallError> {
    use base64::Engine as _;
    let (meta, payload) =
        data.split_once(',').ok_or_else(|| CallError::Invalid("a data URI without data".into()))?;
    let Some(mime) = meta.strip_suffix(";base64") else {
        return Err(CallError::Invalid("a data URI that is not base64".into()));
    };
    if payload.len() as u64 > max.saturating_mul(4) / 3 + 4 {
        return Err(CallError::TooLarge { max });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|_| CallError::Invalid("a data URI with bad base64".into()))?;
    let content_type = (!mime.is_empty()).then(|| mime.split(';').next().unwrap_or(mime).to_owned());
    Ok(Downloaded { bytes, content_type, url: None })
}

fn transport_error(error: &reqwest::Error, timeout: Duration) -> CallError {
    if let Some(message) = refused_address(error) {
        return CallError::Refused(message);
    }
    if error.is_timeout() {
        return CallError::Timeout(timeout);
    }
    if error.is_builder() {
        return CallError::Invalid(format!("could not build the request: {}", chain(error)));
    }
    CallError::Network(chain(error))
}

/// The error and its causes in one line, without the URL reqwest puts in front.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        let text = text.split(" for url (").next().unwrap_or(&text).to_owned();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    truncate(&parts.join(": "), MAX_MESSAGE_CHARS)
}

async fn read_reply(mut response: Response, timeout: Duration, max_body: u64) -> Result<Reply, CallError> {
    let status = response.status();
    let headers = response.headers().clone();
    if status.is_success() {
        let body = read_body(&mut response, max_body, timeout).await?;
        return Ok(Reply { headers, body });
    }
    // An error body that cannot be read whole still leaves the status to report.
    let body = read_body(&mut response, MAX_ERROR_BODY, timeout).await.unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let message = match &parsed {
        Some(json) => error_message(json),
        None => plain_text(&body),
    };
    let quota_exhausted = parsed.as_ref().is_some_and(|json| {
        // OpenAI answers 429 for an account out of credit too; waiting does not fix that.
        json.pointer("/error/code").and_then(Value::as_str) == Some("insufficient_quota")
    });
    let code = status.as_u16();
    let retryable = !quota_exhausted && matches!(code, 408 | 425 | 429 | 500 | 502 | 503 | 504 | 520..=599);
    let retry_after = header_retry_after(&headers).or_else(|| parsed.as_ref().and_then(body_retry_after));
    Err(CallError::Status { status: code, message, retry_after, retryable })
}

/// Reads at most `max` bytes of the body; more is an error, not a silent truncation.
async fn read_body(response: &mut Response, max: u64, timeout: Duration) -> Result<Vec<u8>, CallError> {
    if response.content_length().is_some_and(|len| len > max) {
        return Err(CallError::TooLarge { max });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > max {
                    return Err(CallError::TooLarge { max });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(transport_error(&e, timeout)),
        }
    }
}

/// The `Authorization` header value, marked sensitive so reqwest never shows it in `Debug`.
pub(crate) fn auth_value(scheme: &str, key: &ApiKey) -> Result<HeaderValue, CallError> {
    let mut value = HeaderValue::from_str(&format!("{scheme} {}", key.expose()))
        .map_err(|_| CallError::Invalid("the API key has characters a header cannot carry".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whether `url` is on the same origin as the configured base URL. URLs that a provider's answer
/// hands us (poll, cancel) get our API key, so they must point where the key belongs.
pub(crate) fn same_origin(url: &str, base: &Url) -> Option<Url> {
    let url = Url::parse(url).ok()?;
    (url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default())
    .then_some(url)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_are_found_in_throttle_messages() {
        assert_eq!(seconds_in_text("Request was throttled. Expected available in 2 seconds."), Some(2.0));
        assert_eq!(seconds_in_text("Your rate limit resets in ~30s."), Some(30.0));
        assert_eq!(seconds_in_text("try again in 1.5 sec"), Some(1.5));
        assert_eq!(seconds_in_text("reduced to 6 requests per minute; try again in 1 second"), Some(1.0));
        assert_eq!(seconds_in_text("took 3 steps"), None);
        assert_eq!(seconds_in_text("no number here"), None);
    }

    #[test]
    fn retry_after_comes_from_headers_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(header_retry_after(&headers), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap());
        let wait = header_retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120), "{wait:?}");
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(header_retry_after(&headers), None);
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(header_retry_after(&headers), Some(Duration::from_millis(250)));
    }

    #[test]
    fn retry_after_comes_from_bodies() {
        assert_eq!(body_retry_after(&json!({"retry_after": 7})), Some(Duration::from_secs(7)));
        assert_eq!(
            body_retry_after(&json!({"title": "Request was throttled", "detail": "try again in 4 seconds"})),
            Some(Duration::from_secs(4))
        );
        assert_eq!(body_retry_after(&json!({"detail": "bad input"})), None);
        assert_eq!(body_retry_after(&json!({"retry_after": -1})), None);
    }

    #[test]
    fn error_messages_follow_each_providers_shape() {
        let openai =
            json!({"error": {"message": "Invalid size", "type": "invalid_request_error", "code": null}});
        assert_eq!(error_message(&openai), "Invalid size");
        let replicate = json!({"title": "Invalid input", "detail": "prompt is required", "status": 422});
        assert_eq!(error_message(&replicate), "prompt is required");
        let fal =
            json!({"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]});
        assert_eq!(error_message(&fal), "prompt: field required");
        let stability = json!({"id": "x", "name": "bad_request", "errors": ["prompt: cannot be empty"]});
        assert_eq!(error_message(&stability), "bad_request: prompt: cannot be empty");
        assert_eq!(error_message(&json!({"unrelated": 1})), "");
    }

    #[test]
    fn status_errors_read_well() {
        let e = CallError::Status {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(90)),
            retryable: true,
        };
        assert_eq!(e.to_string(), "rate limited: slow down (HTTP 429); the provider asks to wait 90 s");
        let f = Failure { error: CallError::Timeout(Duration::from_millis(300)), attempts: 3 };
        assert_eq!(f.to_string(), "no answer within 0.3 s (after 3 attempts)");
    }

    #[test]
    fn data_uris_decode_within_the_limit() {
        let d = decode_data_uri("image/png;base64,iVBORw==", 1024).unwrap();
        assert_eq!(d.content_type.as_deref(), Some("image/png"));
        assert_eq!(d.bytes, [0x89, b'P', b'N', b'G']);
        assert!(matches!(decode_data_uri("image/png,raw", 1024), Err(CallError::Invalid(_))));
        assert!(matches!(
            decode_data_uri(&format!("a/b;base64,{}", "A".repeat(4000)), 1024),
            Err(CallError::TooLarge { .. })
        ));
    }

    #[test]
    fn origins_are_compared_with_default_ports() {
        let base = Url::parse("https://api.replicate.com").unwrap();
        assert!(same_origin("https://api.replicate.com:443/v1/predictions/x", &base).is_some());
        assert!(same_origin("https://evil.example/v1/predictions/x", &base).is_none());
        assert!(same_origin("http://api.replicate.com/v1/predictions/x", &base).is_none());
    }
}
