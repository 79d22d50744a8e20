//! Stability AI: multipart `POST /v2beta/stable-image/generate/sd3` (or `/core`, `/ultra`) with
//! `Accept: image/*`; the answer is the image itself, with `finish-reason` and `seed` headers
//! (or, if JSON comes back, `{image: base64, finish_reason, seed}`). Errors are
//! `{id, name, errors: [...]}`. Synchronous: cancelling just drops the request.

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Url};
use serde_json::{Map, Value};

use super::http::{CallError, Downloaded, Http, auth_value};
use super::{
    ApiKey, InputImage, Progress, ProviderConfig, image_input, model, params_object, prompt, store_result,
};
use crate::catalog::ProviderName;
use crate::node::{NodeContext, NodeError, NodeRunner};
use crate::value::Outputs;

pub struct StabilityRunner {
    http: Http,
    base: Url,
    /// The server's key; `None`: only nodes with a team's key run here.
    key: Option<ApiKey>,
}

impl StabilityRunner {
    pub(crate) fn new(http: Http, base: Url, key: Option<ApiKey>, _config: &ProviderConfig) -> Self {
        Self { http, base, key }
    }
}

/// The endpoint for a catalog model id, and the `model` field it needs: the SD3 endpoint
/// serves several models (`sd3.5-large`, `sd3.5-medium`…); Core and Ultra are endpoints of
/// their own.
fn endpoint(model: &str) -> Option<(&'static str, Option<&str>)> {
    if model.starts_with("sd3") {
        Some(("sd3", Some(model)))
    } else {
        match model {
            "core" => Some(("core", None)),
            "ultra" => Some(("ultra", None)),
            _ => None,
        }
    }
}

/// The form fields besides the image: the prompt, PNG output, and the node's parameters as the
/// API names them, minus what does not apply to the mode (aspect ratio is for text-to-image,
/// strength for image-to-image) and empty optional strings.
fn fields(
    model_field: Option<&str>,
    prompt: &str,
    params: &Map<String, Value>,
    with_image: bool,
) -> Vec<(String, String)> {
    let mut fields =
        vec![("prompt".to_owned(), prompt.to_owned()), ("output_format".to_owned(), "png".to_owned())];
    if let Some(model) = model_field {
        fields.push(("model".into(), model.into()));
    }
    fields.push(("mode".into(), if with_image { "image-to-image" } else { "text-to-image" }.into()));
    for (name, value) in params {
        let skip = match name.as_str() {
            "aspect_ratio" => with_image,
            "strength" => !with_image,
            _ => false,
        };
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        if !skip && !text.is_empty() {
            fields.push((name.clone(), text));
        }
    }
    fields
}

fn form(fields: &[(String, String)], image: Option<&InputImage>) -> Result<Form, CallError> {
    let mut form = Form::new();
    for (name, value) in fields {
        form = form.text(name.clone(), value.clone());
    }
    if let Some(image) = image {
        let part = Part::bytes(image.bytes.clone())
            .file_name(image.file_name())
            .mime_str(&image.content_type)
            .map_err(|_| CallError::Invalid(format!("{} is not a MIME type", image.content_type)))?;
        form = form.part("image", part);
    }
    Ok(form)
}

#[async_trait]
impl NodeRunner for StabilityRunner {
    async fn run(&self, ctx: NodeContext<'_>) -> Result<Outputs, NodeError> {
        let model = model(&ctx)?;
        let (path, model_field) = endpoint(model)
            .ok_or_else(|| NodeError::Internal(format!("{model:?} is not a Stability model")))?;
        let prompt = prompt(&ctx, true)?.unwrap_or_default();
        let image = image_input(&ctx, "image").await?;
        let fields = fields(model_field, &prompt, &params_object(&ctx), image.is_some());
        let auth =
            auth_value("Bearer", super::run_key(ctx.api_key, self.key.as_ref(), ProviderName::Stability)?)
                .map_err(|e| self.http.invalid(e.to_string()))?;
        let url = format!("{}/v2beta/stable-image/generate/{path}", self.base.as_str().trim_end_matches('/'));
        let mut progress = Progress::new(ctx.progress);
        progress.at(5).await;

        let call = self.http.call(
            "generating the image",
            self.http.generation_timeout,
            self.http.max_api_body(),
            || {
                Ok(self
                    .http
                    .request(Method::POST, &url)
                    .header(AUTHORIZATION, auth.clone())
                    .header(ACCEPT, "image/*")
                    .multipart(form(&fields, image.as_ref())?))
            },
        );
        let reply = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(NodeError::Cancelled),
            reply = call => reply.map_err(|f| self.http.error("generating the image", f))?,
        };
        progress.at(90).await;

        let (bytes, content_type, finish_reason) = if reply.content_type() == Some("application/json") {
            let json: Value = reply.json().map_err(|e| self.http.invalid(e.to_string()))?;
            let b64 = json
                .get("image")
                .and_then(Value::as_str)
                .ok_or_else(|| self.http.invalid("the answer has no image"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| self.http.invalid("the image in the answer is not valid base64"))?;
            let reason = json.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
            (bytes, None, reason)
        } else {
            let reason = reply.header("finish-reason").map(str::to_owned);
            let content_type = reply.content_type().map(str::to_owned);
            (reply.body, content_type, reason)
        };
        // A filtered image comes back blurred with a success status: not what was asked for.
        if finish_reason.as_deref() == Some("CONTENT_FILTERED") {
            return Err(self.http.invalid("the image was blocked by Stability's content filter"));
        }
        store_result(&ctx, &self.http, Downloaded { bytes, content_type, url: None }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_follow_the_mode() {
        let params: Map<String, Value> = [
            ("aspect_ratio".to_owned(), json!("16:9")),
            ("strength".to_owned(), json!(0.5)),
            ("negative_prompt".to_owned(), json!("")),
            ("seed".to_owned(), json!(42)),
        ]
        .into_iter()
        .collect();
        let t2i = fields(Some("sd3.5-large"), "a fox", &params, false);
        let names: Vec<&str> = t2i.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["prompt", "output_format", "model", "mode", "aspect_ratio", "seed"]);
        let i2i = fields(Some("sd3.5-large"), "a fox", &params, true);
        assert!(i2i.contains(&("mode".into(), "image-to-image".into())));
        assert!(i2i.contains(&("strength".into(), "0.5".into())));
        assert!(!i2i.iter().any(|(n, _)| n == "aspect_ratio"));
        assert_eq!(endpoint("ultra"), Some(("ultra", None)));
        assert_eq!(endpoint("sdxl"), None);
    }
}
