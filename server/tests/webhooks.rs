//! Signed webhooks and the change feed, end to end: a real server, real WebSocket clients, a
//! local HTTP receiver (wiremock) that records what it is sent. Every delivery's signature is
//! checked here with an HMAC computed independently of the server's code.

mod common;

use std::time::Duration;

use common::WAIT;
use common::database::Backend;
use common::runs::{RunStory, edge, join, token, typed_node as node, write_graph};
use dojo_sync_protocol::canvas;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Transact};

/// Private targets allowed (the receiver is on 127.0.0.1), short intervals and retries.
async fn story(backend: Backend) -> RunStory {
    RunStory::start_with(backend, |config| {
        config.webhooks.webhook_allow_private = true;
        config.webhooks.webhook_room_interval_secs = 2;
        config.webhooks.webhook_retry_secs = 1;
        config.webhooks.webhook_max_attempts = 3;
    })
    .await
}

/// A receiver answering 200 to everything.
async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    server
}

/// Creates a workflow in `room` for `owner`; its id.
async fn workflow(story: &RunStory, owner: &str, room: &str) -> String {
    let body = json!({"title": room, "room": room});
    let (status, created) = story.call(Method::POST, "/api/workflows", owner, Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("workflow id").to_owned()
}

/// Registers an endpoint; (its id, its secret).
async fn hook(story: &RunStory, owner: &str, workflow: &str, url: &str, events: &[&str]) -> (String, String) {
    let path = format!("/api/workflows/{workflow}/webhooks");
    let body = json!({"url": url, "events": events, "description": "test receiver"});
    let (status, created) = story.call(Method::POST, &path, owner, Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("the secret, shown once").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (created["id"].as_str().expect("hook id").to_owned(), secret)
}

/// One delivery the receiver got, its signature checked.
#[derive(Debug, Clone)]
struct Received {
    event_type: String,
    event_id: String,
    body: Value,
}

/// Checks `Dojo-Signature: t=…,v1=…` against HMAC-SHA256(secret, "t.body"), computed here.
fn verify(request: &wiremock::Request, secret: &str) {
    let header = request.headers.get("dojo-signature").and_then(|v| v.to_str().ok()).expect("Dojo-Signature");
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t="), v1.expect("v1="));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - t.parse::<i64>().expect("a number")).abs() < 300, "a fresh timestamp: {t}");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1, "the signature matches the body");
}

/// Every delivery received so far, signatures checked.
async fn received(server: &MockServer, secret: &str) -> Vec<Received> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .map(|request| {
            verify(request, secret);
            let header = |name: &str| {
                request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
            };
            let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
            assert_eq!(body["type"], header("dojo-event-type"));
            assert_eq!(body["id"], header("dojo-event-id"));
            Received { event_type: header("dojo-event-type"), event_id: header("dojo-event-id"), body }
        })
        .collect()
}

/// Waits until `done` holds for what the receiver got.
async fn wait_received(
    server: &MockServer,
    secret: &str,
    what: &str,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = received(server, secret).await;
        if done(&got) {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "never received {what}: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn of_type<'a>(got: &'a [Received], kind: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.event_type == kind).collect()
}

async fn a_run_sends_signed_node_and_run_events_and_the_feed_pages(backend: Backend) {
    let story = story(backend).await;
    let receiver = receiver().await;
    let alice = token("alice");
    story.user_with_credits(&alice, 5).await;
    let room = "hooks-run";
    let wf = workflow(&story, &alice, room).await;
    let url = format!("{}/dojo", receiver.uri());
    let (_, secret) = hook(&story, &alice, &wf, &url, &["run.finished", "node.finished"]).await;

    let editor = join(&story, room, &alice).await;
    let nodes = [
        node("prompt", "text-prompt", json!({"text": "a fox"})),
        node("gen", "dev-image", json!({"seed": 1, "width": 16, "height": 16})),
    ];
    write_graph(&story, room, &alice, &editor, &nodes, &[edge("prompt", "text", "gen", "prompt")]).await;
    let run_id = story.submit(&alice, room, "k-hooks").await;

    let got = wait_received(&receiver, &secret, "run.finished and both nodes", |got| {
        !of_type(got, "run.finished").is_empty() && of_type(got, "node.finished").len() >= 2
    })
    .await;
    let run = &of_type(&got, "run.finished")[0].body;
    assert_eq!(run["workflowId"], wf.as_str());
    assert_eq!(run["room"], room);
    assert_eq!(run["data"]["runId"], run_id.as_str());
    assert_eq!(run["data"]["status"], "succeeded", "{run}");
    assert_eq!(run["data"]["charged"], 1);
    let image_url = run["data"]["outputs"]["gen"]["image"]["url"].as_str().expect("an asset URL");
    assert!(image_url.starts_with("/assets/"), "{image_url}");
    let node_events = of_type(&got, "node.finished");
    let mut finished: Vec<&str> =
        node_events.iter().filter_map(|r| r.body["data"]["nodeId"].as_str()).collect();
    finished.sort_unstable();
    assert_eq!(finished, ["gen", "prompt"], "{node_events:?}");
    assert!(node_events.iter().all(|r| r.body["data"]["status"] == "succeeded"));
    let gen_event = node_events.iter().find(|r| r.body["data"]["nodeId"] == "gen").expect("gen");
    assert!(
        gen_event.body["data"]["outputs"]["image"]["url"].as_str().is_some_and(|u| u.starts_with("/assets/"))
    );

    // The change feed has the same events, in order; pages of one walk it completely.
    let feed = |after: i64, limit: u32| {
        let path = format!("/api/workflows/{wf}/events?after={after}&limit={limit}");
        let story = &story;
        let alice = alice.clone();
        async move { story.call(Method::GET, &path, &alice, None, None).await }
    };
    let (status, all) = feed(0, 100).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all_events = all["events"].as_array().expect("events").clone();
    let all_ids: Vec<String> =
        all_events.iter().map(|e| e["event"]["id"].as_str().unwrap().to_owned()).collect();
    // The feed has every event of the workflow (alice entering, the graph edit too), not only
    // those an endpoint subscribed to.
    let run_types: Vec<&str> = all_events
        .iter()
        .filter_map(|e| e["event"]["type"].as_str())
        .filter(|t| t.ends_with(".finished"))
        .collect();
    assert_eq!(run_types, ["node.finished", "node.finished", "run.finished"], "{all}");
    assert!(all_events.iter().any(|e| e["event"]["type"] == "user.entered"), "{all}");
    for r in &got {
        assert!(all_ids.contains(&r.event_id), "the feed has {}", r.event_id);
    }
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = feed(after, 1).await;
        assert_eq!(status, StatusCode::OK);
        let events = page["events"].as_array().expect("events").clone();
        assert!(events.len() <= 1);
        if events.is_empty() {
            assert_eq!(page["hasMore"], false);
            break;
        }
        assert!(page["nextCursor"].as_i64().unwrap() > after);
        after = page["nextCursor"].as_i64().unwrap();
        paged.extend(events.into_iter().map(|e| e["event"]["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(paged, all_ids, "paging gives the same events in the same order");
    editor.close().await;
    story.server.stop().await;
}

async fn presence_room_updates_and_sharing_are_reported(backend: Backend) {
    let story = story(backend).await;
    let receiver = receiver().await;
    let (alice, bob) = (token("alice"), token("bob"));
    story.user_with_credits(&alice, 0).await;
    let bob_id = story.user_with_credits(&bob, 0).await;
    let room = "hooks-presence";
    let wf = workflow(&story, &alice, room).await;
    let events = ["room.updated", "user.entered", "user.left", "workflow.shared"];
    let (_, secret) = hook(&story, &alice, &wf, &receiver.uri(), &events).await;

    let share = format!("/api/workflows/{wf}/collaborators/{bob_id}");
    let (status, _) =
        story.call(Method::PUT, &share, &alice, Some(json!({"permission": "write"})), None).await;
    assert_eq!(status, StatusCode::OK);
    let got =
        wait_received(&receiver, &secret, "workflow.shared", |g| !of_type(g, "workflow.shared").is_empty())
            .await;
    let shared = &of_type(&got, "workflow.shared")[0].body["data"];
    assert_eq!(
        (shared["userId"].as_str(), shared["change"].as_str(), shared["permission"].as_str()),
        (Some(bob_id.as_str()), Some("added"), Some("write"))
    );

    let first = join(&story, room, &bob).await;
    let second = join(&story, room, &bob).await;
    let got =
        wait_received(&receiver, &secret, "user.entered", |g| !of_type(g, "user.entered").is_empty()).await;
    let entered = of_type(&got, "user.entered");
    assert_eq!(entered.len(), 1, "one entry for two connections of one user: {entered:?}");
    assert_eq!(entered[0].body["data"]["userId"], bob_id.as_str());
    assert_eq!(entered[0].body["data"]["activeUsers"], 1);

    // One change: reported at once. Two more inside the interval: one report, at its end,
    // carrying the state vector after both.
    first
        .edit(|txn| canvas::write_node(txn, &node("a", "blur", json!({}))).expect("node"))
        .await
        .expect("edit");
    wait_received(&receiver, &secret, "room.updated", |g| of_type(g, "room.updated").len() == 1).await;
    first
        .edit(|txn| canvas::write_node(txn, &node("b", "blur", json!({}))).expect("node"))
        .await
        .expect("edit");
    first
        .edit(|txn| canvas::write_node(txn, &node("c", "blur", json!({}))).expect("node"))
        .await
        .expect("edit");
    let expected = first.doc().transact().state_vector().encode_v1();
    let got = wait_received(&receiver, &secret, "the trailing room.updated", |g| {
        of_type(g, "room.updated").len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got_later = received(&receiver, &secret).await;
    assert_eq!(of_type(&got_later, "room.updated").len(), 2, "throttled: {got_later:?}");
    let last = &of_type(&got, "room.updated")[1].body["data"]["stateVector"];
    use base64::Engine;
    let vector =
        base64::engine::general_purpose::STANDARD.decode(last.as_str().expect("base64")).expect("decodes");
    assert_eq!(vector, expected, "the state vector after every change");

    // The first connection closing is not leaving; the last one is.
    first.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(of_type(&received(&receiver, &secret).await, "user.left").is_empty(), "bob is still there");
    second.close().await;
    let got = wait_received(&receiver, &secret, "user.left", |g| !of_type(g, "user.left").is_empty()).await;
    assert_eq!(of_type(&got, "user.left")[0].body["data"]["activeUsers"], 0);

    let (status, _) = story.call(Method::DELETE, &share, &alice, None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got =
        wait_received(&receiver, &secret, "the unshare", |g| of_type(g, "workflow.shared").len() == 2).await;
    assert_eq!(of_type(&got, "workflow.shared")[1].body["data"]["change"], "removed");
    story.server.stop().await;
}

async fn a_failing_receiver_is_retried_logged_and_replayed(backend: Backend) {
    let story = story(backend).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down for a moment"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("thanks"))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let (alice, bob) = (token("alice"), token("bob"));
    story.user_with_credits(&alice, 0).await;
    let bob_id = story.user_with_credits(&bob, 0).await;
    let wf = workflow(&story, &alice, "hooks-retry").await;
    let (hook_id, secret) = hook(&story, &alice, &wf, &receiver.uri(), &["workflow.shared"]).await;
    let share = format!("/api/workflows/{wf}/collaborators/{bob_id}");
    story.call(Method::PUT, &share, &alice, Some(json!({"permission": "read"})), None).await;

    let got = wait_received(&receiver, &secret, "a retry", |g| g.len() >= 2).await;
    assert_eq!(got[0].event_id, got[1].event_id, "the same event, sent again");
    assert_eq!(got[0].body, got[1].body, "byte for byte the same body");
    let log_path = format!("/api/workflows/{wf}/webhooks/{hook_id}/deliveries");
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let (status, log) = story.call(Method::GET, &log_path, &alice, None, None).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        if log["deliveries"][0]["status"] == "succeeded" {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "never succeeded: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["attempts"], 2, "{log}");
    assert_eq!(delivery["responseStatus"], 200);
    assert_eq!(delivery["responseBody"], "thanks");
    assert_eq!(delivery["eventType"], "workflow.shared");

    let replay = format!("{log_path}/{}/replay", delivery["id"]);
    let (status, replayed) = story.call(Method::POST, &replay, &alice, None, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["status"], "pending");
    let got = wait_received(&receiver, &secret, "the replay", |g| g.len() >= 3).await;
    assert_eq!(got[2].event_id, got[0].event_id);
    let (_, log) = story.call(Method::GET, &format!("{log_path}?limit=1"), &alice, None, None).await;
    assert_eq!(log["deliveries"].as_array().map(Vec::len), Some(1));
    let before = log["nextBefore"].as_i64().expect("a next page");
    let (_, older) =
        story.call(Method::GET, &format!("{log_path}?limit=1&before={before}"), &alice, None, None).await;
    assert_eq!(older["deliveries"][0]["id"], delivery["id"], "{older}");
    let (status, _) =
        story.call(Method::POST, &format!("{log_path}/999999/replay"), &alice, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    story.server.stop().await;
}

async fn private_targets_strangers_and_readers_are_refused(backend: Backend) {
    // The default: private targets refused.
    let story = RunStory::start(backend).await;
    let (alice, bob, mallory) = (token("alice"), token("bob"), token("mallory"));
    story.user_with_credits(&alice, 0).await;
    let bob_id = story.user_with_credits(&bob, 0).await;
    story.user_with_credits(&mallory, 0).await;
    let wf = workflow(&story, &alice, "hooks-refused").await;
    let path = format!("/api/workflows/{wf}/webhooks");
    let create = |url: &str, events: Value| json!({"url": url, "events": events});
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "ftp://example.com/x",
    ] {
        let (status, body) =
            story.call(Method::POST, &path, &alice, Some(create(url, json!(["run.finished"]))), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["code"], "bad_request");
    }
    let (status, body) = story
        .call(Method::POST, &path, &alice, Some(create("https://x.example/", json!(["run.started"]))), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown events: {body}");
    story.server.stop().await;

    let story = RunStory::start_with(backend, |config| {
        config.webhooks.webhook_allow_private = true;
        config.webhooks.webhook_max_endpoints = 2;
    })
    .await;
    story.user_with_credits(&alice, 0).await;
    let bob_id2 = story.user_with_credits(&bob, 0).await;
    let _ = bob_id;
    story.user_with_credits(&mallory, 0).await;
    let wf = workflow(&story, &alice, "hooks-admin").await;
    let path = format!("/api/workflows/{wf}/webhooks");
    let share = format!("/api/workflows/{wf}/collaborators/{bob_id2}");
    story.call(Method::PUT, &share, &alice, Some(json!({"permission": "write"})), None).await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["run.finished"]});
    let (status, _) = story.call(Method::POST, &path, &bob, Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a writer does not administer webhooks");
    let (status, _) = story.call(Method::GET, &path, &bob, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = story.call(Method::GET, &format!("/api/workflows/{wf}/events"), &bob, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = story.call(Method::GET, &path, &mallory, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a stranger does not learn the workflow exists");
    for _ in 0..2 {
        let (status, created) = story.call(Method::POST, &path, &alice, Some(body.clone()), None).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let (status, full) = story.call(Method::POST, &path, &alice, Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "bounded per workflow: {full}");
    let (status, listed) = story.call(Method::GET, &path, &alice, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().expect("a list").clone();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|e| e.get("secret").is_none()), "secrets are shown once: {listed:?}");
    let hook_id = listed[0]["id"].as_str().expect("id");
    let (status, _) = story.call(Method::DELETE, &format!("{path}/{hook_id}"), &alice, None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = story.call(Method::DELETE, &format!("{path}/{hook_id}"), &alice, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    story.server.stop().await;
}

/// A room that hibernates with a `room.updated` report held back by the throttle parks anyway
/// (it gives up its task and queue) and leaves a timer behind: the report still goes out when
/// due, carrying the last change, and the room parks again.
async fn a_parked_room_still_sends_its_held_back_report(backend: Backend) {
    const INTERVAL: u64 = 10;
    let story = RunStory::start_with(backend, |config| {
        config.webhooks.webhook_allow_private = true;
        config.webhooks.webhook_room_interval_secs = INTERVAL;
        config.rooms.hibernate_after_secs = 1;
    })
    .await;
    let receiver = receiver().await;
    let alice = token("alice");
    story.user_with_credits(&alice, 0).await;
    let room = "hooks-parked";
    let wf = workflow(&story, &alice, room).await;
    let (_, secret) = hook(&story, &alice, &wf, &receiver.uri(), &["room.updated"]).await;

    let client = join(&story, room, &alice).await;
    // The throttle's interval starts when the first change is stored, after this.
    let first_change = tokio::time::Instant::now();
    client
        .edit(|txn| canvas::write_node(txn, &node("a", "blur", json!({}))).expect("node"))
        .await
        .expect("edit");
    wait_received(&receiver, &secret, "room.updated", |g| of_type(g, "room.updated").len() == 1).await;
    client
        .edit(|txn| canvas::write_node(txn, &node("b", "blur", json!({}))).expect("node"))
        .await
        .expect("edit");
    let expected = client.doc().transact().state_vector().encode_v1();

    // The room hibernates after 1 s and parks, with the second change's report still due.
    story.server.wait_metric("dojo_rooms_parked", "", |v| v == 1.0).await;
    let resumes = story.server.metric("dojo_room_resumes_total", "").await;
    let got = received(&receiver, &secret).await;
    // On a machine so loaded that the room parked only after the report fell due, the room
    // reported by itself first; the checks that need the order are skipped then.
    let before_due = first_change.elapsed() < Duration::from_secs(INTERVAL);
    if before_due {
        assert_eq!(of_type(&got, "room.updated").len(), 1, "parked before the report was due: {got:?}");
    }

    let got = wait_received(&receiver, &secret, "the held-back room.updated", |g| {
        of_type(g, "room.updated").len() >= 2
    })
    .await;
    use base64::Engine;
    let last = &of_type(&got, "room.updated")[1].body["data"]["stateVector"];
    let vector =
        base64::engine::general_purpose::STANDARD.decode(last.as_str().expect("base64")).expect("decodes");
    assert_eq!(vector, expected, "the report carries the change made before the room parked");
    if before_due {
        let now = story.server.metric("dojo_room_resumes_total", "").await;
        assert!(now > resumes, "the timer resumed the parked room to report ({resumes} -> {now})");
    }
    story.server.wait_metric("dojo_rooms_parked", "", |v| v == 1.0).await;
    client.close().await;
    story.server.stop().await;
}

dojo_test_support::each_backend_story!(
    a_run_sends_signed_node_and_run_events_and_the_feed_pages,
    presence_room_updates_and_sharing_are_reported,
    a_parked_room_still_sends_its_held_back_report,
    a_failing_receiver_is_retried_logged_and_replayed,
    private_targets_strangers_and_readers_are_refused,
);
