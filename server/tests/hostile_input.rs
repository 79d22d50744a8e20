//! Stories about clients that send garbage or stop reading: only they are affected.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, WAIT};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{self, CanvasNode, Position};
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::Transact;

const FRAME_LIMIT: usize = 64 * 1024;

fn node(id: &str) -> CanvasNode {
    CanvasNode {
        id: id.into(),
        node_type: "upscale".into(),
        position: Position { x: 0.0, y: 0.0 },
        data: BTreeMap::new(),
    }
}

fn node_count(client: &SyncClient) -> usize {
    canvas::read_graph(&client.doc().transact()).map(|g| g.nodes.len()).unwrap_or(0)
}

/// Two good people share a room with an offender. The offender sends `frame`; it alone is
/// closed, with `code`, and the good ones keep editing together.
async fn only_the_offender_is_closed(server: &TestServer, room: &str, frame: WsMessage, code: u16) {
    let alice = server.client(room).await;
    let bob = server.client(room).await;
    let offender = server.client(room).await;
    alice.edit(|txn| canvas::write_node(txn, &node("before")).unwrap()).await.unwrap();

    offender.send_ws(frame).await.unwrap();
    let close = offender.wait_closed(WAIT).await.expect("the offender is disconnected");
    let (got, reason) = close.expect("with a close frame");
    assert_eq!(got, code, "close code for {room} (reason: {reason})");
    assert!(!reason.is_empty(), "the close frame says why");

    alice.edit(|txn| canvas::write_node(txn, &node("after")).unwrap()).await.unwrap();
    bob.wait_doc("both nodes", WAIT, |_| node_count(&bob) == 2).await.expect("bob still receives edits");
    assert!(!alice.status().ended && !bob.status().ended);
    // A newcomer to the same room sees everything too: the room was not harmed.
    let carol = server.client(room).await;
    assert_eq!(node_count(&carol), 2);
}

async fn server() -> TestServer {
    TestServer::start_with(|c| c.limits.max_frame_bytes = FRAME_LIMIT).await
}

fn binary(bytes: Vec<u8>) -> WsMessage {
    WsMessage::Binary(bytes.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_close_only_the_sender() {
    let server = server().await;
    // 0x63 = 99, an unknown message type, makes sure the garbage is not valid by accident.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut garbage = vec![0x63u8];
    garbage.extend((0..512).map(|_| rng.random::<u8>()));
    only_the_offender_is_closed(&server, "hostile-random", binary(garbage), 1002).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_varint_closes_only_the_sender() {
    let server = server().await;
    // A sync update whose length varint promises more bytes that never come.
    only_the_offender_is_closed(&server, "hostile-varint", binary(vec![0, 2, 0xff]), 1002).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_message_type_closes_only_the_sender() {
    let server = server().await;
    only_the_offender_is_closed(&server, "hostile-type", binary(vec![99, 0]), 1002).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_is_not_yjs_closes_only_the_sender() {
    let server = server().await;
    let frame = dojo_sync_protocol::encode_update(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
    only_the_offender_is_closed(&server, "hostile-update", binary(frame), 1007).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awareness_that_is_not_json_closes_only_the_sender() {
    let server = server().await;
    // [1 awareness][len][1 client][id 5][clock 1]["{oops"]
    let payload = vec![1u8, 5, 1, 5, b'{', b'o', b'o', b'p', b's'];
    let mut frame = vec![1u8, payload.len() as u8];
    frame.extend(payload);
    only_the_offender_is_closed(&server, "hostile-awareness", binary(frame), 1007).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_limit_closes_only_the_sender() {
    let server = server().await;
    let frame = dojo_sync_protocol::encode_update(&vec![0u8; FRAME_LIMIT + 1]);
    only_the_offender_is_closed(&server, "hostile-big", binary(frame), 1009).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_closes_only_the_sender() {
    let server = server().await;
    only_the_offender_is_closed(&server, "hostile-text", WsMessage::Text("hello".into()), 1003).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_too_many_presence_ids_closes_only_the_sender() {
    let server = TestServer::start_with(|c| c.limits.max_awareness_clients_per_connection = 2).await;
    let mut update = yrs::sync::AwarenessUpdate { clients: Default::default() };
    for id in 1..=3 {
        update.clients.insert(
            yrs::ClientID::new(id),
            yrs::sync::awareness::AwarenessUpdateEntry { clock: 1, json: "{}".into() },
        );
    }
    let frame = dojo_sync_protocol::encode_message(&yrs::sync::Message::Awareness(update));
    only_the_offender_is_closed(&server, "hostile-presence", binary(frame), 1008).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_is_disconnected_and_the_room_carries_on() {
    // Small queues so that the test needs little traffic to fill them.
    let server = TestServer::start_with(|c| {
        c.limits.outbound_queue_frames = 64;
        c.limits.outbound_queue_bytes = 256 * 1024;
    })
    .await;
    let alice = server.client("slow-reader").await;
    let bob = server.client("slow-reader").await;
    // The sloth completes the WebSocket handshake and then never reads a byte.
    let (sloth, _) = tokio_tungstenite::connect_async(server.url("slow-reader")).await.unwrap();

    // Alice edits until the server gives up on the sloth: its socket buffers fill, then its
    // outbound queue. Bounded: at most 4,000 edits of 4 KiB (16 MiB in all). She goes in
    // batches that bob reads before the next, so bob is never the one who falls behind.
    let blob = "x".repeat(4096);
    let mut edits = 0;
    while server.metric("dojo_slow_client_disconnects_total", "").await < 1.0 {
        assert!(edits < 4000, "the slow reader was never disconnected");
        bob.wait_doc("the previous batch", WAIT, |_| node_count(&bob) == edits).await.expect("bob keeps up");
        for _ in 0..20 {
            edits += 1;
            let id = format!("n{edits}");
            alice
                .edit(|txn| {
                    let mut n = node(&id);
                    n.data.insert("blob".into(), serde_json::json!(blob));
                    canvas::write_node(txn, &n).unwrap()
                })
                .await
                .unwrap();
        }
    }
    // The room goes on: bob gets every one of alice's edits.
    bob.wait_doc("all of alice's edits", WAIT, |_| node_count(&bob) == edits).await.expect("bob keeps up");
    // Its connection ends (after its close frame times out), so what was queued for it is freed:
    // its memory never exceeded the queue limits.
    let closed = server.wait_metric("dojo_disconnects_total", "reason=\"slow_consumer\"", |v| v >= 1.0).await;
    assert_eq!(closed, 1.0);
    assert_eq!(server.wait_metric("dojo_connections_open", "", |v| v <= 2.0).await, 2.0);
    drop(sloth);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_whose_dependencies_never_arrive_cannot_pile_up() {
    let server = server().await;
    let room = "hostile-pending";
    let alice = server.client(room).await;
    alice.edit(|txn| canvas::write_node(txn, &node("kept")).unwrap()).await.unwrap();
    alice.wait_doc("the echo of her node", WAIT, |_| node_count(&alice) == 1).await.unwrap();
    let offender = server.client(room).await;

    // Updates made on a private document, sent without the first one they all build on: the
    // server can never integrate them, and yrs would hold them for the life of the room.
    let source = yrs::Doc::new();
    let text = source.get_or_insert_text("t");
    let edit = |chunk: &str| {
        let mut txn = source.transact_mut();
        let end = yrs::Text::len(&text, &txn);
        yrs::Text::insert(&text, &mut txn, end, chunk);
        txn.encode_update_v1()
    };
    let _withheld = edit("x");
    let chunk = "y".repeat(40 * 1024);
    for _ in 0..40 {
        if offender.send_raw(dojo_sync_protocol::encode_update(&edit(&chunk))).await.is_err() {
            break; // already disconnected
        }
    }
    let (code, reason) = offender.wait_closed(WAIT).await.unwrap().expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("dependencies"), "{reason}");

    // Dropping them means reloading the room from the store: everyone reconnects, nothing
    // stored is lost, and the held-back bytes are gone.
    let (code, _) = alice.wait_closed(WAIT).await.unwrap().expect("a close frame");
    assert_eq!(code, 1012);
    let carol = server.client(room).await;
    assert_eq!(node_count(&carol), 1);
    assert_eq!(server.metric("dojo_room_loads_total", "").await, 2.0);
    server.stop().await;
}
