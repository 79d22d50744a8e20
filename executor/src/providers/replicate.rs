//! Replicate: `POST /v1/models/{owner}/{name}/predictions` with `Prefer: wait=N` (the answer
//! holds up to N seconds and is often already final), then `GET /v1/predictions/{id}` until
//! `succeeded`, `failed` or `canceled`; `POST /v1/predictions/{id}/cancel` when the node is
//! abandoned. Outputs are file URLs (one, or a list) that are downloaded and stored.
//!
//! While a prediction is `starting` or `processing`, its `logs` tail and the latest file of an
//! `output` it fills progressively (some image models do) are shown on the node as a live
//! preview (`super::preview`).
//!
//! The prediction is also created with `Cancel-After` set to the node's timeout, so Replicate
//! stops it by itself should our cancel never arrive (or be impossible: a run cancelled while
//! the creating request is still waiting does not know the prediction's id yet).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Http, RemoteCancel, auth_value, join, truncate};
use super::preview::Previews;
use super::{
    ApiKey, Progress, ProviderConfig, download_result, image_input, job_deadline, last_percent, model,
    output_port, params_with_prompt, pause,
};
use crate::catalog::{PortType, ProviderName};
use crate::node::{NodeContext, NodeError, NodeRunner};
use crate::value::{OutputValue, Outputs};

/// Models whose image output format can be chosen: PNG, so the built-in tools read it as is.
const PNG_OUTPUT_MODELS: &[&str] =
    &["black-forest-labs/flux-1.1-pro-ultra", "black-forest-labs/flux-schnell", "google/imagen-4"];

pub struct ReplicateRunner {
    http: Http,
    base: Url,
    /// The server's key; `None`: only nodes with a team's key run here.
    key: Option<ApiKey>,
    poll_interval: Duration,
    wait: Duration,
    max_job_duration: Duration,
    max_text_chars: usize,
}

#[derive(Debug, Deserialize)]
struct Prediction {
    id: String,
    status: String,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    error: Value,
    #[serde(default)]
    logs: Option<String>,
    #[serde(default)]
    urls: Urls,
}

#[derive(Debug, Default, Deserialize)]
struct Urls {
    get: Option<String>,
    cancel: Option<String>,
}

impl ReplicateRunner {
    pub(crate) fn new(http: Http, base: Url, key: Option<ApiKey>, config: &ProviderConfig) -> Self {
        Self {
            http,
            base,
            key,
            poll_interval: config.poll_interval,
            wait: config.replicate_wait.clamp(Duration::from_secs(1), Duration::from_secs(60)),
            max_job_duration: config.max_job_duration,
            max_text_chars: config.max_text_chars,
        }
    }

    fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }

    /// A URL from Replicate's answer if it points at Replicate, else the documented one.
    fn trusted(&self, given: Option<&str>, fallback: String) -> Result<Url, NodeError> {
        self.http.trusted(&self.base, given, fallback, "a prediction URL")
    }

    async fn input(&self, ctx: &NodeContext<'_>, model: &str) -> Result<Value, NodeError> {
        let mut input = params_with_prompt(ctx)?;
        if let Some(image) = image_input(ctx, "image").await? {
            // Flux Ultra calls its image input an image prompt; the others call it `image`.
            let field =
                if model == "black-forest-labs/flux-1.1-pro-ultra" { "image_prompt" } else { "image" };
            input.insert(field.into(), Value::String(image.data_uri()));
        }
        if PNG_OUTPUT_MODELS.contains(&model) {
            input.insert("output_format".into(), json!("png"));
        }
        if model == "black-forest-labs/flux-schnell" {
            input.insert("num_outputs".into(), json!(1));
        }
        Ok(Value::Object(input))
    }

    async fn get(&self, url: &Url, auth: &HeaderValue) -> Result<Prediction, NodeError> {
        let reply = self
            .http
            .call("checking the prediction", self.http.request_timeout, self.http.max_api_body(), || {
                Ok(self.http.request(Method::GET, url.as_str()).header(AUTHORIZATION, auth.clone()))
            })
            .await
            .map_err(|f| self.http.error("checking the prediction", f))?;
        reply.json().map_err(|e| self.http.invalid(format!("checking the prediction: {e}")))
    }
}

fn split_model(model: &str) -> Option<(&str, &str)> {
    let (owner, name) = model.split_once('/')?;
    let ok = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    (ok(owner) && ok(name)).then_some((owner, name))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The first file URL in an output: a string, or the first of a list (Replicate's two shapes),
/// or a value of an object (some models name their outputs).
fn first_url(output: &Value, depth: u8) -> Option<&str> {
    match output {
        Value::String(s)
            if s.starts_with("https://") || s.starts_with("http://") || s.starts_with("data:") =>
        {
            Some(s)
        }
        Value::Array(items) if depth > 0 => items.iter().find_map(|v| first_url(v, depth - 1)),
        Value::Object(map) if depth > 0 => map.values().find_map(|v| first_url(v, depth - 1)),
        _ => None,
    }
}

/// The latest file URL of an output Replicate is still filling (an intermediate image): a
/// string, or the last of a list (progressive outputs grow at the end).
fn last_url(output: &Value, depth: u8) -> Option<&str> {
    match output {
        Value::Array(items) if depth > 0 => items.iter().rev().find_map(|v| last_url(v, depth - 1)),
        other => first_url(other, depth),
    }
}

/// Text models stream tokens: the output is a list of strings to concatenate.
fn output_text(output: &Value) -> Option<String> {
    match output {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(items.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

#[async_trait]
impl NodeRunner for ReplicateRunner {
    async fn run(&self, ctx: NodeContext<'_>) -> Result<Outputs, NodeError> {
        let model = model(&ctx)?;
        let (owner, name) = split_model(model).ok_or_else(|| {
            NodeError::Internal(format!("{model:?} is not a Replicate model id (owner/name)"))
        })?;
        let (output_name, port) = output_port(&ctx)?;
        let input = self.input(&ctx, model).await?;
        let auth =
            auth_value("Bearer", super::run_key(ctx.api_key, self.key.as_ref(), ProviderName::Replicate)?)
                .map_err(|e| self.http.invalid(e.to_string()))?;
        let body = json!({ "input": input });
        let create_url = self.url(&format!("v1/models/{owner}/{name}/predictions"));
        let wait = self.wait.as_secs();
        let cancel_after = ctx.node_type.timeout_secs.map(|s| format!("{}s", s.max(5)));
        let mut progress = Progress::new(ctx.progress);
        let mut previews = Previews::new(&ctx, &self.http);
        let deadline = job_deadline(&ctx, self.max_job_duration);

        let create = self.http.call(
            "creating the prediction",
            // The answer may be held for `wait` seconds before it starts.
            self.wait + self.http.request_timeout,
            self.http.max_api_body(),
            || {
                let mut request = self
                    .http
                    .request(Method::POST, &create_url)
                    .header(AUTHORIZATION, auth.clone())
                    .header("Prefer", format!("wait={wait}"))
                    .json(&body);
                if let Some(after) = &cancel_after {
                    request = request.header("Cancel-After", after);
                }
                Ok(request)
            },
        );
        let reply = tokio::select! {
            () = ctx.cancel.cancelled() => {
                tracing::warn!(model, "run cancelled while creating a prediction; Cancel-After will stop it");
                return Err(NodeError::Cancelled);
            }
            reply = create => reply.map_err(|f| self.http.error("creating the prediction", f))?,
        };
        let mut prediction: Prediction =
            reply.json().map_err(|e| self.http.invalid(format!("creating the prediction: {e}")))?;
        if !valid_id(&prediction.id) {
            return Err(self.http.invalid("creating the prediction: the answer has no valid id"));
        }
        let id = prediction.id.clone();
        let get_url =
            self.trusted(prediction.urls.get.as_deref(), self.url(&format!("v1/predictions/{id}")))?;
        let cancel_url = self
            .trusted(prediction.urls.cancel.as_deref(), self.url(&format!("v1/predictions/{id}/cancel")))?;
        let mut guard = RemoteCancel::arm(&self.http, Method::POST, cancel_url, auth.clone(), &id);
        tracing::debug!(model, prediction = %id, status = %prediction.status, "prediction created");

        loop {
            match prediction.status.as_str() {
                "succeeded" => break,
                "failed" => {
                    guard.disarm();
                    let reason = match &prediction.error {
                        Value::String(s) if !s.trim().is_empty() => truncate(s.trim(), 400),
                        Value::Null => "no reason given".to_owned(),
                        other => truncate(&other.to_string(), 400),
                    };
                    return Err(self.http.invalid(format!("the prediction failed: {reason}")));
                }
                "canceled" | "aborted" => {
                    guard.disarm();
                    return Err(self.http.invalid("the prediction was canceled at Replicate"));
                }
                "processing" => {
                    progress.at(prediction.logs.as_deref().and_then(last_percent).unwrap_or(5)).await;
                }
                // "starting" (booting a model) and anything newer: keep waiting.
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                guard.cancel_now().await;
                return Err(self.http.invalid("the prediction did not finish in time and was canceled"));
            }
            // The preview (its image fetched) while the poll interval runs: it costs the node
            // no time unless fetching takes longer than the interval, and then at most the
            // preview download timeout.
            let shown = async {
                if matches!(prediction.status.as_str(), "starting" | "processing") {
                    let image = if port == PortType::Image { last_url(&prediction.output, 3) } else { None };
                    previews.offer(prediction.logs.as_deref(), image).await;
                }
            };
            let ((), go_on) = tokio::join!(shown, pause(&ctx, self.poll_interval));
            if !go_on {
                guard.cancel_now().await;
                return Err(NodeError::Cancelled);
            }
            prediction = tokio::select! {
                () = ctx.cancel.cancelled() => {
                    guard.cancel_now().await;
                    return Err(NodeError::Cancelled);
                }
                // A poll that fails for good drops `guard`, which cancels the prediction.
                p = self.get(&get_url, &auth) => p?,
            };
        }
        guard.disarm();

        if port == PortType::Text {
            let text = output_text(&prediction.output)
                .ok_or_else(|| self.http.invalid("the prediction succeeded without a text output"))?;
            return Ok(Outputs::from([(
                output_name.to_owned(),
                OutputValue::text(truncate(&text, self.max_text_chars)),
            )]));
        }
        let url = first_url(&prediction.output, 3)
            .ok_or_else(|| self.http.invalid("the prediction succeeded without an output file"))?
            .to_owned();
        download_result(&ctx, &self.http, &url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_read_in_both_shapes() {
        assert_eq!(first_url(&json!("https://r.example/a.png"), 3), Some("https://r.example/a.png"));
        assert_eq!(
            first_url(&json!(["https://r.example/a.png", "https://r.example/b.png"]), 3),
            Some("https://r.example/a.png")
        );
        assert_eq!(
            first_url(&json!({"image": "https://r.example/c.png"}), 3),
            Some("https://r.example/c.png")
        );
        assert_eq!(first_url(&json!("just text"), 3), None);
        assert_eq!(first_url(&Value::Null, 3), None);
        assert_eq!(output_text(&json!(["Hel", "lo"])).as_deref(), Some("Hello"));
        assert_eq!(
            last_url(&json!(["https://r.example/1.png", "https://r.example/2.png"]), 3),
            Some("https://r.example/2.png")
        );
        assert_eq!(last_url(&json!("https://r.example/1.png"), 3), Some("https://r.example/1.png"));
        assert_eq!(last_url(&Value::Null, 3), None);
    }

    #[test]
    fn model_ids_and_prediction_ids_are_checked() {
        assert_eq!(
            split_model("black-forest-labs/flux-schnell"),
            Some(("black-forest-labs", "flux-schnell"))
        );
        assert_eq!(split_model("a/b/c"), None);
        assert_eq!(split_model("../x"), None);
        assert!(valid_id("ufawqhfynnddngldkgtslldrkq"));
        assert!(!valid_id("../../v1/account"));
    }
}
