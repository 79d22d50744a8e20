//! Stories about what survives: restarts, crashes, compaction, outages of the database, restoring
//! old versions and idle rooms unloading. Most run twice, on an SQLite file and on a PostgreSQL
//! database of their own (`sqlite::…` and `postgres::…`).
//!
//! The promise under test: a change is shown to anyone (broadcast, or served in a sync step 2)
//! only once it is stored. So whatever any client has received from the server must be in the
//! store, whatever happens to the process afterwards.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::database::{Backend, TestDatabase};
use common::process::{BINARY, ServerProcess};
use common::{TestServer, WAIT, http_client, node};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{self, CanvasEdge, CanvasGraph, Position};
use serde_json::{Value, json};
use tokio::time::Instant;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Doc, ReadTxn, Snapshot, StateVector, Transact, Update};

// ---------------------------------------------------------------------------------------------
// Helpers

fn doc_graph(doc: &Doc) -> CanvasGraph {
    canvas::read_graph(&doc.transact()).expect("the canvas follows the schema")
}

fn graph(client: &SyncClient) -> CanvasGraph {
    doc_graph(client.doc())
}

/// What a client holds: its state vector and its canvas. (Encoded updates are not canonical:
/// the same content can encode with map keys in another order.)
fn state(client: &SyncClient) -> (StateVector, CanvasGraph) {
    (client.doc().transact().state_vector(), graph(client))
}

fn node_ids(graph: &CanvasGraph) -> BTreeSet<String> {
    graph.nodes.iter().map(|n| n.id.clone()).collect()
}

/// The (client, clock) pairs of `seen` that `have` does not cover: empty when `have` holds
/// everything `seen` does.
fn not_covered(have: &StateVector, seen: &StateVector) -> Vec<(ClientID, u32, u32)> {
    let mut missing: Vec<_> = seen
        .iter()
        .filter(|(client, clock)| have.get(client) < **clock)
        .map(|(client, clock)| (*client, *clock, have.get(client)))
        .collect();
    missing.sort();
    missing
}

/// One edit of a varied mix (nodes, parameters, edges, moves, removals), all about ids under
/// `prefix`, so that two clients with different prefixes can edit at once.
async fn mixed_edit(client: &SyncClient, prefix: &str, i: usize) {
    let id = |n: usize| format!("{prefix}-{n}");
    client
        .edit(|txn| match i % 10 {
            0 | 1 | 5 | 6 => canvas::write_node(txn, &node(&id(i), i as f64)).unwrap(),
            2 | 7 => {
                canvas::set_node_param(txn, &id(i - 1), "prompt", &json!(format!("edit {i}"))).unwrap();
            }
            3 | 8 => {
                let edge = CanvasEdge {
                    id: format!("{}-{}", id(i - 3), id(i - 2)),
                    source: id(i - 3),
                    source_handle: Some("image".into()),
                    target: id(i - 2),
                    target_handle: Some("image".into()),
                };
                canvas::write_edge(txn, &edge).unwrap();
            }
            4 => {
                canvas::move_node(txn, &id(i - 4), Position { x: i as f64, y: 1.0 }).unwrap();
            }
            _ => canvas::remove_node(txn, &id(i - 9)),
        })
        .await
        .expect("send an edit");
}

/// Waits (bounded) until every client holds the same state vector and canvas. Two clients that
/// both edited and agree have received each other's edits, which were therefore stored.
async fn wait_same(clients: &[&SyncClient]) -> (StateVector, CanvasGraph) {
    let deadline = Instant::now() + WAIT;
    loop {
        let states: Vec<_> = clients.iter().map(|c| state(c)).collect();
        if states.windows(2).all(|w| w[0] == w[1]) {
            return states.into_iter().next().expect("at least one client");
        }
        if Instant::now() > deadline {
            panic!("clients did not converge: {states:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until `client`'s canvas satisfies `done`.
async fn wait_graph(client: &SyncClient, what: &'static str, done: impl Fn(&CanvasGraph) -> bool) {
    let doc = client.doc().clone();
    let waited = client
        .wait_doc(what, WAIT, move |_| canvas::read_graph(&doc.transact()).is_ok_and(|g| done(&g)))
        .await;
    if let Err(error) = waited {
        panic!("{error}; the canvas is {:#?}", graph(client));
    }
}

/// A document's full content, in a form two documents can be compared by: its snapshot (state
/// vector and delete set) and every root as JSON, read back from what a joining client would be
/// sent (the whole state encoded as one update) after decoding it into a fresh document.
///
/// Not the encoded bytes themselves: yrs encodes an `Any` map (a node's position, its parameters)
/// by iterating a `HashMap`, and two documents holding the same map iterate it in different
/// orders, so the same document need not encode to the same bytes twice. Decoding compares what
/// the bytes mean. (Every root of the canvas schema is a `Y.Map`; a decoded document knows its
/// roots' names, but not their types until they are asked for as one.)
fn full_content(doc: &Doc) -> (Snapshot, BTreeMap<String, Value>) {
    let encoded = doc.transact().encode_state_as_update_v1(&StateVector::default());
    let decoded = Doc::new();
    let update = Update::decode_v1(&encoded).expect("a document's encoding decodes");
    decoded.transact_mut().apply_update(update).expect("and applies");
    let names: Vec<String> = decoded.transact().root_refs().map(|(name, _)| name.to_owned()).collect();
    let roots = names
        .into_iter()
        .map(|name| {
            let map = decoded.get_or_insert_map(name.as_str());
            let json = serde_json::to_value(map.to_json(&decoded.transact())).expect("JSON");
            (name, json)
        })
        .collect();
    (decoded.transact().snapshot(), roots)
}

/// Connects and syncs, retrying (bounded) while the server cannot serve the room yet (the
/// database is coming back, say). `doc`: reconnect with an existing document.
async fn connect_retrying(url: &str, doc: Option<&Doc>) -> SyncClient {
    let deadline = Instant::now() + WAIT;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        let connecting = async {
            match doc {
                Some(doc) => SyncClient::connect_with_doc(url, doc.clone()).await,
                None => SyncClient::connect(url).await,
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Err(_) => last_error = "no WebSocket upgrade within 5 s".into(),
            Ok(Err(error)) => last_error = error.to_string(),
            Ok(Ok(client)) => match client.wait_synced(Duration::from_secs(5)).await {
                Ok(()) => return client,
                Err(error) => last_error = format!("{error}; status {:?}", client.status()),
            },
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("could not connect to {url} and sync: {last_error}");
}

/// A connection past its WebSocket upgrade (bounded), not waiting for anything after it.
async fn upgraded(url: &str) -> SyncClient {
    tokio::time::timeout(WAIT, SyncClient::connect(url))
        .await
        .unwrap_or_else(|_| panic!("no WebSocket upgrade for {url} within {WAIT:?}"))
        .expect("the upgrade")
}

async fn http_get(server: &TestServer, path: &str) -> (u16, String) {
    let response = http_client().get(server.http(path)).send().await.expect("GET");
    (response.status().as_u16(), response.text().await.expect("body"))
}

async fn http_post(server: &TestServer, path: &str) -> (u16, String) {
    let response = http_client().post(server.http(path)).send().await.expect("POST");
    (response.status().as_u16(), response.text().await.expect("body"))
}

/// `GET /api/rooms/{room}/versions`, parsed.
async fn versions(server: &TestServer, room: &str) -> Vec<Value> {
    let (status, body) = http_get(server, &format!("/api/rooms/{room}/versions")).await;
    assert_eq!(status, 200, "listing versions: {body}");
    serde_json::from_str(&body).expect("a JSON list of versions")
}

/// Waits (bounded) until the room lists at least one version; returns the list.
async fn wait_versions(server: &TestServer, room: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = versions(server, room).await;
        if !list.is_empty() {
            return list;
        }
        assert!(Instant::now() < deadline, "no version of {room} appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

dojo_test_support::each_backend_story!(
    edits_survive_a_restart,
    what_anyone_received_survives_kill_9_mid_burst,
    compaction_keeps_the_document_and_shrinks_the_log,
    a_quiet_room_compacts_from_its_live_document,
    racing_compactions_lose_nothing,
    a_hundred_clients_opening_a_cold_room_load_it_once,
    a_restored_version_reaches_everyone,
    an_idle_room_unloads_and_loads_again,
    a_quiet_room_hibernates_keeps_presence_and_wakes_for_the_next_change,
    a_graceful_shutdown_stores_what_clients_sent,
    updates_that_queue_together_are_stored_in_one_transaction,
    migrate_creates_the_tables_and_can_run_again,
);

// ---------------------------------------------------------------------------------------------
// Stories

/// Two people edit, the server restarts, and a newcomer gets exactly what they had.
async fn edits_survive_a_restart(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let alice = server.client("restart").await;
    let bob = server.client("restart").await;
    for i in 0..30 {
        tokio::join!(mixed_edit(&alice, "a", i), mixed_edit(&bob, "b", i));
    }
    let expected = wait_same(&[&alice, &bob]).await;
    assert!(expected.1.nodes.len() >= 15 && !expected.1.edges.is_empty(), "{expected:?}");
    alice.close().await;
    bob.close().await;
    server.stop().await;

    let server = TestServer::start_on(&db.url, |_| {}).await;
    let carol = server.client("restart").await;
    assert_eq!(state(&carol), expected);
    server.stop().await;
}

/// Three people edit as fast as they can; the server process is SIGKILLed mid-burst and
/// restarted on the same store. Whatever an observer had received must have survived: it was
/// stored before it was broadcast. Three crashes in a row, each on top of the previous history.
async fn what_anyone_received_survives_kill_9_mid_burst(backend: Backend) {
    const ROOM: &str = "burst";
    const MAX_EDITS: usize = 3000;
    let db = TestDatabase::new(backend).await;
    // A low threshold, so that compactions run during the burst too and a kill can land in one.
    let args = ["--compact-after-updates", "25"];
    let mut server = ServerProcess::start(&db.url, &args).await;
    for round in 0..3 {
        let url = server.url(ROOM);
        let observer = connect_retrying(&url, None).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..3 {
            let client = connect_retrying(&url, None).await;
            let stop = stop.clone();
            writers.push(tokio::spawn(async move {
                let mut sent = 0;
                for i in 0..MAX_EDITS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("r{round}-w{w}-{i}");
                    let previous = format!("r{round}-w{w}-{}", i.saturating_sub(1));
                    let edited = client
                        .edit(|txn| {
                            if i % 3 == 2 {
                                canvas::set_node_param(txn, &previous, "prompt", &json!(i)).unwrap();
                            } else {
                                canvas::write_node(txn, &node(&id, i as f64)).unwrap();
                            }
                        })
                        .await;
                    if edited.is_err() {
                        break; // the server is gone
                    }
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                sent
            }));
        }

        // Let some edits flow through the store to the observer, then pull the plug.
        let prefix = format!("r{round}-");
        wait_graph(&observer, "edits of this round", |g| {
            g.nodes.iter().filter(|n| n.id.starts_with(&prefix)).count() >= 60
        })
        .await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let mut sent = Vec::new();
        for writer in writers {
            sent.push(tokio::time::timeout(WAIT, writer).await.expect("writers stop").expect("writer task"));
        }
        // Everything it will ever receive has arrived once its socket has ended.
        observer.wait_closed(WAIT).await.expect("the observer's connection ends");
        let (seen_sv, seen_graph) = state(&observer);
        assert!(
            sent.iter().any(|&n| n < MAX_EDITS),
            "the burst was over before the kill ({sent:?} edits sent); the story tests nothing"
        );

        server = ServerProcess::start(&db.url, &args).await;
        let fresh = connect_retrying(&server.url(ROOM), None).await;
        let (restarted_sv, restarted_graph) = state(&fresh);
        let missing = not_covered(&restarted_sv, &seen_sv);
        assert!(
            missing.is_empty(),
            "round {round}: the observer had received changes the store lost: (client, observed clock, \
             stored clock) {missing:?}"
        );
        let lost: Vec<_> = node_ids(&seen_graph).difference(&node_ids(&restarted_graph)).cloned().collect();
        assert!(lost.is_empty(), "round {round}: nodes the observer had were lost: {lost:?}");
        eprintln!(
            "kill -9 round {round}: writers sent {sent:?}; the observer had {} nodes, the store {}",
            seen_graph.nodes.len(),
            restarted_graph.nodes.len()
        );
    }
    let log = server.log();
    assert!(!log.contains("panic"), "the server panicked: {log}");
    server.kill();
    let store = dojo_store::open(&db.url).await.expect("open the store");
    assert!(!store.versions(ROOM).await.expect("versions").is_empty(), "compactions ran during the bursts");
}

/// With a small threshold the room compacts in the background, versions appear, the log
/// shrinks, and the document read back after a restart is the one clients had.
async fn compaction_keeps_the_document_and_shrinks_the_log(backend: Backend) {
    const ROOM: &str = "compaction";
    const EDITS: usize = 50; // each, two clients: 100 stored changes
    let db = TestDatabase::new(backend).await;
    let configure = |c: &mut dojo_server::Config| {
        c.rooms.compact_after_updates = 20;
        c.rooms.keep_versions = 2;
    };
    let server = TestServer::start_on(&db.url, configure).await;
    let alice = server.client(ROOM).await;
    let bob = server.client(ROOM).await;
    for i in 0..EDITS {
        tokio::join!(mixed_edit(&alice, "a", i), mixed_edit(&bob, "b", i));
    }
    let expected = wait_same(&[&alice, &bob]).await;
    // Everything clients were sent was stored first, so this is also what the log held before
    // any compaction.
    let before = full_content(alice.doc());
    assert!(before.1["nodes"].as_object().is_some_and(|nodes| nodes.len() >= 30), "{:?}", before.1);
    server.wait_metric("dojo_compactions_total", "", |v| v >= 1.0).await;
    assert!(server.metric("dojo_compactions_total", "").await >= 1.0, "no compaction started");
    let list = wait_versions(&server, ROOM).await;
    for version in &list {
        for field in ["id", "coversSeq", "sizeBytes", "createdAt"] {
            assert!(version[field].is_i64(), "version field {field}: {version}");
        }
        assert!(version["sizeBytes"].as_i64() > Some(0), "{version}");
    }
    let covers: Vec<i64> = list.iter().map(|v| v["coversSeq"].as_i64().unwrap_or(0)).collect();
    assert!(covers.windows(2).all(|w| w[0] >= w[1]), "versions are listed newest first: {covers:?}");
    alice.close().await;
    bob.close().await;
    server.stop().await;

    // Read the store directly: a snapshot, and fewer log rows than changes written.
    let store = dojo_store::open(&db.url).await.expect("open the store");
    let stored = store.load(ROOM).await.expect("load");
    assert!(stored.snapshot.is_some(), "compaction wrote no snapshot");
    assert!(
        stored.updates.len() < 2 * EDITS,
        "the log did not shrink: {} rows after {} changes",
        stored.updates.len(),
        2 * EDITS
    );
    let rebuilt = dojo_server::compaction::rebuild(&stored).expect("the stored document applies");
    assert_eq!((rebuilt.transact().state_vector(), doc_graph(&rebuilt)), expected);
    assert_eq!(full_content(&rebuilt), before, "the compacted store holds the same document");
    drop(store);

    let server = TestServer::start_on(&db.url, configure).await;
    let carol = server.client(ROOM).await;
    assert_eq!(state(&carol), expected);
    assert_eq!(full_content(carol.doc()), before, "and serves it");
    let kept = versions(&server, ROOM).await;
    assert!(!kept.is_empty() && kept.len() <= 2, "keep_versions = 2, yet {} versions", kept.len());
    server.stop().await;
}

/// A room with nothing unstored folds its live document instead of reading its log back: the
/// snapshot it stores covers every row it deletes, and a restart serves the same document.
async fn a_quiet_room_compacts_from_its_live_document(backend: Backend) {
    const ROOM: &str = "folded";
    const EDITS: usize = 25;
    let db = TestDatabase::new(backend).await;
    let configure = |c: &mut dojo_server::Config| c.rooms.compact_after_updates = 20;
    let server = TestServer::start_on(&db.url, configure).await;
    let alice = server.client(ROOM).await;
    for i in 0..EDITS {
        mixed_edit(&alice, "a", i).await;
    }
    // Due at 20 rows; if a write was under way then, the room waits for a quiet moment, which
    // comes at the latest once the last change is stored (25 rows, under twice the threshold).
    server.wait_metric("dojo_compactions_folded_total", "", |v| v >= 1.0).await;
    assert_eq!(
        server.metric("dojo_compactions_total", "").await,
        server.metric("dojo_compactions_folded_total", "").await,
        "every compaction of this room folded its document"
    );
    let observer = server.client(ROOM).await;
    let expected = wait_same(&[&alice, &observer]).await;
    let before = full_content(alice.doc());
    wait_versions(&server, ROOM).await;
    alice.close().await;
    observer.close().await;
    server.stop().await;

    let store = dojo_store::open(&db.url).await.expect("open the store");
    let stored = store.load(ROOM).await.expect("load");
    let snapshot = stored.snapshot.as_ref().expect("a snapshot was stored");
    assert!(snapshot.covers_seq >= 20, "covers the rows that made it due: {}", snapshot.covers_seq);
    assert!(stored.updates.iter().all(|row| row.seq > snapshot.covers_seq));
    assert_eq!(stored.updates.len() as i64, EDITS as i64 - snapshot.covers_seq, "the rows after it are kept");
    let rebuilt = dojo_server::compaction::rebuild(&stored).expect("the stored document applies");
    assert_eq!(full_content(&rebuilt), before, "snapshot and later rows hold the whole document");
    drop(store);

    let server = TestServer::start_on(&db.url, configure).await;
    let carol = server.client(ROOM).await;
    assert_eq!(state(&carol), expected);
    server.stop().await;
}

/// Compactions from another store handle (another instance, a maintenance job) race the room's
/// own while people edit: nothing is lost.
async fn racing_compactions_lose_nothing(backend: Backend) {
    const ROOM: &str = "racing";
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |c| c.rooms.compact_after_updates = 15).await;
    let other = dojo_store::open(&db.url).await.expect("a second store handle");
    let alice = server.client(ROOM).await;
    let bob = server.client(ROOM).await;

    let done = Arc::new(AtomicBool::new(false));
    let compactors: Vec<_> = (0..4)
        .map(|_| {
            let store = other.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                while !done.load(Ordering::Relaxed) {
                    dojo_server::compaction::compact(&*store, ROOM, 3).await.expect("a racing compaction");
                    runs += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                runs
            })
        })
        .collect();
    for i in 0..60 {
        tokio::join!(mixed_edit(&alice, "a", i), mixed_edit(&bob, "b", i));
    }
    let expected = wait_same(&[&alice, &bob]).await;
    done.store(true, Ordering::Relaxed);
    for compactor in compactors {
        let runs = tokio::time::timeout(WAIT, compactor).await.expect("compactor stops").expect("compactor");
        assert!(runs > 0);
    }
    // One more, now that everything is stored: the store alone must still hold it all.
    dojo_server::compaction::compact(&*other, ROOM, 3).await.expect("a last compaction");
    let stored = other.load(ROOM).await.expect("load");
    let rebuilt = dojo_server::compaction::rebuild(&stored).expect("the stored document applies");
    assert_eq!((rebuilt.transact().state_vector(), doc_graph(&rebuilt)), expected);
    assert!(stored.updates.is_empty(), "the last compaction covered the whole log");
    drop(other);
    alice.close().await;
    bob.close().await;
    server.stop().await;

    let server = TestServer::start_on(&db.url, |_| {}).await;
    let carol = server.client(ROOM).await;
    assert_eq!(state(&carol), expected);
    server.stop().await;
}

/// A room with history, after a restart, and a hundred people opening it in the same instant:
/// it loads once, and everyone gets the whole canvas and then each other's edits.
async fn a_hundred_clients_opening_a_cold_room_load_it_once(backend: Backend) {
    const ROOM: &str = "cold";
    const CLIENTS: usize = 100;
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let seeder = server.client(ROOM).await;
    for i in 0..30 {
        mixed_edit(&seeder, "seed", i).await;
    }
    let seeded = state(&seeder);
    seeder.close().await;
    server.stop().await;

    let server = TestServer::start_on(&db.url, |_| {}).await;
    assert_eq!(server.metric("dojo_room_loads_total", "").await, 0.0);
    let url = server.url(ROOM);
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let connecting: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let client = SyncClient::connect(&url).await.expect("connect");
                client.wait_synced(WAIT).await.expect("synced");
                client
            })
        })
        .collect();
    let mut clients = Vec::new();
    for task in connecting {
        clients.push(task.await.expect("a client connects"));
    }
    assert_eq!(server.metric("dojo_room_loads_total", "").await, 1.0, "the room loaded more than once");
    for client in &clients {
        assert_eq!(state(client), seeded);
    }

    for (i, client) in clients.iter().enumerate() {
        client.edit(|txn| canvas::write_node(txn, &node(&format!("c{i}"), i as f64)).unwrap()).await.unwrap();
    }
    let everyone = seeded.1.nodes.len() + CLIENTS;
    for client in &clients {
        wait_graph(client, "everyone's node", |g| g.nodes.len() == everyone).await;
    }
    let refs: Vec<&SyncClient> = clients.iter().collect();
    wait_same(&refs).await;
    assert_eq!(server.metric("dojo_room_loads_total", "").await, 1.0);
    server.stop().await;
}

/// Versions are listed, one is restored, and both people in the room see the canvas go back to
/// it live. Unknown versions are 404, bad room names 400.
async fn a_restored_version_reaches_everyone(backend: Backend) {
    const ROOM: &str = "versions";
    const THRESHOLD: usize = 20;
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |c| c.rooms.compact_after_updates = THRESHOLD).await;
    let alice = server.client(ROOM).await;
    let bob = server.client(ROOM).await;

    // Exactly one threshold of changes, all stored (bob has them) before anything else happens:
    // the one compaction they trigger covers exactly them.
    for i in 0..THRESHOLD {
        alice.edit(|txn| canvas::write_node(txn, &node(&format!("v{i}"), i as f64)).unwrap()).await.unwrap();
    }
    wait_graph(&bob, "the first canvas", |g| g.nodes.len() == THRESHOLD).await;
    let first = graph(&alice);
    let list = wait_versions(&server, ROOM).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_i64().expect("a version id");

    // The version holds that canvas (read straight from the store).
    let store = dojo_store::open(&db.url).await.expect("open the store");
    let version = store.version(ROOM, id).await.expect("read the version").expect("the listed version");
    let old = Doc::new();
    dojo_sync_protocol::update::apply_client_update(&old, &version.data).expect("the version applies");
    assert_eq!(doc_graph(&old), first);
    drop(store);
    // The same, over HTTP: what an editor previews, or restores as a change of its own.
    let response = reqwest::get(server.http(&format!("/api/rooms/{ROOM}/versions/{id}"))).await.expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/octet-stream")
    );
    let served = Doc::new();
    dojo_sync_protocol::update::apply_client_update(&served, &response.bytes().await.expect("bytes"))
        .expect("the served version applies");
    assert_eq!(doc_graph(&served), first);
    let (status, body) = http_get(&server, &format!("/api/rooms/{ROOM}/versions/987654321")).await;
    assert_eq!(status, 404, "{body}");

    // Then both change it a lot (fewer changes than the threshold: no new version).
    for i in 0..5 {
        alice.edit(|txn| canvas::remove_node(txn, &format!("v{i}"))).await.unwrap();
    }
    for i in 5..10 {
        bob.edit(|txn| canvas::set_node_param(txn, &format!("v{i}"), "prompt", &json!("changed")).unwrap())
            .await
            .unwrap();
    }
    bob.edit(|txn| canvas::write_node(txn, &node("new", 0.0)).unwrap()).await.unwrap();
    let changed = wait_same(&[&alice, &bob]).await;
    assert_ne!(changed.1, first);

    let (status, body) = http_post(&server, &format!("/api/rooms/{ROOM}/versions/{id}/restore")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), json!({ "restored": id }));
    for client in [&alice, &bob] {
        wait_graph(client, "the restored canvas", |g| *g == first).await;
    }
    wait_same(&[&alice, &bob]).await;
    let carol = server.client(ROOM).await;
    assert_eq!(graph(&carol), first, "a newcomer gets the restored canvas");

    let (status, body) = http_post(&server, &format!("/api/rooms/{ROOM}/versions/987654321/restore")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = http_post(&server, "/api/rooms/nobody-here/versions/1/restore").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = http_post(&server, "/api/rooms/bad%0Aname/versions/1/restore").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http_get(&server, "/api/rooms/bad%0Aname/versions").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(versions(&server, "nobody-here").await, Vec::<Value>::new());

    // Restoring a room nobody has open (after a restart): it loads, restores, and stores.
    bob.edit(|txn| canvas::write_node(txn, &node("after-restore", 0.0)).unwrap()).await.unwrap();
    wait_graph(&alice, "bob's node", |g| node_ids(g).contains("after-restore")).await;
    for client in [alice, bob, carol] {
        client.close().await;
    }
    server.stop().await;
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let (status, body) = http_post(&server, &format!("/api/rooms/{ROOM}/versions/{id}/restore")).await;
    assert_eq!(status, 200, "{body}");
    let dave = server.client(ROOM).await;
    assert_eq!(graph(&dave), first, "the restore of a cold room is there for the next visitor");
    server.stop().await;
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let erin = server.client(ROOM).await;
    assert_eq!(graph(&erin), first, "and it was stored");
    server.stop().await;
}

/// A room nobody is in unloads after a while and loads again, whole, for the next visitor.
async fn an_idle_room_unloads_and_loads_again(backend: Backend) {
    const ROOM: &str = "idle";
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |c| c.rooms.unload_after_secs = 1).await;
    let alice = server.client(ROOM).await;
    for i in 0..20 {
        mixed_edit(&alice, "a", i).await;
    }
    let expected = state(&alice);
    alice.close().await;

    server.wait_metric("dojo_rooms_unloaded_total", "", |v| v >= 1.0).await;
    server.wait_metric("dojo_rooms_open", "", |v| v == 0.0).await;
    assert_eq!(server.metric("dojo_rooms_unloaded_total", "").await, 1.0);
    assert_eq!(server.metric("dojo_rooms_open", "").await, 0.0);
    assert_eq!(server.metric("dojo_room_loads_total", "").await, 1.0);

    let carol = server.client(ROOM).await;
    assert_eq!(state(&carol), expected);
    assert_eq!(server.metric("dojo_room_loads_total", "").await, 2.0);
    assert_eq!(server.metric("dojo_rooms_open", "").await, 1.0);
    server.stop().await;
}

/// A room whose clients stop editing drops its document; presence still flows; the next edit
/// loads it again and reaches everyone, on top of everything stored.
async fn a_quiet_room_hibernates_keeps_presence_and_wakes_for_the_next_change(backend: Backend) {
    const ROOM: &str = "sleepy";
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |c| {
        // The `room.updated` report of the burst below is held back for the default 60 s: the
        // room parks meanwhile (a timer sends the report; see webhooks.rs).
        c.rooms.hibernate_after_secs = 1;
    })
    .await;
    let alice = server.client(ROOM).await;
    let bob = server.client(ROOM).await;
    for i in 0..10 {
        mixed_edit(&alice, "a", i).await;
    }
    let expected = graph(&alice);
    wait_graph(&bob, "alice's edits", |g| *g == expected).await;
    server.wait_metric("dojo_rooms_hibernating", "", |v| v == 1.0).await;
    assert_eq!(server.metric("dojo_room_loads_total", "").await, 1.0);
    // Asleep with nothing to do, the room gives up its task and queue too.
    assert_eq!(server.wait_metric("dojo_rooms_parked", "", |v| v == 1.0).await, 1.0);
    assert_eq!(server.metric("dojo_room_resumes_total", "").await, 0.0);

    // Presence needs no document: it is relayed without waking the room (it resumes the
    // room's task, which parks again once it is relayed).
    alice.set_presence(&json!({"name": "alice"})).await.expect("presence");
    let deadline = Instant::now() + WAIT;
    while !bob.presence().iter().any(|(_, state)| state["name"] == "alice") {
        assert!(Instant::now() < deadline, "bob never saw alice's presence");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.metric("dojo_rooms_hibernating", "").await, 1.0, "presence did not wake it");
    assert_eq!(server.metric("dojo_room_wakes_total", "").await, 0.0);
    assert!(server.metric("dojo_room_resumes_total", "").await >= 1.0, "presence resumed the parked room");
    assert_eq!(server.wait_metric("dojo_rooms_parked", "", |v| v == 1.0).await, 1.0, "and it parked again");

    // An edit wakes it: stored on top of what was there, and everyone gets it.
    bob.edit(|txn| canvas::write_node(txn, &node("after-sleep", 0.0)).unwrap()).await.unwrap();
    wait_graph(&alice, "bob's edit after the room woke", |g| node_ids(g).contains("after-sleep")).await;
    assert_eq!(server.metric("dojo_room_wakes_total", "").await, 1.0);
    assert_eq!(state(&alice), state(&bob));

    // A newcomer to a sleeping room gets the whole document.
    server.wait_metric("dojo_rooms_hibernating", "", |v| v == 1.0).await;
    assert_eq!(server.wait_metric("dojo_rooms_parked", "", |v| v == 1.0).await, 1.0);
    let resumed = server.metric("dojo_room_resumes_total", "").await;
    let carol = server.client(ROOM).await;
    assert_eq!(state(&carol), state(&alice));
    assert_eq!(server.metric("dojo_room_wakes_total", "").await, 2.0);
    assert!(server.metric("dojo_room_resumes_total", "").await > resumed, "a join resumes the parked room");
    for client in [alice, bob, carol] {
        client.close().await;
    }
    server.stop().await;
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let dave = server.client(ROOM).await;
    assert!(node_ids(&graph(&dave)).contains("after-sleep"), "the change made after waking was stored");
    server.stop().await;
}

/// What a graceful shutdown guarantees, exactly:
///
/// 1. A client that closed its connection (close handshake completed) before the shutdown has
///    all its edits stored: the server reads a connection's frames in order and queues each in
///    the room before reading the next, so by the time it answers the close every edit is queued,
///    and stopping a room stores everything queued in it.
/// 2. A client still sending while the server shuts down: the server stops reading its socket at
///    some frame. What was queued in the room by then is stored, what was still in the socket is
///    not. So the stored document holds a *prefix* of that client's edits, with no holes, and that
///    prefix covers at least everything anyone received (every broadcast was stored first). Edits
///    never acknowledged may be lost: the client still holds them and sends them on reconnect.
async fn a_graceful_shutdown_stores_what_clients_sent(backend: Backend) {
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    const EDITS: usize = 2000;
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |_| {}).await;

    // 1. Sends everything, closes, and the server stops the moment the close is answered.
    let alice = server.client("shutdown-closed").await;
    for i in 0..300 {
        alice.edit(|txn| canvas::write_node(txn, &node(&format!("a{i}"), i as f64)).unwrap()).await.unwrap();
    }
    let alice_state = state(&alice);
    alice.send_ws(WsMessage::Close(None)).await.expect("send a close frame");
    alice.wait_closed(WAIT).await.expect("the server answers the close");

    // 2. Still sending when the server stops.
    let observer = server.client("shutdown-busy").await;
    let bob = Arc::new(server.client("shutdown-busy").await);
    let sending = {
        let bob = bob.clone();
        tokio::spawn(async move {
            for i in 0..EDITS {
                let edited =
                    bob.edit(|txn| canvas::write_node(txn, &node(&format!("b{i}"), i as f64)).unwrap()).await;
                if edited.is_err() {
                    return i;
                }
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            EDITS
        })
    };
    wait_graph(&observer, "some of bob's edits", |g| g.nodes.len() >= 50).await;
    server.stop().await;
    let sent = tokio::time::timeout(WAIT, sending).await.expect("bob stops sending").expect("bob's task");
    let closed = observer.wait_closed(WAIT).await.expect("the observer is closed");
    assert_eq!(closed.map(|(code, _)| code), Some(1001), "going away");
    bob.wait_closed(WAIT).await.expect("bob is closed");
    let (echoed_sv, echoed_graph) = state(&observer);
    let (bob_sv, bob_graph) = state(&bob);

    let server = TestServer::start_on(&db.url, |_| {}).await;
    let carol = server.client("shutdown-closed").await;
    assert_eq!(state(&carol), alice_state, "everything a client sent before closing is stored");

    let dave = server.client("shutdown-busy").await;
    let (stored_sv, stored_graph) = state(&dave);
    let stored = stored_graph.nodes.len();
    let prefix: BTreeSet<String> = (0..stored).map(|i| format!("b{i}")).collect();
    assert_eq!(node_ids(&stored_graph), prefix, "the stored edits are a prefix of what bob sent");
    let bob_nodes: BTreeMap<_, _> = bob_graph.nodes.iter().map(|n| (n.id.clone(), n)).collect();
    for n in &stored_graph.nodes {
        assert_eq!(Some(&n), bob_nodes.get(&n.id), "stored as bob wrote it");
    }
    let missing = not_covered(&stored_sv, &echoed_sv);
    assert!(missing.is_empty(), "broadcast but not stored: {missing:?}");
    assert!(stored >= echoed_graph.nodes.len(), "{stored} stored, {} echoed", echoed_graph.nodes.len());
    assert!(not_covered(&bob_sv, &stored_sv).is_empty(), "the store holds nothing bob did not send");
    eprintln!(
        "graceful shutdown: bob sent {sent}, {} were echoed, {stored} stored",
        echoed_graph.nodes.len()
    );
    server.stop().await;
}

/// Group commit: changes that queue while the room is busy are stored in one transaction. The
/// deterministic way to queue them is one WebSocket frame holding several updates (yrs-based
/// clients pack messages so; the server takes up to 16 per frame): the room applies every message
/// of a frame before it starts its next write, so all of them go into that one write. Then every
/// one of them is in the store.
async fn updates_that_queue_together_are_stored_in_one_transaction(backend: Backend) {
    const ROOM: &str = "group-commit";
    let updates = dojo_sync_protocol::FrameLimits::default().max_messages_per_frame;
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let alice = server.client(ROOM).await;
    let observer = server.client(ROOM).await;
    let frame: Vec<u8> = (0..updates)
        .flat_map(|i| {
            let mut txn = alice.doc().transact_mut();
            canvas::write_node(&mut txn, &node(&format!("n{i}"), i as f64)).unwrap();
            dojo_sync_protocol::encode_update(&txn.encode_update_v1())
        })
        .collect();
    alice.send_raw(frame).await.expect("send one frame of updates");
    // Broadcasts follow the commit, and the counters are bumped before the broadcasts.
    wait_graph(&observer, "every update", |g| g.nodes.len() == updates).await;
    let stored = server.metric("dojo_persisted_updates_total", "").await;
    let batches = server.metric("dojo_persisted_batches_total", "").await;
    assert!(batches < stored, "{stored} updates in {batches} transactions");
    // Exactly: the handshakes stored nothing (an empty document's sync step 2 changes nothing).
    assert_eq!((stored, batches), (updates as f64, 1.0), "(updates, transactions)");
    let expected = state(&observer);
    assert_eq!(expected, state(&alice));
    alice.close().await;
    observer.close().await;
    server.stop().await;

    let server = TestServer::start_on(&db.url, |_| {}).await;
    let carol = server.client(ROOM).await;
    assert_eq!(state(&carol), expected, "all of them were stored");
    server.stop().await;
}

/// `dojo-server migrate` on an empty database: exits 0, and every table the migrations define is
/// there afterwards. A second run (a deploy script run twice, or after the server applied them on
/// start) changes nothing and succeeds too.
async fn migrate_creates_the_tables_and_can_run_again(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(dir);
    let (files, expected_tables) = migration_tables(&migrations);
    assert!(expected_tables.contains("document_updates"), "{expected_tables:?}");
    assert_eq!(database_tables(&db).await.0, BTreeSet::new(), "the database starts empty");

    for run in 1..=2 {
        let url = db.url.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(BINARY)
                .args(["--database-url", &url, "--log", "warn", "migrate"])
                .stdin(Stdio::null())
                .output()
                .expect("run dojo-server migrate")
        })
        .await
        .expect("the blocking task");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "run {run}: exit status {}; stderr:\n{stderr}", output.status);
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"), "run {run} served");
        let (tables, applied) = database_tables(&db).await;
        let missing: Vec<_> = expected_tables.difference(&tables).collect();
        assert!(missing.is_empty(), "run {run}: tables missing after migrate: {missing:?} (have {tables:?})");
        assert_eq!(applied, files, "run {run}: each migration recorded once, successful");
    }
}

/// The migration files in `dir` and the tables they leave: each file's `CREATE TABLE`, `DROP TABLE`
/// and `ALTER TABLE … RENAME TO` in order, files in name order (as sqlx applies them).
fn migration_tables(dir: &std::path::Path) -> (usize, BTreeSet<String>) {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("the migrations directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    paths.sort();
    let mut tables = BTreeSet::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("a migration file").to_lowercase();
        // Comments name tables in prose.
        let sql: String = text
            .lines()
            .map(|line| line.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let name_at = |at: usize| -> String {
            let rest = sql[at..].trim_start();
            let rest = rest
                .strip_prefix("if not exists ")
                .or_else(|| rest.strip_prefix("if exists "))
                .unwrap_or(rest);
            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
        };
        let mut changes: Vec<(usize, &str)> = ["create table ", "drop table ", "alter table "]
            .into_iter()
            .flat_map(|keyword| sql.match_indices(keyword).map(move |(at, _)| (at, keyword)))
            .collect();
        changes.sort();
        for (at, keyword) in changes {
            let name = name_at(at + keyword.len());
            match keyword {
                "create table " => {
                    tables.insert(name);
                }
                "drop table " => {
                    tables.remove(&name);
                }
                _ => {
                    let statement = sql[at..].split(';').next().unwrap_or_default();
                    if let Some(to) = statement.find(" rename to ") {
                        tables.remove(&name);
                        tables.insert(name_at(at + to + " rename to ".len()));
                    }
                }
            }
        }
    }
    (paths.len(), tables)
}

/// The tables in the database, and how many migrations sqlx recorded as applied successfully (0
/// when its bookkeeping table does not exist yet). A fresh SQLite file is only created by the first
/// store that opens it, so before that there is nothing.
async fn database_tables(db: &TestDatabase) -> (BTreeSet<String>, usize) {
    use sqlx::{Connection, Row};
    let (tables_sql, applied_sql) = match db.backend {
        Backend::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success",
        ),
        Backend::Postgres => (
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'",
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success",
        ),
    };
    let (names, applied): (Vec<String>, Option<i64>) = match db.backend {
        Backend::Sqlite => {
            let path = db.url.trim_start_matches("sqlite:");
            if !std::path::Path::new(path).exists() {
                return (BTreeSet::new(), 0);
            }
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite file");
            let rows = sqlx::query(tables_sql).fetch_all(&mut conn).await.expect("list tables");
            let names = rows.iter().map(|row| row.get::<String, _>("name")).collect::<Vec<_>>();
            let applied = if names.iter().any(|n| n == "_sqlx_migrations") {
                Some(sqlx::query_scalar(applied_sql).fetch_one(&mut conn).await.expect("count migrations"))
            } else {
                None
            };
            let _ = conn.close().await;
            (names, applied)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect to the test database");
            let rows = sqlx::query(tables_sql).fetch_all(&mut conn).await.expect("list tables");
            let names = rows.iter().map(|row| row.get::<String, _>("name")).collect::<Vec<_>>();
            let applied = if names.iter().any(|n| n == "_sqlx_migrations") {
                Some(sqlx::query_scalar(applied_sql).fetch_one(&mut conn).await.expect("count migrations"))
            } else {
                None
            };
            let _ = conn.close().await;
            (names, applied)
        }
    };
    let tables = names.into_iter().filter(|name| name != "_sqlx_migrations").collect();
    (tables, applied.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)))
}

// ---------------------------------------------------------------------------------------------
// The database going away (PostgreSQL only: an SQLite file does not go away)

/// A server whose database cannot be reached does not start: it exits non-zero and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_stops_the_server_at_start() {
    let mut child = Command::new(BINARY)
        .args(["--addr", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nope")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dojo-server");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server was still running 15 s after start with an unreachable database");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = child.wait_with_output().expect("the child's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "exit status {status}");
    assert!(!stdout.contains("listening"), "it did not listen: {stdout}");
    let said = stderr.to_lowercase();
    assert!(said.contains("store") || said.contains("database"), "stderr names the store: {stderr}");
}

/// The database refuses connections mid-session. An edit made then is never shown to anyone,
/// everyone in the room is closed with 1013, and a room that is not loaded cannot be joined (it
/// is not served as an empty document). When the database is back, people reconnect with their
/// documents and nothing is lost, the edit made during the outage included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_closes_the_room_and_loses_nothing() {
    const ROOM: &str = "outage";
    let db = TestDatabase::postgres().await;
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let alice = server.client(ROOM).await;
    let bob = server.client(ROOM).await;
    for i in 0..5 {
        alice.edit(|txn| canvas::write_node(txn, &node(&format!("before{i}"), 0.0)).unwrap()).await.unwrap();
    }
    wait_graph(&bob, "alice's edits", |g| g.nodes.len() == 5).await;
    // Alice's frames: sync step 1 and 2, then her five edits coming back.
    alice.wait_for("alice's echoes", WAIT, |s| s.frames >= 7).await.expect("echoes");
    // Bob's too: the client applies a frame before it counts it, so his graph can show the fifth
    // node while the count still says six (seen on a loaded CI machine).
    bob.wait_for("alice's edits as frames", WAIT, |s| s.frames >= 7).await.expect("bob's frames");
    let (alice_frames, bob_frames) = (alice.status().frames, bob.status().frames);

    db.admin_execute("ALTER DATABASE {db} ALLOW_CONNECTIONS false").await;
    db.admin_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'").await;

    alice.edit(|txn| canvas::write_node(txn, &node("during", 1.0)).unwrap()).await.unwrap();
    for (who, client) in [("alice", &alice), ("bob", &bob)] {
        let closed = client.wait_closed(WAIT).await.expect("the room closes its clients");
        let (code, reason) = closed.unwrap_or_else(|| panic!("{who} got no close frame"));
        assert_eq!(code, 1013, "{who}: {reason}");
        assert!(reason.starts_with("storage unavailable"), "{who}: {reason}");
    }
    assert_eq!(alice.status().frames, alice_frames, "the unstored edit was not echoed to its sender");
    assert_eq!(bob.status().frames, bob_frames, "nothing was broadcast after the database went away");
    assert!(!node_ids(&graph(&bob)).contains("during"));
    assert!(server.metric("dojo_persist_failures_total", "").await >= 1.0);

    // A room not loaded cannot be joined while the database is down.
    let newcomer = upgraded(&server.url("outage-newcomer")).await;
    let closed = newcomer.wait_closed(WAIT).await.expect("the newcomer is closed");
    let (code, reason) = closed.expect("a close frame");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.starts_with("storage unavailable"), "{reason}");
    assert!(!newcomer.status().synced, "not served an empty document");
    assert_eq!(newcomer.status().frames, 0, "sent nothing at all");
    // Nor can the room that just failed, which would have to load again.
    let again = upgraded(&server.url(ROOM)).await;
    let closed = again.wait_closed(WAIT).await.expect("closed");
    assert_eq!(closed.map(|(code, _)| code), Some(1013));
    assert!(!again.status().synced);
    // The HTTP side says so too.
    let (status, _) = http_get(&server, "/readyz").await;
    assert_eq!(status, 503, "not ready without storage");
    let (status, body) = http_get(&server, &format!("/api/rooms/{ROOM}/versions")).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = http_post(&server, &format!("/api/rooms/{ROOM}/versions/1/restore")).await;
    assert_eq!(status, 503, "{body}");

    db.admin_execute("ALTER DATABASE {db} ALLOW_CONNECTIONS true").await;
    let (status, _) = http_get(&server, "/readyz").await;
    assert_eq!(status, 200, "ready again");
    let carol = connect_retrying(&server.url(ROOM), None).await;
    let stored = graph(&carol);
    let before: BTreeSet<String> = (0..5).map(|i| format!("before{i}")).collect();
    assert_eq!(node_ids(&stored), before, "the room reloads what was stored, and only that");

    let alice = connect_retrying(&server.url(ROOM), Some(alice.doc())).await;
    let bob = connect_retrying(&server.url(ROOM), Some(bob.doc())).await;
    let (_, converged) = wait_same(&[&alice, &bob, &carol]).await;
    let mut everything = before;
    everything.insert("during".into());
    assert_eq!(node_ids(&converged), everything);
    server.stop().await;

    // And it is stored now.
    let server = TestServer::start_on(&db.url, |_| {}).await;
    let dave = server.client(ROOM).await;
    assert_eq!(graph(&dave), converged);
    server.stop().await;
}
