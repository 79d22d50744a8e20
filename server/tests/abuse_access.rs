//! Abuse of access rules, replayed against a real server with real clients (issue 17,
//! attack 6 and what came with it): taking over a room a service writes by claiming it as a
//! workflow, `admin` grants on a prefix managing other users' workflows, answers that reveal
//! whether another user's run or room exists, and one account filling what everyone shares
//! (rooms, workflows, queued runs). Each story also checks that the legitimate user keeps
//! working.

mod common;

use common::database::{Backend, TestDatabase};
use common::{TestServer, WAIT, node};
use dojo_auth::{Claims, Grants, Minter, Permission};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::{canvas, hocuspocus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::Transact;

const SECRET: &str = "a test secret that is at least thirty-two bytes long";

fn mint(claims: Claims) -> String {
    Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

fn token(sub: &str) -> String {
    let mut claims = Claims::new(sub, 600);
    claims.name = Some(sub.into());
    mint(claims)
}

fn grants_token(sub: &str, grants: &[(&str, Permission)], manage_workflows: bool) -> String {
    let mut claims = Claims::new(sub, 600);
    claims.grants = Some(Grants(grants.iter().map(|(room, p)| ((*room).to_owned(), *p)).collect()));
    claims.manage_workflows = manage_workflows;
    mint(claims)
}

struct Story {
    server: TestServer,
    http: reqwest::Client,
    _db: TestDatabase,
}

impl Story {
    async fn start(backend: Backend, configure: impl FnOnce(&mut dojo_server::Config)) -> Self {
        let db = TestDatabase::new(backend).await;
        let server = TestServer::start_on(&db.url, |config| {
            config.auth.jwt_secret = Some(SECRET.into());
            configure(config);
        })
        .await;
        Self { server, http: reqwest::Client::new(), _db: db }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.server.http(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        common::send_json(request).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    async fn claim(&self, token: &str, room: &str) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/workflows", token, Some(json!({ "title": room, "room": room }))).await
    }

    /// A workflow in `room`, created by `token`'s user; its id.
    async fn workflow(&self, token: &str, room: &str) -> String {
        let (status, body) = self.claim(token, room).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    async fn user_id(&self, token: &str) -> String {
        let (status, me) = self.get("/api/me", token).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        me["id"].as_str().expect("id").to_owned()
    }

    async fn join(&self, room: &str, token: &str) -> SyncClient {
        let client = SyncClient::connect(&self.server.url_with_token(room, token)).await.expect("connect");
        client.wait_synced(WAIT).await.expect("synced");
        client
    }

    /// The owner still edits and syncs: what one client writes, a second one receives.
    async fn still_works(&self, room: &str, token: &str, node_id: &str) {
        let writer = self.join(room, token).await;
        writer.edit(|txn| canvas::write_node(txn, &node(node_id, 1.0))).await.expect("edit").expect("node");
        let reader = self.join(room, token).await;
        let id = node_id.to_owned();
        reader
            .wait_doc("the owner's edit", WAIT, move |doc| {
                canvas::read_graph(&doc.transact()).is_ok_and(|g| g.nodes.iter().any(|n| n.id == id))
            })
            .await
            .expect("the owner's edit reaches a second client");
        writer.close().await;
        reader.close().await;
    }

    /// Waits (bounded) until `GET /api/rooms/{room}/graph` as `token` holds node `id`: the
    /// server answers once what it holds is stored.
    async fn wait_stored(&self, room: &str, token: &str, id: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, graph) = self.get(&format!("/api/rooms/{room}/graph"), token).await;
            if status == StatusCode::OK && graph["nodes"].get(id).is_some() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "never stored: {status} {graph}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// The HTTP status a WebSocket upgrade is refused with (None: accepted), and the body.
async fn upgrade_refusal(url: &str) -> Option<(u16, String)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            Some((status, body.unwrap_or_default()))
        }
        Err(other) => panic!("unexpected upgrade failure: {other}"),
    }
}

fn assert_code(status: StatusCode, body: &Value, expected_status: StatusCode, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "a message: {body}");
}

dojo_test_support::each_backend_story!(
    a_room_a_service_writes_cannot_be_claimed_by_a_stranger,
    two_claimers_of_one_room_get_one_workflow,
    the_workflow_quota_trips_and_concurrent_creations_cannot_pass_it,
);

// ---------------------------------------------------------------------------------------------
// Attack 6: the takeover.

async fn a_room_a_service_writes_cannot_be_claimed_by_a_stranger(backend: Backend) {
    let story = Story::start(backend, |config| config.rooms.unload_after_secs = 1).await;
    let room = "svc-report-7";
    let service = grants_token("service:reports", &[("svc-*", Permission::Write)], false);
    let writer = story.join(room, &service).await;
    writer
        .edit(|txn| canvas::write_node(txn, &node("confidential", 3.0)))
        .await
        .expect("edit")
        .expect("node");
    story.wait_stored(room, &service, "confidential").await;

    // The room is open here, with the service connected: a stranger cannot claim it…
    let mallory = token("mallory");
    let (status, body) = story.claim(&mallory, room).await;
    assert_code(status, &body, StatusCode::CONFLICT, "room_taken");
    // …nor read it, nor learn more than about a room that never existed.
    let (status, body) = story.get(&format!("/api/rooms/{room}/graph"), &mallory).await;
    assert_code(status, &body, StatusCode::NOT_FOUND, "room_not_found");
    let (status, never) = story.get("/api/rooms/never-used-room/graph", &mallory).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"].as_str().map(|e| e.replace(room, "R")),
        never["error"].as_str().map(|e| e.replace("never-used-room", "R")),
        "the same answer as for a room nobody used"
    );
    assert_eq!(upgrade_refusal(&story.server.url_with_token(room, &mallory)).await.map(|r| r.0), Some(403));

    // Closed and unloaded, only the store remembers it (as another instance would see it): still
    // refused.
    writer.close().await;
    let unloaded = story.server.wait_metric("dojo_rooms_open", "", |open| open == 0.0).await;
    assert_eq!(unloaded, 0.0, "the room unloads once its last client left");
    let (status, body) = story.claim(&mallory, room).await;
    assert_code(status, &body, StatusCode::CONFLICT, "room_taken");
    let (_, listed) = story.get("/api/workflows", &mallory).await;
    assert_eq!(listed, json!([]), "mallory owns nothing");

    // A read grant is not enough to claim it either; a write grant is.
    let reader = grants_token("service:viewer", &[(room, Permission::Read)], false);
    let (status, body) = story.claim(&reader, room).await;
    assert_code(status, &body, StatusCode::CONFLICT, "room_taken");
    let (status, body) = story.claim(&service, room).await;
    assert_eq!(status, StatusCode::CREATED, "the grant holder claims it: {body}");
    assert_eq!(body["permission"], "admin");
    // Claimed, the room belongs to a workflow now: nobody can take it over any more.
    let (status, body) = story.claim(&mallory, room).await;
    assert_code(status, &body, StatusCode::CONFLICT, "room_taken");
    assert_eq!(story.get(&format!("/api/rooms/{room}/graph"), &mallory).await.0, StatusCode::NOT_FOUND);

    // A room with a live connection and nothing stored yet is in use too.
    let idle = story.join("svc-idle-1", &service).await;
    let (status, body) = story.claim(&mallory, "svc-idle-1").await;
    assert_code(status, &body, StatusCode::CONFLICT, "room_taken");
    idle.close().await;

    // Fresh names are still free to claim, and their owner works as before.
    let alice = token("alice");
    story.workflow(&alice, "alice-fresh").await;
    story.still_works("alice-fresh", &alice, "alice-node").await;
    story.stop().await;
}

async fn two_claimers_of_one_room_get_one_workflow(backend: Backend) {
    let story = Story::start(backend, |_| {}).await;
    let tokens: Vec<String> = (0..8).map(|i| token(&format!("claimer-{i}"))).collect();
    for t in &tokens {
        story.user_id(t).await; // users exist first, so only the claims race
    }
    let claims = tokens.iter().map(|t| story.claim(t, "contested-room"));
    let answers = futures_util::future::join_all(claims).await;
    let won: Vec<_> = answers.iter().filter(|(status, _)| *status == StatusCode::CREATED).collect();
    assert_eq!(won.len(), 1, "exactly one claimer wins: {answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != StatusCode::CREATED) {
        assert_code(*status, body, StatusCode::CONFLICT, "room_taken");
    }
    let winner = won[0].1["ownerId"].as_str().expect("owner").to_owned();
    let winner_token = {
        let mut found = None;
        for t in &tokens {
            if story.user_id(t).await == winner {
                found = Some(t.clone());
            }
        }
        found.expect("the winner is one of the claimers")
    };
    story.still_works("contested-room", &winner_token, "winner-node").await;
    story.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Admin grants and other users' workflows.

#[tokio::test]
async fn an_admin_grant_on_a_prefix_cannot_manage_another_users_workflow() {
    let story = Story::start(Backend::Sqlite, |_| {}).await;
    let alice = token("alice");
    let workflow = story.workflow(&alice, "team-alice-plan").await;
    let bob_id = story.user_id(&token("bob")).await;
    let path = format!("/api/workflows/{workflow}");
    let team_admin = grants_token("service:team-admin", &[("team-*", Permission::Admin)], false);

    // It sees the workflow (its grant covers the room) and may edit the document…
    let (status, seen) = story.get(&path, &team_admin).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["permission"], "write", "admin from a grant is write on another user's workflow");
    assert_eq!(seen["collaborators"], json!([]), "the collaborator list is the owner's");
    // …but cannot publish, share, rename or delete it.
    let attempts = [
        (Method::PATCH, path.clone(), Some(json!({ "public": true }))),
        (Method::PATCH, path.clone(), Some(json!({ "title": "mine now" }))),
        (Method::PUT, format!("{path}/collaborators/{bob_id}"), Some(json!({ "permission": "write" }))),
        (Method::DELETE, path.clone(), None),
    ];
    for (method, target, body) in attempts {
        let (status, answer) = story.call(method.clone(), &target, &team_admin, body).await;
        assert_code(status, &answer, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, after) = story.get(&path, &alice).await;
    assert_eq!(status, StatusCode::OK, "still there: {after}");
    assert_eq!(after["public"], false);
    assert_eq!(after["title"], "team-alice-plan");
    assert_eq!(after["collaborators"], json!([]), "bob was not added");
    assert_eq!(story.get("/api/rooms/team-alice-plan/graph", &token("bob")).await.0, StatusCode::NOT_FOUND);

    // Only a token that says so explicitly manages other users' workflows.
    let manager = grants_token("service:team-manager", &[("team-*", Permission::Admin)], true);
    let (status, renamed) =
        story.call(Method::PATCH, &path, &manager, Some(json!({ "title": "renamed by ops" }))).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    // And the flag without an admin grant on the room gives nothing.
    let writer = grants_token("service:team-writer", &[("team-*", Permission::Write)], true);
    let (status, answer) = story.call(Method::DELETE, &path, &writer, None).await;
    assert_code(status, &answer, StatusCode::FORBIDDEN, "forbidden");

    story.still_works("team-alice-plan", &alice, "alice-node").await;
    story.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 404 for what the caller may not see.

/// A free one-node graph, so runs need no credits; with no workers they stay queued.
async fn write_free_graph(story: &Story, room: &str, token: &str) {
    let client = story.join(room, token).await;
    let prompt = common::runs::typed_node("prompt", "text-prompt", json!({ "text": "a fox" }));
    client.edit(|txn| canvas::write_node(txn, &prompt)).await.expect("edit").expect("node");
    story.wait_stored(room, token, "prompt").await;
    client.close().await;
}

async fn submit(story: &Story, room: &str, token: &str) -> (StatusCode, Value) {
    story.call(Method::POST, &format!("/api/rooms/{room}/runs"), token, Some(json!({}))).await
}

#[tokio::test]
async fn a_stranger_cannot_tell_another_users_run_from_a_missing_one() {
    let story = Story::start(Backend::Sqlite, |config| config.executor.run_workers = 0).await;
    let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));
    let room = "alice-runs";
    let workflow = story.workflow(&alice, room).await;
    write_free_graph(&story, room, &alice).await;
    let (status, accepted) = submit(&story, room, &alice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let run = accepted["runId"].as_str().expect("run id").to_owned();
    let missing = "run_000000000000000000000000";

    // Bob: the same 404, word for word (apart from the id), as for a run that does not exist.
    let same_as_missing = |id: &str, status: StatusCode, body: &Value| {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body, &json!({ "error": format!("no run {id:?}"), "code": "not_found" }));
    };
    for (method, suffix) in [(Method::GET, ""), (Method::POST, "/cancel")] {
        let (status, body) =
            story.call(method.clone(), &format!("/api/runs/{run}{suffix}"), &bob, None).await;
        same_as_missing(&run, status, &body);
        let (status, body) = story.call(method, &format!("/api/runs/{missing}{suffix}"), &bob, None).await;
        same_as_missing(missing, status, &body);
    }
    // The room's run list and the room itself: as for a room nobody used.
    for path in [format!("/api/rooms/{room}/runs"), format!("/api/rooms/{room}/versions")] {
        let (status, body) = story.get(&path, &bob).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body, json!({ "error": format!("no room {room:?}"), "code": "room_not_found" }));
    }
    let (status, body) = submit(&story, room, &bob).await;
    assert_code(status, &body, StatusCode::NOT_FOUND, "room_not_found");
    let (status, body) = story.get("/api/rooms/nobody-room/runs", &bob).await;
    assert_eq!(body, json!({ "error": "no room \"nobody-room\"", "code": "room_not_found" }), "{status}");
    let (status, _) = story.get(&format!("/api/workflows/{workflow}"), &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Carol may read the room: she sees the run, and is forbidden (not "not found") to cancel
    // it or to run the room.
    let carol_id = story.user_id(&carol).await;
    let (status, body) = story
        .call(
            Method::PUT,
            &format!("/api/workflows/{workflow}/collaborators/{carol_id}"),
            &alice,
            Some(json!({ "permission": "read" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(story.get(&format!("/api/runs/{run}"), &carol).await.0, StatusCode::OK);
    let (status, body) = story.call(Method::POST, &format!("/api/runs/{run}/cancel"), &carol, None).await;
    assert_code(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = submit(&story, room, &carol).await;
    assert_code(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = story
        .call(Method::PATCH, &format!("/api/workflows/{workflow}"), &carol, Some(json!({"title": "x"})))
        .await;
    assert_code(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // Nothing Bob or Carol tried touched the run: Alice still sees it queued, and cancels it.
    let (status, body) = story.get(&format!("/api/runs/{run}"), &alice).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "queued");
    let (status, body) = story.call(Method::POST, &format!("/api/runs/{run}/cancel"), &alice, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    story.still_works(room, &alice, "alice-node").await;
    story.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Per-user quotas.

async fn the_workflow_quota_trips_and_concurrent_creations_cannot_pass_it(backend: Backend) {
    let story = Story::start(backend, |config| config.limits.max_workflows_per_user = 3).await;
    let alice = token("alice");
    let first = story.workflow(&alice, "alice-1").await;
    story.workflow(&alice, "alice-2").await;
    story.workflow(&alice, "alice-3").await;
    let (status, body) = story.claim(&alice, "alice-4").await;
    assert_code(status, &body, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    assert!(body["error"].as_str().is_some_and(|e| e.contains('3')), "the message says the limit: {body}");

    // Ten at once cannot get past it either (the count is taken under a lock).
    let mallory = token("mallory");
    story.user_id(&mallory).await;
    let rooms: Vec<String> = (0..10).map(|i| format!("mallory-{i}")).collect();
    let answers = futures_util::future::join_all(rooms.iter().map(|room| story.claim(&mallory, room))).await;
    let created = answers.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
    assert_eq!(created, 3, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != StatusCode::CREATED) {
        assert_code(*status, body, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    }
    let (_, listed) = story.get("/api/workflows", &mallory).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(3));

    // Alice's work goes on, and deleting one makes room for another.
    story.still_works("alice-1", &alice, "alice-node").await;
    let (status, _) = story.call(Method::DELETE, &format!("/api/workflows/{first}"), &alice, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    story.workflow(&alice, "alice-4").await;
    story.stop().await;
}

#[tokio::test]
async fn the_queued_runs_quota_trips_and_frees_up_as_runs_finish() {
    let story = Story::start(Backend::Sqlite, |config| {
        config.executor.run_workers = 0; // nothing executes: runs stay queued
        config.limits.max_queued_runs_per_user = 2;
    })
    .await;
    let (alice, bob) = (token("alice"), token("bob"));
    story.workflow(&alice, "alice-canvas").await;
    write_free_graph(&story, "alice-canvas", &alice).await;
    let path = "/api/rooms/alice-canvas/runs";
    let keyed = |key: &'static str| {
        story
            .http
            .post(story.server.http(path))
            .bearer_auth(&alice)
            .header("Idempotency-Key", key)
            .json(&json!({}))
    };
    let first = keyed("first").send().await.expect("submit");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.expect("json");
    let (status, body) = submit(&story, "alice-canvas", &alice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = submit(&story, "alice-canvas", &alice).await;
    assert_code(status, &body, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    // A retry of an accepted run is not a new run: it still answers.
    let again = keyed("first").send().await.expect("resubmit");
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["runId"], first["runId"]);
    // Only two are queued, and the refused one held nothing.
    let (_, listed) = story.get(path, &alice).await;
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(2), "{listed}");

    // Another user is not affected.
    story.workflow(&bob, "bob-canvas").await;
    write_free_graph(&story, "bob-canvas", &bob).await;
    assert_eq!(submit(&story, "bob-canvas", &bob).await.0, StatusCode::ACCEPTED);
    // A finished (cancelled) run frees its place.
    let run = first["runId"].as_str().expect("run id");
    let (status, _) = story.call(Method::POST, &format!("/api/runs/{run}/cancel"), &alice, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = submit(&story, "alice-canvas", &alice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    story.still_works("alice-canvas", &alice, "alice-node").await;
    story.stop().await;
}

#[tokio::test]
async fn one_user_cannot_fill_the_servers_rooms() {
    let story = Story::start(Backend::Sqlite, |config| {
        config.limits.max_rooms = 4;
        config.limits.max_rooms_per_user = 2;
        config.rooms.unload_after_secs = 1;
    })
    .await;
    let (mallory, alice) = (token("mallory"), token("alice"));
    for i in 0..6 {
        story.workflow(&mallory, &format!("mallory-{i}")).await;
    }
    story.workflow(&alice, "alice-room").await;
    let first = story.join("mallory-0", &mallory).await;
    let second = story.join("mallory-1", &mallory).await;
    // Past her share, every way of opening a room is refused, with the reason.
    for i in 2..6 {
        let refusal = upgrade_refusal(&story.server.url_with_token(&format!("mallory-{i}"), &mallory)).await;
        let (status, body) = refusal.expect("refused");
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("quota_exceeded"), "{body}");
        let (status, body) = story.get(&format!("/api/rooms/mallory-{i}/graph"), &mallory).await;
        assert_code(status, &body, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    }
    assert_eq!(story.server.metric("dojo_rooms_open", "").await, 2.0, "the bound: her share, no more");
    // Joining a room that is already open costs nothing.
    let third = story.join("mallory-0", &mallory).await;
    // The server still has room for everyone else.
    story.still_works("alice-room", &alice, "alice-node").await;

    // Rooms she leaves unload and give her share back.
    for client in [first, second, third] {
        client.close().await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let reopened = loop {
        match upgrade_refusal(&story.server.url_with_token("mallory-5", &mallory)).await {
            None => break true,
            Some((429, _)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Some(other) => panic!("unexpected refusal {other:?}"),
        }
    };
    assert!(reopened);
    story.stop().await;
}

/// The next Hocuspocus auth answer for document `name` on a raw `/collab` socket.
async fn collab_auth(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    name: &str,
    token: &str,
) -> hocuspocus::AuthMessage {
    use futures_util::{SinkExt, StreamExt};
    let auth = hocuspocus::AuthMessage::Token { token: token.into(), provider_version: Some("4.8.0".into()) };
    let frame = hocuspocus::encode(name, &hocuspocus::Message::Auth(auth));
    ws.send(WsMessage::Binary(frame.into())).await.expect("send");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.expect("an answer in time");
        match next.expect("socket open").expect("no error") {
            WsMessage::Binary(bytes) => {
                if let Ok(hocuspocus::Frame::Document {
                    name: got,
                    message: hocuspocus::Message::Auth(answer),
                }) = hocuspocus::decode_frame(&bytes, &hocuspocus::HocuspocusLimits::default())
                    && got == name
                {
                    return answer;
                }
            }
            WsMessage::Close(frame) => panic!("the socket closed: {frame:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_collab_document_past_the_users_room_share_is_denied_and_the_socket_lives_on() {
    let story = Story::start(Backend::Sqlite, |config| config.limits.max_rooms_per_user = 1).await;
    let mallory = token("mallory");
    story.workflow(&mallory, "mallory-a").await;
    story.workflow(&mallory, "mallory-b").await;
    let url = format!("ws://{}/collab", story.server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect to /collab");
    let first = collab_auth(&mut ws, "mallory-a", &mallory).await;
    assert!(matches!(first, hocuspocus::AuthMessage::Authenticated { .. }), "{first:?}");
    match collab_auth(&mut ws, "mallory-b", &mallory).await {
        hocuspocus::AuthMessage::PermissionDenied { reason } => {
            assert!(reason.contains("rooms"), "the reason says why: {reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(story.server.metric("dojo_rooms_open", "").await, 1.0);
    // The socket lives on (another document on it still opens), and other users are not
    // affected.
    let alice = token("alice");
    story.workflow(&alice, "alice-room").await;
    let other = collab_auth(&mut ws, "alice-room", &alice).await;
    assert!(matches!(other, hocuspocus::AuthMessage::Authenticated { .. }), "{other:?}");
    story.still_works("alice-room", &alice, "alice-node").await;
    story.stop().await;
}
