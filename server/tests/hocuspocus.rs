//! `/collab`: Hocuspocus framing over raw frames, next to y-websocket clients in the same rooms.

mod common;

use std::time::Duration;

use common::{TestServer, WAIT, node};
use dojo_sync_protocol::canvas;
use dojo_sync_protocol::hocuspocus::{AuthMessage, Frame, HocuspocusLimits, Message, decode_frame, encode};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::sync::SyncMessage;
use yrs::{Doc, ReadTxn, Transact};

/// A Hocuspocus client speaking raw frames.
struct Hocus {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Hocus {
    async fn connect(server: &TestServer) -> Self {
        let url = format!("ws://{}/collab", server.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect to /collab");
        Self { ws }
    }

    async fn send(&mut self, name: &str, message: Message) {
        self.send_raw(encode(name, &message)).await;
    }

    async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(WsMessage::Binary(bytes.into())).await.expect("send");
    }

    async fn auth(&mut self, name: &str, token: &str) {
        let token = AuthMessage::Token { token: token.into(), provider_version: Some("4.8.0".into()) };
        self.send(name, Message::Auth(token)).await;
    }

    async fn step1(&mut self, name: &str, doc: &Doc) {
        let sv = doc.transact().state_vector();
        self.send(name, Message::Sync(SyncMessage::SyncStep1(sv))).await;
    }

    /// The next document frame (pings answered and skipped).
    async fn recv(&mut self) -> (String, Message) {
        let limits = HocuspocusLimits::default();
        // One deadline for the whole wait: WebSocket pings from the server must not keep
        // extending it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("a frame in time");
            match next.expect("socket open").expect("no error") {
                WsMessage::Binary(bytes) => match decode_frame(&bytes, &limits).expect("a valid frame") {
                    Frame::Document { name, message } => return (name, message),
                    Frame::Ping => self.send_raw(vec![10]).await,
                    Frame::Pong => {}
                },
                WsMessage::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Reads until `want` matches, returning what it matched; everything else is skipped.
    async fn recv_until<T>(&mut self, mut want: impl FnMut(&str, &Message) -> Option<T>) -> T {
        let wanted = async {
            loop {
                let (name, message) = self.recv().await;
                if let Some(found) = want(&name, &message) {
                    return found;
                }
            }
        };
        tokio::time::timeout(WAIT, wanted).await.expect("the awaited frame in time")
    }

    /// Waits for the server's close frame.
    async fn closed(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("closed in time");
            match next {
                Some(Ok(WsMessage::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(WsMessage::Close(None))) | None => panic!("closed without a close frame"),
                Some(Err(error)) => panic!("socket error instead of a close frame: {error}"),
                Some(Ok(_)) => {}
            }
        }
    }
}

fn node_update(id: &str) -> Vec<u8> {
    let doc = Doc::new();
    let mut txn = doc.transact_mut();
    canvas::write_node(&mut txn, &node(id, 1.0)).expect("write a node");
    txn.encode_update_v1()
}

fn node_ids(doc: &Doc) -> Vec<String> {
    canvas::read_graph(&doc.transact())
        .map(|g| g.nodes.into_iter().map(|n| n.id).collect())
        .unwrap_or_default()
}

fn is_sync_status(name: &str, message: &Message, doc: &str) -> Option<bool> {
    match message {
        Message::SyncStatus { applied } if name == doc => Some(*applied),
        _ => None,
    }
}

/// Opens `name` like the provider does: token, then step 1; answers the server's step 1 with a
/// step 2 and returns once the server's step 2 came and that step 2 was acknowledged.
async fn open(client: &mut Hocus, name: &str, doc: &Doc) {
    client.auth(name, "").await;
    client.step1(name, doc).await;
    let (got, message) = client.recv().await;
    assert_eq!(
        (got.as_str(), &message),
        (name, &Message::Auth(AuthMessage::Authenticated { scope: "read-write".into() }))
    );
    // The server's step 1 comes first, then its step 2 (as the Hocuspocus server sends them).
    let (got, message) = client.recv().await;
    let Message::Sync(SyncMessage::SyncStep1(sv)) = message else {
        panic!("expected step 1, got {message:?}")
    };
    assert_eq!(got, name);
    let reply = doc.transact().encode_state_as_update_v1(&sv);
    client.send(name, Message::Sync(SyncMessage::SyncStep2(reply))).await;
    let (got, message) = client.recv().await;
    assert_eq!(got, name);
    let Message::Sync(SyncMessage::SyncStep2(update)) = message else {
        panic!("expected step 2, got {message:?}")
    };
    dojo_sync_protocol::apply_client_update(doc, &update).expect("the server's step 2 applies");
    client.recv_until(|got, m| is_sync_status(got, m, name)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_documents_share_one_socket_next_to_y_websocket_clients() {
    let server = TestServer::start().await;
    let mut hocus = Hocus::connect(&server).await;
    let (doc_a, doc_b) = (Doc::new(), Doc::new());
    // A session-aware provider's routing key: the reply must carry it back unchanged.
    let key_b = "collab-b\u{0}session1";
    open(&mut hocus, "collab-a", &doc_a).await;
    open(&mut hocus, key_b, &doc_b).await;

    let ws_a = server.client("collab-a").await;
    let ws_b = server.client("collab-b").await;

    // Hocuspocus → y-websocket, acknowledged once stored.
    let update = node_update("from-hocus");
    hocus.send("collab-a", Message::Sync(SyncMessage::Update(update))).await;
    let applied = hocus.recv_until(|name, m| is_sync_status(name, m, "collab-a")).await;
    assert!(applied, "SyncStatus(1) for a stored update");
    ws_a.wait_doc("the node from the Hocuspocus client", WAIT, |d| node_ids(d) == ["from-hocus"])
        .await
        .unwrap();
    let stored = server.metric("dojo_persisted_updates_total", "").await;
    assert!(stored >= 1.0, "the acknowledged update is in the store");

    // y-websocket → Hocuspocus, on the other document of the same socket.
    ws_b.edit(|txn| canvas::write_node(txn, &node("from-ws", 2.0)).unwrap()).await.unwrap();
    let update = hocus
        .recv_until(|name, m| match m {
            Message::Sync(SyncMessage::Update(update)) if name == key_b => Some(update.clone()),
            _ => None,
        })
        .await;
    dojo_sync_protocol::apply_client_update(&doc_b, &update).unwrap();
    assert_eq!(node_ids(&doc_b), ["from-ws"]);
    assert!(node_ids(ws_b.doc()).iter().all(|id| id != "from-hocus"), "documents stay apart");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_the_token_wait_for_it_and_keep_their_order() {
    let server = TestServer::start().await;
    let mut hocus = Hocus::connect(&server).await;
    let doc = Doc::new();
    hocus.step1("early", &doc).await;
    hocus.send("early", Message::Sync(SyncMessage::Update(node_update("queued")))).await;
    hocus.auth("early", "").await;
    let (_, message) = hocus.recv().await;
    assert!(matches!(message, Message::Auth(AuthMessage::Authenticated { .. })), "{message:?}");
    let (_, message) = hocus.recv().await;
    assert!(matches!(message, Message::Sync(SyncMessage::SyncStep1(_))), "{message:?}");
    // The queued update was applied and acknowledged after the step 2 reply was computed.
    assert!(hocus.recv_until(|name, m| is_sync_status(name, m, "early")).await);
    let client = server.client("early").await;
    assert_eq!(node_ids(client.doc()), ["queued"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_before_authentication_is_bounded() {
    let server = TestServer::start().await;
    let mut hocus = Hocus::connect(&server).await;
    for _ in 0..=dojo_server::hocuspocus::MAX_QUEUED_MESSAGES {
        hocus.send("never-authenticated", Message::QueryAwareness).await;
    }
    let (code, reason) = hocus.closed().await;
    assert_eq!(code, 4205, "{reason}");

    // Too many documents waiting for a token: the same.
    let mut hocus = Hocus::connect(&server).await;
    for i in 0..=dojo_server::hocuspocus::MAX_PENDING_DOCUMENTS {
        hocus.send(&format!("pending-{i}"), Message::QueryAwareness).await;
    }
    assert_eq!(hocus.closed().await.0, 4205);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_prefixed_frames_close_only_that_connection() {
    let server = TestServer::start_with(|c| c.limits.max_frame_bytes = 64 * 1024).await;
    let ws = server.client("shared").await;
    let mut good = Hocus::connect(&server).await;
    let good_doc = Doc::new();
    open(&mut good, "shared", &good_doc).await;

    let garbage: [(&str, Vec<u8>, u16); 6] = [
        ("unknown type", vec![6, b's', b'h', b'a', b'r', b'e', b'd', 42], 4205),
        ("truncated name", vec![40, b's'], 4205),
        ("bad sync type", vec![6, b's', b'h', b'a', b'r', b'e', b'd', 0, 9, 0], 4205),
        ("trailing bytes", vec![6, b's', b'h', b'a', b'r', b'e', b'd', 3, 3], 4205),
        ("server-internal type", encode("shared", &Message::BroadcastStateless("x".into())), 4205),
        ("too big", vec![0; 64 * 1024 + 1], 1009),
    ];
    for (what, frame, code) in garbage {
        let mut offender = Hocus::connect(&server).await;
        let offender_doc = Doc::new();
        open(&mut offender, "shared", &offender_doc).await;
        offender.send_raw(frame).await;
        let (got, reason) = offender.closed().await;
        assert_eq!(got, code, "{what}: {reason}");
    }
    // An invalid update inside a well-formed frame: the room closes that socket (1007).
    let mut offender = Hocus::connect(&server).await;
    open(&mut offender, "shared", &Doc::new()).await;
    offender.send("shared", Message::Sync(SyncMessage::Update(vec![0xff; 16]))).await;
    assert_eq!(offender.closed().await.0, 1007);

    // Everyone else carries on.
    good.send("shared", Message::Sync(SyncMessage::Update(node_update("still-here")))).await;
    assert!(good.recv_until(|name, m| is_sync_status(name, m, "shared")).await);
    ws.wait_doc("the good client's edit", WAIT, |d| node_ids(d) == ["still-here"]).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_messages_reach_the_documents_other_hocuspocus_connections() {
    let server = TestServer::start().await;
    let (mut a, mut b) = (Hocus::connect(&server).await, Hocus::connect(&server).await);
    open(&mut a, "talk", &Doc::new()).await;
    open(&mut b, "talk", &Doc::new()).await;
    a.send("talk", Message::Stateless("{\"hello\":1}".into())).await;
    let got = b
        .recv_until(|name, m| match m {
            Message::Stateless(payload) if name == "talk" => Some(payload.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, "{\"hello\":1}");
    // Too big: 1009 for the sender only.
    a.send("talk", Message::Stateless("x".repeat(dojo_server::hocuspocus::MAX_STATELESS_BYTES + 1))).await;
    assert_eq!(a.closed().await.0, 1009);
    b.send("talk", Message::Stateless("still".into())).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_gets_sync_status_0_and_a_bad_one_permission_denied() {
    use dojo_auth::{Claims, Minter};
    const SECRET: &str = "a test secret that is at least thirty-two bytes long";
    let server = TestServer::start_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let mut claims = Claims::new("reader", 600);
    claims.grants = Some(serde_json::from_value(serde_json::json!({ "ro-room": "read" })).expect("grants"));
    let token = Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint");

    let mut hocus = Hocus::connect(&server).await;
    hocus.auth("ro-room", &token).await;
    let (_, message) = hocus.recv().await;
    assert_eq!(message, Message::Auth(AuthMessage::Authenticated { scope: "readonly".into() }));
    hocus.send("ro-room", Message::Sync(SyncMessage::Update(node_update("refused")))).await;
    assert!(!hocus.recv_until(|name, m| is_sync_status(name, m, "ro-room")).await, "SyncStatus(0)");

    // No token, a forged one, or a room the token does not grant: PermissionDenied, and the
    // socket stays usable for the document that is allowed.
    for (room, token) in [("ro-room-2", ""), ("ro-room-3", "not.a.token"), ("other-room", token.as_str())] {
        hocus.auth(room, token).await;
        let reason = hocus
            .recv_until(|name, m| match m {
                Message::Auth(AuthMessage::PermissionDenied { reason }) if name == room => {
                    Some(reason.clone())
                }
                _ => None,
            })
            .await;
        assert!(!reason.is_empty());
    }
    hocus.step1("ro-room", &Doc::new()).await;
    hocus.recv_until(|_, m| matches!(m, Message::Sync(SyncMessage::SyncStep2(_))).then_some(())).await;
    server.stop().await;
}
