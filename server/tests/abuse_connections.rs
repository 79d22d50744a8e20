//! Abuse of connections before anyone is authenticated (issue 17, attacks 2 and 7): idle and
//! flooding anonymous `/collab` sockets, slowloris TCP connections, the TCP connection limit,
//! unauthenticated routes hammered, foreign origins driving a dev-mode server, `/metrics`.
//! Each story replays the attack against a real server over real sockets, and checks that the
//! attack is refused or survived while a signed-in user keeps working.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestServer, WAIT, node};
use dojo_auth::{Claims, Grants, Minter, Permission};
use dojo_room_client::{Framing, SyncClient};
use dojo_sync_protocol::canvas;
use dojo_sync_protocol::hocuspocus::{Message as HocusMessage, encode};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yrs::Doc;

const SECRET: &str = "a test secret that is at least thirty-two bytes long";

/// A signed-in user's token, good for every room (a grant, so no workflow is needed).
fn token() -> String {
    let mut claims = Claims::new("alice", 600);
    claims.grants = Some(Grants([("*".to_owned(), Permission::Write)].into()));
    Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint")
}

async fn server_with_auth(configure: impl FnOnce(&mut dojo_server::Config)) -> TestServer {
    TestServer::start_with(|config| {
        config.auth.jwt_secret = Some(SECRET.into());
        configure(config);
    })
    .await
}

/// The legitimate user: a Hocuspocus provider and a y-websocket client, both signed in, sync
/// the room and see each other's edit.
async fn signed_in_user_syncs(server: &TestServer, room: &str, node_id: &str) {
    let token = token();
    let url = format!("ws://{}/collab?token={token}", server.addr);
    let framing = Framing::Hocuspocus { document: room.into() };
    let hocus = SyncClient::connect_framed(&url, Doc::new(), framing).await.expect("the provider connects");
    hocus.wait_synced(WAIT).await.expect("the provider syncs");
    let ws = SyncClient::connect(&server.url_with_token(room, &token)).await.expect("y-websocket connects");
    ws.wait_synced(WAIT).await.expect("y-websocket syncs");
    hocus.edit(|txn| canvas::write_node(txn, &node(node_id, 1.0)).expect("write")).await.expect("edit");
    ws.wait_doc("the provider's edit", WAIT, |doc| {
        canvas::read_graph(&doc.transact_read()).is_ok_and(|g| g.nodes.iter().any(|n| n.id == node_id))
    })
    .await
    .expect("the edit reaches the other client");
    hocus.close().await;
    ws.close().await;
}

trait TransactRead {
    fn transact_read(&self) -> yrs::Transaction<'_>;
}

impl TransactRead for Doc {
    fn transact_read(&self) -> yrs::Transaction<'_> {
        yrs::Transact::transact(self)
    }
}

/// How an attacking socket ended.
#[derive(Debug)]
enum Ended {
    /// The server's close frame: code and reason.
    Closed(u16, String),
    /// The connection dropped without a close frame we could read (reset, EOF).
    Dropped,
}

/// An anonymous `/collab` socket that never authenticates but stays as lively as it can: it
/// sends WebSocket pings and Hocuspocus pings every 200 ms and answers the server's pings.
/// Returns how it ended and when.
async fn idle_anonymous_socket(addr: SocketAddr, limit: Duration) -> (Ended, Instant) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/collab"))
        .await
        .expect("an anonymous socket upgrades");
    let deadline = Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = ws.send(WsMessage::Ping(vec![1].into())).await;
                let _ = ws.send(WsMessage::Binary(vec![9].into())).await; // Hocuspocus Ping
            }
            next = tokio::time::timeout_at(deadline, ws.next()) => match next {
                Err(_) => panic!("an unauthenticated socket was still open after {limit:?}"),
                Ok(Some(Ok(WsMessage::Close(Some(frame))))) => {
                    return (Ended::Closed(frame.code.into(), frame.reason.to_string()), Instant::now());
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => return (Ended::Dropped, Instant::now()),
            },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_anonymous_collab_sockets_are_closed_at_the_auth_deadline_while_a_signed_in_user_syncs() {
    const SOCKETS: usize = 260;
    let timeout = Duration::from_secs(10);
    let server = server_with_auth(|config| {
        config.limits.auth_timeout_secs = timeout.as_secs();
        // Fewer slots than attackers: before, each anonymous socket took one of these.
        config.limits.max_connections = 50;
        config.limits.max_unauthenticated = 300;
        // All from one address here; the per-address share has a story of its own.
        config.limits.max_unauthenticated_per_ip = 300;
    })
    .await;
    let started = Instant::now();
    let attackers: Vec<_> =
        (0..SOCKETS).map(|_| tokio::spawn(idle_anonymous_socket(server.addr, timeout + WAIT))).collect();
    let open = server.wait_metric("dojo_unauthenticated_sockets", "", |n| n >= SOCKETS as f64).await;
    assert_eq!(open, SOCKETS as f64, "every attacker is in the pre-authentication pool");

    // Meanwhile, with every attacker connected, the signed-in user works.
    signed_in_user_syncs(&server, "busy-room", "during-the-attack").await;
    let open = server.metric("dojo_unauthenticated_sockets", "").await;
    assert_eq!(open, SOCKETS as f64, "the user synced while every attacker was still open");

    for attacker in attackers {
        let (ended, at) = attacker.await.expect("attacker task");
        match ended {
            Ended::Closed(code, reason) => {
                assert_eq!(code, 4408, "closed for the deadline: {reason}");
                assert!(reason.contains("authentication timeout"), "{reason}");
            }
            Ended::Dropped => panic!("closed without a close frame"),
        }
        // Pings every 200 ms did not extend the deadline (closing may lag a little on a
        // loaded machine; WAIT bounds that, it does not measure speed).
        assert!(at >= started + timeout - Duration::from_millis(500), "not closed before the deadline");
    }
    let open = server.wait_metric("dojo_unauthenticated_sockets", "", |n| n == 0.0).await;
    assert_eq!(open, 0.0, "every pre-authentication slot was given back");
    let timeouts = server.metric("dojo_disconnects_total", "reason=\"auth_timeout\"").await;
    assert_eq!(timeouts, SOCKETS as f64);
    signed_in_user_syncs(&server, "busy-room", "after-the-attack").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_sockets_have_a_pool_of_their_own_and_leave_it_when_they_authenticate() {
    let server = server_with_auth(|config| {
        config.limits.max_unauthenticated = 5;
        config.limits.max_connections = 4;
    })
    .await;
    let mut anonymous = Vec::new();
    for _ in 0..5 {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/collab", server.addr))
            .await
            .expect("within the pre-authentication pool");
        anonymous.push(ws);
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/collab", server.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("unauthenticated"), "{body}");
        }
        other => panic!("a sixth anonymous socket must be refused, got {other:?}"),
    }
    // `/rooms` checks the token before the upgrade: an anonymous client gets no socket at all.
    match tokio_tungstenite::connect_async(server.url("pool-room")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("an anonymous /rooms upgrade must be refused, got {other:?}"),
    }
    // The main pool is untouched: signed-in clients take its slots, a provider with its token
    // in the URL included, while the pre-authentication pool is full.
    signed_in_user_syncs(&server, "pool-room", "pooled").await;

    // A provider that sends its token in the protocol only waits in the pre-authentication
    // pool, and leaves it for a main slot when its document authenticates.
    anonymous.pop();
    let mut provider = None;
    let deadline = Instant::now() + WAIT;
    while provider.is_none() {
        let url = format!("ws://{}/collab", server.addr);
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => provider = Some(ws),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => panic!("the freed pre-authentication slot is never given back: {error}"),
        }
    }
    let mut provider = provider.expect("connected");
    let auth = dojo_sync_protocol::hocuspocus::AuthMessage::Token { token: token(), provider_version: None };
    provider
        .send(WsMessage::Binary(encode("pool-room", &HocusMessage::Auth(auth)).into()))
        .await
        .expect("send");
    let authenticated = tokio::time::timeout(WAIT, provider.next()).await.expect("an answer in time");
    assert!(matches!(authenticated, Some(Ok(WsMessage::Binary(_)))), "{authenticated:?}");
    let open = server.wait_metric("dojo_unauthenticated_sockets", "", |n| n == 4.0).await;
    assert_eq!(open, 4.0, "the provider left the pre-authentication pool when it authenticated");
    // …so a new anonymous socket fits in the pool again.
    let (extra, _) = tokio_tungstenite::connect_async(format!("ws://{}/collab", server.addr))
        .await
        .expect("the promoted provider's slot was given back");
    drop((anonymous, extra));
    let open = server.wait_metric("dojo_unauthenticated_sockets", "", |n| n == 0.0).await;
    assert_eq!(open, 0.0);
    drop(provider);

    // With every main slot taken, a socket that authenticates cannot move there: it is closed
    // with 1013, and its pre-authentication slot is given back.
    let token = token();
    let mut holders = Vec::new();
    while holders.len() < 4 {
        match SyncClient::connect(&server.url_with_token("pool-room", &token)).await {
            Ok(client) => holders.push(client),
            // The provider's slot frees once the server has seen it go.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let (mut late, _) = tokio_tungstenite::connect_async(format!("ws://{}/collab", server.addr))
        .await
        .expect("the pre-authentication pool has room");
    let auth = dojo_sync_protocol::hocuspocus::AuthMessage::Token { token, provider_version: None };
    late.send(WsMessage::Binary(encode("pool-room", &HocusMessage::Auth(auth)).into())).await.expect("send");
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match late.next().await {
                Some(Ok(WsMessage::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(closed.0, 1013, "{}", closed.1);
    assert!(closed.1.contains("too many connections"), "{}", closed.1);
    let open = server.wait_metric("dojo_unauthenticated_sockets", "", |n| n == 0.0).await;
    assert_eq!(open, 0.0);
    for holder in holders {
        holder.close().await;
    }
    server.stop().await;
}

/// A WebSocket to `path` from the loopback address `source` (all of 127.0.0.0/8 is local), so
/// one story can have clients at two addresses.
async fn connect_from(
    source: [u8; 4],
    server: SocketAddr,
    path: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket.connect(server).await?;
    tokio_tungstenite::client_async(format!("ws://{server}{path}"), stream).await.map(|(ws, _)| ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_the_preauth_pool() {
    let server = server_with_auth(|config| config.limits.max_unauthenticated_per_ip = 3).await;
    let attacker = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(attacker, server.addr, "/collab").await.expect("within its share"));
    }
    match connect_from(attacker, server.addr, "/collab").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("from this address"), "{body}");
        }
        other => panic!("a fourth socket from one address must be refused, got {other:?}"),
    }
    // Another address still gets in, and a provider sending its token in the protocol only
    // authenticates and syncs.
    let mut provider = connect_from([127, 0, 0, 1], server.addr, "/collab").await.expect("another address");
    let auth = dojo_sync_protocol::hocuspocus::AuthMessage::Token { token: token(), provider_version: None };
    provider
        .send(WsMessage::Binary(encode("share-room", &HocusMessage::Auth(auth)).into()))
        .await
        .expect("send");
    let answer = tokio::time::timeout(WAIT, provider.next()).await.expect("an answer in time");
    let Some(Ok(WsMessage::Binary(frame))) = answer else { panic!("expected Authenticated, got {answer:?}") };
    let decoded = dojo_sync_protocol::hocuspocus::decode_frame(&frame, &Default::default()).expect("a frame");
    assert!(
        matches!(
            decoded,
            dojo_sync_protocol::hocuspocus::Frame::Document {
                message: HocusMessage::Auth(
                    dojo_sync_protocol::hocuspocus::AuthMessage::Authenticated { .. }
                ),
                ..
            }
        ),
        "{decoded:?}"
    );
    // The share comes back when a socket closes.
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    while connect_from(attacker, server.addr, "/collab").await.is_err() {
        assert!(Instant::now() < deadline, "the share was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// An anonymous socket that queues `total` bytes of stateless frames for a document it never
/// authenticates, then waits to be closed.
async fn flooding_anonymous_socket(addr: SocketAddr, frame_bytes: usize, total: usize) -> Ended {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/collab")).await.expect("upgrades");
    let frame = encode("flooded", &HocusMessage::Stateless("x".repeat(frame_bytes)));
    let mut sent = 0;
    while sent < total {
        if ws.send(WsMessage::Binary(frame.clone().into())).await.is_err() {
            break;
        }
        sent += frame.len();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.expect("closed in time") {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                return Ended::Closed(frame.code.into(), frame.reason.to_string());
            }
            Some(Ok(_)) => {}
            _ => return Ended::Dropped,
        }
    }
}

fn rss_kib() -> u64 {
    common::procfs::status_kib(None, "VmRSS").expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_queued_before_authentication_are_bounded_per_socket_and_memory_stays_flat() {
    const SOCKETS: usize = 200;
    const ATTEMPTED: usize = 2 * 1024 * 1024;
    let server = server_with_auth(|config| {
        config.limits.auth_timeout_secs = 60;
        config.limits.max_unauthenticated_per_ip = SOCKETS;
    })
    .await;
    let before = rss_kib();
    let attackers: Vec<_> = (0..SOCKETS)
        .map(|_| tokio::spawn(flooding_anonymous_socket(server.addr, 16 * 1024, ATTEMPTED)))
        .collect();
    // Peaks sampled while the flood runs: this process's RSS, and what the server says it queued.
    let peak_rss = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let peak_queued = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (addr, peak_rss, peak_queued) = (server.addr, peak_rss.clone(), peak_queued.clone());
        tokio::spawn(async move {
            loop {
                peak_rss.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                let queued = common::metric_at(addr, "dojo_preauth_queued_bytes", "").await as u64;
                peak_queued.fetch_max(queued, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    for attacker in attackers {
        match attacker.await.expect("attacker task") {
            Ended::Closed(code, reason) => assert_eq!(code, 4205, "{reason}"),
            // The client was still writing when the server closed: the kernel reset the
            // connection. The server's counters below say why it closed.
            Ended::Dropped => {}
        }
    }
    sampler.abort();
    let peak_rss = peak_rss.load(std::sync::atomic::Ordering::Relaxed).max(rss_kib());
    let peak_queued = peak_queued.load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak_queued <= (SOCKETS * 64 * 1024) as u64, "{peak_queued} bytes queued at the peak");
    let resets =
        server.wait_metric("dojo_disconnects_total", "reason=\"reset\"", |n| n >= SOCKETS as f64).await;
    assert_eq!(resets, SOCKETS as f64, "every flooding socket was closed for its queue");
    // 200 × 2 MiB queued before the fix (~400 MiB); now 64 KiB each at most. The bound covers
    // the clients, their frames and the allocator's slack in this one process.
    let grown_mib = (peak_rss.saturating_sub(before)) / 1024;
    assert!(grown_mib < 120, "RSS grew by {grown_mib} MiB");
    let queued = server.wait_metric("dojo_preauth_queued_bytes", "", |n| n == 0.0).await;
    assert_eq!(queued, 0.0, "closed sockets gave their bytes back");
    signed_in_user_syncs(&server, "flood-room", "after-the-flood").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_wide_preauth_budget_caps_what_all_sockets_queue_together() {
    const BUDGET: usize = 256 * 1024;
    let server = server_with_auth(|config| {
        config.limits.auth_timeout_secs = 60;
        config.limits.preauth_total_bytes = BUDGET;
    })
    .await;
    // 16 sockets × 48 KiB: each within its own 64 KiB, together three times the budget.
    let mut sockets = Vec::new();
    let mut busy = 0;
    for _ in 0..16 {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/collab", server.addr)).await.expect("upgrades");
        let frame = encode("pending", &HocusMessage::Stateless("y".repeat(16 * 1024)));
        for _ in 0..3 {
            let _ = ws.send(WsMessage::Binary(frame.clone().into())).await;
        }
        // Wait until the server has either queued all three or closed us for the budget.
        let closed = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
        match closed {
            Ok(Some(Ok(WsMessage::Close(Some(frame))))) => {
                assert_eq!(u16::from(frame.code), 1013, "{}", frame.reason);
                assert!(frame.reason.contains("before authentication"), "{}", frame.reason);
                busy += 1;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => sockets.push(ws), // still open: its frames are queued
        }
        let queued = server.metric("dojo_preauth_queued_bytes", "").await;
        assert!(queued <= BUDGET as f64, "{queued} bytes queued, over the budget");
    }
    assert!(busy >= 8, "sockets past the budget are closed ({busy} were)");
    assert!(sockets.len() >= 4, "sockets within the budget stay ({} did)", sockets.len());
    signed_in_user_syncs(&server, "budget-room", "within-budget").await;
    drop(sockets);
    let queued = server.wait_metric("dojo_preauth_queued_bytes", "", |n| n == 0.0).await;
    assert_eq!(queued, 0.0, "closed sockets gave their bytes back");
    server.stop().await;
}

/// Reads until the server closes the connection (EOF or reset); returns when, or panics after
/// `limit`.
async fn wait_closed_by_server(mut stream: TcpStream, limit: Duration) -> Instant {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => panic!("a slowloris connection was still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Instant::now(),
            Ok(Ok(_)) => {} // whatever the server said before closing
        }
    }
}

async fn healthz(server: &TestServer) -> reqwest::StatusCode {
    let client = reqwest::Client::builder().timeout(WAIT).build().expect("client");
    client.get(server.http("/healthz")).send().await.expect("GET /healthz answers").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_header_timeout_and_the_server_keeps_serving() {
    const CONNECTIONS: usize = 300;
    let timeout = Duration::from_secs(3);
    let server = TestServer::start_with(|config| config.http.header_timeout_secs = timeout.as_secs()).await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        match i % 3 {
            0 => {} // nothing at all
            1 => stream.write_all(b"GET /healthz HTT").await.expect("half a request line"),
            _ => stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .expect("half the headers"),
        }
        slow.push(tokio::spawn(wait_closed_by_server(stream, timeout + WAIT)));
    }
    let open = server.wait_metric("dojo_tcp_connections", "", |n| n > CONNECTIONS as f64).await;
    assert!(open > CONNECTIONS as f64, "every slow connection was accepted ({open})");

    // With all of them open, health checks answer and a WebSocket client syncs and edits.
    assert_eq!(healthz(&server).await, 200);
    let writer = server.client("slow-room").await;
    let reader = server.client("slow-room").await;
    writer.edit(|txn| canvas::write_node(txn, &node("during", 0.0)).expect("write")).await.expect("edit");
    reader
        .wait_doc("the edit", WAIT, |doc| {
            canvas::read_graph(&doc.transact_read()).is_ok_and(|g| g.nodes.iter().any(|n| n.id == "during"))
        })
        .await
        .expect("the edit arrives");

    for connection in slow {
        let closed_at = connection.await.expect("slowloris task");
        assert!(closed_at >= started + timeout - Duration::from_millis(500), "not before the header timeout");
    }
    assert_eq!(healthz(&server).await, 200);
    let timeouts = server.metric("dojo_http_header_timeouts_total", "").await;
    assert!(timeouts >= CONNECTIONS as f64, "closed for the header timeout ({timeouts})");
    // The WebSocket clients, upgraded long ago, are not subject to the header timeout.
    writer.edit(|txn| canvas::write_node(txn, &node("after", 1.0)).expect("write")).await.expect("edit");
    reader
        .wait_doc("the later edit", WAIT, |doc| {
            canvas::read_graph(&doc.transact_read()).is_ok_and(|g| g.nodes.iter().any(|n| n.id == "after"))
        })
        .await
        .expect("the upgraded sockets outlived the header timeout");
    writer.close().await;
    reader.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_fails_and_its_connection_closes() {
    let server = TestServer::start_with(|config| config.http.http_idle_secs = 2).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // The headers arrive in time; the announced body never does (a byte, then silence).
    let head = "POST /api/rooms/slow-body/update HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.write_all(b"\x00").await.expect("one byte of body");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let read = read.expect("the server gave up on the body and closed the connection");
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_err() || text.starts_with("HTTP/1.1 400"), "{text}");
    // Nothing of it reached the room; the server serves on.
    let client = server.client("slow-body").await;
    assert!(canvas::read_graph(&client.doc().transact_read()).map(|g| g.nodes.is_empty()).unwrap_or(true));
    assert_eq!(healthz(&server).await, 200);
    client.close().await;
    server.stop().await;
}

/// The real binary under `sh -c 'ulimit -n …'`, killed when dropped.
struct LimitedProcess {
    addr: SocketAddr,
    started: Option<common::process::Started>,
    _data: tempfile::TempDir,
}

impl LimitedProcess {
    async fn start(open_files: u32, args: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite:{}", data.path().join("dojo.db").display());
        let script = format!("ulimit -n {open_files} && exec \"$0\" \"$@\"");
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", &script, common::process::BINARY])
            .args(["--addr", "127.0.0.1:0", "--database-url", &url, "--log", "warn"])
            .args(args);
        let started = common::process::Started::spawn(command, "dojo-server").await;
        let Some(addr) =
            started.line.trim().strip_prefix("dojo-server listening on ").and_then(|a| a.parse().ok())
        else {
            started.fail("an unexpected first line");
        };
        Self { addr, started: Some(started), _data: data }
    }

    fn log(&self) -> String {
        self.started.as_ref().map(|s| common::process::read_log(&s.log)).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        self.started.as_mut().is_some_and(|s| matches!(s.child.try_wait(), Ok(None)))
    }
}

impl Drop for LimitedProcess {
    fn drop(&mut self) {
        if let Some(mut started) = self.started.take() {
            let _ = started.child.kill();
            let _ = started.child.wait();
        }
    }
}

/// Sends a whole `GET /healthz` on a new connection and returns what came back before the
/// server closed it, or panics if it neither answers nor closes in time.
async fn raw_healthz(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a new connection was left hanging");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_modest_file_limit_a_slowloris_flood_is_refused_and_the_process_recovers() {
    const CONNECTIONS: usize = 300;
    let timeout = Duration::from_secs(3);
    // 256 descriptors: before, the flood exhausted them and accept failed for everyone.
    let mut server =
        LimitedProcess::start(256, &["--max-tcp-connections", "100", "--header-timeout-secs", "3"]).await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(server.addr).await.expect("the kernel completes the handshake");
        if i % 2 == 1 {
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        }
        slow.push(tokio::spawn(wait_closed_by_server(stream, timeout + WAIT)));
    }
    // During the flood a newcomer is answered at once (refused, or served if a slot is free),
    // never left waiting for a descriptor.
    let answer = raw_healthz(server.addr).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );

    for connection in slow {
        let closed_at = connection.await.expect("slowloris task");
        assert!(closed_at < started + timeout + WAIT, "every flood connection was closed");
    }
    assert!(server.is_running(), "the process survived; its log:\n{}", server.log());
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = raw_healthz(server.addr).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz answers again once the flood is closed: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client =
        SyncClient::connect(&format!("ws://{}/rooms/after-flood", server.addr)).await.expect("connect");
    client.wait_synced(WAIT).await.expect("a WebSocket client syncs after the flood");
    client.close().await;
    let log = server.log();
    assert!(!log.contains("accept failed"), "the process never ran out of descriptors:\n{log}");
}

/// A keep-alive connection that has completed one request, so the server has surely accepted
/// (and counted) it.
async fn accepted_connection(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
        .await
        .expect("a response in time")
        .expect("read");
    assert!(buffer[..read].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..read]));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_past_the_limit_are_refused_at_once_upgraded_or_not() {
    const LIMIT: usize = 20;
    let server = TestServer::start_with(|config| {
        config.http.max_tcp_connections = LIMIT;
        config.http.header_timeout_secs = 60;
    })
    .await;
    // Upgraded sockets count too: 5 WebSocket clients, 15 idle keep-alive connections.
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(server.client("tcp-room").await);
    }
    let mut idle = Vec::new();
    for _ in 0..LIMIT - 5 {
        idle.push(accepted_connection(server.addr).await);
    }
    let mut refused = TcpStream::connect(server.addr).await.expect("the kernel accepts the handshake");
    let _ = refused.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, refused.read_to_end(&mut answer)).await.expect("closed at once");
    if read.is_ok() && !answer.is_empty() {
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(text.contains("\"code\":\"unavailable\""), "{text}");
    } // else: reset before the refusal could be read; still refused
    // A WebSocket beyond the limit is refused too.
    assert!(SyncClient::connect(&server.url("tcp-room")).await.is_err(), "no upgrade past the limit");

    // One connection closes: its slot is free again.
    drop(idle.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        match client.get(server.http("/metrics")).send().await {
            Ok(response) if response.status() == 200 => {
                let body = response.text().await.expect("body");
                let refusals = body
                    .lines()
                    .find_map(|line| line.strip_prefix("dojo_tcp_refused_total "))
                    .and_then(|value| value.parse::<f64>().ok());
                assert!(refusals.is_some_and(|n| n >= 2.0), "both refusals counted: {refusals:?}");
                break;
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("a freed slot serves again: {other:?}"),
        }
    }
    for client in clients {
        client.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_without_a_token_are_rate_limited_per_ip_with_the_api_envelope() {
    let server = TestServer::start_with(|config| {
        config.http.public_rate_per_sec = 1;
        config.http.public_burst = 5;
    })
    .await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for path in ["/api/catalog", "/api/openapi.json"].iter().cycle().take(8) {
        statuses.push(client.get(server.http(path)).send().await.expect("answers").status().as_u16());
    }
    assert_eq!(&statuses[..5], [200; 5], "the burst is served");
    assert!(statuses[5..].contains(&429), "past the burst, refused: {statuses:?}");
    let refused = client.get(server.http("/api/catalog")).send().await.expect("answers");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some(), "says when to retry");
    let body: serde_json::Value = refused.json().await.expect("the JSON envelope");
    assert_eq!(body["code"], "rate_limited");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("retry")), "{body}");
    // The webhook shares the budget (it takes no token either); /healthz is exempt.
    let webhook = client.post(server.http("/api/webhooks/stripe")).body("{}").send().await.expect("answers");
    assert_eq!(webhook.status(), 429);
    for _ in 0..20 {
        assert_eq!(healthz(&server).await, 200);
    }
    // A signed-in (here: dev) user's routes are not behind this limit.
    let me = client.get(server.http("/api/me")).send().await.expect("answers");
    assert_ne!(me.status(), 429);
    let limited = server.metric("dojo_rate_limited_total", "reason=\"public\"").await;
    assert!(limited >= 2.0, "{limited}");
    server.stop().await;
}

/// A WebSocket upgrade to `path` with an `Origin` header: the HTTP status it was refused with,
/// or `None` when it upgraded.
async fn upgrade_with_origin(server: &TestServer, path: &str, origin: &str) -> Option<u16> {
    let mut request = format!("ws://{}{path}", server.addr).into_client_request().expect("a request");
    request.headers_mut().insert("origin", origin.parse().expect("a header value"));
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_mode_server_refuses_foreign_origins_and_serves_local_ones() {
    let server = TestServer::start().await; // no JWT key: dev mode, anonymous admins
    for foreign in ["https://evil.example", "http://localhost.evil.example:8787", "null"] {
        assert_eq!(upgrade_with_origin(&server, "/rooms/origin-room", foreign).await, Some(403), "{foreign}");
        assert_eq!(upgrade_with_origin(&server, "/collab", foreign).await, Some(403), "{foreign}");
    }
    for local in ["http://localhost:5173", "http://127.0.0.1:8787", "http://[::1]:3000"] {
        assert_eq!(upgrade_with_origin(&server, "/rooms/origin-room", local).await, None, "{local}");
    }

    // A foreign page's "simple" POST (no preflight) must not change a room.
    let client = reqwest::Client::new();
    let update = {
        let doc = Doc::new();
        let mut txn = yrs::Transact::transact_mut(&doc);
        canvas::write_node(&mut txn, &node("forged", 0.0)).expect("write");
        yrs::TransactionMut::encode_update_v1(&txn)
    };
    let forged = client
        .post(server.http("/api/rooms/origin-room/update"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(update.clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(forged.status(), 403);
    let body: serde_json::Value = forged.json().await.expect("the JSON envelope");
    assert_eq!(body["code"], "forbidden");
    let preflight = client
        .request(reqwest::Method::OPTIONS, server.http("/api/catalog"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("answers");
    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "no CORS for a foreign page");
    let preflight = client
        .request(reqwest::Method::OPTIONS, server.http("/api/catalog"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("answers");
    assert_eq!(
        preflight.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("http://localhost:5173")
    );

    // Nothing forged got in; the local editor and a client without Origin (an SDK) still work.
    let local = client
        .post(server.http("/api/rooms/origin-room/update"))
        .header("origin", "http://127.0.0.1:5173")
        .body(update)
        .send()
        .await
        .expect("answers");
    assert!(local.status().is_success(), "{}", local.status());
    let viewer = server.client("origin-room").await;
    viewer
        .wait_doc("the local edit", WAIT, |doc| {
            canvas::read_graph(&doc.transact_read()).is_ok_and(|g| g.nodes.iter().any(|n| n.id == "forged"))
        })
        .await
        .expect("the local page's update applied");
    viewer.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set() {
    let server = TestServer::start_with(|config| {
        config.http.metrics_token = Some(dojo_server::config::MetricsToken("scrape-me".into()));
    })
    .await;
    let client = reqwest::Client::new();
    for token in [None, Some("scrape-you")] {
        let mut request = client.get(server.http("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let refused = request.send().await.expect("answers");
        assert_eq!(refused.status(), 401, "{token:?}");
        let body: serde_json::Value = refused.json().await.expect("the JSON envelope");
        assert_eq!(body["code"], "unauthorized");
    }
    let allowed = client.get(server.http("/metrics")).bearer_auth("scrape-me").send().await.expect("answers");
    assert_eq!(allowed.status(), 200);
    assert!(allowed.text().await.expect("body").contains("dojo_tcp_connections"));
    server.stop().await;
}
