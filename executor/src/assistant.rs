//! Plain-text answers from OpenAI Chat Completions, for the studio's agents (a support reply's
//! draft): a system message, a user message, one bounded answer. Like the canvas planner
//! ([`crate::compose::llm`]) it sits on the same endpoint (`providers::chat`), exists exactly
//! when OpenAI has a key, and bounds the time, the answer read and the tokens spent.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use crate::compose::llm::LlmError;
use crate::providers::chat::ChatEndpoint;
use crate::providers::http::{auth_value, truncate};
use crate::providers::{ProviderConfig, ProviderConfigError};

/// Largest answer read, in bytes.
const MAX_ANSWER_BYTES: u64 = 128 * 1024;
/// Longest text returned, in characters (a longer answer is cut).
pub const MAX_TEXT_CHARS: usize = 8_000;

/// Writes text with a Chat Completions model. Cheap to share (the HTTP client is pooled).
pub struct TextWriter {
    endpoint: ChatEndpoint,
    model: String,
    timeout: Duration,
}

impl std::fmt::Debug for TextWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextWriter").field("url", &self.endpoint.url).field("model", &self.model).finish()
    }
}

impl TextWriter {
    /// The writer on OpenAI's account in `providers`, or `None` when OpenAI has no key.
    pub fn new(
        providers: &ProviderConfig,
        model: &str,
        timeout: Duration,
    ) -> Result<Option<Self>, ProviderConfigError> {
        let endpoint = ChatEndpoint::open(providers, timeout)?;
        Ok(endpoint.map(|endpoint| Self { endpoint, model: model.to_owned(), timeout }))
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The model's answer to `user` under `system`, at most `max_tokens` tokens long.
    pub async fn write(&self, system: &str, user: &str, max_tokens: u32) -> Result<String, LlmError> {
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "max_completion_tokens": max_tokens,
        });
        let endpoint = &self.endpoint;
        let auth = auth_value("Bearer", &endpoint.key).map_err(|e| LlmError::Malformed(e.to_string()))?;
        let reply = endpoint
            .http
            .call("writing a draft", self.timeout, MAX_ANSWER_BYTES, || {
                Ok(endpoint
                    .http
                    .request(Method::POST, &endpoint.url)
                    .header(AUTHORIZATION, auth.clone())
                    .json(&body))
            })
            .await
            .map_err(LlmError::from_failure)?;
        let answer: Value = reply.json().map_err(|e| LlmError::Malformed(e.to_string()))?;
        read_text(&answer)
    }
}

/// The text of the first choice, or why there is none.
fn read_text(answer: &Value) -> Result<String, LlmError> {
    let message = answer
        .pointer("/choices/0/message")
        .ok_or_else(|| LlmError::Malformed("the answer has no message".into()))?;
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str).filter(|r| !r.trim().is_empty()) {
        return Err(LlmError::Refused(truncate(refusal.trim(), 300)));
    }
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| LlmError::Malformed("the message has no text".into()))?;
    Ok(truncate(text, MAX_TEXT_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_choice_and_refuses_empty_or_refused_answers() {
        let ok = json!({"choices": [{"message": {"content": "  Try a smaller seed.  "}}]});
        assert_eq!(read_text(&ok).ok().as_deref(), Some("Try a smaller seed."));
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "no"}}]});
        assert!(matches!(read_text(&refused), Err(LlmError::Refused(_))));
        assert!(matches!(read_text(&json!({"choices": []})), Err(LlmError::Malformed(_))));
        let blank = json!({"choices": [{"message": {"content": "   "}}]});
        assert!(matches!(read_text(&blank), Err(LlmError::Malformed(_))));
        let long = json!({"choices": [{"message": {"content": "x".repeat(MAX_TEXT_CHARS + 50)}}]});
        assert!(read_text(&long).map(|t| t.chars().count() <= MAX_TEXT_CHARS + 1).unwrap_or(false));
    }
}
