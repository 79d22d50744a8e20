//! A real server on an ephemeral port, and real WebSocket clients talking to it.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod database;
pub mod process;
pub mod procfs;
pub mod redis;
pub mod replicate;
pub mod runs;
pub mod teams;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use dojo_room_client::SyncClient;
use dojo_server::Config;
use dojo_sync_protocol::canvas::{CanvasNode, Position};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A canvas node with one parameter, as a palette would create it.
pub fn node(id: &str, x: f64) -> CanvasNode {
    CanvasNode {
        id: id.into(),
        node_type: "flux-schnell".into(),
        position: Position { x, y: 0.0 },
        data: std::collections::BTreeMap::from([(
            "prompt".into(),
            serde_json::json!(format!("prompt of {id}")),
        )]),
    }
}

/// Generous: these bound waits on a loaded 2-core CI machine, they do not measure speed.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), dojo_server::ServeError>>,
    /// The SQLite file's directory, removed when the server is dropped (unless the test
    /// passed its own store).
    _data: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server storing in a fresh SQLite file of its own.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite:{}", data.path().join("dojo.db").display());
        let mut server = Self::start_on(&url, configure).await;
        server._data = Some(data);
        server
    }

    /// A server storing at `database_url` (which outlives it, for restart stories).
    pub async fn start_on(database_url: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests(database_url);
        configure(&mut config);
        let storage = tokio::time::timeout(WAIT, dojo_server::Storage::open(&config.database_url))
            .await
            .expect("the store opens within WAIT")
            .expect("open the store");
        let listener = TcpListener::bind(config.addr).await.expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(dojo_server::serve(config, storage, listener, shutdown.clone()));
        Self { addr, shutdown, task, _data: None }
    }

    pub fn url(&self, room: &str) -> String {
        format!("ws://{}/rooms/{room}", self.addr)
    }

    /// The room URL with a token, as y-websocket's `params: { token }` builds it.
    pub fn url_with_token(&self, room: &str, token: &str) -> String {
        format!("ws://{}/rooms/{room}?token={token}", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A client that has completed the sync handshake.
    pub async fn client(&self, room: &str) -> SyncClient {
        let client = tokio::time::timeout(WAIT, SyncClient::connect(&self.url(room)))
            .await
            .unwrap_or_else(|_| panic!("no WebSocket upgrade for {room} within {WAIT:?}"))
            .expect("connect");
        client.wait_synced(WAIT).await.expect("sync step 2 from the server");
        client
    }

    /// One sample of a Prometheus metric (summed over its label sets matching `labels`).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        metric_at(self.addr, name, labels).await
    }

    /// Waits (bounded) until a metric satisfies `done`, and returns that value. Fails the test
    /// at the deadline, naming the metric and the value it last had: a wait that returned
    /// anyway would leave the miss to whatever the caller checks next, or to nothing.
    pub async fn wait_metric(&self, name: &str, labels: &str, done: impl Fn(f64) -> bool) -> f64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = self.metric(name, labels).await;
            if done(value) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{name}{{{labels}}} is still {value} after {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fires the shutdown signal and waits for `serve` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops within the grace period")
            .expect("server task")
            .expect("serve returns Ok");
    }
}

/// An HTTP client whose requests fail after [`WAIT`] instead of hanging the test.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().expect("an HTTP client")
}

/// Sends `request` and returns its status and body: JSON when it parses, else the text as a JSON
/// string (so a plain-text refusal still shows in an assertion message).
pub async fn send_json(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// One sample of a Prometheus metric of the server at `addr` (summed over its label sets
/// matching `labels`).
pub async fn metric_at(addr: SocketAddr, name: &str, labels: &str) -> f64 {
    let body = http_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && rest.contains(labels)).then(|| value.parse::<f64>().ok())?
        })
        .fold(0.0, |sum, value| sum + value)
}
