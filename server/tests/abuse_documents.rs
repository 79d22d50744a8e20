//! Documents that cannot crash the server (issue 17, attacks 1 and 5).
//!
//! Each story replays an attack through the real paths (WebSocket and REST, a real server, a
//! real store) and checks that it is refused or survived, that the server stays up, and that
//! the room's owner keeps syncing and editing.

mod common;

use std::time::Duration;

use common::runs::{RunApi, SECRET, token};
use common::{TestServer, WAIT};
use dojo_records::{NewRun, NewRunNode};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{self, CanvasNode, Position};
use dojo_sync_protocol::update::MAX_TYPE_DEPTH;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yrs::{Doc, Map, MapPrelim, MapRef, ReadTxn, Text, Transact, TransactionMut, WriteTxn};

/// The attack's shape: 5,000 `Y.Map`s nested in each other, about 30 KB as one update.
const ATTACK_LEVELS: usize = 5_000;

fn node(id: &str) -> CanvasNode {
    CanvasNode {
        id: id.into(),
        node_type: "upscale".into(),
        position: Position { x: 0.0, y: 0.0 },
        data: Default::default(),
    }
}

fn node_count(doc: &Doc) -> usize {
    canvas::read_graph(&doc.transact()).map(|g| g.nodes.len()).unwrap_or(0)
}

/// Nests `levels` maps under `root[key]` in `txn`.
fn nest(txn: &mut TransactionMut, root: &MapRef, key: &str, levels: usize) {
    let mut inner = root.insert(txn, key, MapPrelim::default());
    for _ in 1..levels {
        inner = inner.insert(txn, "k", MapPrelim::default());
    }
}

/// A v1 update nesting `levels` maps in the root map `root`, as one transaction of a fresh doc.
fn nested_update(root: &str, levels: usize) -> Vec<u8> {
    let doc = Doc::new();
    let map = doc.get_or_insert_map(root);
    let mut txn = doc.transact_mut();
    nest(&mut txn, &map, "deep", levels);
    txn.encode_update_v1()
}

async fn post_update(
    server: &TestServer,
    room: &str,
    bearer: Option<&str>,
    update: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(server.http(&format!("/api/rooms/{room}/update")))
        .header("content-type", "application/octet-stream")
        .body(update);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.expect("POST update");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TestServer, path: &str, bearer: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut request = reqwest::Client::new().get(server.http(path));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.expect("GET");
    let status = response.status();
    (status, response.bytes().await.expect("body").to_vec())
}

async fn healthy(server: &TestServer) {
    let (status, body) = get(server, "/healthz", None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok"[..]), "the server is up");
}

/// The owner and a collaborator still edit together, and a newcomer syncs all of it.
async fn room_still_works(server: &TestServer, room: &str, expected_nodes: usize) {
    let alice = server.client(room).await;
    let bob = server.client(room).await;
    alice.edit(|txn| canvas::write_node(txn, &node("after-the-attack")).unwrap()).await.unwrap();
    bob.wait_doc("alice's node", WAIT, |doc| node_count(doc) == expected_nodes + 1)
        .await
        .expect("bob receives alice's edit");
    let (status, graph) = get(server, &format!("/api/rooms/{room}/graph"), None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&graph));
    let graph: Value = serde_json::from_slice(&graph).expect("JSON");
    assert!(graph["nodes"]["after-the-attack"].is_object(), "{graph}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_nested_thousands_deep_over_websocket_close_the_sender_and_the_room_keeps_working() {
    let server = TestServer::start().await;
    let room = "abuse-deep-ws";
    let alice = server.client(room).await;
    alice.edit(|txn| canvas::write_node(txn, &node("before")).unwrap()).await.unwrap();

    let offender = server.client(room).await;
    offender
        .edit(|txn| {
            let nodes = txn.get_or_insert_map("nodes");
            nest(txn, &nodes, "deep", ATTACK_LEVELS);
        })
        .await
        .unwrap();
    let (code, reason) = offender.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("nested more than 32 levels"), "{reason}");

    // Also just past the limit, and in `results` (where it used to crash run submission).
    let offender = server.client(room).await;
    offender
        .edit(|txn| {
            let results = txn.get_or_insert_map("results");
            nest(txn, &results, "n1", MAX_TYPE_DEPTH + 1);
        })
        .await
        .unwrap();
    let (code, _) = offender.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1007);
    assert_eq!(server.metric("dojo_document_refusals_total", "reason=\"nesting\"").await, 2.0);

    healthy(&server).await;
    room_still_works(&server, room, 1).await;
    let (_, state) = get(&server, &format!("/api/rooms/{room}/state"), None).await;
    assert!(state.len() < 4096, "nothing of the attack was stored: {} bytes", state.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_nested_thousands_deep_over_rest_are_refused_with_400_and_reads_keep_working() {
    let server = TestServer::start().await;
    let room = "abuse-deep-rest";
    let alice = server.client(room).await;
    alice.edit(|txn| canvas::write_node(txn, &node("before")).unwrap()).await.unwrap();

    for (root, levels) in
        [("nodes", ATTACK_LEVELS), ("results", ATTACK_LEVELS), ("scratch", MAX_TYPE_DEPTH + 1)]
    {
        let update = nested_update(root, levels);
        let (status, body) = post_update(&server, room, None, update).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{root}: {body}");
        assert_eq!(body["code"], "bad_request", "{body}");
        assert!(body["error"].as_str().unwrap_or("").contains("nested more than 32 levels"), "{body}");
    }
    // At the limit is fine (in a root outside the canvas schema, which graph reads ignore).
    let (status, body) = post_update(&server, room, None, nested_update("scratch", MAX_TYPE_DEPTH)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The reads that used to overflow the stack.
    for _ in 0..3 {
        let (status, _) = get(&server, &format!("/api/rooms/{room}/graph"), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    healthy(&server).await;
    room_still_works(&server, room, 1).await;
    server.stop().await;
}

/// A document stored before the nesting check existed (written straight into the store):
/// the room is quarantined, every client is told why, nothing crashes, other rooms work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_document_nested_too_deep_is_quarantined_not_loaded() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}", data.path().join("dojo.db").display());
    let store = dojo_store::open(&url).await.expect("open the store");
    let fine = Doc::new();
    canvas::write_node(&mut fine.transact_mut(), &node("kept")).unwrap();
    let fine_state = fine.transact().encode_state_as_update_v1(&Default::default());
    store
        .append("legacy-deep", &[fine_state.as_slice(), nested_update("results", ATTACK_LEVELS).as_slice()])
        .await
        .unwrap();
    store.append("legacy-fine", &[fine_state.as_slice()]).await.unwrap();
    drop(store);

    let server = TestServer::start_on(&url, |_| {}).await;
    for attempt in 0..3 {
        let client = SyncClient::connect(&server.url("legacy-deep")).await.expect("the upgrade is accepted");
        let (code, reason) = client.wait_closed(WAIT).await.expect("closed").expect("a close frame");
        assert_eq!(code, 1011, "attempt {attempt}: {reason}");
        assert!(reason.contains("quarantined"), "{reason}");
    }
    let (status, body) = get(&server, "/api/rooms/legacy-deep/graph", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_slice(&body).expect("the error envelope");
    assert_eq!(body["code"], "room_quarantined", "{body}");
    let (status, body) = post_update(&server, "legacy-deep", None, fine_state.clone()).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("room_quarantined")),
        "{body}"
    );
    assert!(server.metric("dojo_rooms_quarantined_total", "").await >= 4.0);

    healthy(&server).await;
    room_still_works(&server, "legacy-fine", 1).await;
    server.stop().await;
}

/// Attack 1's last step: the deep document under `results` of a room with a run in flight.
/// After a restart the run is resumed; it now fails once, cleanly (failed with a reason, its
/// hold released), instead of crashing the server on every resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_room_is_quarantined_fails_cleanly_on_resume_and_releases_its_hold() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}", data.path().join("dojo.db").display());
    let configure = |c: &mut dojo_server::Config| {
        c.auth.jwt_secret = Some(SECRET.into());
        c.executor.lease_secs = 1;
    };
    let alice = token("alice");
    let room = "abuse-deep-run";
    let server = TestServer::start_on(&url, configure).await;
    let api = RunApi::new(server.addr, &url);
    let alice_id = api.user_with_credits(&alice, 10).await;
    api.workflow(&alice, room).await;
    server.stop().await;

    // While it is down: the planted document, and a run a dead worker had claimed.
    let database = dojo_store::open_database(&url).await.expect("open the database");
    database.documents().append(room, &[nested_update("results", ATTACK_LEVELS).as_slice()]).await.unwrap();
    let runs = dojo_records::runs(&database);
    let graph = json!({"nodes": [{"id": "n1", "type": "upscale", "position": {"x": 0, "y": 0}, "data": {}}], "edges": []});
    let created = runs
        .create_run(NewRun {
            id: "run_planted".into(),
            room: room.into(),
            user_id: alice_id.clone().into(),
            graph: graph.to_string(),
            targets: None,
            idempotency_key: None,
            nodes: vec![NewRunNode {
                node_id: "n1".into(),
                node_type: "upscale".into(),
                cost: 3,
                params: "{}".into(),
            }],
            hold_expires_at: i64::MAX / 2,
            max_unfinished: None,
            team_id: None,
            queue: Default::default(),
            granted_assets: Vec::new(),
        })
        .await
        .expect("create the run");
    assert_eq!(created.run().id, "run_planted");
    let outbox: Vec<i64> = runs.outbox(100).await.unwrap().into_iter().map(|e| e.id).collect();
    runs.delete_outbox(&outbox).await.unwrap();
    let claimed = runs.claim_run(&"run_planted".into(), "dead-worker", 1, None).await.unwrap();
    assert!(matches!(claimed, dojo_records::Claim::Claimed(_)), "{claimed:?}");
    drop(runs);
    drop(database);

    let server = TestServer::start_on(&url, configure).await;
    let api = RunApi::new(server.addr, &url);
    assert_eq!(api.balance(&alice).await, 7, "the run's hold is taken");
    let run =
        api.wait_run(&alice, "run_planted", Duration::from_secs(30), |run| run["status"] == "failed").await;
    assert!(run["error"].as_str().unwrap_or("").contains("quarantined"), "{run}");
    assert_eq!(api.balance(&alice).await, 10, "the hold is released");
    healthy(&server).await;
    // Nothing tries it again: it stays failed, and the server stays up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, again) = api.call(Method::GET, "/api/runs/run_planted", &alice, None, None).await;
    assert_eq!(again["status"], "failed");
    healthy(&server).await;
    // Another room of alice's works.
    api.workflow(&alice, "abuse-deep-run-other").await;
    let editor = common::runs::join(&api, "abuse-deep-run-other", &alice).await;
    editor.edit(|txn| canvas::write_node(txn, &node("fine")).unwrap()).await.unwrap();
    let reader = common::runs::join(&api, "abuse-deep-run-other", &alice).await;
    reader.wait_doc("alice's node", WAIT, |doc| node_count(doc) == 1).await.expect("syncs");
    server.stop().await;
}

/// A 3.9 MiB update of text: about what attack 5 sent six times.
fn big_text_update(seed: u8) -> Vec<u8> {
    let doc = Doc::new();
    let text = doc.get_or_insert_text(format!("notes-{seed}").as_str());
    let mut txn = doc.transact_mut();
    let chunk: String = (0..4 * 1024 * 1024 - 100 * 1024)
        .map(|i| char::from(b'a' + ((i + seed as usize) % 26) as u8))
        .collect();
    text.insert(&mut txn, 0, &chunk);
    txn.encode_update_v1()
}

/// Attack 5: six 3.9 MiB REST updates used to be accepted, after which no client could sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_cannot_grow_past_the_limit_and_stays_syncable() {
    const LIMIT: usize = 8 * 1024 * 1024;
    let data = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}", data.path().join("dojo.db").display());
    let server = TestServer::start_on(&url, |c| assert_eq!(c.limits.max_document_bytes, LIMIT)).await;
    let room = "abuse-size";
    let mut accepted = 0;
    for seed in 0..6 {
        let (status, body) = post_update(&server, room, None, big_text_update(seed)).await;
        match status {
            StatusCode::OK => accepted += 1,
            StatusCode::PAYLOAD_TOO_LARGE => {
                assert_eq!(body["code"], "document_too_large", "{body}");
                assert!(body["error"].as_str().unwrap_or("").contains(&LIMIT.to_string()), "{body}");
            }
            other => panic!("update {seed}: {other} {body}"),
        }
    }
    assert_eq!(accepted, 2, "two fit under 8 MiB, the others are refused");

    // Over the WebSocket too: the sender is closed with a reason, nothing is applied.
    let offender = server.client(room).await;
    offender
        .edit(|txn| {
            let text = txn.get_or_insert_text("notes-ws");
            text.insert(txn, 0, &"z".repeat(3 * 1024 * 1024));
        })
        .await
        .unwrap();
    let (code, reason) = offender.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("document too large"), "{reason}");
    assert_eq!(server.metric("dojo_document_refusals_total", "reason=\"document_size\"").await, 5.0);

    // A stock client still syncs the room, and it is within the bound.
    let (_, state) = get(&server, &format!("/api/rooms/{room}/state"), None).await;
    assert!(state.len() <= LIMIT, "{} bytes", state.len());
    room_still_works(&server, room, 0).await;
    server.stop().await;

    // Nothing stored was lost: both accepted updates are there after a restart.
    let server = TestServer::start_on(&url, |_| {}).await;
    let client = server.client(room).await;
    let txn = client.doc().transact();
    for seed in 0..2 {
        use yrs::GetString;
        let text = txn.get_text(format!("notes-{seed}").as_str()).expect("stored");
        assert_eq!(text.get_string(&txn).len(), 4 * 1024 * 1024 - 100 * 1024);
    }
    drop(txn);
    server.stop().await;
}

fn worker_token(room: &str) -> String {
    let mut claims = dojo_auth::Claims::new("dojo-worker", 600);
    claims.grants = Some(dojo_auth::Grants(std::collections::BTreeMap::from([(
        room.to_owned(),
        dojo_auth::Permission::Write,
    )])));
    dojo_auth::Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

/// `results` and `runs` hold what the executor reports; a collaborator (even the owner) may not
/// forge them, over the WebSocket or REST. The executor's service token may write them, and
/// the editor may still drop a node's result with the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_executor_writes_results_and_runs() {
    let server = TestServer::start_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let url = format!("sqlite:{}", "unused");
    let api = RunApi::new(server.addr, &url);
    let alice = token("alice");
    let room = "abuse-executor-maps";
    api.workflow(&alice, room).await;
    let owner = common::runs::join(&api, room, &alice).await;
    owner.edit(|txn| canvas::write_node(txn, &node("n1")).unwrap()).await.unwrap();

    // The executor reports a result (REST, with its service token).
    let executor = Doc::new();
    let result = canvas::NodeResult {
        status: canvas::NodeStatus::Failed,
        progress: 100.0,
        outputs: Default::default(),
        error: Some("provider down".into()),
        errors: Vec::new(),
        run_id: Some("run_1".into()),
        updated_at: 1,
    };
    let reported = {
        let mut txn = executor.transact_mut();
        canvas::write_node_result(&mut txn, "n1", &result).unwrap();
        txn.encode_update_v1()
    };
    let (status, body) = post_update(&server, room, Some(&worker_token(room)), reported).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    owner
        .wait_doc("the executor's result", WAIT, |doc| {
            canvas::read_node_result(&doc.transact(), "n1").is_ok_and(|r| r.is_some())
        })
        .await
        .expect("the owner sees the result");

    // Forging over the WebSocket: a success where the executor said failed.
    let forger = common::runs::join(&api, room, &alice).await;
    forger
        .edit(|txn| {
            let forged =
                canvas::NodeResult { status: canvas::NodeStatus::Succeeded, error: None, ..result.clone() };
            canvas::write_node_result(txn, "n1", &forged).unwrap();
        })
        .await
        .unwrap();
    let (code, reason) = forger.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("executor only"), "{reason}");

    // Over REST, into `runs` and into `results`.
    for root in ["runs", "results"] {
        let doc = Doc::new();
        let update = {
            let map = doc.get_or_insert_map(root);
            let mut txn = doc.transact_mut();
            map.insert(&mut txn, "forged", "succeeded");
            txn.encode_update_v1()
        };
        let (status, body) = post_update(&server, room, Some(&alice), update).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{root}: {body}");
        assert!(body["error"].as_str().unwrap_or("").contains("executor only"), "{body}");
    }
    assert_eq!(server.metric("dojo_document_refusals_total", "reason=\"executor_maps\"").await, 3.0);

    // Nothing forged reached anyone: the owner still sees the executor's failure.
    let (_, graph) = get(&server, &format!("/api/rooms/{room}/graph"), Some(&alice)).await;
    let graph: Value = serde_json::from_slice(&graph).expect("JSON");
    assert_eq!(graph["results"]["n1"]["status"], "failed", "{graph}");
    assert!(graph["runs"].as_object().is_none_or(|runs| runs.is_empty()), "{graph}");

    // The editor deletes a node with its result: still allowed, and the owner keeps editing.
    owner.edit(|txn| canvas::remove_node(txn, "n1")).await.unwrap();
    owner.edit(|txn| canvas::write_node(txn, &node("n2")).unwrap()).await.unwrap();
    let reader = common::runs::join(&api, room, &alice).await;
    reader
        .wait_doc("n2 and no n1", WAIT, |doc| {
            let graph = canvas::read_graph(&doc.transact());
            graph.is_ok_and(|g| g.nodes.len() == 1 && g.nodes[0].id == "n2")
        })
        .await
        .expect("the owner's edits arrive");
    assert!(!owner.status().ended, "the owner was never disconnected");
    healthy(&server).await;
    server.stop().await;
}
