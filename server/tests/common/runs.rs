//! Shared by the run stories: an HTTP client for the run API with tokens minted for a known
//! secret, canvas graphs, and watching node states from a WebSocket client in the room.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dojo_auth::{Claims, Minter};
use dojo_ids::UserId;
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{self, CanvasEdge, CanvasNode, Position};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yrs::types::ToJson;
use yrs::{Doc, Map, ReadTxn, Transact};

use super::database::{Backend, TestDatabase};
use super::{TestServer, WAIT};

pub const SECRET: &str = "a test secret that is at least thirty-two bytes long";

pub fn token(sub: &str) -> String {
    let mut claims = Claims::new(sub, 600);
    claims.name = Some(sub.into());
    Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

/// The run API of one server, and the database behind it (to grant credits and read the
/// ledger directly).
pub struct RunApi {
    pub addr: SocketAddr,
    pub database_url: String,
    pub http: reqwest::Client,
}

impl RunApi {
    pub fn new(addr: SocketAddr, database_url: &str) -> Self {
        Self { addr, database_url: database_url.to_owned(), http: reqwest::Client::new() }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn room_url(&self, room: &str, token: &str) -> String {
        format!("ws://{}/rooms/{room}?token={token}", self.addr)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.http_url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        super::send_json(request).await
    }

    /// The user behind `token`, with `credits` granted.
    pub async fn user_with_credits(&self, token: &str, credits: i64) -> String {
        let (status, me) = self.call(Method::GET, "/api/me", token, None, None).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        let id = me["id"].as_str().expect("user id").to_owned();
        let database = dojo_store::open_database(&self.database_url).await.expect("open the database");
        dojo_records::accounts(&database)
            .apply_credits(&UserId::from(id.as_str()), credits, "test grant", &format!("grant:{id}"))
            .await
            .expect("grant");
        id
    }

    /// A workflow (room) owned by the token's user.
    /// Creates a workflow in `room`; its id.
    pub async fn workflow(&self, token: &str, room: &str) -> String {
        let body = json!({"title": room, "room": room});
        let (status, created) = self.call(Method::POST, "/api/workflows", token, Some(body), None).await;
        assert!(status.is_success(), "{created}");
        created["id"].as_str().expect("a workflow id").to_owned()
    }

    /// The types of the workflow's events (its change feed), oldest first, with the `data`
    /// of each.
    pub async fn events(&self, token: &str, workflow: &str) -> Vec<(String, Value)> {
        let path = format!("/api/workflows/{workflow}/events?after=0&limit=200");
        let (status, page) = self.call(Method::GET, &path, token, None, None).await;
        assert!(status.is_success(), "{page}");
        page["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|e| {
                        (
                            e["event"]["type"].as_str().unwrap_or_default().to_owned(),
                            e["event"]["data"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn balance(&self, token: &str) -> i64 {
        let (_, me) = self.call(Method::GET, "/api/me", token, None, None).await;
        me["credits"].as_i64().expect("credits")
    }

    /// Submits a run of the whole graph; its id.
    pub async fn submit(&self, token: &str, room: &str, key: &str) -> String {
        let path = format!("/api/rooms/{room}/runs");
        let (status, accepted) = self.call(Method::POST, &path, token, Some(json!({})), Some(key)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        accepted["runId"].as_str().expect("run id").to_owned()
    }

    /// `GET /api/runs/{id}` until `done` holds for it (at most `within`).
    pub async fn wait_run(
        &self,
        token: &str,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (_, run) = self.call(Method::GET, &format!("/api/runs/{id}"), token, None, None).await;
            if done(&run) {
                return run;
            }
            assert!(tokio::time::Instant::now() < deadline, "the run never got there: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every ledger row of a user, as (amount, idempotency key).
    pub async fn ledger(&self, user_id: &str) -> Vec<(i64, String)> {
        let database = dojo_store::open_database(&self.database_url).await.expect("open the database");
        dojo_records::accounts(&database)
            .ledger(&UserId::from(user_id), 1000)
            .await
            .expect("ledger")
            .into_iter()
            .map(|entry| (entry.amount, entry.idempotency_key))
            .collect()
    }
}

impl RunApi {
    /// `POST /api/assets` (for `room`, if any) with a PNG content type.
    pub async fn upload(&self, token: &str, room: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let path = match room {
            Some(room) => format!("/api/assets?room={room}"),
            None => "/api/assets".to_owned(),
        };
        let request = self
            .http
            .post(self.http_url(&path))
            .bearer_auth(token)
            .header("content-type", "image/png")
            .body(body);
        super::send_json(request).await
    }

    /// `GET /assets/{id}`: the status, and the bytes (or the error body).
    pub async fn download(&self, token: &str, id: &str) -> (StatusCode, Vec<u8>) {
        let response = self
            .http
            .get(self.http_url(&format!("/assets/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        let status = response.status();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// An upload that must succeed: its asset id.
    pub async fn uploaded(&self, token: &str, room: Option<&str>, body: Vec<u8>) -> String {
        let (status, body) = self.upload(token, room, body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("asset id").to_owned()
    }
}

/// A noisy picture (so that a blur changes it), different for each `shade`.
pub fn png(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        let v = (x.wrapping_mul(37) ^ y.wrapping_mul(91)).wrapping_add(u32::from(shade) * 13) as u8;
        image::Rgba([v, v.wrapping_mul(3), shade, 255])
    });
    dojo_executor::builtins::imaging::encode_png(&image::DynamicImage::ImageRgba8(image)).expect("encode")
}

/// A client in `room` that has the room's current document.
pub async fn join(api: &RunApi, room: &str, token: &str) -> SyncClient {
    let client = SyncClient::connect(&api.room_url(room, token)).await.expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    client
}

pub fn typed_node(id: &str, node_type: &str, data: Value) -> CanvasNode {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    CanvasNode { id: id.into(), node_type: node_type.into(), position: Position { x: 0.0, y: 0.0 }, data }
}

pub fn edge(source: &str, sh: &str, target: &str, th: &str) -> CanvasEdge {
    CanvasEdge {
        id: format!("{source}-{target}"),
        source: source.into(),
        source_handle: Some(sh.into()),
        target: target.into(),
        target_handle: Some(th.into()),
    }
}

/// Writes the graph from `client` (in `room`, as `token`'s user) and waits until the server
/// holds it.
pub async fn write_graph(
    api: &RunApi,
    room: &str,
    token: &str,
    client: &SyncClient,
    nodes: &[CanvasNode],
    edges: &[CanvasEdge],
) {
    client
        .edit(|txn| {
            for n in nodes {
                canvas::write_node(txn, n).expect("node");
            }
            for e in edges {
                canvas::write_edge(txn, e).expect("edge");
            }
        })
        .await
        .expect("edit");
    wait_server_graph(api, room, token, nodes.len(), edges.len()).await;
}

/// Waits until the server's copy of `room` holds at least `nodes` nodes and `edges` edges. A
/// client's own document has its edit at once, the server only once the update has arrived;
/// anything that reads the room's graph on the server (a run submission) must wait for that,
/// so a fresh client joins and waits to see it.
pub async fn wait_server_graph(api: &RunApi, room: &str, token: &str, nodes: usize, edges: usize) {
    let probe = join(api, room, token).await;
    probe
        .wait_doc("the server's copy of the graph", WAIT, move |doc| {
            canvas::read_graph(&doc.transact())
                .is_ok_and(|g| g.nodes.len() >= nodes && g.edges.len() >= edges)
        })
        .await
        .expect("the server holds the graph");
    probe.close().await;
}

pub fn status_of(doc: &Doc, node: &str) -> Option<String> {
    let txn = doc.transact();
    let result = canvas::read_node_result(&txn, node).ok()??;
    Some(serde_json::to_value(result.status).ok()?.as_str()?.to_owned())
}

pub fn result_json(doc: &Doc, node: &str) -> Value {
    let txn = doc.transact();
    txn.get_map(canvas::RESULTS)
        .and_then(|m| m.get(&txn, node))
        .map(|v| serde_json::to_value(v.to_json(&txn)).unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

pub fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled" | "cached" | "skipped")
}

/// Waits until every node in `nodes` is final for run `run_id`, recording each status change
/// the client saw.
pub async fn watch_run(
    client: &SyncClient,
    run_id: &str,
    nodes: &[&str],
    within: Duration,
) -> BTreeMap<String, Vec<String>> {
    let seen: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let record = seen.clone();
    let nodes: Vec<String> = nodes.iter().map(|s| (*s).to_owned()).collect();
    let run_id = run_id.to_owned();
    let finished = client
        .wait_doc("every node final", within, move |doc| {
            let mut seen = record.lock().expect("lock");
            let mut all = true;
            for node in &nodes {
                let of_this_run = result_json(doc, node)["runId"] == run_id.as_str();
                let status = status_of(doc, node).filter(|_| of_this_run);
                if let Some(status) = &status {
                    let history = seen.entry(node.clone()).or_default();
                    if history.last() != Some(status) {
                        history.push(status.clone());
                    }
                }
                all &= status.as_deref().is_some_and(is_final);
            }
            all
        })
        .await;
    let seen = seen.lock().expect("lock").clone();
    assert!(finished.is_ok(), "not every node reached a final state: {seen:?}");
    seen
}

/// An in-process server on a database of its own (JWT secret [`SECRET`]), and the run API in
/// front of it: what every run and asset story starts from.
pub struct RunStory {
    pub server: TestServer,
    pub api: RunApi,
    _db: TestDatabase,
}

impl std::ops::Deref for RunStory {
    type Target = RunApi;

    fn deref(&self) -> &RunApi {
        &self.api
    }
}

impl RunStory {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut dojo_server::Config)) -> Self {
        let db = TestDatabase::new(backend).await;
        let server = TestServer::start_on(&db.url, |config| {
            config.auth.jwt_secret = Some(SECRET.into());
            configure(config);
        })
        .await;
        let api = RunApi::new(server.addr, &db.url);
        Self { server, api, _db: db }
    }
}
