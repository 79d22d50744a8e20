//! Graph edits in JSON (`POST /api/rooms/{room}/edits`, `…/edits/{id}/undo`), told as stories
//! against a real server: a client in the room sees them live, they are stored before the
//! answer, a bad batch changes nothing, and an undo takes one edit back unless someone changed
//! what it touched.

mod common;

use common::database::{Backend, TestDatabase};
use common::runs::{RunApi, SECRET, join, token};
use common::{TestServer, WAIT};
use dojo_sync_protocol::canvas::{self, CanvasGraph};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yrs::Transact;

async fn start(db: &TestDatabase, configure: impl FnOnce(&mut dojo_server::Config)) -> (TestServer, RunApi) {
    let server = TestServer::start_on(&db.url, |config| {
        config.auth.jwt_secret = Some(SECRET.into());
        configure(config);
    })
    .await;
    let api = RunApi::new(server.addr, &db.url);
    (server, api)
}

/// A workflow for `room` owned by `owner`; its id.
async fn workflow(api: &RunApi, owner: &str, room: &str) -> String {
    let body = json!({"title": room, "room": room});
    let (status, created) = api.call(Method::POST, "/api/workflows", owner, Some(body), None).await;
    assert!(status.is_success(), "{created}");
    created["id"].as_str().expect("workflow id").to_owned()
}

async fn edits(api: &RunApi, room: &str, who: &str, ops: Value) -> (StatusCode, Value) {
    api.call(Method::POST, &format!("/api/rooms/{room}/edits"), who, Some(json!({ "ops": ops })), None).await
}

async fn undo(api: &RunApi, room: &str, who: &str, edit: &Value) -> (StatusCode, Value) {
    let edit = edit.as_str().expect("an edit id");
    api.call(Method::POST, &format!("/api/rooms/{room}/edits/{edit}/undo"), who, None, None).await
}

/// The room's graph as the store holds it now (read beside the running server).
async fn stored_graph(db: &TestDatabase, room: &str) -> CanvasGraph {
    let store = dojo_store::open(&db.url).await.expect("open the store");
    let stored = store.load(room).await.expect("load");
    let doc = dojo_server::compaction::rebuild(&stored).expect("the stored document applies");
    canvas::read_graph(&doc.transact()).expect("a schema graph")
}

fn ids(graph: &CanvasGraph) -> (Vec<String>, Vec<String>) {
    (graph.nodes.iter().map(|n| n.id.clone()).collect(), graph.edges.iter().map(|e| e.id.clone()).collect())
}

fn chain() -> Value {
    json!([
        {"op": "addNode", "id": "prompt", "type": "text-prompt", "position": {"x": 0, "y": 0}, "params": {"text": "a red fox"}},
        {"op": "addNode", "type": "dev-image", "position": {"x": 300, "y": 0}},
        {"op": "connect", "id": "wire", "source": "prompt", "sourceHandle": "text", "target": "$image", "targetHandle": "prompt"},
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_is_stored_before_the_answer_seen_live_and_undone_as_one_step() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let (server, api) = start(&db, |_| {}).await;
    let alice = token("alice");
    let room = "edits-live";
    workflow(&api, &alice, room).await;
    let watcher = join(&api, room, &alice).await;

    // The image node's id is generated: add it first, then wire it with the id the answer gave.
    let (status, added) = edits(&api, room, &alice, json!([chain()[0], chain()[1]])).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let image = added["createdNodes"][1].as_str().expect("a generated id").to_owned();
    assert_eq!(added["createdNodes"][0], "prompt", "{added}");
    assert!(added["stateVector"].as_str().is_some_and(|s| !s.is_empty()), "{added}");
    // Stored before the answer: the store already holds both nodes, the server still running.
    assert_eq!(ids(&stored_graph(&db, room).await).0.len(), 2);

    let mut wire = chain()[2].clone();
    wire["target"] = json!(image);
    let (status, wired) = edits(
        &api,
        room,
        &alice,
        json!([wire, {"op": "setParam", "node": image, "name": "seed", "value": 7}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{wired}");
    assert_eq!(wired["createdEdges"], json!(["wire"]));
    let stored = stored_graph(&db, room).await;
    assert_eq!(ids(&stored).1, ["wire"]);
    let node = stored.nodes.iter().find(|n| n.id == image).expect("the image node");
    assert_eq!(node.data["seed"], json!(7));
    assert_eq!(node.data["width"], json!(512), "new nodes start with the catalog's defaults");

    // The watcher saw all of it live.
    watcher
        .wait_doc("the edits", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| g.nodes.len() == 2 && g.edges.len() == 1)
        })
        .await
        .expect("the watcher sees the nodes and the wire");

    // Undo the wiring: the wire goes, the seed is back to what it was; the nodes stay.
    let (status, undone) = undo(&api, room, &alice, &wired["editId"]).await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    let stored = stored_graph(&db, room).await;
    assert_eq!(ids(&stored), (vec![image.clone(), "prompt".into()], vec![]));
    let node = stored.nodes.iter().find(|n| n.id == image).expect("the image node");
    assert_eq!(node.data["seed"], json!(0), "the default it had before");
    watcher
        .wait_doc("the undo", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| g.edges.is_empty())
        })
        .await
        .expect("the watcher sees the undo");
    // Undone once: the same id is gone; the undo's own id redoes it.
    let (status, again) = undo(&api, room, &alice, &wired["editId"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{again}");
    let (status, redone) = undo(&api, room, &alice, &undone["editId"]).await;
    assert_eq!(status, StatusCode::OK, "{redone}");
    assert_eq!(ids(&stored_graph(&db, room).await).1, ["wire"]);

    // A restart keeps everything (it was stored, not only held).
    watcher.close().await;
    server.stop().await;
    let (server, api) = start(&db, |_| {}).await;
    let after = join(&api, room, &alice).await;
    after
        .wait_doc("the graph after a restart", WAIT, |doc| {
            canvas::read_graph(&doc.transact()).is_ok_and(|g| g.nodes.len() == 2 && g.edges.len() == 1)
        })
        .await
        .expect("the edits survived a restart");
    after.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_kind_and_a_removed_node_comes_back_with_its_wires() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let (server, api) = start(&db, |_| {}).await;
    let alice = token("alice");
    let room = "edits-kinds";
    workflow(&api, &alice, room).await;
    let setup = json!([
        {"op": "addNode", "id": "p", "type": "text-prompt", "position": {"x": 0, "y": 0}, "params": {"text": "fox"}},
        {"op": "addNode", "id": "img", "type": "dev-image", "position": {"x": 300, "y": 0}},
        {"op": "addNode", "id": "b", "type": "blur", "position": {"x": 600, "y": 0}},
        {"op": "connect", "id": "p-img", "source": "p", "target": "img", "targetHandle": "prompt"},
        {"op": "connect", "id": "img-b", "source": "img", "target": "b"},
    ]);
    let (status, body) = edits(&api, room, &alice, setup).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = stored_graph(&db, room).await;

    let (status, edit) = edits(
        &api,
        room,
        &alice,
        json!([
            {"op": "updateNode", "node": "b", "params": {"sigma": 4.5}, "position": {"x": 10, "y": 20}},
            {"op": "move", "node": "p", "position": {"x": -50, "y": 5}},
            {"op": "setParam", "node": "p", "name": "text", "value": "owl"},
            {"op": "disconnect", "edge": "p-img"},
            {"op": "removeNode", "node": "img"},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{edit}");
    let after = stored_graph(&db, room).await;
    assert_eq!(ids(&after), (vec!["b".into(), "p".into()], vec![]), "img went with its wire");
    assert_eq!(after.nodes[0].data["sigma"], json!(4.5));
    assert_eq!(after.nodes[1].data["text"], json!("owl"));

    let (status, undone) = undo(&api, room, &alice, &edit["editId"]).await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    assert_eq!(stored_graph(&db, room).await, before, "every touched entry is as it was");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_changes_nothing_and_says_which_ops() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let (server, api) = start(&db, |config| config.http.max_edit_ops = 5).await;
    let alice = token("alice");
    let room = "edits-refused";
    workflow(&api, &alice, room).await;
    let (status, body) = edits(&api, room, &alice, json!([chain()[0]])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = stored_graph(&db, room).await;

    let (status, refused) = edits(
        &api,
        room,
        &alice,
        json!([
            {"op": "addNode", "id": "fine", "type": "blur", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "type": "warp-drive", "position": {"x": 0, "y": 0}},
            {"op": "setParam", "node": "fine", "name": "sigma", "value": "lots"},
            {"op": "connect", "source": "prompt", "target": "fine"},
            {"op": "teleport", "node": "prompt"},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "invalid_edits");
    let indexes: Vec<u64> =
        refused["ops"].as_array().expect("ops").iter().filter_map(|o| o["index"].as_u64()).collect();
    assert_eq!(indexes, [4], "a malformed op is reported before anything is planned: {refused}");
    let (status, refused) = edits(
        &api,
        room,
        &alice,
        json!([
            {"op": "addNode", "id": "fine", "type": "blur", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "type": "warp-drive", "position": {"x": 0, "y": 0}},
            {"op": "setParam", "node": "fine", "name": "sigma", "value": "lots"},
            {"op": "connect", "source": "prompt", "target": "fine"},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let indexes: Vec<u64> =
        refused["ops"].as_array().expect("ops").iter().filter_map(|o| o["index"].as_u64()).collect();
    assert_eq!(indexes, [1, 2, 3], "{refused}");
    assert!(refused["ops"][2]["message"].as_str().is_some_and(|m| m.contains("does not fit")), "{refused}");
    assert_eq!(stored_graph(&db, room).await, before, "nothing was applied, not even the good op");

    // Bounded: more than the configured count is refused before anything is read.
    let many: Vec<Value> =
        (0..6).map(|i| json!({"op": "move", "node": "prompt", "position": {"x": i, "y": 0}})).collect();
    let (status, refused) = edits(&api, room, &alice, Value::Array(many)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["ops"][0]["message"].as_str().is_some_and(|m| m.contains("at most 5")), "{refused}");
    let (status, refused) = edits(
        &api,
        room,
        &alice,
        json!([
            {"op": "move", "node": "prompt", "position": {"x": 1e300, "y": 0}},
            {"op": "addNode", "id": "x".repeat(200), "type": "blur", "position": {"x": 0, "y": 0}},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["ops"].as_array().map(Vec::len), Some(2), "{refused}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_a_conflicting_change_is_refused_and_readers_may_not_edit() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let (server, api) = start(&db, |_| {}).await;
    let (alice, bob, mallory) = (token("alice"), token("bob"), token("mallory"));
    let room = "edits-conflict";
    let workflow_id = workflow(&api, &alice, room).await;
    let (status, me) = api.call(Method::GET, "/api/me", &bob, None, None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let path = format!("/api/workflows/{workflow_id}/collaborators/{}", me["id"].as_str().expect("id"));
    let (status, body) =
        api.call(Method::PUT, &path, &alice, Some(json!({"permission": "read"})), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, added) = edits(&api, room, &alice, json!([chain()[0]])).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    // Someone changes the node over the WebSocket afterwards.
    let editor = join(&api, room, &alice).await;
    editor
        .edit(|txn| canvas::set_node_param(txn, "prompt", "text", &json!("changed")).expect("set"))
        .await
        .expect("edit");
    let deadline = tokio::time::Instant::now() + WAIT;
    while stored_graph(&db, room).await.nodes[0].data["text"] != json!("changed") {
        assert!(tokio::time::Instant::now() < deadline, "the change never reached the store");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, conflict) = undo(&api, room, &alice, &added["editId"]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["code"], "edit_conflict");
    assert_eq!(conflict["conflicts"][0]["id"], "prompt", "{conflict}");
    assert_eq!(stored_graph(&db, room).await.nodes.len(), 1, "the node stays");

    // A reader may not edit (403), a stranger does not see the room (404).
    let (status, body) = edits(&api, room, &bob, json!([{"op": "removeNode", "node": "prompt"}])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = edits(&api, room, &mallory, json!([{"op": "removeNode", "node": "prompt"}])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = undo(&api, room, &bob, &added["editId"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(stored_graph(&db, room).await.nodes.len(), 1);
    editor.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_plans_ops_without_applying_and_applies_them_as_one_undoable_edit() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let (server, api) = start(&db, |_| {}).await;
    let alice = token("alice");
    let room = "edits-compose";
    workflow(&api, &alice, room).await;
    let body = json!({"text": "prompt, dev image, then blur"});
    let (status, planned) = api
        .call(
            Method::POST,
            &format!("/api/rooms/{room}/compose?apply=false"),
            &alice,
            Some(body.clone()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{planned}");
    assert_eq!(planned["ops"].as_array().map(Vec::len), Some(5), "3 nodes, 2 wires: {planned}");
    assert!(planned.get("editId").is_none(), "{planned}");
    assert!(stored_graph(&db, room).await.nodes.is_empty(), "only planned");
    // The planned ops are a valid edit as they stand.
    let (status, applied) = edits(&api, room, &alice, planned["ops"].clone()).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["createdNodes"], planned["nodes"]);

    let (status, composed) =
        api.call(Method::POST, &format!("/api/rooms/{room}/compose"), &alice, Some(body), None).await;
    assert_eq!(status, StatusCode::OK, "{composed}");
    assert_eq!(stored_graph(&db, room).await.nodes.len(), 6);
    let (status, undone) = undo(&api, room, &alice, &composed["editId"]).await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    let (nodes, _) = ids(&stored_graph(&db, room).await);
    assert_eq!(nodes.len(), 3, "the composed nodes went, the earlier ones stayed");
    assert!(
        planned["nodes"].as_array().expect("ids").iter().all(|id| nodes.iter().any(|n| id == n.as_str()))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_size_limit_still_applies_to_edits() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let (server, api) = start(&db, |config| config.limits.max_document_bytes = 16 * 1024).await;
    let alice = token("alice");
    let room = "edits-size";
    workflow(&api, &alice, room).await;
    // Each prompt is within the catalog's 8000 characters; together they outgrow the room.
    let ops: Vec<Value> = (0..4)
        .map(|i| {
            json!({"op": "addNode", "id": format!("p{i}"), "type": "text-prompt",
                   "position": {"x": 0, "y": i * 100}, "params": {"text": "x".repeat(7000)}})
        })
        .collect();
    let (status, body) = edits(&api, room, &alice, Value::Array(ops)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "document_too_large", "{body}");
    assert!(stored_graph(&db, room).await.nodes.is_empty(), "nothing was stored");
    server.stop().await;
}
