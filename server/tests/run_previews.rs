//! Live previews, end to end through the server: a provider that reports logs and intermediate
//! images while it runs shows them on the node through the room's document, from assets of our
//! own, within the size and rate bounds, and they go when the node ends. The provider is the
//! local Replicate stand-in; everything else is real (server, store, room clients).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::database::{Backend, TestDatabase};
use common::replicate::{Progressive, Replicate};
use common::runs::{RunApi, SECRET, edge, join, result_json, token, typed_node, watch_run, write_graph};
use common::{TestServer, WAIT};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{canvas_json, read_node_preview};
use reqwest::StatusCode;
use serde_json::{Value, json};
use yrs::Transact;

/// The stand-in is polled every 50 ms (`Replicate::config`).
const POLL: Duration = Duration::from_millis(50);

async fn server_with_replicate(db: &TestDatabase, replicate: &Replicate) -> TestServer {
    let providers = replicate.config();
    TestServer::start_on(&db.url, move |config| {
        config.auth.jwt_secret = Some(SECRET.into());
        config.executor.providers = Some(providers);
    })
    .await
}

/// Every distinct preview of `node` the client's document went through, in order, recorded
/// from each update it applied (not sampled: a preview that lasted one update is counted).
struct PreviewLog {
    seen: Arc<Mutex<Vec<Value>>>,
}

impl PreviewLog {
    async fn watch(client: &SyncClient, node: &'static str) -> Self {
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let record = seen.clone();
        let observer = move |txn: &yrs::TransactionMut<'_>, _: &yrs::UpdateEvent| {
            let Some(preview) = read_node_preview(txn, node) else { return };
            let mut seen = record.lock().expect("lock");
            if seen.last() != Some(&preview) {
                seen.push(preview);
            }
        };
        // Subscribing needs the document for a moment; the client's reader may hold it.
        for _ in 0..100 {
            if client.doc().observe_update_v1("previews", observer.clone()).is_ok() {
                return Self { seen };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the document stayed busy");
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().expect("lock").clone()
    }
}

/// A room with `prompt → flux` written by alice (5 credits), her editor and a watcher.
async fn flux_room(api: &RunApi, room: &str, prompt: &str) -> (String, SyncClient) {
    let alice = token("alice");
    api.user_with_credits(&alice, 5).await;
    api.workflow(&alice, room).await;
    let editor = join(api, room, &alice).await;
    write_graph(
        api,
        room,
        &alice,
        &editor,
        &[
            typed_node("prompt", "text-prompt", json!({"text": prompt})),
            typed_node("flux", "flux-schnell", json!({})),
        ],
        &[edge("prompt", "text", "flux", "prompt")],
    )
    .await;
    editor.close().await;
    (alice, join(api, room, &token("alice")).await)
}

fn counted_log(n: u32) -> String {
    (1..=n).map(|i| format!("denoising step {i}\n")).collect()
}

async fn a_running_node_shows_a_preview_from_our_own_assets_that_goes_when_it_ends(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let replicate = Replicate::start().await;
    let prompt = "a fox being painted";
    // About two seconds of `processing`, a new intermediate image halfway.
    replicate.progressive(
        prompt,
        Progressive { polls: 40, log: counted_log, image: |n| Some(format!("/files/step-{}.png", n / 20)) },
    );
    let server = server_with_replicate(&db, &replicate).await;
    let api = RunApi::new(server.addr, &db.url);
    let (alice, watcher) = flux_room(&api, "canvas-previews", prompt).await;
    let previews = PreviewLog::watch(&watcher, "flux").await;

    let run_id = api.submit(&alice, "canvas-previews", "previews-1").await;
    watcher
        .wait_doc("a preview with an image", WAIT, |doc| {
            read_node_preview(&doc.transact(), "flux").is_some_and(|p| p["image"]["url"].is_string())
        })
        .await
        .expect("the running node shows a preview");
    let while_running = canvas_json(&watcher.doc().transact());
    assert_eq!(while_running["results"]["flux"]["status"], "running", "{while_running}");
    let seen = watch_run(&watcher, &run_id, &["prompt", "flux"], WAIT).await;
    assert_eq!(seen["flux"].last().map(String::as_str), Some("succeeded"), "{seen:?}");

    let previews = previews.seen();
    let shown = previews.iter().find(|p| p["image"].is_object()).expect("a preview with an image");
    assert!(shown["text"].as_str().is_some_and(|t| t.contains("denoising step")), "{shown}");
    assert!(shown["at"].is_number(), "{shown}");
    let image = &shown["image"];
    assert_eq!(image["kind"], "asset", "{shown}");
    let asset_id = image["asset"]["id"].as_str().expect("an asset id").to_owned();
    assert_eq!(image["url"], format!("/assets/{asset_id}"), "our URL, not the provider's: {shown}");
    let provider = replicate.server.uri();
    for preview in &previews {
        assert!(!preview.to_string().contains(&provider), "a provider URL in a preview: {preview}");
    }
    assert!(
        !while_running.to_string().contains(&provider),
        "a provider URL in the document: {while_running}"
    );

    // Over: the preview is gone, the output is the node's own and is not the preview image.
    let result = result_json(watcher.doc(), "flux");
    assert!(result.get("preview").is_none(), "the preview went with the run: {result}");
    assert_ne!(result["outputs"]["image"]["asset"]["id"], asset_id, "{result}");
    assert!(!canvas_json(&watcher.doc().transact()).to_string().contains(&provider));

    // The room's user may download the preview image from us; someone outside the room may not.
    let download = |bearer: String| {
        let (http, url) = (api.http.clone(), api.http_url(&format!("/assets/{asset_id}")));
        async move { http.get(url).bearer_auth(bearer).send().await.expect("GET the asset") }
    };
    let response = download(alice.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    let bytes = response.bytes().await.expect("the bytes");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    assert_eq!(download(token("mallory")).await.status(), StatusCode::NOT_FOUND);
    watcher.close().await;
    server.stop().await;
}

/// A provider that logs 100 KiB (with terminal escapes) and names a new image on every poll,
/// for thirteen seconds of polls.
fn flood_log(n: u32) -> String {
    format!("{}\u{1b}[2K\rstep {n}\u{7}\n", "x".repeat(100 * 1024))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_provider_s_previews_stay_within_their_size_rate_and_image_bounds() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let replicate = Replicate::start().await;
    let prompt = "a chatty fox";
    let polls = 260;
    replicate.progressive(
        prompt,
        Progressive { polls, log: flood_log, image: |n| Some(format!("/files/step-{n}.png")) },
    );
    let server = server_with_replicate(&db, &replicate).await;
    let api = RunApi::new(server.addr, &db.url);
    let (alice, watcher) = flux_room(&api, "canvas-flood", prompt).await;
    let previews = PreviewLog::watch(&watcher, "flux").await;

    let run_id = api.submit(&alice, "canvas-flood", "flood-1").await;
    let seen = watch_run(&watcher, &run_id, &["prompt", "flux"], WAIT + Duration::from_secs(20)).await;
    assert_eq!(
        seen["flux"].last().map(String::as_str),
        Some("succeeded"),
        "the node still succeeds: {seen:?}"
    );

    let previews = previews.seen();
    assert!(previews.len() >= 2, "previews were shown: {previews:?}");
    for preview in &previews {
        let text = preview["text"].as_str().unwrap_or_default();
        assert!(text.len() <= 1024, "preview text of {} bytes", text.len());
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "control characters: {text:?}");
    }
    assert!(
        previews.iter().any(|p| p["text"].as_str().is_some_and(|t| t.contains("\nstep "))),
        "{previews:?}"
    );
    // Rate: at most one preview per second of polling (plus the first), however often the
    // provider was polled.
    let answered = replicate.polls(prompt);
    let polling_secs = (f64::from(answered) * POLL.as_secs_f64()).ceil() as usize;
    assert!(
        previews.len() <= polling_secs + 2,
        "{} previews over {answered} polls (at least {polling_secs} s)",
        previews.len()
    );
    // Images: a new URL on every poll, yet at most ten fetched and stored per node.
    let fetched = replicate.file_requests("/files/step-").await;
    assert_eq!(fetched, 10, "the image fetches stop at the limit ({answered} polls)");
    let mut images: Vec<&str> = previews.iter().filter_map(|p| p["image"]["asset"]["id"].as_str()).collect();
    images.dedup();
    assert!(images.len() <= 10, "{images:?}");
    assert!(result_json(watcher.doc(), "flux").get("preview").is_none());
    watcher.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_non_image_intermediate_is_skipped_and_the_node_still_succeeds() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let replicate = Replicate::start().await;
    let prompt = "a fox with broken previews";
    replicate.progressive(
        prompt,
        Progressive {
            polls: 60,
            log: counted_log,
            image: |n| Some(if n < 30 { "/files/huge.png" } else { "/files/page.html" }.to_owned()),
        },
    );
    let server = server_with_replicate(&db, &replicate).await;
    let api = RunApi::new(server.addr, &db.url);
    let (alice, watcher) = flux_room(&api, "canvas-broken-previews", prompt).await;
    let previews = PreviewLog::watch(&watcher, "flux").await;

    let run_id = api.submit(&alice, "canvas-broken-previews", "broken-1").await;
    let seen = watch_run(&watcher, &run_id, &["prompt", "flux"], WAIT).await;
    assert_eq!(seen["flux"].last().map(String::as_str), Some("succeeded"), "{seen:?}");
    let result = result_json(watcher.doc(), "flux");
    assert_eq!(result["outputs"]["image"]["kind"], "asset", "{result}");

    let previews = previews.seen();
    assert!(!previews.is_empty(), "the log still showed");
    assert!(previews.iter().all(|p| p.get("image").is_none()), "no image from a bad file: {previews:?}");
    // Each bad URL was tried once, not on every poll.
    assert_eq!(replicate.file_requests("/files/huge.png").await, 1);
    assert_eq!(replicate.file_requests("/files/page.html").await, 1);
    watcher.close().await;
    server.stop().await;
}

dojo_test_support::each_backend_story!(
    a_running_node_shows_a_preview_from_our_own_assets_that_goes_when_it_ends
);
