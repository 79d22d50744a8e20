//! A local stand-in for Replicate's HTTP API (the only kind of mock these suites use: a paid
//! third-party provider), answering in its documented shapes: `POST /v1/models/{owner}/{name}/
//! predictions` creates a prediction, `GET /v1/predictions/{id}` reports it, `POST
//! /v1/predictions/{id}/cancel` cancels it, and outputs are file URLs.
//!
//! Each prediction's fate is chosen by its prompt: held ones stay `processing` until released,
//! failing ones end `failed` with a reason, progressive ones stay `processing` for a number of
//! polls with growing `logs` and an intermediate `output` (as models that fill their output
//! progressively do), the rest succeed with a small PNG. It counts the predictions created per
//! prompt, so a story can prove a node did not run twice.
//!
//! Files: `/files/out.png` (the result), `/files/step-{n}.png` (a PNG of its own per `n`, for
//! intermediate images), `/files/huge.png` (5 MiB declared as a PNG), `/files/page.html` (a web
//! page).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const KEY: &str = "r8_test_replicate";

/// A prediction that reports progress before it succeeds: for each poll `n` (from 1) of the
/// first `polls`, it is `processing` with `log(n)` as its `logs` and, when `image(n)` names a
/// file path, that file's URL as its `output` (a list of one, flux's shape).
#[derive(Clone, Copy)]
pub struct Progressive {
    pub polls: u32,
    pub log: fn(u32) -> String,
    pub image: fn(u32) -> Option<String>,
}

#[derive(Default)]
struct State {
    progressive: BTreeMap<String, Progressive>,
    /// Polls answered per prediction id.
    polls: HashMap<String, u32>,
    created: BTreeMap<String, u32>,
    prompts: HashMap<String, String>,
    held: BTreeSet<String>,
    failing: BTreeMap<String, String>,
    cancelled: BTreeSet<String>,
    /// The `Authorization` header of every prediction created, per prompt, in order.
    authorizations: BTreeMap<String, Vec<String>>,
}

pub struct Replicate {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl Replicate {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state: Arc<Mutex<State>> = Arc::default();
        let base = server.uri();

        let (create_state, create_base) = (state.clone(), base.clone());
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/models/[^/]+/[^/]+/predictions$"))
            .respond_with(move |request: &Request| {
                let Some(prompt) = prompt_of(request) else {
                    return ResponseTemplate::new(422).set_body_json(
                        json!({"title": "Invalid input", "status": 422, "detail": "prompt is required"}),
                    );
                };
                let mut state = create_state.lock().expect("lock");
                let authorization = request
                    .headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                state.authorizations.entry(prompt.clone()).or_default().push(authorization);
                let id = format!("p{}", state.prompts.len() + 1);
                *state.created.entry(prompt.clone()).or_default() += 1;
                state.prompts.insert(id.clone(), prompt);
                ResponseTemplate::new(201).set_body_json(prediction(
                    &create_base,
                    &id,
                    "starting",
                    Value::Null,
                    None,
                ))
            })
            .mount(&server)
            .await;

        let (poll_state, poll_base) = (state.clone(), base.clone());
        Mock::given(method("GET"))
            .and(path_regex(r"^/v1/predictions/[^/]+$"))
            .respond_with(move |request: &Request| {
                let id = request.url.path().rsplit('/').next().unwrap_or_default().to_owned();
                let mut state = poll_state.lock().expect("lock");
                let Some(prompt) = state.prompts.get(&id).cloned() else {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({"detail": "Not found.", "status": 404}));
                };
                let polls = {
                    let count = state.polls.entry(id.clone()).or_default();
                    *count += 1;
                    *count
                };
                let progressive = state.progressive.get(&prompt).copied().filter(|p| polls <= p.polls);
                let prompt = &prompt;
                let body = if let Some(script) = progressive {
                    let output = match (script.image)(polls) {
                        Some(file) => json!([format!("{poll_base}{file}")]),
                        None => Value::Null,
                    };
                    let mut body = prediction(&poll_base, &id, "processing", output, None);
                    body["logs"] = Value::String((script.log)(polls));
                    body
                } else if state.cancelled.contains(&id) {
                    prediction(&poll_base, &id, "canceled", Value::Null, None)
                } else if let Some(reason) = state.failing.get(prompt) {
                    prediction(&poll_base, &id, "failed", Value::Null, Some(reason))
                } else if state.held.contains(prompt) {
                    prediction(&poll_base, &id, "processing", Value::Null, None)
                } else {
                    let output = format!("{poll_base}/files/out.png");
                    prediction(&poll_base, &id, "succeeded", json!([output]), None)
                };
                ResponseTemplate::new(200).set_body_json(body)
            })
            .mount(&server)
            .await;

        let (cancel_state, cancel_base) = (state.clone(), base.clone());
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1/predictions/[^/]+/cancel$"))
            .respond_with(move |request: &Request| {
                let id = request.url.path().split('/').nth(3).unwrap_or_default().to_owned();
                cancel_state.lock().expect("lock").cancelled.insert(id.clone());
                ResponseTemplate::new(200).set_body_json(prediction(
                    &cancel_base,
                    &id,
                    "canceled",
                    Value::Null,
                    None,
                ))
            })
            .mount(&server)
            .await;

        let png = dojo_executor::builtins::imaging::encode_png(&image::DynamicImage::ImageRgba8(
            image::RgbaImage::from_pixel(8, 8, image::Rgba([200, 40, 40, 255])),
        ))
        .expect("encode a PNG");
        Mock::given(method("GET"))
            .and(path("/files/out.png"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(png, "image/png"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/files/step-\d+\.png$"))
            .respond_with(|request: &Request| {
                let step: u8 = request
                    .url
                    .path()
                    .trim_start_matches("/files/step-")
                    .trim_end_matches(".png")
                    .parse::<u32>()
                    .map_or(0, |n| (n % 256) as u8);
                let png = dojo_executor::builtins::imaging::encode_png(&image::DynamicImage::ImageRgba8(
                    image::RgbaImage::from_pixel(8, 8, image::Rgba([step, 120, 200, 255])),
                ))
                .expect("encode a PNG");
                ResponseTemplate::new(200).set_body_raw(png, "image/png")
            })
            .mount(&server)
            .await;
        let mut huge = b"\x89PNG\r\n\x1a\n".to_vec();
        huge.resize(5 * 1024 * 1024, 0);
        Mock::given(method("GET"))
            .and(path("/files/huge.png"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(huge, "image/png"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/files/page.html"))
            .respond_with(ResponseTemplate::new(200).set_body_raw("<html>hello</html>", "text/html"))
            .mount(&server)
            .await;

        Self { server, state }
    }

    /// Predictions of `prompt` stay `processing` until [`release`](Self::release).
    pub fn hold(&self, prompt: &str) {
        self.state.lock().expect("lock").held.insert(prompt.to_owned());
    }

    pub fn release(&self, prompt: &str) {
        self.state.lock().expect("lock").held.remove(prompt);
    }

    /// Predictions of `prompt` follow `script` before they succeed.
    pub fn progressive(&self, prompt: &str, script: Progressive) {
        self.state.lock().expect("lock").progressive.insert(prompt.to_owned(), script);
    }

    /// Polls answered for the predictions of `prompt`.
    pub fn polls(&self, prompt: &str) -> u32 {
        let state = self.state.lock().expect("lock");
        state
            .polls
            .iter()
            .filter(|(id, _)| state.prompts.get(*id).is_some_and(|p| p == prompt))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests for files whose path starts with `prefix` (`/files/step-`, say).
    pub async fn file_requests(&self, prefix: &str) -> usize {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.url.path().starts_with(prefix)).count()
    }

    /// Predictions of `prompt` end `failed` with `reason`.
    pub fn fail(&self, prompt: &str, reason: &str) {
        self.state.lock().expect("lock").failing.insert(prompt.to_owned(), reason.to_owned());
    }

    /// Predictions created for `prompt` so far.
    pub fn created(&self, prompt: &str) -> u32 {
        self.state.lock().expect("lock").created.get(prompt).copied().unwrap_or(0)
    }

    /// The `Authorization` headers the predictions of `prompt` were created with, in order.
    pub fn authorizations(&self, prompt: &str) -> Vec<String> {
        self.state.lock().expect("lock").authorizations.get(prompt).cloned().unwrap_or_default()
    }

    /// Predictions of `prompt` that were cancelled.
    pub fn cancelled(&self, prompt: &str) -> usize {
        let state = self.state.lock().expect("lock");
        state.cancelled.iter().filter(|id| state.prompts.get(*id).is_some_and(|p| p == prompt)).count()
    }

    /// Waits until `check` holds (at most `within`).
    pub async fn wait(&self, what: &str, within: Duration, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !check(self) {
            assert!(tokio::time::Instant::now() < deadline, "the Replicate stand-in never saw: {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The environment a `dojo-worker` or `dojo-server` process reads its Replicate settings
    /// from (results come from 127.0.0.1, so private downloads are allowed).
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("REPLICATE_API_TOKEN", KEY.to_owned()),
            ("REPLICATE_BASE_URL", self.server.uri()),
            (dojo_executor::providers::ALLOW_PRIVATE_DOWNLOADS_VAR, "1".to_owned()),
        ]
    }

    /// The same settings in-process, with short waits for tests.
    pub fn config(&self) -> dojo_executor::ProviderConfig {
        let uri = self.server.uri();
        let mut config = dojo_executor::ProviderConfig::from_lookup(|name| match name {
            "REPLICATE_API_TOKEN" => Some(KEY.to_owned()),
            "REPLICATE_BASE_URL" => Some(uri.clone()),
            _ => None,
        })
        .expect("a valid provider configuration");
        config.poll_interval = Duration::from_millis(50);
        config.replicate_wait = Duration::from_secs(1);
        // The stand-in serves results from 127.0.0.1.
        config.allow_private_downloads = true;
        config
    }
}

fn prompt_of(request: &Request) -> Option<String> {
    let body: Value = serde_json::from_slice(&request.body).ok()?;
    Some(body["input"]["prompt"].as_str()?.to_owned())
}

fn prediction(base: &str, id: &str, status: &str, output: Value, error: Option<&String>) -> Value {
    json!({
        "id": id,
        "model": "black-forest-labs/flux-schnell",
        "version": "hidden",
        "input": {},
        "status": status,
        "logs": "",
        "output": output,
        "error": error,
        "created_at": "2026-01-01T00:00:00.000Z",
        "urls": {
            "get": format!("{base}/v1/predictions/{id}"),
            "cancel": format!("{base}/v1/predictions/{id}/cancel"),
        }
    })
}
