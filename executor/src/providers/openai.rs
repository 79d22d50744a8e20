//! OpenAI: images with `POST /v1/images/generations` (JSON; DALL·E 3 asked for `b64_json`,
//! GPT Image always answers with it) or, for GPT Image with an input image,
//! `POST /v1/images/edits` (multipart); text with `POST /v1/chat/completions`. All synchronous:
//! there is no remote job to cancel, so cancelling just drops the request.

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

use super::http::{CallError, Downloaded, Http, Reply, auth_value, truncate};
use super::{
    ApiKey, InputImage, Progress, ProviderConfig, download_result, image_input, model, output_port,
    params_object, prompt, store_result,
};
use crate::catalog::{PortType, ProviderName};
use crate::node::{NodeContext, NodeError, NodeRunner};
use crate::value::{OutputValue, Outputs};

pub struct OpenAiRunner {
    http: Http,
    base: Url,
    /// The server's key; `None`: only nodes with a team's key run here.
    key: Option<ApiKey>,
    max_text_chars: usize,
}

impl OpenAiRunner {
    pub(crate) fn new(http: Http, base: Url, key: Option<ApiKey>, config: &ProviderConfig) -> Self {
        Self { http, base, key, max_text_chars: config.max_text_chars }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// One synchronous call, abandoned (not retried) when the run is cancelled.
    async fn send<F>(&self, ctx: &NodeContext<'_>, what: &str, build: F) -> Result<Reply, NodeError>
    where
        F: Fn() -> Result<reqwest::RequestBuilder, CallError>,
    {
        let call = self.http.call(what, self.http.generation_timeout, self.http.max_api_body(), build);
        tokio::select! {
            () = ctx.cancel.cancelled() => Err(NodeError::Cancelled),
            reply = call => reply.map_err(|f| self.http.error(what, f)),
        }
    }

    async fn image(&self, ctx: &NodeContext<'_>, model: &str) -> Result<Outputs, NodeError> {
        let prompt = prompt(ctx, true)?.unwrap_or_default();
        let auth =
            auth_value("Bearer", super::run_key(ctx.api_key, self.key.as_ref(), ProviderName::Openai)?)
                .map_err(|e| self.http.invalid(e.to_string()))?;
        let params = params_object(ctx);
        let mut progress = Progress::new(ctx.progress);
        progress.at(5).await;
        let reply = match image_input(ctx, "image").await? {
            Some(image) => {
                let url = self.url("v1/images/edits");
                self.send(ctx, "editing the image", || {
                    let form = edit_form(model, &prompt, &params, &image)?;
                    Ok(self
                        .http
                        .request(Method::POST, &url)
                        .header(AUTHORIZATION, auth.clone())
                        .multipart(form))
                })
                .await?
            }
            None => {
                let url = self.url("v1/images/generations");
                let body = generation_body(model, &prompt, params);
                self.send(ctx, "generating the image", || {
                    Ok(self.http.request(Method::POST, &url).header(AUTHORIZATION, auth.clone()).json(&body))
                })
                .await?
            }
        };
        progress.at(90).await;
        let json: Value =
            reply.json().map_err(|e| self.http.invalid(format!("generating the image: {e}")))?;
        let first = json.pointer("/data/0").ok_or_else(|| self.http.invalid("the answer has no image"))?;
        if let Some(b64) = first.get("b64_json").and_then(Value::as_str) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| self.http.invalid("the image in the answer is not valid base64"))?;
            let downloaded = Downloaded { bytes, content_type: None, url: None };
            return store_result(ctx, &self.http, downloaded).await;
        }
        match first.get("url").and_then(Value::as_str) {
            Some(url) => download_result(ctx, &self.http, url).await,
            None => Err(self.http.invalid("the answer has neither b64_json nor url")),
        }
    }

    async fn chat(&self, ctx: &NodeContext<'_>, model: &str, output: &str) -> Result<Outputs, NodeError> {
        let prompt = prompt(ctx, true)?.unwrap_or_default();
        let image = image_input(ctx, "image").await?;
        let system = ctx.param_str("system").unwrap_or_default().trim().to_owned();
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        let mut content = vec![json!({"type": "text", "text": prompt})];
        if let Some(image) = &image {
            content.push(json!({"type": "image_url", "image_url": {"url": image.data_uri()}}));
        }
        messages.push(json!({"role": "user", "content": content}));
        let mut body = json!({"model": model, "messages": messages});
        if let Ok(temperature) = ctx.param_f64("temperature") {
            body["temperature"] = json!(temperature);
        }
        if let Ok(max_tokens) = ctx.param_i64("max_tokens") {
            body["max_completion_tokens"] = json!(max_tokens);
        }
        let auth =
            auth_value("Bearer", super::run_key(ctx.api_key, self.key.as_ref(), ProviderName::Openai)?)
                .map_err(|e| self.http.invalid(e.to_string()))?;
        let url = self.url("v1/chat/completions");
        let reply = self
            .send(ctx, "generating text", || {
                Ok(self.http.request(Method::POST, &url).header(AUTHORIZATION, auth.clone()).json(&body))
            })
            .await?;
        let json: Value = reply.json().map_err(|e| self.http.invalid(format!("generating text: {e}")))?;
        let message = json
            .pointer("/choices/0/message")
            .ok_or_else(|| self.http.invalid("the answer has no message"))?;
        let text = match message.get("content").and_then(Value::as_str) {
            Some(text) => text,
            None => {
                let refusal =
                    message.get("refusal").and_then(Value::as_str).unwrap_or("no text in the answer");
                return Err(self.http.invalid(format!("the model gave no text: {}", truncate(refusal, 400))));
            }
        };
        Ok(Outputs::from([(output.to_owned(), OutputValue::text(truncate(text, self.max_text_chars)))]))
    }
}

fn generation_body(model: &str, prompt: &str, params: Map<String, Value>) -> Value {
    let mut body = params;
    body.insert("model".into(), json!(model));
    body.insert("prompt".into(), json!(prompt));
    body.insert("n".into(), json!(1));
    if model.starts_with("dall-e") {
        // Inline bytes: no second request, and no URL that expires after an hour.
        body.insert("response_format".into(), json!("b64_json"));
    } else if model.starts_with("gpt-image") {
        body.insert("output_format".into(), json!("png"));
    }
    Value::Object(body)
}

fn edit_form(
    model: &str,
    prompt: &str,
    params: &Map<String, Value>,
    image: &InputImage,
) -> Result<Form, CallError> {
    let part = Part::bytes(image.bytes.clone())
        .file_name(image.file_name())
        .mime_str(&image.content_type)
        .map_err(|_| CallError::Invalid(format!("{} is not a MIME type", image.content_type)))?;
    let mut form = Form::new()
        .text("model", model.to_owned())
        .text("prompt", prompt.to_owned())
        .text("n", "1")
        .part("image", part);
    for (name, value) in params {
        form = form.text(name.clone(), form_value(value));
    }
    Ok(form)
}

fn form_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl NodeRunner for OpenAiRunner {
    async fn run(&self, ctx: NodeContext<'_>) -> Result<Outputs, NodeError> {
        let model = model(&ctx)?;
        let (output, port) = output_port(&ctx)?;
        match port {
            PortType::Image => self.image(&ctx, model).await,
            PortType::Text => self.chat(&ctx, model, output).await,
            other => Err(NodeError::Internal(format!("OpenAI nodes cannot produce {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dall_e_asks_for_base64_and_gpt_image_for_png() {
        let params: Map<String, Value> = [("size".to_owned(), json!("1024x1024"))].into_iter().collect();
        let dalle = generation_body("dall-e-3", "a fox", params.clone());
        assert_eq!(dalle["response_format"], "b64_json");
        assert_eq!(dalle["size"], "1024x1024");
        assert_eq!(dalle["n"], 1);
        let gpt = generation_body("gpt-image-1", "a fox", params);
        assert!(gpt.get("response_format").is_none());
        assert_eq!(gpt["output_format"], "png");
    }
}
