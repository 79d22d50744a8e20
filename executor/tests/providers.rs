//! The provider adapters end to end: a real engine, a real asset directory, and local HTTP
//! stand-ins (wiremock) that answer in each provider's documented shapes, errors included.
//! Every graph is the real flow: a text prompt wired into a provider node.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dojo_executor::builtins::imaging;
use dojo_executor::catalog::BUILTIN_CATALOG_JSON;
use dojo_executor::{
    AssetStore, Engine, ExecutionPlan, GraphLimits, LoadedCatalog, MemoryCache, NodeOutcome, NodeState,
    ObjectAssetStore, OutputValue, ProviderConfig, RecordingObserver, RetryPolicy, RunSummary,
    register_providers, validate,
};
use dojo_ids::RunId;
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasGraph, CanvasNode, Position};
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_partial_json, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const OPENAI_KEY: &str = "sk-test-openai";
const REPLICATE_KEY: &str = "r8_test_replicate";
const FAL_KEY: &str = "fal-test-key";
const STABILITY_KEY: &str = "sk-test-stability";

// ---------------------------------------------------------------------------------------------
// Harness

fn node(id: &str, node_type: &str, data: Value) -> CanvasNode {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    CanvasNode { id: id.into(), node_type: node_type.into(), position: Position { x: 0.0, y: 0.0 }, data }
}

/// prompt → `node_type` (the node is called `gen`).
fn prompt_graph(prompt: &str, node_type: &str, params: Value) -> CanvasGraph {
    CanvasGraph {
        nodes: vec![node("prompt", "text-prompt", json!({ "text": prompt })), node("gen", node_type, params)],
        edges: vec![CanvasEdge {
            id: "e1".into(),
            source: "prompt".into(),
            source_handle: Some("text".into()),
            target: "gen".into(),
            target_handle: Some("prompt".into()),
        }],
    }
}

/// Settings small enough for tests: fast polls and backoff, short timeouts.
fn test_config(server: &MockServer) -> ProviderConfig {
    let mut config = ProviderConfig::from_lookup(|name| {
        let value = match name {
            "OPENAI_API_KEY" => OPENAI_KEY,
            "REPLICATE_API_TOKEN" => REPLICATE_KEY,
            "FAL_KEY" => FAL_KEY,
            "STABILITY_API_KEY" => STABILITY_KEY,
            n if n.ends_with("_BASE_URL") => return Some(server.uri()),
            _ => return None,
        };
        Some(value.to_owned())
    })
    .expect("valid test configuration");
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    };
    config.poll_interval = Duration::from_millis(30);
    config.request_timeout = Duration::from_secs(3);
    config.generation_timeout = Duration::from_secs(3);
    config.download_timeout = Duration::from_secs(3);
    config.replicate_wait = Duration::from_secs(1);
    // The stand-ins serve results from 127.0.0.1.
    config.allow_private_downloads = true;
    config
}

struct Harness {
    _dir: tempfile::TempDir,
    server: MockServer,
    assets: Arc<ObjectAssetStore>,
    engine: Engine,
    catalog: LoadedCatalog,
}

impl Harness {
    async fn new() -> Self {
        Self::with(|_| {}, LoadedCatalog::builtin().expect("catalog").clone()).await
    }

    async fn with(tweak: impl FnOnce(&mut ProviderConfig), catalog: LoadedCatalog) -> Self {
        let server = MockServer::start().await;
        let mut config = test_config(&server);
        tweak(&mut config);
        let dir = tempfile::tempdir().expect("tempdir");
        let assets = Arc::new(ObjectAssetStore::local(dir.path()).expect("asset store"));
        let engine = Engine::new(Arc::new(catalog.clone()), assets.clone(), Arc::new(MemoryCache::default()));
        let engine = register_providers(engine, &config);
        Harness { _dir: dir, server, assets, engine, catalog }
    }

    fn plan(&self, graph: &CanvasGraph) -> ExecutionPlan {
        validate(&self.catalog, graph, None, &GraphLimits::default()).expect("valid graph")
    }

    async fn run(&self, graph: &CanvasGraph) -> (RunSummary, RecordingObserver) {
        self.run_cancelling(graph, &CancellationToken::new()).await
    }

    async fn run_cancelling(
        &self,
        graph: &CanvasGraph,
        cancel: &CancellationToken,
    ) -> (RunSummary, RecordingObserver) {
        let plan = self.plan(graph);
        let observer = RecordingObserver::default();
        let summary = self.engine.run(&RunId::from("run-1"), &plan, &observer, cancel).await;
        (summary, observer)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.uri())
    }

    /// The stored image of a succeeded node, decoded as a PNG (which it must be).
    async fn stored_png(&self, summary: &RunSummary, node: &str) -> (Vec<u8>, RgbaImage) {
        let outputs = summary.outputs(node).unwrap_or_else(|| panic!("{node} has outputs: {summary:?}"));
        let asset = outputs.values().next().and_then(OutputValue::as_asset).expect("an asset output");
        assert_eq!(asset.content_type, "image/png");
        let stored = self.assets.get(&asset.id).await.expect("stored asset");
        let image = imaging::decode_png(&stored.bytes).expect("a valid PNG");
        (stored.bytes, image)
    }

    async fn requests(&self, verb: &str, path: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path() == path)
            .collect()
    }

    /// Waits (at most 5 s) until the stand-in has received `verb path`.
    async fn wait_for(&self, verb: &str, path: &str) -> Request {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(request) = self.requests(verb, path).await.into_iter().next() {
                return request;
            }
            assert!(Instant::now() < deadline, "{verb} {path} never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn png_bytes(width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, y| Rgba([(x * 20) as u8, (y * 20) as u8, 128, 255]));
    imaging::encode_png(&DynamicImage::ImageRgba8(img)).expect("png")
}

fn jpeg_bytes(width: u32, height: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(width, height, image::Rgb([10, 200, 30])));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Jpeg).expect("jpeg");
    out
}

/// A multipart body (with binary parts, which `body_string_contains` cannot read) holding `text`.
fn body_bytes_contain(text: &'static str) -> impl Fn(&Request) -> bool {
    move |request: &Request| request.body.windows(text.len()).any(|w| w == text.as_bytes())
}

/// Answers in turn with `responses` (the last one repeats), noting when each request came.
struct Sequence {
    responses: Vec<ResponseTemplate>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Sequence {
    fn new(responses: Vec<ResponseTemplate>) -> (Self, Arc<Mutex<Vec<Instant>>>) {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        (Self { responses, arrivals: arrivals.clone() }, arrivals)
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        arrivals.push(Instant::now());
        let i = (arrivals.len() - 1).min(self.responses.len() - 1);
        self.responses[i].clone()
    }
}

fn progress_of(observer: &RecordingObserver, node: &str) -> Vec<u8> {
    observer
        .events()
        .iter()
        .filter(|e| e.node_id == node)
        .filter_map(|e| match e.state {
            NodeState::Running { progress } => Some(progress),
            _ => None,
        })
        .collect()
}

/// The texts of the live previews one node showed, in order.
fn preview_texts(observer: &RecordingObserver, node: &str) -> Vec<String> {
    observer
        .events()
        .into_iter()
        .filter(|e| e.node_id == node)
        .filter_map(|e| match e.state {
            NodeState::Preview { preview } => preview.text().map(str::to_owned),
            _ => None,
        })
        .collect()
}

fn failure(summary: &RunSummary, node: &str) -> String {
    match summary.nodes.get(node) {
        Some(NodeOutcome::Failed { error }) => error.clone(),
        other => panic!("{node} should have failed: {other:?}"),
    }
}

async fn serve_file(server: &MockServer, file: &str, bytes: Vec<u8>, content_type: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/files/{file}")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes, content_type))
        .mount(server)
        .await;
}

/// `verb route` answered with `status` and the JSON `body`.
fn json_mock(verb: &str, route: impl Into<String>, status: u16, body: Value) -> Mock {
    Mock::given(method(verb)).and(path(route)).respond_with(ResponseTemplate::new(status).set_body_json(body))
}

fn prediction(h: &Harness, id: &str, status: &str, logs: &str, output: Value) -> Value {
    json!({
        "id": id,
        "model": "black-forest-labs/flux-1.1-pro-ultra",
        "version": "hidden",
        "input": {},
        "status": status,
        "logs": logs,
        "output": output,
        "error": null,
        "created_at": "2025-01-01T00:00:00.000Z",
        "urls": {
            "get": h.url(&format!("/v1/predictions/{id}")),
            "cancel": h.url(&format!("/v1/predictions/{id}/cancel")),
            "stream": h.url(&format!("/v1/predictions/{id}/stream")),
        }
    })
}

fn fal_submitted(h: &Harness, app: &str, id: &str) -> Value {
    json!({
        "request_id": id,
        "response_url": h.url(&format!("/{app}/requests/{id}")),
        "status_url": h.url(&format!("/{app}/requests/{id}/status")),
        "cancel_url": h.url(&format!("/{app}/requests/{id}/cancel")),
        "queue_position": 0
    })
}

// ---------------------------------------------------------------------------------------------
// Success, one per provider

#[tokio::test]
async fn openai_images_come_back_as_base64_and_are_stored() {
    use base64::Engine as _;
    let h = Harness::new().await;
    let png = png_bytes(12, 8);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .and(body_partial_json(json!({
            "model": "dall-e-3",
            "prompt": "a red fox in the snow",
            "n": 1,
            "size": "1792x1024",
            "quality": "hd",
            "style": "vivid",
            "response_format": "b64_json"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1_700_000_000,
            "data": [{
                "b64_json": base64::engine::general_purpose::STANDARD.encode(&png),
                "revised_prompt": "A red fox standing in fresh snow"
            }]
        })))
        .expect(1)
        .mount(&h.server)
        .await;

    let graph =
        prompt_graph("a red fox in the snow", "dall-e-3", json!({"size": "1792x1024", "quality": "hd"}));
    let (summary, observer) = h.run(&graph).await;
    assert!(summary.succeeded(), "{summary:?}");
    let (stored, image) = h.stored_png(&summary, "gen").await;
    assert_eq!(stored, png, "the provider's PNG is stored byte for byte");
    assert_eq!(image.dimensions(), (12, 8));
    assert_eq!(summary.charged, 8, "DALL·E 3 costs 8 credits");
    assert_eq!(observer.states_of("gen").last(), Some(&"succeeded"));
    h.server.verify().await;
}

#[tokio::test]
async fn an_input_image_goes_to_openai_image_edits_as_a_file() {
    use base64::Engine as _;
    let h = Harness::new().await;
    let source = png_bytes(8, 8);
    let uploaded = h.assets.put(source.clone(), "image/png").await.expect("upload");
    let result = png_bytes(8, 8 + 1);
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .and(body_bytes_contain("name=\"model\"\r\n\r\ngpt-image-1\r\n"))
        .and(body_bytes_contain("name=\"prompt\"\r\n\r\nmake it blue\r\n"))
        .and(body_bytes_contain("name=\"background\"\r\n\r\ntransparent\r\n"))
        .and(body_bytes_contain("name=\"image\"; filename=\"image.png\"\r\nContent-Type: image/png\r\n"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1,
            "data": [{"b64_json": base64::engine::general_purpose::STANDARD.encode(&result)}],
            "usage": {"total_tokens": 100}
        })))
        .expect(1)
        .mount(&h.server)
        .await;

    let mut graph = prompt_graph("make it blue", "gpt-image-1", json!({"background": "transparent"}));
    graph.nodes.push(node("img", "image-input", json!({"asset": uploaded.id})));
    graph.edges.push(CanvasEdge {
        id: "e2".into(),
        source: "img".into(),
        source_handle: Some("image".into()),
        target: "gen".into(),
        target_handle: Some("image".into()),
    });
    let (summary, _) = h.run(&graph).await;
    assert!(summary.succeeded(), "{summary:?}");
    let (stored, _) = h.stored_png(&summary, "gen").await;
    assert_eq!(stored, result);
    // The uploaded file travels whole inside the multipart body.
    let request = h.wait_for("POST", "/v1/images/edits").await;
    assert!(request.body.windows(source.len()).any(|w| w == source.as_slice()));
    h.server.verify().await;
}

#[tokio::test]
async fn openai_text_comes_from_chat_completions() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .and(body_partial_json(json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": [{"type": "text", "text": "Name a colour"}]}
            ],
            "temperature": 0.5,
            "max_completion_tokens": 64
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4.1-2025-04-14",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Teal", "refusal": null},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}
        })))
        .expect(1)
        .mount(&h.server)
        .await;

    let graph = prompt_graph(
        "Name a colour",
        "gpt-4.1",
        json!({"system": "Answer in one word.", "temperature": 0.5, "max_tokens": 64}),
    );
    let (summary, _) = h.run(&graph).await;
    assert_eq!(summary.outputs("gen").expect("outputs")["text"], OutputValue::text("Teal"));
    h.server.verify().await;
}

#[tokio::test]
async fn replicate_is_polled_until_succeeded_and_reports_progress() {
    let h = Harness::new().await;
    let png = png_bytes(16, 16);
    serve_file(&h.server, "out.png", png.clone(), "image/png").await;
    Mock::given(method("POST"))
        .and(path("/v1/models/black-forest-labs/flux-1.1-pro-ultra/predictions"))
        .and(header("authorization", format!("Bearer {REPLICATE_KEY}").as_str()))
        .and(header("prefer", "wait=1"))
        .and(header("cancel-after", "300s"))
        .and(body_partial_json(json!({"input": {
            "prompt": "a lighthouse at dusk",
            "aspect_ratio": "16:9",
            "raw": false,
            "seed": 7,
            "output_format": "png"
        }})))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction(
            &h,
            "pred1",
            "starting",
            "",
            Value::Null,
        )))
        .expect(1)
        .mount(&h.server)
        .await;
    let (polls, arrivals) = Sequence::new(vec![
        ResponseTemplate::new(200).set_body_json(prediction(&h, "pred1", "processing", "", Value::Null)),
        ResponseTemplate::new(200).set_body_json(prediction(
            &h,
            "pred1",
            "processing",
            "Using seed: 7\n 42%|████▏     | 21/50 [00:01<00:02]",
            Value::Null,
        )),
        ResponseTemplate::new(200).set_body_json(prediction(
            &h,
            "pred1",
            "processing",
            " 42%|████▏     | 21/50\n 87%|████████▋ | 43/50",
            Value::Null,
        )),
        ResponseTemplate::new(200).set_body_json(prediction(
            &h,
            "pred1",
            "succeeded",
            "100%|██████████| 50/50",
            json!([h.url("/files/out.png")]),
        )),
    ]);
    Mock::given(method("GET"))
        .and(path("/v1/predictions/pred1"))
        .and(header("authorization", format!("Bearer {REPLICATE_KEY}").as_str()))
        .respond_with(polls)
        .mount(&h.server)
        .await;

    let graph = prompt_graph(
        "a lighthouse at dusk",
        "flux-pro-1.1-ultra",
        json!({"aspect_ratio": "16:9", "seed": 7}),
    );
    let (summary, observer) = h.run(&graph).await;
    assert!(summary.succeeded(), "{summary:?}");
    let (stored, _) = h.stored_png(&summary, "gen").await;
    assert_eq!(stored, png);
    assert_eq!(arrivals.lock().unwrap().len(), 4, "polled until succeeded, then stopped");
    assert_eq!(progress_of(&observer, "gen"), [0, 5, 42, 87]);
    let states: Vec<&str> = observer.states_of("gen").into_iter().filter(|s| *s != "preview").collect();
    assert_eq!(states, ["queued", "running", "running", "running", "running", "succeeded"]);
    // The log also shows as a live preview: its first with the first log (the next poll
    // usually comes within the second, too soon for another).
    assert_eq!(
        preview_texts(&observer, "gen").first().map(String::as_str),
        Some("Using seed: 7\n 42%|████▏     | 21/50 [00:01<00:02]")
    );
    assert!(
        h.requests("POST", "/v1/predictions/pred1/cancel").await.is_empty(),
        "a finished job is not cancelled"
    );
    h.server.verify().await;
}

#[tokio::test]
async fn fal_goes_from_queue_to_progress_to_completed() {
    let h = Harness::new().await;
    // fal's CDN may serve JPEG: it is stored as PNG so the built-in tools can read it.
    serve_file(&h.server, "fal.jpg", jpeg_bytes(20, 10), "image/jpeg").await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/ideogram/v3"))
        .and(header("authorization", format!("Key {FAL_KEY}").as_str()))
        .and(body_partial_json(json!({
            "prompt": "a poster that says DOJO",
            "rendering_speed": "TURBO",
            "style": "DESIGN",
            "seed": 3
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fal_submitted(&h, "fal-ai/ideogram", "req-1")))
        .expect(1)
        .mount(&h.server)
        .await;
    let log = |message: &str| json!({"message": message, "level": "INFO", "source": "user"});
    let (statuses, _) = Sequence::new(vec![
        ResponseTemplate::new(202).set_body_json(json!({
            "status": "IN_QUEUE",
            "queue_position": 2,
            "response_url": h.url("/fal-ai/ideogram/requests/req-1")
        })),
        ResponseTemplate::new(202).set_body_json(json!({
            "status": "IN_PROGRESS", "logs": [log("Starting"), log("Generating 30%")],
            "response_url": h.url("/fal-ai/ideogram/requests/req-1")
        })),
        ResponseTemplate::new(202).set_body_json(json!({
            "status": "IN_PROGRESS", "logs": [log("Generating 30%"), log("Generating 70%")],
            "response_url": h.url("/fal-ai/ideogram/requests/req-1")
        })),
        ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETED", "logs": [log("done")], "metrics": {"inference_time": 1.2},
            "response_url": h.url("/fal-ai/ideogram/requests/req-1")
        })),
    ]);
    Mock::given(method("GET"))
        .and(path("/fal-ai/ideogram/requests/req-1/status"))
        .and(query_param("logs", "1"))
        .and(header("authorization", format!("Key {FAL_KEY}").as_str()))
        .respond_with(statuses)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/ideogram/requests/req-1"))
        .and(header("authorization", format!("Key {FAL_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "images": [
                {"url": h.url("/files/fal.jpg"), "content_type": "image/jpeg", "width": 20, "height": 10}
            ],
            "seed": 3
        })))
        .expect(1)
        .mount(&h.server)
        .await;

    let graph = prompt_graph(
        "a poster that says DOJO",
        "ideogram-v3",
        json!({"rendering_speed": "TURBO", "style": "DESIGN", "seed": 3}),
    );
    let (summary, observer) = h.run(&graph).await;
    assert!(summary.succeeded(), "{summary:?}");
    let (_, image) = h.stored_png(&summary, "gen").await;
    assert_eq!(image.dimensions(), (20, 10));
    assert_eq!(progress_of(&observer, "gen"), [0, 30, 70]);
    assert_eq!(
        preview_texts(&observer, "gen").first().map(String::as_str),
        Some("Starting\nGenerating 30%"),
        "the logs' tail, as a preview"
    );
    assert_eq!(h.requests("GET", "/fal-ai/ideogram/requests/req-1/status").await.len(), 4);
    assert!(h.requests("PUT", "/fal-ai/ideogram/requests/req-1/cancel").await.is_empty());
    h.server.verify().await;
}

#[tokio::test]
async fn stability_answers_with_the_image_bytes() {
    let h = Harness::new().await;
    let png = png_bytes(10, 10);
    Mock::given(method("POST"))
        .and(path("/v2beta/stable-image/generate/sd3"))
        .and(header("authorization", format!("Bearer {STABILITY_KEY}").as_str()))
        .and(header("accept", "image/*"))
        .and(body_string_contains("name=\"prompt\"\r\n\r\na castle on a hill\r\n"))
        .and(body_string_contains("name=\"model\"\r\n\r\nsd3.5-large\r\n"))
        .and(body_string_contains("name=\"output_format\"\r\n\r\npng\r\n"))
        .and(body_string_contains("name=\"mode\"\r\n\r\ntext-to-image\r\n"))
        .and(body_string_contains("name=\"aspect_ratio\"\r\n\r\n3:2\r\n"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(png.clone(), "image/png")
                .insert_header("finish-reason", "SUCCESS")
                .insert_header("seed", "42"),
        )
        .expect(1)
        .mount(&h.server)
        .await;

    let graph = prompt_graph("a castle on a hill", "sd-3.5-large", json!({"aspect_ratio": "3:2"}));
    let (summary, _) = h.run(&graph).await;
    assert!(summary.succeeded(), "{summary:?}");
    let (stored, _) = h.stored_png(&summary, "gen").await;
    assert_eq!(stored, png);
    // The negative prompt is empty by default: optional fields that are empty are not sent.
    let request = h.wait_for("POST", "/v2beta/stable-image/generate/sd3").await;
    assert!(!String::from_utf8_lossy(&request.body).contains("negative_prompt"));
    h.server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn a_429_with_retry_after_is_honoured_then_the_call_succeeds() {
    use base64::Engine as _;
    let h = Harness::new().await;
    let png = png_bytes(4, 4);
    let (responses, arrivals) = Sequence::new(vec![
        ResponseTemplate::new(429).insert_header("retry-after", "1").set_body_json(json!({
            "error": {
                "message": "Rate limit reached for images per minute.",
                "type": "requests",
                "code": "rate_limit_exceeded"
            }
        })),
        ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "data": [{"b64_json": base64::engine::general_purpose::STANDARD.encode(&png)}]
        })),
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(responses)
        .mount(&h.server)
        .await;

    let (summary, _) = h.run(&prompt_graph("a tiny square", "gpt-image-1", json!({}))).await;
    assert!(summary.succeeded(), "{summary:?}");
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2, "one retry");
    // The backoff alone would have waited at most ~0.1 s: the second call waited for Retry-After.
    assert!(arrivals[1] - arrivals[0] >= Duration::from_secs(1), "{:?}", arrivals[1] - arrivals[0]);
}

#[tokio::test]
async fn a_replicate_429_with_the_wait_only_in_its_body_is_honoured() {
    let h = Harness::new().await;
    let png = png_bytes(4, 4);
    serve_file(&h.server, "s.png", png.clone(), "image/png").await;
    let (responses, arrivals) = Sequence::new(vec![
        ResponseTemplate::new(429).set_body_json(json!({
            "title": "Request was throttled",
            "detail": "Request was throttled. Your rate limit for creating predictions is reduced; \
                       try again in 1 seconds.",
            "status": 429
        })),
        ResponseTemplate::new(201).set_body_json(prediction(
            &h,
            "pred2",
            "succeeded",
            "",
            json!([h.url("/files/s.png")]),
        )),
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/models/black-forest-labs/flux-schnell/predictions"))
        .and(body_partial_json(
            json!({"input": {"prompt": "a fast fox", "num_outputs": 1, "output_format": "png"}}),
        ))
        .respond_with(responses)
        .mount(&h.server)
        .await;

    let (summary, _) = h.run(&prompt_graph("a fast fox", "flux-schnell", json!({}))).await;
    assert!(summary.succeeded(), "{summary:?}");
    let (stored, _) = h.stored_png(&summary, "gen").await;
    assert_eq!(stored, png);
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2);
    assert!(arrivals[1] - arrivals[0] >= Duration::from_secs(1), "{:?}", arrivals[1] - arrivals[0]);
}

#[tokio::test]
async fn a_500_is_retried_then_the_call_succeeds() {
    let h = Harness::new().await;
    let png = png_bytes(6, 6);
    let (responses, arrivals) = Sequence::new(vec![
        ResponseTemplate::new(500).set_body_json(json!({
            "id": "e1",
            "name": "internal_error",
            "errors": ["An unexpected server error has occurred"]
        })),
        ResponseTemplate::new(200)
            .set_body_raw(png.clone(), "image/png")
            .insert_header("finish-reason", "SUCCESS"),
    ]);
    Mock::given(method("POST"))
        .and(path("/v2beta/stable-image/generate/sd3"))
        .respond_with(responses)
        .mount(&h.server)
        .await;

    let (summary, _) = h.run(&prompt_graph("retry me", "sd-3.5-large", json!({}))).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert_eq!(arrivals.lock().unwrap().len(), 2);
    let (stored, _) = h.stored_png(&summary, "gen").await;
    assert_eq!(stored, png);
}

#[tokio::test]
async fn a_provider_that_never_answers_in_time_is_retried_then_fails_cleanly() {
    let h = Harness::with(
        |config| config.generation_timeout = Duration::from_millis(300),
        LoadedCatalog::builtin().expect("catalog").clone(),
    )
    .await;
    let (responses, arrivals) = Sequence::new(vec![
        ResponseTemplate::new(200)
            .set_body_raw(png_bytes(2, 2), "image/png")
            .set_delay(Duration::from_secs(3)),
    ]);
    Mock::given(method("POST"))
        .and(path("/v2beta/stable-image/generate/sd3"))
        .respond_with(responses)
        .mount(&h.server)
        .await;

    let started = Instant::now();
    let (summary, observer) = h.run(&prompt_graph("slow", "sd-3.5-large", json!({}))).await;
    let error = failure(&summary, "gen");
    assert_eq!(error, "stability: generating the image: no answer within 0.3 s (after 3 attempts)");
    assert_eq!(arrivals.lock().unwrap().len(), 3, "the whole retry budget was used");
    assert_eq!(observer.states_of("gen").last(), Some(&"failed"));
    assert!(started.elapsed() >= Duration::from_millis(900), "three attempts of 0.3 s each");
    assert_eq!(summary.charged, 0, "a failed node costs nothing");
}

#[tokio::test]
async fn a_400_is_not_retried_and_its_message_reaches_the_node() {
    let h = Harness::new().await;
    let (responses, arrivals) = Sequence::new(vec![ResponseTemplate::new(400).set_body_json(json!({
        "error": {
            "message": "Your request was rejected as a result of our safety system.",
            "type": "invalid_request_error",
            "param": null,
            "code": "content_policy_violation"
        }
    }))]);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(responses)
        .mount(&h.server)
        .await;

    let (summary, _) = h.run(&prompt_graph("something forbidden", "dall-e-3", json!({}))).await;
    assert_eq!(
        failure(&summary, "gen"),
        "openai: generating the image: Your request was rejected as a result of our safety system. (HTTP 400)"
    );
    assert_eq!(arrivals.lock().unwrap().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn stability_errors_and_fal_validation_errors_are_readable() {
    let h = Harness::new().await;
    json_mock(
        "POST",
        "/v2beta/stable-image/generate/sd3",
        403,
        json!({
            "id": "a1b2", "name": "content_moderation",
            "errors": ["Your request was flagged by our content moderation system."]
        }),
    )
    .expect(1)
    .mount(&h.server)
    .await;
    json_mock(
        "POST",
        "/fal-ai/ideogram/v3",
        422,
        json!({
            "detail": [{
                "loc": ["body", "seed"],
                "msg": "ensure this value is less than 2147483648",
                "type": "value_error"
            }]
        }),
    )
    .expect(1)
    .mount(&h.server)
    .await;

    let (summary, _) = h.run(&prompt_graph("x", "sd-3.5-large", json!({}))).await;
    assert_eq!(
        failure(&summary, "gen"),
        "stability: generating the image: content_moderation: Your request was flagged by our content \
         moderation system. (HTTP 403)"
    );
    let (summary, _) = h.run(&prompt_graph("x", "ideogram-v3", json!({}))).await;
    assert_eq!(
        failure(&summary, "gen"),
        "fal: submitting the request: seed: ensure this value is less than 2147483648 (HTTP 422)"
    );
    h.server.verify().await;
}

#[tokio::test]
async fn a_failed_replicate_prediction_fails_the_node_with_its_reason() {
    let h = Harness::new().await;
    json_mock(
        "POST",
        "/v1/models/black-forest-labs/flux-schnell/predictions",
        201,
        prediction(&h, "pred3", "processing", "", Value::Null),
    )
    .mount(&h.server)
    .await;
    let mut failed = prediction(&h, "pred3", "failed", "", Value::Null);
    failed["error"] = json!("NSFW content detected. Try running it again, or try a different prompt.");
    json_mock("GET", "/v1/predictions/pred3", 200, failed).mount(&h.server).await;

    let (summary, _) = h.run(&prompt_graph("x", "flux-schnell", json!({}))).await;
    assert_eq!(
        failure(&summary, "gen"),
        "replicate: the prediction failed: NSFW content detected. Try running it again, or try a different \
         prompt."
    );
    assert!(h.requests("POST", "/v1/predictions/pred3/cancel").await.is_empty());
}

#[tokio::test]
async fn results_over_the_download_limit_are_refused() {
    let h = Harness::with(
        |config| config.max_download_bytes = 1024,
        LoadedCatalog::builtin().expect("catalog").clone(),
    )
    .await;
    // Noise does not compress: 64×64 RGBA is well over the 1 KiB limit.
    let mut state = 1u32;
    let noise = RgbaImage::from_fn(64, 64, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        Rgba(state.to_le_bytes())
    });
    let big = imaging::encode_png(&DynamicImage::ImageRgba8(noise)).expect("png");
    assert!(big.len() > 4 * 1024, "{}", big.len());
    serve_file(&h.server, "big.png", big, "image/png").await;
    json_mock(
        "POST",
        "/v1/models/black-forest-labs/flux-schnell/predictions",
        201,
        prediction(&h, "pred4", "succeeded", "", json!([h.url("/files/big.png")])),
    )
    .mount(&h.server)
    .await;

    let (summary, _) = h.run(&prompt_graph("x", "flux-schnell", json!({}))).await;
    assert_eq!(
        failure(&summary, "gen"),
        "replicate: downloading the result: the answer is larger than the 1 KiB limit"
    );
}

// ---------------------------------------------------------------------------------------------
// Cancellation and timeouts: the remote job is cancelled

/// Cancels `cancel` once the stand-in has been polled at `poll_path`.
async fn cancel_after_first_poll(h: &Harness, poll_path: &str, cancel: &CancellationToken) {
    h.wait_for("GET", poll_path).await;
    cancel.cancel();
}

#[tokio::test]
async fn cancelling_a_run_cancels_the_replicate_prediction() {
    let h = Harness::new().await;
    json_mock(
        "POST",
        "/v1/models/black-forest-labs/flux-schnell/predictions",
        201,
        prediction(&h, "pred5", "processing", "", Value::Null),
    )
    .mount(&h.server)
    .await;
    json_mock(
        "GET",
        "/v1/predictions/pred5",
        200,
        prediction(&h, "pred5", "processing", " 10%|", Value::Null),
    )
    .mount(&h.server)
    .await;
    Mock::given(method("POST"))
        .and(path("/v1/predictions/pred5/cancel"))
        .and(header("authorization", format!("Bearer {REPLICATE_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction(
            &h,
            "pred5",
            "canceled",
            "",
            Value::Null,
        )))
        .expect(1)
        .mount(&h.server)
        .await;

    let cancel = CancellationToken::new();
    let graph = prompt_graph("a slow one", "flux-schnell", json!({}));
    let ((summary, observer), ()) = tokio::join!(
        h.run_cancelling(&graph, &cancel),
        cancel_after_first_poll(&h, "/v1/predictions/pred5", &cancel)
    );
    assert_eq!(summary.nodes["gen"], NodeOutcome::Cancelled);
    assert_eq!(observer.states_of("gen").last(), Some(&"cancelled"));
    assert_eq!(summary.charged, 0);
    h.wait_for("POST", "/v1/predictions/pred5/cancel").await;
    h.server.verify().await;
}

#[tokio::test]
async fn cancelling_a_run_cancels_the_fal_request() {
    let h = Harness::new().await;
    json_mock("POST", "/fal-ai/veo3", 200, fal_submitted(&h, "fal-ai/veo3", "req-9")).mount(&h.server).await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/veo3/requests/req-9/status"))
        .respond_with(
            ResponseTemplate::new(202).set_body_json(json!({"status": "IN_QUEUE", "queue_position": 5})),
        )
        .mount(&h.server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/fal-ai/veo3/requests/req-9/cancel"))
        .and(header("authorization", format!("Key {FAL_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"status": "CANCELLATION_REQUESTED"})))
        .expect(1)
        .mount(&h.server)
        .await;

    let cancel = CancellationToken::new();
    let graph = prompt_graph("a long video", "veo-3", json!({}));
    let ((summary, _), ()) = tokio::join!(
        h.run_cancelling(&graph, &cancel),
        cancel_after_first_poll(&h, "/fal-ai/veo3/requests/req-9/status", &cancel)
    );
    assert_eq!(summary.nodes["gen"], NodeOutcome::Cancelled);
    h.wait_for("PUT", "/fal-ai/veo3/requests/req-9/cancel").await;
    assert!(h.requests("GET", "/fal-ai/veo3/requests/req-9").await.is_empty(), "no result fetched");
    h.server.verify().await;
}

#[tokio::test]
async fn a_node_timeout_cancels_the_remote_prediction() {
    // The same catalog with a 1 s timeout on Flux Schnell.
    let mut catalog: Value = serde_json::from_str(BUILTIN_CATALOG_JSON).expect("catalog JSON");
    for entry in catalog["nodes"].as_array_mut().expect("nodes") {
        if entry["id"] == "flux-schnell" {
            entry["timeout_secs"] = json!(1);
        }
    }
    let catalog = LoadedCatalog::from_json(&catalog.to_string()).expect("catalog");
    let h = Harness::with(|_| {}, catalog).await;
    Mock::given(method("POST"))
        .and(path("/v1/models/black-forest-labs/flux-schnell/predictions"))
        .and(header("cancel-after", "5s"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction(
            &h,
            "pred6",
            "starting",
            "",
            Value::Null,
        )))
        .mount(&h.server)
        .await;
    json_mock("GET", "/v1/predictions/pred6", 200, prediction(&h, "pred6", "starting", "", Value::Null))
        .mount(&h.server)
        .await;
    json_mock(
        "POST",
        "/v1/predictions/pred6/cancel",
        200,
        prediction(&h, "pred6", "canceled", "", Value::Null),
    )
    .expect(1)
    .mount(&h.server)
    .await;

    let (summary, _) = h.run(&prompt_graph("x", "flux-schnell", json!({}))).await;
    assert_eq!(failure(&summary, "gen"), "timed out after 1.0 s");
    h.wait_for("POST", "/v1/predictions/pred6/cancel").await;
    h.server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// Without the server's key a provider is not available to the server's runs, and a node of
/// it fails without calling the provider unless the run's team has a key.
#[tokio::test]
async fn providers_without_a_key_run_only_with_a_teams_key() {
    let server = MockServer::start().await;
    let mut config = test_config(&server);
    config.replicate.api_key = None;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = LoadedCatalog::builtin().expect("catalog").clone();
    let engine = Engine::new(
        Arc::new(catalog.clone()),
        Arc::new(ObjectAssetStore::local(dir.path()).expect("assets")),
        Arc::new(MemoryCache::default()),
    );
    let engine = register_providers(engine, &config);
    let plan =
        validate(&catalog, &prompt_graph("x", "flux-schnell", json!({})), None, &GraphLimits::default())
            .expect("valid");
    let summary = engine
        .run(&RunId::from("run-1"), &plan, &RecordingObserver::default(), &CancellationToken::new())
        .await;
    assert_eq!(
        failure(&summary, "gen"),
        "provider replicate has no key on this server, and the run's team has none either"
    );
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
    assert!(!engine.availability().has_provider(dojo_executor::ProviderName::Replicate));
    assert!(engine.availability().has_provider(dojo_executor::ProviderName::Openai));

    // The team's key, handed over per node: the provider sees it (and only it).
    struct TeamKey;
    #[async_trait::async_trait]
    impl dojo_executor::TeamKeys for TeamKey {
        async fn key(
            &self,
            provider: dojo_executor::ProviderName,
        ) -> Result<Option<dojo_executor::ApiKey>, dojo_executor::TeamKeyError> {
            Ok((provider == dojo_executor::ProviderName::Replicate)
                .then(|| dojo_executor::ApiKey::new("r8_team_key"))
                .flatten())
        }
    }
    let scope = dojo_executor::RunScope { cache: "", assets: &dojo_executor::AnyAsset, keys: &TeamKey };
    engine
        .resume(
            &RunId::from("run-2"),
            scope,
            &plan,
            &BTreeMap::new(),
            &RecordingObserver::default(),
            &CancellationToken::new(),
        )
        .await;
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(!requests.is_empty(), "the provider was called with the team's key");
    for request in requests {
        let authorization = request.headers.get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(authorization, Some("Bearer r8_team_key"), "{}", request.url);
    }
}

/// SSRF: a result URL naming a loopback address (as an IP, or as a name that resolves to one)
/// is refused before any connection while private downloads are off, and fails the node with
/// a message that says why; with them allowed (a self-hosted model server) it is fetched.
#[tokio::test]
async fn result_urls_on_non_public_addresses_are_fetched_only_when_allowed() {
    let catalog = LoadedCatalog::builtin().expect("catalog").clone();
    for (allow, host) in [(false, "127.0.0.1"), (false, "localhost"), (false, "[::1]"), (true, "localhost")] {
        let h = Harness::with(|config| config.allow_private_downloads = allow, catalog.clone()).await;
        serve_file(&h.server, "inside.png", png_bytes(4, 4), "image/png").await;
        let port = h.server.address().port();
        let url = format!("http://{host}:{port}/files/inside.png");
        json_mock(
            "POST",
            "/v1/models/black-forest-labs/flux-schnell/predictions",
            201,
            prediction(&h, "p1", "succeeded", "", json!([url])),
        )
        .mount(&h.server)
        .await;

        let (summary, _) = h.run(&prompt_graph("look inside", "flux-schnell", json!({}))).await;
        let fetched = h.requests("GET", "/files/inside.png").await.len();
        if allow {
            assert!(summary.succeeded(), "{host}: {summary:?}");
            assert_eq!(fetched, 1);
            continue;
        }
        let NodeOutcome::Failed { error } = &summary.nodes["gen"] else {
            panic!("{host}: the node must fail: {summary:?}");
        };
        assert!(error.contains("private or reserved address"), "{host}: {error}");
        assert!(!error.contains("attempts"), "{host}: refused once, not retried: {error}");
        assert_eq!(fetched, 0, "{host}: never connected");
    }
}
