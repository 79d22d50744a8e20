//! Identity and permissions end to end: tokens on the WebSocket and the HTTP API, workflow
//! ownership and sharing, read-only connections, grants, expiry, payments, rate limits.
//! The stories that decide who sees whose data run on SQLite and on PostgreSQL.

mod common;

use common::database::{Backend, TestDatabase};
use common::{TestServer, WAIT, node};
use dojo_auth::{Claims, Grants, Minter, Permission};
use dojo_sync_protocol::canvas;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::{Doc, Transact};

const SECRET: &str = "a test secret that is at least thirty-two bytes long";

fn token_for(sub: &str, name: &str) -> String {
    let mut claims = Claims::new(sub, 600);
    claims.name = Some(name.into());
    claims.email = Some(format!("{name}@example.com"));
    Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

fn token_with(claims: Claims) -> String {
    Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

async fn start(backend: Backend) -> (TestServer, TestDatabase) {
    start_with(backend, |_| {}).await
}

async fn start_with(
    backend: Backend,
    configure: impl FnOnce(&mut dojo_server::Config),
) -> (TestServer, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let server = TestServer::start_on(&db.url, |config| {
        config.auth.jwt_secret = Some(SECRET.into());
        configure(config);
    })
    .await;
    (server, db)
}

struct Api<'a> {
    server: &'a TestServer,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(server: &'a TestServer) -> Self {
        Self { server, client: reqwest::Client::new() }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.server.http(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        common::send_json(request).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a workflow and returns (workflow id, room).
    async fn workflow(&self, token: &str, title: &str) -> (String, String) {
        let (status, body) = self.post("/api/workflows", token, json!({ "title": title })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (body["id"].as_str().expect("id").to_owned(), body["room"].as_str().expect("room").to_owned())
    }

    async fn me(&self, token: &str) -> Value {
        let (status, body) = self.get("/api/me", token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// The HTTP status a WebSocket upgrade to `url` is refused with (None: it was accepted).
async fn upgrade_status(url: &str) -> Option<u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
        Err(other) => panic!("unexpected upgrade failure: {other}"),
    }
}

/// A client in `room` with `token`, synced.
async fn joined(server: &TestServer, room: &str, token: &str) -> dojo_room_client::SyncClient {
    let client =
        dojo_room_client::SyncClient::connect(&server.url_with_token(room, token)).await.expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    client
}

/// Adds a node through `client` (sent to the server like any edit).
async fn add_node(client: &dojo_room_client::SyncClient, id: &str, x: f64) {
    client.edit(|txn| canvas::write_node(txn, &node(id, x))).await.expect("edit").expect("node");
}

fn node_ids(doc: &Doc) -> Vec<String> {
    let txn = doc.transact();
    canvas::read_graph(&txn).map(|g| g.nodes.into_iter().map(|n| n.id).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Stories on both stores.

dojo_test_support::each_backend_story!(
    a_read_only_collaborators_edits_reach_no_one_and_are_not_stored,
    a_stranger_cannot_open_read_or_update_a_private_workflow,
);

async fn a_read_only_collaborators_edits_reach_no_one_and_are_not_stored(backend: Backend) {
    let (server, _db) = start(backend).await;
    let api = Api::new(&server);
    let (owner, viewer, editor) = (token_for("ada", "ada"), token_for("bob", "bob"), token_for("cy", "cy"));
    let (workflow, room) = api.workflow(&owner, "shared canvas").await;
    let viewer_id = api.me(&viewer).await["id"].as_str().expect("id").to_owned();
    let editor_id = api.me(&editor).await["id"].as_str().expect("id").to_owned();
    for (user, permission) in [(&viewer_id, "read"), (&editor_id, "write")] {
        let (status, body) = api
            .call(
                reqwest::Method::PUT,
                &format!("/api/workflows/{workflow}/collaborators/{user}"),
                Some(&owner),
                Some(json!({ "permission": permission })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let owner_client = joined(&server, &room, &owner).await;
    add_node(&owner_client, "from-owner", 1.0).await;

    // The viewer receives the canvas…
    let viewer_client = joined(&server, &room, &viewer).await;
    viewer_client
        .wait_doc("the owner's node", WAIT, |doc| node_ids(doc).contains(&"from-owner".to_owned()))
        .await
        .expect("viewer sees the canvas");
    // …and its edits go nowhere.
    add_node(&viewer_client, "from-viewer", 2.0).await;
    // The editor's edit, sent after it, does arrive: so when it is there, the viewer's would be too.
    let editor_client = joined(&server, &room, &editor).await;
    add_node(&editor_client, "from-editor", 3.0).await;
    owner_client
        .wait_doc("the editor's node", WAIT, |doc| node_ids(doc).contains(&"from-editor".to_owned()))
        .await
        .expect("a write collaborator's edit arrives");
    assert!(
        !node_ids(owner_client.doc()).contains(&"from-viewer".to_owned()),
        "a read-only edit was relayed"
    );
    assert!(server.metric("dojo_read_only_refusals_total", "").await >= 1.0);

    // Not stored either: the document as the store and the room hold it lacks it.
    let state = api
        .client
        .get(server.http(&format!("/api/rooms/{room}/state")))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("state");
    assert_eq!(state.status(), StatusCode::OK);
    let stored = Doc::new();
    dojo_sync_protocol::update::apply_client_update(&stored, &state.bytes().await.expect("bytes"))
        .expect("apply");
    let mut ids = node_ids(&stored);
    ids.sort();
    assert_eq!(ids, vec!["from-editor", "from-owner"]);

    // The viewer is told, in y-protocols' auth channel (message 2, permission denied 0).
    let (mut socket, _) =
        tokio_tungstenite::connect_async(server.url_with_token(&room, &viewer)).await.expect("raw viewer");
    let edit = Doc::new();
    let change = {
        let mut txn = edit.transact_mut();
        canvas::write_node(&mut txn, &node("raw-viewer", 4.0)).expect("node");
        txn.encode_update_v1()
    };
    socket
        .send(WsMessage::Binary(dojo_sync_protocol::codec::encode_update(&change).into()))
        .await
        .expect("send");
    let denied = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if let WsMessage::Binary(frame) = message
                && frame.starts_with(&[2, 0])
            {
                return String::from_utf8_lossy(&frame[3..]).into_owned();
            }
        }
        panic!("the socket ended without a permission-denied message");
    })
    .await
    .expect("a permission-denied message");
    assert!(denied.contains("read-only"), "{denied}");
    server.stop().await;
}

async fn a_stranger_cannot_open_read_or_update_a_private_workflow(backend: Backend) {
    let (server, _db) = start(backend).await;
    let api = Api::new(&server);
    let (alice, mallory) = (token_for("alice", "alice"), token_for("mallory", "mallory"));
    let (workflow, room) = api.workflow(&alice, "private plans").await;

    assert_eq!(upgrade_status(&server.url_with_token(&room, &mallory)).await, Some(403));
    for path in [
        format!("/api/rooms/{room}/graph"),
        format!("/api/rooms/{room}/state"),
        format!("/api/rooms/{room}/versions"),
    ] {
        // Not found, as for a room nobody used: a 403 would say it exists.
        assert_eq!(api.get(&path, &mallory).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let update = api
        .client
        .post(server.http(&format!("/api/rooms/{room}/update")))
        .bearer_auth(&mallory)
        .body(vec![0u8, 0])
        .send()
        .await
        .expect("post");
    assert_eq!(update.status(), StatusCode::NOT_FOUND);
    // The workflow itself is invisible to her, and she cannot change it.
    assert_eq!(api.get(&format!("/api/workflows/{workflow}"), &mallory).await.0, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/workflows/{workflow}"),
            Some(&mallory),
            Some(json!({ "public": true })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        api.call(reqwest::Method::DELETE, &format!("/api/workflows/{workflow}"), Some(&mallory), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = api.get("/api/workflows", &mallory).await;
    assert_eq!(listed, json!([]));

    // Made public, it is readable by any signed-in user, still not writable.
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/workflows/{workflow}"),
            Some(&alice),
            Some(json!({ "public": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.get(&format!("/api/rooms/{room}/graph"), &mallory).await.0, StatusCode::OK);
    let update = api
        .client
        .post(server.http(&format!("/api/rooms/{room}/update")))
        .bearer_auth(&mallory)
        .body(vec![0u8, 0])
        .send()
        .await
        .expect("post");
    assert_eq!(update.status(), StatusCode::FORBIDDEN);
    // Anonymous callers get nothing at all.
    assert_eq!(upgrade_status(&server.url(&room)).await, Some(401));

    // Deleted, it is closed to everyone, its owner included.
    let (status, _) =
        api.call(reqwest::Method::DELETE, &format!("/api/workflows/{workflow}"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(upgrade_status(&server.url_with_token(&room, &alice)).await, Some(403));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Tokens.

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let (server, _db) = start(Backend::Sqlite).await;
    let room = "any-room";
    let forged = Minter::hs256(b"not the server's secret, but long enough!!")
        .mint(&Claims::new("eve", 600))
        .expect("mint");
    let mut expired_claims = Claims::new("eve", 0);
    expired_claims.exp = dojo_auth::unix_now() - 3600;
    let expired = token_with(expired_claims);
    let none = {
        use base64_like::encode;
        format!(
            "{}.{}.",
            encode(br#"{"alg":"none","typ":"JWT"}"#),
            encode(br#"{"sub":"eve","exp":9999999999}"#)
        )
    };
    for (what, url) in [
        ("no token", server.url(room)),
        ("garbage", server.url_with_token(room, "garbage")),
        ("forged", server.url_with_token(room, &forged)),
        ("expired", server.url_with_token(room, &expired)),
        ("alg none", server.url_with_token(room, &none)),
    ] {
        assert_eq!(upgrade_status(&url).await, Some(401), "{what}");
    }
    // And the HTTP API says why, as JSON.
    let api = Api::new(&server);
    let (status, body) = api.get("/api/me", &expired).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    assert!(body["error"].as_str().unwrap_or_default().contains("expired"), "{body}");
    let (status, _) = api.call(reqwest::Method::GET, "/api/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(server.metric("dojo_rejected_upgrades_total", "reason=\"unauthorized\"").await >= 5.0);
    server.stop().await;
}

/// base64url without padding, for hand-built tokens.
mod base64_like {
    pub fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn a_token_with_grants_opens_exactly_its_rooms() {
    let (server, _db) = start(Backend::Sqlite).await;
    let mut claims = Claims::new("service:renderer", 600);
    claims.grants = Some(Grants(
        [("render-*".to_owned(), Permission::Write), ("gallery".to_owned(), Permission::Read)].into(),
    ));
    let service = token_with(claims);
    // No workflow claims these rooms; the grants alone open them.
    let writer = dojo_room_client::SyncClient::connect(&server.url_with_token("render-job-1", &service))
        .await
        .expect("connect");
    writer.wait_synced(WAIT).await.expect("synced");
    assert_eq!(upgrade_status(&server.url_with_token("gallery", &service)).await, None);
    assert_eq!(upgrade_status(&server.url_with_token("render", &service)).await, Some(403));
    assert_eq!(upgrade_status(&server.url_with_token("elsewhere", &service)).await, Some(403));
    // A plain user token opens no room that has no workflow (outside dev mode).
    assert_eq!(upgrade_status(&server.url_with_token("render-job-1", &token_for("u", "u"))).await, Some(403));
    server.stop().await;
}

#[tokio::test]
async fn a_connection_ends_when_its_token_expires() {
    let (server, _db) = start_with(Backend::Sqlite, |config| config.auth.jwt_leeway_secs = 0).await;
    let mut claims = Claims::new("short-lived", 0);
    claims.exp = dojo_auth::unix_now() + 2;
    claims.grants = Some(Grants([("room".to_owned(), Permission::Write)].into()));
    let client = dojo_room_client::SyncClient::connect(&server.url_with_token("room", &token_with(claims)))
        .await
        .expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    let close = client.wait_closed(WAIT).await.expect("closed");
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 4401, "{reason}");
    assert!(reason.contains("expired"), "{reason}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The HTTP API.

#[tokio::test]
async fn users_are_created_on_first_sight_and_profiles_follow_their_tokens() {
    let (server, _db) = start(Backend::Sqlite).await;
    let api = Api::new(&server);
    let first = api.me(&token_for("user-1", "Ada")).await;
    assert_eq!(first["name"], "Ada");
    assert_eq!(first["credits"], 0);
    assert_eq!(first["anonymous"], false);
    let renamed = api.me(&token_for("user-1", "Ada Lovelace")).await;
    assert_eq!(renamed["id"], first["id"], "the same user");
    assert_eq!(renamed["name"], "Ada Lovelace");
    server.stop().await;
}

#[tokio::test]
async fn an_http_update_reaches_live_collaborators_and_the_graph() {
    let (server, _db) = start(Backend::Sqlite).await;
    let api = Api::new(&server);
    let owner = token_for("owner", "owner");
    let (_, room) = api.workflow(&owner, "canvas").await;
    let live = joined(&server, &room, &owner).await;

    let doc = Doc::new();
    let update = {
        let mut txn = doc.transact_mut();
        canvas::write_node(&mut txn, &node("over-http", 7.0)).expect("node");
        txn.encode_update_v1()
    };
    let response = api
        .client
        .post(server.http(&format!("/api/rooms/{room}/update")))
        .bearer_auth(&owner)
        .body(update)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    live.wait_doc("the HTTP node", WAIT, |doc| node_ids(doc).contains(&"over-http".to_owned()))
        .await
        .expect("a live client sees the HTTP update");
    let (status, graph) = api.get(&format!("/api/rooms/{room}/graph"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(graph["nodes"]["over-http"]["position"]["x"], 7.0);
    assert!(graph["edges"].is_object() && graph["results"].is_object());

    // Garbage is refused with a reason, and the room keeps serving.
    let bad = api
        .client
        .post(server.http(&format!("/api/rooms/{room}/update")))
        .bearer_auth(&owner)
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api.get(&format!("/api/rooms/{room}/graph"), &owner).await.0, StatusCode::OK);
    // Bigger than the body limit: 413, nothing read.
    let huge = api
        .client
        .post(server.http(&format!("/api/rooms/{room}/update")))
        .bearer_auth(&owner)
        .body(vec![0u8; 5 * 1024 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    drop(live);
    server.stop().await;
}

#[tokio::test]
async fn workflows_are_listed_for_their_owner_and_collaborators() {
    let (server, _db) = start(Backend::Sqlite).await;
    let api = Api::new(&server);
    let (ada, bob) = (token_for("ada", "ada"), token_for("bob", "bob"));
    let (first, _) = api.workflow(&ada, "first").await;
    let (second, _) = api.workflow(&ada, "second").await;
    let bob_id = api.me(&bob).await["id"].as_str().expect("id").to_owned();
    let (status, _) = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/workflows/{second}/collaborators/{bob_id}"),
            Some(&ada),
            Some(json!({ "permission": "write" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = api.get("/api/workflows", &ada).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    let (_, shared) = api.get("/api/workflows", &bob).await;
    assert_eq!(shared[0]["id"], second.as_str());
    assert_eq!(shared[0]["permission"], "write");
    // Bob may edit but not administer.
    let (status, _) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/workflows/{second}"),
            Some(&bob),
            Some(json!({ "title": "mine" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, renamed) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/workflows/{first}"),
            Some(&ada),
            Some(json!({ "title": "renamed" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["title"], "renamed");
    let (status, detail) = api.get(&format!("/api/workflows/{second}"), &ada).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["collaborators"][0]["userId"], bob_id.as_str());
    // Unsharing ends Bob's access.
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/workflows/{second}/collaborators/{bob_id}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/api/workflows/{second}"), &bob).await.0, StatusCode::NOT_FOUND);
    // A taken room is a conflict.
    let (status, body) = api.post("/api/workflows", &bob, json!({ "title": "x", "room": first })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_stripe_checkout_credits_once_and_unsigned_events_are_refused() {
    const WEBHOOK_SECRET: &str = "whsec_test_secret";
    let (server, _db) =
        start_with(Backend::Sqlite, |config| config.auth.stripe_webhook_secret = Some(WEBHOOK_SECRET.into()))
            .await;
    let api = Api::new(&server);
    let buyer = token_for("buyer", "buyer");
    let user_id = api.me(&buyer).await["id"].as_str().expect("id").to_owned();
    let event = json!({
        "id": "evt_1",
        "type": "checkout.session.completed",
        "data": { "object": { "id": "cs_1", "client_reference_id": user_id, "metadata": { "credits": "25" } } }
    })
    .to_string();
    let post = |payload: String, signature: Option<String>| {
        let mut request = api.client.post(server.http("/api/webhooks/stripe")).body(payload);
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send()
    };
    let now = i64::try_from(dojo_auth::unix_now()).expect("now");
    let signed = dojo_records::stripe::sign(event.as_bytes(), WEBHOOK_SECRET, now);
    for _ in 0..2 {
        let response = post(event.clone(), Some(signed.clone())).await.expect("post");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(api.me(&buyer).await["credits"], 25, "delivered twice, credited once");

    let stale = dojo_records::stripe::sign(event.as_bytes(), WEBHOOK_SECRET, now - 3600);
    let wrong = dojo_records::stripe::sign(event.as_bytes(), "whsec_other", now);
    let tampered = event.replace("25", "2500");
    for (what, payload, signature) in [
        ("unsigned", event.clone(), None),
        ("stale", event.clone(), Some(stale)),
        ("wrong secret", event.clone(), Some(wrong)),
        ("tampered", tampered, Some(signed.clone())),
    ] {
        let response = post(payload, signature).await.expect("post");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    assert_eq!(api.me(&buyer).await["credits"], 25);
    let (status, ledger) = api.get("/api/me/ledger", &buyer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ledger.as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn http_calls_over_the_rate_limit_get_429_with_retry_after() {
    let (server, _db) = start_with(Backend::Sqlite, |config| {
        config.http.http_rate_per_sec = 1;
        config.http.http_burst = 3;
    })
    .await;
    let token = token_for("busy", "busy");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response =
            reqwest::Client::new().get(server.http("/api/me")).bearer_auth(&token).send().await.expect("get");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        }
        statuses.push(response.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses[..3].iter().all(|s| *s == 200), "the burst passes: {statuses:?}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&retry_after));
    // Another user is not affected.
    let other = reqwest::Client::new()
        .get(server.http("/api/me"))
        .bearer_auth(token_for("calm", "calm"))
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let (server, _db) = start_with(Backend::Sqlite, |config| {
        config.http.cors_origins = vec!["https://studio.example.com".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, server.http("/api/workflows"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://studio.example.com").await.expect("preflight");
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://studio.example.com")
    );
    let refused = preflight("https://evil.example.com").await.expect("preflight");
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_is_served() {
    let (server, _db) = start(Backend::Sqlite).await;
    let spec: Value =
        reqwest::get(server.http("/api/openapi.json")).await.expect("get").json().await.expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    let documented: std::collections::BTreeSet<String> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    // Every route the API router serves (kept in step with `api::routes`).
    let routed: std::collections::BTreeSet<String> = [
        "GET /api/catalog",
        "GET /api/me",
        "GET /api/me/ledger",
        "GET /api/me/export",
        "POST /api/me/deletion",
        "DELETE /api/me",
        "GET /api/me/privacy",
        "PUT /api/me/privacy",
        "POST /api/dev/token",
        "POST /api/webhooks/stripe",
        "GET /api/workflows",
        "POST /api/workflows",
        "GET /api/workflows/{id}",
        "PATCH /api/workflows/{id}",
        "DELETE /api/workflows/{id}",
        "PUT /api/workflows/{id}/collaborators/{user}",
        "DELETE /api/workflows/{id}/collaborators/{user}",
        "GET /api/workflows/{id}/webhooks",
        "POST /api/workflows/{id}/webhooks",
        "DELETE /api/workflows/{id}/webhooks/{hookId}",
        "GET /api/workflows/{id}/webhooks/{hookId}/deliveries",
        "POST /api/workflows/{id}/webhooks/{hookId}/deliveries/{deliveryId}/replay",
        "GET /api/workflows/{id}/events",
        "GET /api/workflows/{id}/invitations",
        "POST /api/workflows/{id}/invitations",
        "DELETE /api/workflows/{id}/invitations/{email}",
        "GET /api/workflows/{id}/app",
        "PUT /api/workflows/{id}/app",
        "DELETE /api/workflows/{id}/app",
        "GET /api/apps/{app}",
        "POST /api/apps/{app}/runs",
        "GET /api/apps/{app}/runs/{run}",
        "POST /api/apps/{app}/runs/{run}/cancel",
        "GET /api/rooms/{room}/graph",
        "GET /api/rooms/{room}/state",
        "POST /api/rooms/{room}/update",
        "GET /api/rooms/{room}/versions",
        "GET /api/rooms/{room}/versions/{id}",
        "POST /api/rooms/{room}/versions/{id}/restore",
        "POST /api/rooms/{room}/compose",
        "POST /api/rooms/{room}/edits",
        "POST /api/rooms/{room}/edits/{id}/undo",
        "GET /api/rooms/{room}/runs",
        "POST /api/rooms/{room}/runs",
        "GET /api/rooms/{room}/batches",
        "POST /api/rooms/{room}/batches",
        "GET /api/batches/{id}",
        "POST /api/batches/{id}/cancel",
        "GET /api/runs/{id}",
        "POST /api/runs/{id}/cancel",
        "POST /api/runs/{id}/move-to-front",
        "GET /api/queue",
        "POST /api/queue/pause",
        "POST /api/queue/resume",
        "POST /api/assets",
        "GET /assets/{id}",
        "GET /api/me/invitations",
        "GET /api/teams",
        "POST /api/teams",
        "GET /api/teams/{team}",
        "PATCH /api/teams/{team}",
        "DELETE /api/teams/{team}",
        "GET /api/teams/{team}/members",
        "PUT /api/teams/{team}/members/{user}",
        "DELETE /api/teams/{team}/members/{user}",
        "POST /api/teams/{team}/leave",
        "GET /api/teams/{team}/invitations",
        "POST /api/teams/{team}/invitations",
        "DELETE /api/teams/{team}/invitations/{invitation}",
        "GET /api/teams/{team}/audit",
        "GET /api/teams/{team}/credits",
        "GET /api/teams/{team}/ledger",
        "PUT /api/teams/{team}/members/{user}/spending-limit",
        "GET /api/teams/{team}/catalog",
        "GET /api/agent-jobs",
        "POST /api/agent-jobs",
        "GET /api/agent-jobs/{id}",
        "POST /api/agent-jobs/claim",
        "POST /api/agent-jobs/{id}/heartbeat",
        "POST /api/agent-jobs/{id}/complete",
        "POST /api/agent-jobs/{id}/fail",
        "GET /api/agent-schedules",
        "PUT /api/agent-schedules/{name}",
        "DELETE /api/agent-schedules/{name}",
        "POST /api/support/tickets",
        "GET /api/support/tickets",
        "GET /api/support/tickets/{id}",
        "GET /api/support/queue",
        "POST /api/support/tickets/{id}/answer",
        "GET /api/fraud/flags",
        "GET /api/fraud/flags/{id}",
        "POST /api/fraud/flags/{id}/review",
        "GET /api/audit",
        "GET /api/workflows/{id}/suggestions",
        "POST /api/workflows/{id}/suggestions/dismiss",
        "GET /api/teams/{team}/provider-keys",
        "PUT /api/teams/{team}/provider-keys/{provider}",
        "DELETE /api/teams/{team}/provider-keys/{provider}",
        "POST /api/teams/{team}/queue/pause",
        "POST /api/teams/{team}/queue/resume",
        "POST /api/invitations/{invitation}/accept",
        "POST /api/invitations/{invitation}/decline",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(documented, routed);
    // Each documented operation exists: never 404-for-no-route or 405.
    let token = token_for("spec", "spec");
    for operation in &documented {
        let (method, path) = operation.split_once(' ').expect("method path");
        let concrete = path
            .replace("{room}", "spec-room")
            .replace("{id}", "1")
            .replace("{user}", "u")
            .replace("{team}", "team_1")
            .replace("{invitation}", "inv_1")
            .replace("{provider}", "openai")
            .replace("{app}", "app_1")
            .replace("{run}", "run_1");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = reqwest::Client::new()
            .request(method, server.http(&concrete))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{operation}");
        let body: Value = response.json().await.unwrap_or_default();
        // A handler's own 404 is `not_found` or `room_not_found`; the router's `route_not_found`.
        assert_ne!(body["code"], "route_not_found", "{operation} is not routed");
    }
    server.stop().await;
}

#[tokio::test]
async fn dev_mode_allows_anonymous_use_and_mints_dev_identities() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let (status, me) = api.call(reqwest::Method::GET, "/api/me", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["anonymous"], true);
    let (status, body) =
        api.call(reqwest::Method::POST, "/api/dev/token", None, Some(json!({ "name": "dev" }))).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().expect("token").to_owned();
    let me = api.me(&token).await;
    assert_eq!(me["name"], "dev");
    // A dev user's workflow is theirs: private to them even in dev mode.
    let (_, room) = api.workflow(&token, "dev canvas").await;
    let _client = joined(&server, &room, &token).await;
    server.stop().await;

    // With a key configured there is no dev identity to be had.
    let (server, _db) = start(Backend::Sqlite).await;
    let (status, _) = Api::new(&server)
        .call(reqwest::Method::POST, "/api/dev/token", None, Some(json!({ "name": "dev" })))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn unsharing_or_deleting_ends_live_connections_and_they_cannot_return() {
    let (server, _db) = start(Backend::Sqlite).await;
    let api = Api::new(&server);
    let (owner, guest) = (token_for("owner", "owner"), token_for("guest", "guest"));
    let (workflow, room) = api.workflow(&owner, "canvas").await;
    let guest_id = api.me(&guest).await["id"].as_str().expect("id").to_owned();
    let share = format!("/api/workflows/{workflow}/collaborators/{guest_id}");
    let (status, _) =
        api.call(reqwest::Method::PUT, &share, Some(&owner), Some(json!({ "permission": "write" }))).await;
    assert_eq!(status, StatusCode::OK);
    let live = joined(&server, &room, &guest).await;

    let (status, _) = api.call(reqwest::Method::DELETE, &share, Some(&owner), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (code, reason) = live.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1012, "{reason}");
    assert_eq!(upgrade_status(&server.url_with_token(&room, &guest)).await, Some(403));

    // The owner is asked to reconnect too, and gets back in; after a delete, nobody does.
    let owner_client = joined(&server, &room, &owner).await;
    let (status, _) =
        api.call(reqwest::Method::DELETE, &format!("/api/workflows/{workflow}"), Some(&owner), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (code, _) = owner_client.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1012);
    assert_eq!(upgrade_status(&server.url_with_token(&room, &owner)).await, Some(403));
    server.stop().await;
}

#[tokio::test]
async fn the_node_catalog_is_served_to_everyone() {
    let (server, _db) = start(Backend::Sqlite).await;
    let catalog: Value =
        reqwest::get(server.http("/api/catalog")).await.expect("get").json().await.expect("json");
    let nodes = catalog["nodes"].as_array().expect("nodes");
    assert!(nodes.iter().any(|n| n["id"] == "dev-image"), "{catalog}");
    assert!(nodes.iter().all(|n| n["id"].is_string() && n["category"].is_string()));
    server.stop().await;
}
