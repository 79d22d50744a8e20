//! Issue 17, attack 4, replayed: presence of any size from read-only peers, never-reading
//! readers growing the server's memory, and one token opening thousands of connections.
//! Each story asserts the attack is refused or survived and that the owner keeps working.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::{TestServer, WAIT, node};
use dojo_auth::{Claims, Grants, Minter, Permission};
use dojo_room_client::{Framing, SyncClient};
use dojo_sync_protocol::canvas;
use dojo_sync_protocol::codec::{FrameLimits, decode_frame, encode_message};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message};
use yrs::{ClientID, Doc, Transact};

const SECRET: &str = "a test secret that is at least thirty-two bytes long";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// The defaults the server ships with (`DOJO_MAX_AWARENESS_BYTES…`).
const MAX_STATE: usize = 16 * KIB;
const MAX_PER_CONNECTION: usize = 64 * KIB;
/// The largest presence frame a joining client receives (`room.rs`).
const PRESENCE_FRAME_BYTES: usize = 64 * KIB;

/// A token for `sub` with `permission` on the rooms `pattern` names (`room` or `prefix*`).
fn token(sub: &str, pattern: &str, permission: Permission) -> String {
    let mut claims = Claims::new(sub, 600);
    claims.grants = Some(Grants([(pattern.to_owned(), permission)].into()));
    Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

async fn start(configure: impl FnOnce(&mut dojo_server::Config)) -> TestServer {
    TestServer::start_with(|config| {
        config.auth.jwt_secret = Some(SECRET.into());
        configure(config);
    })
    .await
}

/// A JSON presence state of exactly `size` bytes.
fn state_of(size: usize) -> String {
    format!("{{\"p\":\"{}\"}}", "x".repeat(size - 8))
}

/// An awareness message setting each `(client id, state size)` at `clock`.
fn presence_frame(states: &[(u64, usize)], clock: u32) -> Vec<u8> {
    let clients = states
        .iter()
        .map(|(id, size)| (ClientID::new(*id), AwarenessUpdateEntry { clock, json: state_of(*size).into() }))
        .collect();
    encode_message(&Message::Awareness(AwarenessUpdate { clients }))
}

async fn joined(url: &str) -> SyncClient {
    let client = SyncClient::connect(url).await.expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    client
}

async fn add_node(client: &SyncClient, id: &str, x: f64) {
    client.edit(|txn| canvas::write_node(txn, &node(id, x))).await.expect("edit").expect("node");
}

fn has_node(doc: &Doc, id: &str) -> bool {
    let txn = doc.transact();
    canvas::read_graph(&txn).is_ok_and(|graph| graph.nodes.iter().any(|n| n.id == id))
}

/// The owner edits and someone joining afresh syncs and sees the edit: the room works.
async fn room_still_works(url: &str, owner: &SyncClient, node_id: &str) {
    add_node(owner, node_id, 9.0).await;
    let fresh = joined(url).await;
    fresh
        .wait_doc("the owner's latest edit", WAIT, |doc| has_node(doc, node_id))
        .await
        .expect("fresh client syncs");
    fresh.close().await;
}

async fn wait_presence_count(client: &SyncClient, what: &'static str, count: usize) {
    client.wait_for(what, WAIT, |_| client.presence().len() == count).await.expect(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_mib_presence_from_read_only_peers_is_refused_and_the_owner_still_syncs() {
    let server = start(|_| {}).await;
    let room = "showcase";
    let owner_url = server.url_with_token(room, &token("ada", room, Permission::Admin));
    let owner = joined(&owner_url).await;
    add_node(&owner, "before", 1.0).await;

    // The attack: read-only peers publish 9 MiB states, over /rooms and over /collab.
    let big = presence_frame(&[(1001, 9 * MIB)], 1);
    let viewer = joined(&server.url_with_token(room, &token("v1", room, Permission::Read))).await;
    viewer.send_message(big.clone()).await.expect("send");
    let (code, reason) = viewer.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("presence state of") && reason.contains(&MAX_STATE.to_string()), "{reason}");

    let collab_url = format!("ws://{}/collab?token={}", server.addr, token("v2", room, Permission::Read));
    let hocus =
        SyncClient::connect_framed(&collab_url, Doc::new(), Framing::Hocuspocus { document: room.into() })
            .await
            .expect("connect to /collab");
    hocus.wait_synced(WAIT).await.expect("the hocuspocus viewer syncs");
    hocus.send_message(big).await.expect("send");
    let (code, reason) = hocus.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("presence state of"), "{reason}");

    // Nobody received the states; honest presence still flows.
    assert!(owner.presence().iter().all(|(_, state)| state.to_string().len() < MAX_STATE));
    let honest = joined(&server.url_with_token(room, &token("v3", room, Permission::Read))).await;
    honest.set_presence(&serde_json::json!({ "name": "cy" })).await.expect("presence");
    owner
        .wait_for("the honest viewer's presence", WAIT, |_| {
            owner.presence().iter().any(|(_, state)| state["name"] == "cy")
        })
        .await
        .expect("honest presence arrives");
    room_still_works(&owner_url, &owner, "after").await;
    assert!(server.metric("dojo_presence_refused_total", "").await >= 2.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_one_connection_publishes_is_bounded_in_total() {
    let server = start(|_| {}).await;
    let room = "totals";
    let owner_url = server.url_with_token(room, &token("ada", room, Permission::Admin));
    let owner = joined(&owner_url).await;
    let viewer = joined(&server.url_with_token(room, &token("v1", room, Permission::Read))).await;

    // Four states of 15 KiB on four ids, one frame each: within the per-connection total.
    let size = 15 * KIB;
    for id in 1..=4 {
        viewer.send_message(presence_frame(&[(id, size)], 1)).await.expect("send");
    }
    wait_presence_count(&owner, "the viewer's four states", 4).await;
    // Renewing one of them (same id, new clock) replaces it rather than adding to the total.
    viewer.send_message(presence_frame(&[(1, size)], 2)).await.expect("send");
    // A fifth would bring the connection past its total: it is closed, and its presence goes.
    assert!(5 * size > MAX_PER_CONNECTION && 4 * size <= MAX_PER_CONNECTION);
    viewer.send_message(presence_frame(&[(5, size)], 1)).await.expect("send");
    let (code, reason) = viewer.wait_closed(WAIT).await.expect("closed").expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("presence of one connection"), "{reason}");
    wait_presence_count(&owner, "the closed viewer's presence removed", 0).await;
    room_still_works(&owner_url, &owner, "still-editing").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_full_of_presence_is_joined_in_frames_under_the_limit() {
    let server = start(|_| {}).await;
    let room = "crowded";
    let owner_token = token("ada", room, Permission::Admin);
    let owner = joined(&server.url_with_token(room, &owner_token)).await;

    // 16 read-only peers each publish the most presence a connection may: 4 × 15 KiB. Sent
    // whole in one frame, everyone's presence would be ~960 KiB.
    let (peers, per_peer, size) = (16u64, 4u64, 15 * KIB);
    let mut viewers = Vec::new();
    for peer in 0..peers {
        let url = server.url_with_token(room, &token(&format!("v{peer}"), room, Permission::Read));
        let viewer = joined(&url).await;
        let states: Vec<_> = (0..per_peer).map(|k| (peer * 10 + k + 1, size)).collect();
        viewer.send_message(presence_frame(&states, 1)).await.expect("send");
        viewers.push(viewer);
    }
    let states = (peers * per_peer) as usize;
    wait_presence_count(&owner, "everyone's presence", states).await;

    // A newcomer receives it in several frames, each bounded, and far below the frame limit.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(server.url_with_token(room, &owner_token)).await.expect("connect");
    let mut seen = HashSet::new();
    let (mut frames, mut largest) = (0usize, 0usize);
    tokio::time::timeout(WAIT, async {
        while seen.len() < states {
            let Some(Ok(message)) = socket.next().await else { panic!("socket ended") };
            let WsMessage::Binary(frame) = message else { continue };
            for message in decode_frame(&frame, &FrameLimits::default()).expect("a valid frame") {
                if let Message::Awareness(update) = message {
                    frames += 1;
                    largest = largest.max(frame.len());
                    seen.extend(update.clients.keys().copied());
                }
            }
        }
    })
    .await
    .expect("everyone's presence reaches the newcomer");
    assert!(frames >= (states * size) / PRESENCE_FRAME_BYTES, "{frames} frames");
    assert!(largest <= PRESENCE_FRAME_BYTES, "a presence frame of {largest} bytes");
    assert!(largest < dojo_server::config::Limits::default().max_frame_bytes);
    socket.close(None).await.expect("close");

    // And a stock-like client joins, syncs and holds everyone's presence.
    let newcomer = joined(&server.url_with_token(room, &owner_token)).await;
    wait_presence_count(&newcomer, "everyone's presence at the newcomer", states).await;
    room_still_works(&server.url_with_token(room, &owner_token), &owner, "crowded-edit").await;
    server.stop().await;
}

/// The HTTP status and JSON body a WebSocket upgrade is refused with (None: accepted; the
/// socket is dropped at once).
async fn refusal(url: &str) -> Option<(u16, serde_json::Value)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            Some((response.status().as_u16(), serde_json::from_slice(body).unwrap_or_default()))
        }
        Err(other) => panic!("unexpected upgrade failure: {other}"),
    }
}

async fn collab_document(server: &TestServer, token: &str, document: &str) -> SyncClient {
    let url = format!("ws://{}/collab?token={token}", server.addr);
    SyncClient::connect_framed(&url, Doc::new(), Framing::Hocuspocus { document: document.into() })
        .await
        .expect("connect to /collab")
}

/// Waits (bounded) until the server counts `count` open connections.
async fn wait_open_connections(server: &TestServer, count: f64) {
    let open = server.wait_metric("dojo_connections_open", "", |open| open == count).await;
    assert_eq!(open, count, "open connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_hold_more_connections_than_the_limit_and_slots_come_back() {
    const LIMIT: usize = 4;
    let server = start(|config| config.limits.max_connections_per_user = LIMIT).await;
    let ada = token("ada", "lim-*", Permission::Write);

    // Three /rooms connections and one /collab document: the limit, across both endpoints.
    let mut rooms = Vec::new();
    for _ in 0..LIMIT - 1 {
        rooms.push(joined(&server.url_with_token("lim-a", &ada)).await);
    }
    let document = collab_document(&server, &ada, "lim-b").await;
    document.wait_synced(WAIT).await.expect("the document opens");

    // One more /rooms connection: 429 before the upgrade, in the API's error envelope.
    let (status, body) = refusal(&server.url_with_token("lim-a", &ada)).await.expect("refused");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_connections", "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains(&format!("at most {LIMIT}"))), "{body}");
    // One more /collab document: refused with the reason.
    let extra = collab_document(&server, &ada, "lim-c").await;
    let denied = extra.wait_for("permission denied", WAIT, |s| s.denied.is_some()).await.expect("denied");
    assert!(denied.denied.as_deref().is_some_and(|r| r.contains("too many connections")), "{denied:?}");
    extra.abort();

    // Another user is not affected, and ada's connections keep working.
    let bob = joined(&server.url_with_token("lim-a", &token("bob", "lim-*", Permission::Write))).await;
    add_node(&rooms[0], "ada-edit", 1.0).await;
    bob.wait_doc("ada's edit", WAIT, |doc| has_node(doc, "ada-edit")).await.expect("ada still edits");

    // Closing them gives every slot back: the same number opens again, and no more.
    for client in rooms {
        client.close().await;
    }
    document.close().await;
    wait_open_connections(&server, 1.0).await; // bob's
    let mut again = Vec::new();
    for _ in 0..LIMIT {
        again.push(joined(&server.url_with_token("lim-a", &ada)).await);
    }
    let (status, _) = refusal(&server.url_with_token("lim-a", &ada)).await.expect("refused again");
    assert_eq!(status, 429);
    assert!(server.metric("dojo_rejected_upgrades_total", "too_many_user_connections").await >= 2.0);
    server.stop().await;
}

/// The real `dojo-server` binary, for its memory figures (`/proc/<pid>/status`).
struct MeasuredServer {
    addr: std::net::SocketAddr,
    started: common::process::Started,
    _data: tempfile::TempDir,
}

impl MeasuredServer {
    async fn start(args: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite:{}", data.path().join("dojo.db").display());
        let mut command = Command::new(common::process::BINARY);
        command
            .args(["--addr", "127.0.0.1:0", "--database-url", &url, "--log", "warn"])
            .args(args)
            .env("DOJO_JWT_SECRET", SECRET);
        let started = common::process::Started::spawn(command, "dojo-server").await;
        let Some(addr) =
            started.line.trim().strip_prefix("dojo-server listening on ").and_then(|a| a.parse().ok())
        else {
            started.fail("an unexpected first line");
        };
        Self { addr, started, _data: data }
    }

    fn memory_kib(&self, field: &str) -> u64 {
        common::procfs::status_kib(Some(self.started.child.id()), field).expect("/proc status")
    }

    fn url(&self, room: &str, token: &str) -> String {
        format!("ws://{}/rooms/{room}?token={token}", self.addr)
    }

    async fn metric(&self, name: &str, labels: &str) -> f64 {
        common::metric_at(self.addr, name, labels).await
    }
}

impl Drop for MeasuredServer {
    fn drop(&mut self) {
        let _ = self.started.child.kill();
        let _ = self.started.child.wait();
    }
}

/// A WebSocket with a small receive buffer that the test never reads: what the server sends
/// it piles up on the server's side, as with a stalled client.
async fn never_reading(
    addr: std::net::SocketAddr,
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("tcp connect");
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.expect("upgrade");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_reading_readers_pushing_presence_are_shed_and_server_memory_stays_bounded() {
    // Per-connection queues made effectively unbounded: only the server-wide budget (8 MiB)
    // stands between these readers and the server's memory.
    const BUDGET: usize = 8 * MIB;
    let budget = BUDGET.to_string();
    let server = MeasuredServer::start(&[
        "--outbound-queue-frames",
        "1000000",
        "--outbound-queue-bytes",
        "4294967296",
        "--outbound-global-bytes",
        &budget,
    ])
    .await;
    let room = "stage";
    let owner_url = server.url(room, &token("ada", room, Permission::Admin));
    let owner = joined(&owner_url).await;
    add_node(&owner, "before", 1.0).await;
    let baseline_kib = server.memory_kib("VmRSS");

    // 20 read-only peers that never read push 1,000 renewals of the largest allowed state each:
    // ~312 MiB for every peer of the room. Kept for the readers, that is ~312 MiB of memory.
    const READERS: u64 = 20;
    const ROUNDS: u32 = 1000;
    let mut readers = Vec::new();
    for reader in 0..READERS {
        let url = server.url(room, &token(&format!("reader-{reader}"), room, Permission::Read));
        let (mut sink, stream) = never_reading(server.addr, &url).await.split();
        readers.push(tokio::spawn(async move {
            for clock in 1..=ROUNDS {
                let frame = presence_frame(&[(5000 + reader, MAX_STATE)], clock);
                if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            // Holds the socket (never read) until the test ends.
            (sink, stream)
        }));
    }
    let mut sockets = Vec::new();
    for reader in readers {
        sockets.push(
            tokio::time::timeout(WAIT * 3, reader).await.expect("readers send in time").expect("reader"),
        );
    }

    // Readers are closed by the budget (their own queues could never fill), the biggest
    // holders first, until what waits to be sent fits in it again.
    let deadline = tokio::time::Instant::now() + WAIT;
    let held = loop {
        let held = server.metric("dojo_outbound_bytes_held", "").await;
        if held <= BUDGET as f64 || tokio::time::Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(held <= BUDGET as f64, "{held} bytes still waiting to be sent");
    let sheds = server.metric("dojo_outbound_budget_sheds_total", "").await;
    // Each one closed: its close frame is given a moment to go out first.
    let deadline = tokio::time::Instant::now() + WAIT;
    let shed = loop {
        let shed = server.metric("dojo_disconnects_total", "reason=\"outbound_budget\"").await;
        if shed >= sheds || tokio::time::Instant::now() > deadline {
            break shed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("readers shed by the outbound budget: {shed} (shedder: {sheds})");
    assert!(shed >= (READERS / 2) as f64, "only {shed} readers shed");
    assert_eq!(server.metric("dojo_disconnects_total", "reason=\"slow_consumer\"").await, 0.0);

    // Memory: the peak stayed within a stated bound above the baseline.
    let peak_kib = server.memory_kib("VmHWM");
    let growth_mib = peak_kib.saturating_sub(baseline_kib) / 1024;
    eprintln!("server memory: baseline {baseline_kib} KiB, peak {peak_kib} KiB, growth {growth_mib} MiB");
    // The budget is 8 MiB; what arrives while the shedder acts, read buffers and the room's
    // queue come on top. Without the budget the growth is ~312 MiB.
    assert!(growth_mib < 128, "server memory grew by {growth_mib} MiB");

    // The owner reads, so it is not among the biggest holders unless the machine starves the
    // test's own client of CPU; then it is closed like any slow reader (1013, never for another
    // reason) and, as a stock editor does, reconnects. Either way it keeps working.
    let owner = match owner.status().close {
        None => owner,
        Some((code, reason)) => {
            assert_eq!(code, 1013, "the owner was closed: {reason}");
            eprintln!("the owner lagged and was shed too; it reconnects");
            joined(&owner_url).await
        }
    };
    room_still_works(&owner_url, &owner, "after").await;
    let health = reqwest::get(format!("http://{}/healthz", server.addr)).await.expect("healthz");
    assert!(health.status().is_success());
    drop(sockets);
}

/// Publishes `message` on a room's Redis channel, as another instance would.
fn publish_as_another_instance(redis: &common::redis::Redis, room: &str, message: &[u8]) {
    use std::io::Write;
    let mut cli = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "-x", "PUBLISH", &format!("dojo:room:{room}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli");
    cli.stdin.take().expect("stdin").write_all(message).expect("write the message");
    assert!(cli.wait().expect("redis-cli").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_presence_from_another_instance_is_dropped() {
    use dojo_server::cluster::ClusterMessage;
    let db = common::database::TestDatabase::new(common::database::Backend::Postgres).await;
    let redis = common::redis::Redis::start().await;
    let server = common::process::ServerProcess::start_with_env(
        &db.url,
        &["--redis-url", &redis.url()],
        &[("DOJO_JWT_SECRET", SECRET.to_owned())],
    )
    .await;
    let room = "federated";
    let owner_url =
        format!("ws://{}/rooms/{room}?token={}", server.addr, token("ada", room, Permission::Admin));
    let owner = joined(&owner_url).await;

    // A hostile or broken instance relays a 9 MiB state, then an ordinary one.
    let origin = 42;
    let big = ClusterMessage::Awareness { origin, frame: presence_frame(&[(7001, 9 * MIB)], 1).into() };
    publish_as_another_instance(&redis, room, &big.encode());
    let small = ClusterMessage::Awareness { origin, frame: presence_frame(&[(7002, 100)], 1).into() };
    publish_as_another_instance(&redis, room, &small.encode());

    // Handled in order: when the ordinary state arrives, the big one has been refused.
    owner
        .wait_for("the remote ordinary presence", WAIT, |_| {
            owner.presence().iter().any(|(id, _)| *id == ClientID::new(7002))
        })
        .await
        .expect("remote presence arrives");
    assert!(owner.presence().iter().all(|(id, _)| *id != ClientID::new(7001)), "the 9 MiB state was relayed");
    assert!(server.metric("dojo_presence_refused_total", "").await >= 1.0);
    room_still_works(&owner_url, &owner, "after").await;
}
