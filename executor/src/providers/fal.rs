//! fal.ai's queue API: `POST {queue}/{model id}` answers `{request_id, status_url, response_url,
//! cancel_url}`; `GET status_url?logs=1` says `IN_QUEUE` (with `queue_position`), `IN_PROGRESS`
//! (with logs) or `COMPLETED`; `GET response_url` returns the model's output (`images[0].url`,
//! `video.url`, `model_mesh.url`…), which is downloaded and stored; `PUT cancel_url` cancels.
//! Every request carries `Authorization: Key {key}`.
//!
//! While a request is `IN_PROGRESS`, the tail of its logs is shown on the node as a live
//! preview (`super::preview`). Text only: the queue's status answer documents no intermediate
//! images (fal streams partial results only over its separate, non-queue streaming endpoint).

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
use crate::preview::MAX_PREVIEW_TEXT_BYTES;
use crate::value::{OutputValue, Outputs};

pub struct FalRunner {
    http: Http,
    base: Url,
    /// The server's key; `None`: only nodes with a team's key run here.
    key: Option<ApiKey>,
    poll_interval: Duration,
    max_job_duration: Duration,
    max_text_chars: usize,
}

#[derive(Debug, Deserialize)]
struct Submitted {
    request_id: String,
    #[serde(default)]
    status_url: Option<String>,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    cancel_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Status {
    status: String,
    #[serde(default)]
    queue_position: Option<u64>,
    #[serde(default)]
    logs: Option<Vec<LogLine>>,
    /// Set on a request that completed with an error.
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogLine {
    #[serde(default)]
    message: String,
}

impl FalRunner {
    pub(crate) fn new(http: Http, base: Url, key: Option<ApiKey>, config: &ProviderConfig) -> Self {
        Self {
            http,
            base,
            key,
            poll_interval: config.poll_interval,
            max_job_duration: config.max_job_duration,
            max_text_chars: config.max_text_chars,
        }
    }

    fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }

    /// A URL from fal's answer if it points at the queue we use, else the documented one
    /// (`{queue}/{owner}/{app}/requests/{id}…`: the app id without the endpoint's sub-path).
    fn trusted(&self, given: Option<&str>, fallback: String) -> Result<Url, NodeError> {
        self.http.trusted(&self.base, given, fallback, "a queue URL")
    }

    /// The endpoint and its input. Image inputs go inline as data URIs, under the name each
    /// model documents; Luma Ray 2 has a separate image-to-video endpoint.
    async fn request(&self, ctx: &NodeContext<'_>, model: &str) -> Result<(String, Value), NodeError> {
        let mut input = params_with_prompt(ctx)?;
        let mut endpoint = model.to_owned();
        if let Some(image) = image_input(ctx, "image").await? {
            let uri = image.data_uri();
            match model {
                "fal-ai/hyper3d/rodin" => {
                    input.insert("input_image_urls".into(), json!([uri]));
                }
                "fal-ai/luma-dream-machine/ray-2" => {
                    endpoint.push_str("/image-to-video");
                    input.insert("image_url".into(), Value::String(uri));
                }
                _ => {
                    input.insert("image_url".into(), Value::String(uri));
                }
            }
        }
        Ok((endpoint, Value::Object(input)))
    }

    async fn get(&self, what: &str, url: &Url, auth: &HeaderValue) -> Result<Value, NodeError> {
        let reply = self
            .http
            .call(what, self.http.request_timeout, self.http.max_api_body(), || {
                Ok(self.http.request(Method::GET, url.as_str()).header(AUTHORIZATION, auth.clone()))
            })
            .await
            .map_err(|f| self.http.error(what, f))?;
        reply.json().map_err(|e| self.http.invalid(format!("{what}: {e}")))
    }
}

/// `owner/app` of a model id such as `fal-ai/kling-video/v2.1/master/text-to-video`.
fn app_id(model: &str) -> Option<String> {
    let mut parts = model.split('/');
    let (owner, app) = (parts.next()?, parts.next()?);
    let ok = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    (ok(owner) && ok(app) && model.split('/').all(ok)).then(|| format!("{owner}/{app}"))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The last log lines, joined, as much as a preview can show of them (its text is cut to its
/// own bound afterwards): the lines are read from the end, so a long log costs no more.
fn log_tail(lines: &[LogLine]) -> String {
    let mut taken = Vec::new();
    let mut bytes = 0usize;
    for line in lines.iter().rev() {
        if bytes >= MAX_PREVIEW_TEXT_BYTES {
            break;
        }
        bytes = bytes.saturating_add(line.message.len() + 1);
        taken.push(line.message.as_str());
    }
    taken.reverse();
    taken.join("\n")
}

/// The output file's URL for the node's output type, in the shapes fal's models use.
fn output_url(result: &Value, port: PortType) -> Option<&str> {
    let paths: &[&str] = match port {
        PortType::Image => &["/images/0/url", "/image/url"],
        PortType::Video => &["/video/url", "/videos/0/url"],
        PortType::Mesh => &["/model_mesh/url", "/model_glb/url", "/mesh/url", "/model/url"],
        _ => &[],
    };
    paths.iter().find_map(|p| result.pointer(p).and_then(Value::as_str))
}

#[async_trait]
impl NodeRunner for FalRunner {
    async fn run(&self, ctx: NodeContext<'_>) -> Result<Outputs, NodeError> {
        let model = model(&ctx)?;
        let app =
            app_id(model).ok_or_else(|| NodeError::Internal(format!("{model:?} is not a fal model id")))?;
        let (output_name, port) = output_port(&ctx)?;
        let (endpoint, input) = self.request(&ctx, model).await?;
        let auth = auth_value("Key", super::run_key(ctx.api_key, self.key.as_ref(), ProviderName::Fal)?)
            .map_err(|e| self.http.invalid(e.to_string()))?;
        let submit_url = self.url(&endpoint);
        let mut progress = Progress::new(ctx.progress);
        let mut previews = Previews::new(&ctx, &self.http);
        let deadline = job_deadline(&ctx, self.max_job_duration);

        // Submitting only queues the request: it answers at once, so it has the quick timeout.
        let submit = self.http.call("submitting the request", self.http.request_timeout, 1024 * 1024, || {
            Ok(self.http.request(Method::POST, &submit_url).header(AUTHORIZATION, auth.clone()).json(&input))
        });
        let reply = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(NodeError::Cancelled),
            reply = submit => reply.map_err(|f| self.http.error("submitting the request", f))?,
        };
        let submitted: Submitted =
            reply.json().map_err(|e| self.http.invalid(format!("submitting the request: {e}")))?;
        let id = submitted.request_id.clone();
        if !valid_id(&id) {
            return Err(self.http.invalid("submitting the request: the answer has no valid request id"));
        }
        let requests = format!("{app}/requests/{id}");
        let mut status_url =
            self.trusted(submitted.status_url.as_deref(), self.url(&format!("{requests}/status")))?;
        status_url.query_pairs_mut().append_pair("logs", "1");
        let response_url = self.trusted(submitted.response_url.as_deref(), self.url(&requests))?;
        let cancel_url =
            self.trusted(submitted.cancel_url.as_deref(), self.url(&format!("{requests}/cancel")))?;
        let mut guard = RemoteCancel::arm(&self.http, Method::PUT, cancel_url, auth.clone(), &id);
        tracing::debug!(model, request = %id, "fal request queued");

        loop {
            if tokio::time::Instant::now() >= deadline {
                guard.cancel_now().await;
                return Err(self.http.invalid("the request did not finish in time and was cancelled"));
            }
            if !pause(&ctx, self.poll_interval).await {
                guard.cancel_now().await;
                return Err(NodeError::Cancelled);
            }
            let json = tokio::select! {
                () = ctx.cancel.cancelled() => {
                    guard.cancel_now().await;
                    return Err(NodeError::Cancelled);
                }
                // A status check that fails for good drops `guard`, which cancels the request.
                json = self.get("checking the request", &status_url, &auth) => json?,
            };
            let status: Status = serde_json::from_value(json)
                .map_err(|e| self.http.invalid(format!("checking the request: bad JSON: {e}")))?;
            match status.status.as_str() {
                "COMPLETED" => {
                    guard.disarm();
                    if let Some(error) = status.error.filter(|e| !e.trim().is_empty()) {
                        return Err(self
                            .http
                            .invalid(format!("the request failed: {}", truncate(&error, 400))));
                    }
                    break;
                }
                "IN_PROGRESS" => {
                    let logged =
                        status.logs.iter().flatten().rev().find_map(|line| last_percent(&line.message));
                    progress.at(logged.unwrap_or(5)).await;
                    if let Some(lines) = &status.logs {
                        previews.offer(Some(&log_tail(lines)), None).await;
                    }
                }
                "IN_QUEUE" => {
                    tracing::trace!(request = %id, position = ?status.queue_position, "fal request queued");
                }
                other => tracing::debug!(request = %id, status = other, "unknown fal status; waiting"),
            }
        }

        // The result of a request that failed comes back here as an error status and body.
        let result = self.get("fetching the result", &response_url, &auth).await?;
        if port == PortType::Text {
            let text = ["/output", "/text"]
                .iter()
                .find_map(|p| result.pointer(p).and_then(Value::as_str))
                .ok_or_else(|| self.http.invalid("the result has no text"))?;
            return Ok(Outputs::from([(
                output_name.to_owned(),
                OutputValue::text(truncate(text, self.max_text_chars)),
            )]));
        }
        let url = output_url(&result, port)
            .ok_or_else(|| self.http.invalid(format!("the result has no {port} file")))?
            .to_owned();
        download_result(&ctx, &self.http, &url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_drop_the_endpoint_path() {
        assert_eq!(
            app_id("fal-ai/kling-video/v2.1/master/text-to-video").as_deref(),
            Some("fal-ai/kling-video")
        );
        assert_eq!(app_id("fal-ai/trellis").as_deref(), Some("fal-ai/trellis"));
        assert_eq!(app_id("fal-ai"), None);
        assert_eq!(app_id("fal-ai/../admin"), None);
    }

    #[test]
    fn the_log_tail_reads_the_last_lines_only() {
        let lines: Vec<LogLine> = (0..10_000).map(|i| LogLine { message: format!("line {i}") }).collect();
        let tail = log_tail(&lines);
        assert!(tail.ends_with("line 9998\nline 9999"), "{tail}");
        assert!(tail.len() < 2 * MAX_PREVIEW_TEXT_BYTES, "{}", tail.len());
        assert_eq!(log_tail(&[]), "");
    }

    #[test]
    fn outputs_are_found_by_port_type() {
        let images = json!({"images": [{"url": "https://v3.fal.media/a.png", "width": 8}], "seed": 1});
        assert_eq!(output_url(&images, PortType::Image), Some("https://v3.fal.media/a.png"));
        let video = json!({"video": {"url": "https://v3.fal.media/v.mp4"}});
        assert_eq!(output_url(&video, PortType::Video), Some("https://v3.fal.media/v.mp4"));
        let mesh =
            json!({"model_mesh": {"url": "https://v3.fal.media/m.glb", "content_type": "model/gltf-binary"}});
        assert_eq!(output_url(&mesh, PortType::Mesh), Some("https://v3.fal.media/m.glb"));
        assert_eq!(output_url(&mesh, PortType::Image), None);
    }
}
