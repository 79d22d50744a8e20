//! OpenAI Chat Completions as the executor's language-model features reach it (the canvas
//! planner, the agents' text writer): one endpoint on OpenAI's account, with its key, one attempt
//! per call (each feature has its own fallback, so a retry would only make someone wait), and a
//! connection timeout within the feature's own.

use std::time::Duration;

use super::http::Http;
use super::{ApiKey, ProviderConfig, ProviderConfigError, RetryPolicy, check_base_url};
use crate::catalog::ProviderName;

/// Where and how to call Chat Completions.
pub(crate) struct ChatEndpoint {
    pub(crate) http: Http,
    pub(crate) url: String,
    pub(crate) key: ApiKey,
}

impl ChatEndpoint {
    /// The endpoint on OpenAI's account in `providers`, or `None` when OpenAI has no key.
    pub(crate) fn open(
        providers: &ProviderConfig,
        timeout: Duration,
    ) -> Result<Option<Self>, ProviderConfigError> {
        let openai = &providers.openai;
        let Some(key) = openai.api_key.clone() else { return Ok(None) };
        let base = check_base_url(&openai.base_url).map_err(|()| ProviderConfigError::BadBaseUrl {
            variable: "OPENAI_BASE_URL",
            value: openai.base_url.clone(),
        })?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("dojo-executor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(ProviderConfigError::Client)?;
        let mut config = providers.clone();
        config.retry = RetryPolicy { max_attempts: 1, ..config.retry };
        let http = Http::new(client, ProviderName::Openai, &config);
        let url = format!("{}/v1/chat/completions", base.as_str().trim_end_matches('/'));
        Ok(Some(Self { http, url, key }))
    }
}
