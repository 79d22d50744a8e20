//! Issue 17, attack 3 and its neighbours, replayed against a real server (in process, auth
//! mode, real SQLite or PostgreSQL, real HTTP and WebSocket clients):
//!
//! - Bob names Alice's private upload in an `image-input` of his own room and runs it: the
//!   node fails as if the asset did not exist, nothing derived from it is made, his holds are
//!   released, and the download stays 404 for him (the same 404 as an id nobody uploaded).
//! - A collaborator removed from a room loses its uploads at once: downloads and runs, cache
//!   included, even though the asset id is still in his copy of the document.
//! - Uploads are decoded before they are stored: random bytes behind a PNG signature, a header
//!   claiming 100 000 × 100 000 pixels, an oversized image and data after the image's end are
//!   refused (415/422 with the error envelope); a per-user storage quota holds even against
//!   concurrent uploads.
//! - A provider answering with a result URL on a loopback address fails the node (SSRF): the
//!   worker never fetches it.
//!
//! After each attack the legitimate user still works: uploads, downloads, runs, syncs.

mod common;

use common::WAIT;
use common::database::Backend;
use common::replicate::Replicate;
use common::runs::{RunStory, edge, join, png, token, typed_node as node, write_graph};
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasNode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

impl RunStory {
    /// A workflow of `token`'s user; its id.
    async fn workflow_id(&self, token: &str, room: &str) -> String {
        let body = json!({"title": room, "room": room});
        let (status, created) = self.call(Method::POST, "/api/workflows", token, Some(body), None).await;
        assert!(status.is_success(), "{created}");
        created["id"].as_str().expect("workflow id").to_owned()
    }

    /// Writes the graph into `room` as `token`'s user, runs it and waits until the run is final.
    async fn run_graph(
        &self,
        token: &str,
        room: &str,
        key: &str,
        nodes: &[CanvasNode],
        edges: &[CanvasEdge],
    ) -> Value {
        let client = join(self, room, token).await;
        write_graph(self, room, token, &client, nodes, edges).await;
        let run = self.submit(token, room, key).await;
        let done = self.wait_run(token, &run, WAIT, is_final_run).await;
        client.close().await;
        done
    }
}

fn is_final_run(run: &Value) -> bool {
    matches!(run["status"].as_str(), Some("succeeded" | "failed" | "cancelled"))
}

/// image-input(asset) → blur.
fn upload_graph(asset: &str) -> (Vec<CanvasNode>, Vec<CanvasEdge>) {
    (
        vec![
            node("in", "image-input", json!({ "asset": asset })),
            node("blur", "blur", json!({"sigma": 1.0})),
        ],
        vec![edge("in", "image", "blur", "image")],
    )
}

fn node_of<'a>(run: &'a Value, node: &str) -> &'a Value {
    &run["nodes"][node]
}

fn error_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a JSON error envelope")
}

// ---------------------------------------------------------------------------------------------
// Runs read only what their user may read.

async fn a_run_cannot_read_another_users_private_upload(backend: Backend) {
    let replicate = Replicate::start().await;
    let providers = replicate.config();
    let story = RunStory::start_with(backend, |config| config.executor.providers = Some(providers)).await;
    let (alice, bob) = (token("alice"), token("bob"));
    story.user_with_credits(&alice, 20).await;
    story.user_with_credits(&bob, 20).await;
    story.workflow(&alice, "alice-room").await;
    story.workflow(&bob, "bob-room").await;
    let picture = png(16, 8, 1);
    let private = story.uploaded(&alice, Some("alice-room"), picture.clone()).await;

    // Downloading it directly: the same 404 as for an id nobody uploaded.
    let (status, body) = story.download(&bob, &private).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_body(&body)["code"], "not_found");
    let (status, _) = story.download(&bob, &"ab".repeat(32)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Through a run: his upload node, a blur, and a paid model fed by the picture.
    let (mut nodes, mut edges) = upload_graph(&private);
    nodes.push(node("prompt", "text-prompt", json!({"text": "make it Bob's"})));
    nodes.push(node("ultra", "flux-pro-1.1-ultra", json!({})));
    edges.push(edge("prompt", "text", "ultra", "prompt"));
    edges.push(edge("in", "image", "ultra", "image"));
    let run = story.run_graph(&bob, "bob-room", "bob-1", &nodes, &edges).await;

    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(node_of(&run, "in")["state"], "failed");
    assert_eq!(node_of(&run, "in")["error"], format!("asset {private} not found"), "no hint it exists");
    assert_eq!(node_of(&run, "blur")["state"], "skipped");
    assert_eq!(node_of(&run, "ultra")["state"], "skipped");
    assert_eq!(node_of(&run, "ultra")["hold"], "released");
    assert_eq!(story.balance(&bob).await, 20, "the paid node's hold came back");
    assert_eq!(replicate.created("make it Bob's"), 0, "the picture never left for the provider");
    let (status, _) = story.download(&bob, &private).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the run linked nothing to Bob");

    // Alice is unaffected: she downloads her picture and runs the same graph in her room.
    let (status, bytes) = story.download(&alice, &private).await;
    assert_eq!((status, bytes), (StatusCode::OK, picture));
    let (nodes, edges) = upload_graph(&private);
    let run = story.run_graph(&alice, "alice-room", "alice-1", &nodes, &edges).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

async fn a_removed_collaborator_loses_the_rooms_uploads_for_good(backend: Backend) {
    let story = RunStory::start_with(backend, |_| {}).await;
    let (alice, bob) = (token("alice"), token("bob"));
    story.user_with_credits(&alice, 5).await;
    let bob_id = story.user_with_credits(&bob, 5).await;
    let workflow = story.workflow_id(&alice, "shared-room").await;
    story.workflow(&bob, "bob-room").await;
    let path = format!("/api/workflows/{workflow}/collaborators/{bob_id}");
    let (status, body) =
        story.call(Method::PUT, &path, &alice, Some(json!({"permission": "write"})), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shared = story.uploaded(&alice, Some("shared-room"), png(12, 12, 2)).await;

    // While he collaborates, Bob may read it: downloads and runs in his own room work.
    assert_eq!(story.download(&bob, &shared).await.0, StatusCode::OK);
    let (nodes, edges) = upload_graph(&shared);
    let first = story.run_graph(&bob, "bob-room", "bob-1", &nodes, &edges).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let blurred = node_of(&first, "blur")["outputs"]["image"]["asset"]["id"].as_str().expect("blur output");
    assert_ne!(blurred, shared, "the blur made a picture of its own");

    // Alice removes him. The id is still in his document, and in his node cache.
    let (status, _) = story.call(Method::DELETE, &path, &alice, None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = story.download(&bob, &shared).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "his earlier run gave him no link of his own");
    assert_eq!(error_body(&body)["code"], "not_found");
    let again = story.run_graph(&bob, "bob-room", "bob-2", &nodes, &edges).await;
    assert_eq!(again["status"], "failed", "{again}");
    assert_eq!(node_of(&again, "in")["error"], format!("asset {shared} not found"));
    assert_eq!(node_of(&again, "blur")["state"], "skipped", "not served from his cache");
    // What he made while he could stays his.
    assert_eq!(story.download(&bob, blurred).await.0, StatusCode::OK);

    // Alice still works in her room.
    assert_eq!(story.download(&alice, &shared).await.0, StatusCode::OK);
    let run = story.run_graph(&alice, "shared-room", "alice-1", &nodes, &edges).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

// ---------------------------------------------------------------------------------------------
// Uploads are decoded and bounded.

async fn uploads_that_are_not_one_bounded_png_are_refused(backend: Backend) {
    let story = RunStory::start_with(backend, |_| {}).await;
    let alice = token("alice");
    story.user_with_credits(&alice, 0).await;
    let refused = |expected: StatusCode, code: &'static str| {
        move |(status, body): (StatusCode, Value)| {
            assert_eq!(status, expected, "{body}");
            assert_eq!(body["code"], code, "{body}");
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
        }
    };

    // The replay: 19 MiB of noise behind a PNG signature.
    let mut noise = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    noise.extend((0..19 * 1024 * 1024).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image")(story.upload(&alice, None, noise).await);

    // A header claiming 100 000 × 100 000 pixels: refused from the header. Decoding it would
    // need 40 GB; the decoder may allocate at most DOJO_MAX_IMAGE_PIXELS × 8 bytes + 16 MiB.
    refused(StatusCode::UNPROCESSABLE_ENTITY, "image_too_large")(
        story.upload(&alice, None, png_header_only(100_000, 100_000)).await,
    );
    // Over the side limit (4096 by default).
    refused(StatusCode::UNPROCESSABLE_ENTITY, "image_too_large")(
        story.upload(&alice, None, png(4097, 1, 0)).await,
    );
    // A real picture carrying something after its end.
    let mut polyglot = png(8, 8, 3);
    polyglot.extend_from_slice(b"<script>alert(1)</script>");
    refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image")(story.upload(&alice, None, polyglot).await);
    // Not a PNG at all.
    refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")(
        story.upload(&alice, None, b"GIF89a\x01\x00\x01\x00".to_vec()).await,
    );

    // The server is up and Alice keeps working: a real upload, its download, a synced room.
    let picture = png(64, 48, 4);
    let id = story.uploaded(&alice, None, picture.clone()).await;
    assert_eq!(story.download(&alice, &id).await, (StatusCode::OK, picture));
    story.workflow(&alice, "alice-room").await;
    let client = join(&story, "alice-room", &alice).await;
    client.close().await;
    let health = reqwest::get(story.server.http("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
}

async fn the_storage_quota_holds_even_against_concurrent_uploads(backend: Backend) {
    let pictures: Vec<Vec<u8>> = (0..8u8).map(|i| png(32, 32, i)).collect();
    let largest = pictures.iter().map(Vec::len).max().expect("pictures") as u64;
    // Room for three of them, not four.
    let quota = 3 * largest + largest / 2;
    let story = RunStory::start_with(backend, |config| config.executor.user_storage_bytes = quota).await;
    let (alice, carol) = (token("alice"), token("carol"));
    story.user_with_credits(&alice, 0).await;
    story.user_with_credits(&carol, 0).await;

    let uploads = pictures.iter().map(|p| story.upload(&alice, None, p.clone()));
    let answers = futures_util::future::join_all(uploads).await;
    let stored = answers.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
    assert_eq!(stored, 3, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["code"], "storage_quota_exceeded", "{body}");
    }
    // Stored is what the quota says, counted from the database.
    let database = dojo_store::open_database(&story.database_url).await.expect("database");
    let (_, me) = story.call(Method::GET, "/api/me", &alice, None, None).await;
    let used = dojo_records::runs(&database)
        .storage_used(&me["id"].as_str().expect("id").into())
        .await
        .expect("used");
    assert!(used as u64 <= quota, "{used} > {quota}");

    // The quota is Alice's, not everyone's.
    story.uploaded(&carol, None, pictures[0].clone()).await;
}

// ---------------------------------------------------------------------------------------------
// SSRF: result downloads reach public addresses only.

async fn a_provider_result_on_a_loopback_address_is_never_fetched(backend: Backend) {
    let replicate = Replicate::start().await;
    let mut providers = replicate.config();
    providers.allow_private_downloads = false;
    let story = RunStory::start_with(backend, |config| config.executor.providers = Some(providers)).await;
    let bob = token("bob");
    story.user_with_credits(&bob, 10).await;
    story.workflow(&bob, "bob-room").await;
    let nodes = vec![
        node("prompt", "text-prompt", json!({"text": "fetch our metadata"})),
        node("gen", "flux-schnell", json!({})),
    ];
    let edges = vec![edge("prompt", "text", "gen", "prompt")];
    let run = story.run_graph(&bob, "bob-room", "bob-1", &nodes, &edges).await;

    assert_eq!(run["status"], "failed", "{run}");
    let error = node_of(&run, "gen")["error"].as_str().expect("an error").to_owned();
    assert!(error.contains("private or reserved address") && error.contains("127.0.0.1"), "{error}");
    assert_eq!(replicate.created("fetch our metadata"), 1, "the prediction ran; its result was not fetched");
    let fetched = replicate
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/files/out.png")
        .count();
    assert_eq!(fetched, 0, "the worker never connected to the loopback URL");
    assert_eq!(story.balance(&bob).await, 10, "the failed node's hold came back");
}

dojo_test_support::each_backend_story!(
    a_run_cannot_read_another_users_private_upload,
    a_removed_collaborator_loses_the_rooms_uploads_for_good,
);

mod sqlite_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_that_are_not_one_bounded_png_are_refused() {
        super::uploads_that_are_not_one_bounded_png_are_refused(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_result_on_a_loopback_address_is_never_fetched() {
        super::a_provider_result_on_a_loopback_address_is_never_fetched(Backend::Sqlite).await;
    }
}

mod postgres_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_storage_quota_holds_even_against_concurrent_uploads() {
        // PostgreSQL runs the uploads' transactions concurrently: the row lock is what holds.
        super::the_storage_quota_holds_even_against_concurrent_uploads(Backend::Postgres).await;
    }
}

/// A PNG whose header claims `width` × `height` pixels, with a token of image data.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
