//! Provider adapters: the [`NodeRunner`]s that run catalog entries with a `provider` on OpenAI,
//! Replicate, fal.ai and Stability AI.
//!
//! Each adapter shapes its requests and reads its answers as the provider documents them, and
//! they share one HTTP layer (`http`): a timeout on every request, bounded bodies, retries with
//! exponential backoff and jitter on 429, 408, 5xx, timeouts and connection failures that honour
//! `Retry-After` (header or body), and no retry for other 4xx. Results are downloaded (bounded),
//! checked against the node's output type, and stored in the run's [`AssetStore`]; text comes
//! back as short text. A remote job (Replicate prediction, fal request) that is abandoned —
//! run cancelled, node timed out — is cancelled at the provider so it stops costing money.
//!
//! Keys come from server configuration ([`ProviderConfig::from_env`]) or, for a run of a team's
//! workflow, from the team's stored key for that provider ([`NodeContext::api_key`], which
//! wins); they are never logged: [`ApiKey`] hides itself from `Debug`, and the header carrying it is marked sensitive.
//!
//! [`AssetStore`]: crate::assets::AssetStore

pub(crate) mod chat;
mod fal;
pub(crate) mod http;
mod media;
mod openai;
mod preview;
pub(crate) mod public_address;
mod replicate;
mod stability;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value};

pub use fal::FalRunner;
pub use openai::OpenAiRunner;
pub use replicate::ReplicateRunner;
pub use stability::StabilityRunner;

use crate::catalog::{PortType, ProviderName};
use crate::engine::Engine;
use crate::node::{NodeContext, NodeError, NodeRunner, ProgressSink};
use crate::value::{OutputValue, Outputs};
use http::Http;

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com";
pub const DEFAULT_REPLICATE_BASE_URL: &str = "https://api.replicate.com";
pub const DEFAULT_FAL_BASE_URL: &str = "https://queue.fal.run";
pub const DEFAULT_STABILITY_BASE_URL: &str = "https://api.stability.ai";

/// Largest input image sent to a provider (inline, as base64).
const MAX_INPUT_IMAGE_BYTES: usize = 20 * 1024 * 1024;

pub use crate::team_keys::ApiKey;

/// One provider's account: its key (none: the provider is not offered) and where its API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    pub api_key: Option<ApiKey>,
    /// Scheme, host and optional port (and path prefix), without a trailing slash.
    pub base_url: String,
}

impl ProviderSettings {
    pub fn new(base_url: &str) -> Self {
        Self { api_key: None, base_url: base_url.trim_end_matches('/').to_owned() }
    }

    pub fn with_key(mut self, key: &str) -> Self {
        self.api_key = ApiKey::new(key);
        self
    }
}

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: usize,
    /// The first backoff; each next one doubles (plus jitter), up to `max_delay`.
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a provider asking for more fails the call at once
    /// rather than holding the node (and the run's credits) that long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Everything the adapters need from the server's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub openai: ProviderSettings,
    pub replicate: ProviderSettings,
    pub fal: ProviderSettings,
    pub stability: ProviderSettings,
    pub retry: RetryPolicy,
    /// Between two status requests for a queued or running job.
    pub poll_interval: Duration,
    /// Timeout of quick requests: submitting to a queue, polling, cancelling.
    pub request_timeout: Duration,
    /// Timeout of requests that generate while the connection waits (OpenAI, Stability, a
    /// Replicate prediction created with `Prefer: wait`).
    pub generation_timeout: Duration,
    /// Timeout of downloading one result.
    pub download_timeout: Duration,
    /// Largest result downloaded (and largest API answer, scaled for base64).
    pub max_download_bytes: u64,
    /// Longest text output kept, in characters (it goes into the room document).
    pub max_text_chars: usize,
    /// How long a Replicate prediction request holds the connection (`Prefer: wait=N`, 1–60 s).
    pub replicate_wait: Duration,
    /// How long a remote job is polled when its catalog entry sets no `timeout_secs` (the
    /// engine's node timeout usually ends it first).
    pub max_job_duration: Duration,
    /// Whether result URLs may point to loopback, private, link-local and other non-public
    /// addresses (`DOJO_ALLOW_PRIVATE_DOWNLOADS`): off by default, so a provider's answer
    /// cannot make the worker fetch from inside our network; on for self-hosted model servers
    /// and local stand-ins.
    pub allow_private_downloads: bool,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            openai: ProviderSettings::new(DEFAULT_OPENAI_BASE_URL),
            replicate: ProviderSettings::new(DEFAULT_REPLICATE_BASE_URL),
            fal: ProviderSettings::new(DEFAULT_FAL_BASE_URL),
            stability: ProviderSettings::new(DEFAULT_STABILITY_BASE_URL),
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            generation_timeout: Duration::from_secs(300),
            download_timeout: Duration::from_secs(120),
            max_download_bytes: crate::assets::DEFAULT_MAX_ASSET_BYTES,
            max_text_chars: 32_000,
            replicate_wait: Duration::from_secs(60),
            max_job_duration: Duration::from_secs(900),
            allow_private_downloads: false,
        }
    }
}

/// A provider setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ProviderConfigError {
    #[error("{variable}: {value:?} is not an http(s) URL")]
    BadBaseUrl { variable: &'static str, value: String },
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// Lets result downloads reach non-public addresses ([`ProviderConfig::allow_private_downloads`]).
pub const ALLOW_PRIVATE_DOWNLOADS_VAR: &str = "DOJO_ALLOW_PRIVATE_DOWNLOADS";

pub use crate::provider_env::ENV_VARIABLES;

impl ProviderConfig {
    /// Keys and base URLs from the environment: `OPENAI_API_KEY`, `OPENAI_BASE_URL`,
    /// `REPLICATE_API_TOKEN`, `REPLICATE_BASE_URL`, `FAL_KEY`, `FAL_BASE_URL`,
    /// `STABILITY_API_KEY`, `STABILITY_BASE_URL`. Unset or empty: no key, default URL.
    /// `DOJO_ALLOW_PRIVATE_DOWNLOADS` (`true`/`1`/`yes`) sets [`Self::allow_private_downloads`].
    pub fn from_env() -> Result<Self, ProviderConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ProviderConfigError> {
        let mut config = Self::default();
        for (provider, key_var, url_var) in ENV_VARIABLES {
            let settings = config.settings_mut(provider);
            settings.api_key = lookup(key_var).and_then(ApiKey::new);
            if let Some(url) = lookup(url_var).map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()) {
                check_base_url(&url).map_err(|()| ProviderConfigError::BadBaseUrl {
                    variable: url_var,
                    value: url.clone(),
                })?;
                settings.base_url = url.trim_end_matches('/').to_owned();
            }
        }
        config.allow_private_downloads = lookup(ALLOW_PRIVATE_DOWNLOADS_VAR)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Ok(config)
    }

    pub fn settings(&self, provider: ProviderName) -> &ProviderSettings {
        match provider {
            ProviderName::Openai => &self.openai,
            ProviderName::Replicate => &self.replicate,
            ProviderName::Fal => &self.fal,
            ProviderName::Stability => &self.stability,
        }
    }

    pub fn settings_mut(&mut self, provider: ProviderName) -> &mut ProviderSettings {
        match provider {
            ProviderName::Openai => &mut self.openai,
            ProviderName::Replicate => &mut self.replicate,
            ProviderName::Fal => &mut self.fal,
            ProviderName::Stability => &mut self.stability,
        }
    }

    /// The providers that have a key.
    pub fn configured(&self) -> Vec<ProviderName> {
        ENV_VARIABLES.iter().map(|(p, _, _)| *p).filter(|p| self.settings(*p).api_key.is_some()).collect()
    }
}

pub(crate) fn check_base_url(url: &str) -> Result<Url, ()> {
    let parsed = Url::parse(url).map_err(|_| ())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(());
    }
    Ok(parsed)
}

/// The runner for one provider, or `None` when it has no key.
pub fn provider_runner(
    provider: ProviderName,
    config: &ProviderConfig,
) -> Result<Option<Arc<dyn NodeRunner>>, ProviderConfigError> {
    if config.settings(provider).api_key.is_none() {
        return Ok(None);
    }
    build_runner(provider, config).map(Some)
}

/// The runner for one provider, with the server's key when it has one; without, it runs only
/// nodes whose context carries a team's key.
fn build_runner(
    provider: ProviderName,
    config: &ProviderConfig,
) -> Result<Arc<dyn NodeRunner>, ProviderConfigError> {
    let settings = config.settings(provider);
    let key = settings.api_key.clone();
    let base = check_base_url(&settings.base_url).map_err(|()| ProviderConfigError::BadBaseUrl {
        variable: ENV_VARIABLES.iter().find(|(p, _, _)| *p == provider).map_or("base_url", |v| v.2),
        value: settings.base_url.clone(),
    })?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("dojo-executor/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.request_timeout.min(Duration::from_secs(15)))
        .build()
        .map_err(ProviderConfigError::Client)?;
    let downloads = public_address::download_client(config).map_err(ProviderConfigError::Client)?;
    let http = Http::new(client, provider, config).with_downloads(downloads);
    let runner: Arc<dyn NodeRunner> = match provider {
        ProviderName::Openai => Arc::new(OpenAiRunner::new(http, base, key, config)),
        ProviderName::Replicate => Arc::new(ReplicateRunner::new(http, base, key, config)),
        ProviderName::Fal => Arc::new(FalRunner::new(http, base, key, config)),
        ProviderName::Stability => Arc::new(StabilityRunner::new(http, base, key, config)),
    };
    Ok(runner)
}

/// Registers a runner for every provider. One with the server's key runs every run's nodes;
/// one without runs only the nodes of teams that stored a key for it (the server's
/// availability leaves it out). A provider whose runner cannot be built is logged and left
/// out: its nodes then fail with "provider X is not configured".
pub fn register_providers(mut engine: Engine, config: &ProviderConfig) -> Engine {
    for (provider, _, _) in ENV_VARIABLES {
        let keyed = config.settings(provider).api_key.is_some();
        match build_runner(provider, config) {
            Ok(runner) if keyed => {
                tracing::info!(%provider, base_url = %config.settings(provider).base_url, "provider enabled");
                engine = engine.with_provider(provider, runner);
            }
            Ok(runner) => {
                tracing::debug!(%provider, "provider has no server key; only teams' keys run its nodes");
                engine = engine.with_team_key_provider(provider, runner);
            }
            Err(error) => tracing::error!(%provider, %error, "provider left out"),
        }
    }
    engine
}

/// The key a node runs with: its team's when the run has one for this provider, else the
/// server's.
fn run_key<'k>(
    team: Option<&'k ApiKey>,
    server: Option<&'k ApiKey>,
    provider: ProviderName,
) -> Result<&'k ApiKey, NodeError> {
    team.or(server).ok_or_else(|| NodeError::Provider {
        provider,
        message: "neither this server nor the run's team has a key for this provider".into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Shared by the adapters.

/// The provider model id of the node being run.
fn model<'a>(ctx: &NodeContext<'a>) -> Result<&'a str, NodeError> {
    ctx.node_type
        .provider
        .as_ref()
        .map(|p| p.model.as_str())
        .ok_or_else(|| NodeError::Internal(format!("node type {} has no provider", ctx.node_type.id)))
}

/// The node's single output: its name and type.
fn output_port<'a>(ctx: &NodeContext<'a>) -> Result<(&'a str, PortType), NodeError> {
    match ctx.node_type.outputs.as_slice() {
        [port] => Ok((port.name.as_str(), port.port_type)),
        _ => Err(NodeError::Internal(format!("node type {} must have exactly one output", ctx.node_type.id))),
    }
}

/// The text wired into `input`, if any.
fn text_input(ctx: &NodeContext<'_>, input: &str) -> Result<Option<String>, NodeError> {
    match ctx.input(input) {
        None => Ok(None),
        Some(value) => value
            .as_text()
            .map(|t| Some(t.to_owned()))
            .ok_or_else(|| NodeError::BadInput { input: input.into(), reason: "expected text".into() }),
    }
}

/// The prompt: required by most models, so an empty one is refused before anything is paid.
fn prompt(ctx: &NodeContext<'_>, required: bool) -> Result<Option<String>, NodeError> {
    let prompt = text_input(ctx, "prompt")?.filter(|p| !p.trim().is_empty());
    if required && prompt.is_none() {
        return Err(NodeError::BadInput { input: "prompt".into(), reason: "the prompt is empty".into() });
    }
    Ok(prompt)
}

/// An image wired into the node, read from the asset store.
struct InputImage {
    bytes: Vec<u8>,
    content_type: String,
}

impl InputImage {
    /// For providers that take files inline in JSON.
    fn data_uri(&self) -> String {
        use base64::Engine as _;
        format!(
            "data:{};base64,{}",
            self.content_type,
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }

    fn file_name(&self) -> &'static str {
        match self.content_type.as_str() {
            "image/jpeg" => "image.jpg",
            "image/webp" => "image.webp",
            _ => "image.png",
        }
    }
}

async fn image_input(ctx: &NodeContext<'_>, input: &str) -> Result<Option<InputImage>, NodeError> {
    let Some(value) = ctx.input(input) else { return Ok(None) };
    let reference = value
        .as_asset()
        .ok_or_else(|| NodeError::BadInput { input: input.into(), reason: "expected an image".into() })?;
    if !reference.content_type.starts_with("image/") {
        return Err(NodeError::BadInput {
            input: input.into(),
            reason: format!("expected an image, got {}", reference.content_type),
        });
    }
    if reference.size > MAX_INPUT_IMAGE_BYTES as u64 {
        return Err(NodeError::BadInput {
            input: input.into(),
            reason: format!("the image is larger than {} MiB", MAX_INPUT_IMAGE_BYTES / (1024 * 1024)),
        });
    }
    let asset = ctx.assets.get(&reference.id).await?;
    Ok(Some(InputImage { bytes: asset.bytes, content_type: asset.reference.content_type }))
}

/// The node's resolved parameters as a JSON object (validation filled in every default).
fn params_object(ctx: &NodeContext<'_>) -> Map<String, Value> {
    ctx.node.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The parameters with the prompt input added as `prompt`, when wired (an error when the
/// catalog requires it and it is empty): the request body of the queue providers.
fn params_with_prompt(ctx: &NodeContext<'_>) -> Result<Map<String, Value>, NodeError> {
    let mut input = params_object(ctx);
    let required = ctx.node_type.input("prompt").is_some_and(|p| p.required);
    if let Some(prompt) = prompt(ctx, required)? {
        input.insert("prompt".into(), Value::String(prompt));
    }
    Ok(input)
}

/// Checks a downloaded result against the node's output and stores it.
async fn store_result(
    ctx: &NodeContext<'_>,
    http: &Http,
    downloaded: http::Downloaded,
) -> Result<Outputs, NodeError> {
    let (name, port) = output_port(ctx)?;
    let media = media::prepare(port, downloaded).await.map_err(|message| http.invalid(message))?;
    let asset = ctx.assets.put(media.bytes, &media.content_type).await?;
    Ok(Outputs::from([(name.to_owned(), OutputValue::Asset { asset })]))
}

/// Downloads `url` and stores it as the node's output.
async fn download_result(ctx: &NodeContext<'_>, http: &Http, url: &str) -> Result<Outputs, NodeError> {
    let downloaded = http.download(url).await.map_err(|f| http.error("downloading the result", f))?;
    store_result(ctx, http, downloaded).await
}

/// Progress that only moves forward (providers' logs can go back, e.g. several bars in a row),
/// and stays below 100 until the node has actually finished.
struct Progress<'a> {
    sink: &'a dyn ProgressSink,
    last: u8,
}

impl<'a> Progress<'a> {
    fn new(sink: &'a dyn ProgressSink) -> Self {
        Self { sink, last: 0 }
    }

    async fn at(&mut self, percent: u8) {
        let percent = percent.min(99);
        if percent > self.last {
            self.last = percent;
            self.sink.report(percent).await;
        }
    }
}

/// The last "NN%" in a log (tqdm bars, "Generating 42%"), if any.
fn last_percent(log: &str) -> Option<u8> {
    let bytes = log.as_bytes();
    let mut found = None;
    for (i, _) in log.match_indices('%') {
        let digits = bytes[..i].iter().rev().take_while(|b| b.is_ascii_digit()).count();
        if (1..=3).contains(&digits)
            && let Ok(value) = log[i - digits..i].parse::<u8>()
            && value <= 100
        {
            found = Some(value);
        }
    }
    found
}

/// Sleeps for `interval` unless `ctx.cancel` fires first (then `false`).
async fn pause(ctx: &NodeContext<'_>, interval: Duration) -> bool {
    tokio::select! {
        () = ctx.cancel.cancelled() => false,
        () = tokio::time::sleep(interval) => true,
    }
}

/// How long to keep polling a remote job for this node: its timeout, plus a grace period so
/// that under the engine (which enforces the same timeout) the engine's uniform "timed out"
/// wins; the deadline matters to callers without one.
fn job_deadline(ctx: &NodeContext<'_>, config_max: Duration) -> tokio::time::Instant {
    let limit = ctx.node_type.timeout_secs.map_or(config_max, Duration::from_secs);
    tokio::time::Instant::now() + limit + Duration::from_secs(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_percentage_of_a_log_wins() {
        assert_eq!(last_percent(" 10%|█         | 1/10\n 50%|█████     | 5/10"), Some(50));
        assert_eq!(last_percent("Generating 100%"), Some(100));
        assert_eq!(last_percent("no progress here"), None);
        assert_eq!(last_percent("1234% is not a percentage"), None);
        assert_eq!(last_percent("%"), None);
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let config = ProviderConfig::from_lookup(|name| match name {
            "OPENAI_API_KEY" => Some("sk-secret-value".into()),
            "FAL_KEY" => Some("  ".into()),
            "FAL_BASE_URL" => Some("http://127.0.0.1:9000/".into()),
            _ => None,
        })
        .unwrap();
        assert!(!format!("{config:?}").contains("sk-secret-value"));
        assert_eq!(config.configured(), [ProviderName::Openai]);
        assert_eq!(config.fal.base_url, "http://127.0.0.1:9000");
        assert_eq!(config.replicate.base_url, DEFAULT_REPLICATE_BASE_URL);
    }

    #[test]
    fn bad_base_urls_are_refused() {
        let error = ProviderConfig::from_lookup(|name| {
            (name == "STABILITY_BASE_URL").then(|| "ftp://example.com".to_owned())
        })
        .unwrap_err();
        assert!(error.to_string().contains("STABILITY_BASE_URL"), "{error}");
    }
}
