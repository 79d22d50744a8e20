//! Stories about rooms: people editing one canvas together through the real server.

mod common;

use common::{TestServer, WAIT, node};
use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{self, CanvasEdge};
use serde_json::json;
use yrs::sync::AwarenessUpdate;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::{ReadTxn, Transact};

fn graph(client: &SyncClient) -> canvas::CanvasGraph {
    canvas::read_graph(&client.doc().transact()).expect("the canvas follows the schema")
}

/// What a client holds: its state vector and its canvas. (Encoded updates are not canonical:
/// the same content can encode with map keys in another order.)
fn state(client: &SyncClient) -> (yrs::StateVector, canvas::CanvasGraph) {
    (client.doc().transact().state_vector(), graph(client))
}

async fn wait_nodes(client: &SyncClient, count: usize) {
    let doc = client.doc().clone();
    client
        .wait_doc("nodes to arrive", WAIT, move |_| {
            canvas::read_graph(&doc.transact()).map(|g| g.nodes.len() >= count).unwrap_or(false)
        })
        .await
        .expect("nodes arrive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_editing_at_once_end_with_the_same_canvas() {
    let server = TestServer::start().await;
    let alice = server.client("story-concurrent").await;
    let bob = server.client("story-concurrent").await;

    // Both add nodes and wire them at the same time, and both edit the same node's parameters.
    let a = async {
        for i in 0..20 {
            alice
                .edit(|txn| canvas::write_node(txn, &node(&format!("a{i}"), i as f64)).unwrap())
                .await
                .unwrap();
        }
        alice
            .edit(|txn| canvas::set_node_param(txn, "a0", "prompt", &json!("alice's prompt")).unwrap())
            .await
            .unwrap();
    };
    let b = async {
        for i in 0..20 {
            bob.edit(|txn| canvas::write_node(txn, &node(&format!("b{i}"), i as f64)).unwrap())
                .await
                .unwrap();
        }
        bob.edit(|txn| {
            let edge = CanvasEdge {
                id: "a0-b0".into(),
                source: "a0".into(),
                source_handle: Some("image".into()),
                target: "b0".into(),
                target_handle: Some("image".into()),
            };
            canvas::write_edge(txn, &edge).unwrap()
        })
        .await
        .unwrap();
    };
    tokio::join!(a, b);

    for client in [&alice, &bob] {
        wait_nodes(client, 40).await;
        let doc = client.doc().clone();
        client
            .wait_doc("the edge", WAIT, move |_| {
                canvas::read_graph(&doc.transact()).is_ok_and(|g| g.edges.len() == 1)
            })
            .await
            .unwrap();
    }
    let doc = alice.doc().clone();
    alice
        .wait_doc("alice's own prompt", WAIT, move |_| {
            canvas::read_graph(&doc.transact())
                .is_ok_and(|g| g.nodes[0].data["prompt"] == json!("alice's prompt"))
        })
        .await
        .unwrap();
    let bob_doc = bob.doc().clone();
    let alice_graph = graph(&alice);
    bob.wait_doc("convergence", WAIT, move |_| {
        canvas::read_graph(&bob_doc.transact()).ok() == Some(alice_graph.clone())
    })
    .await
    .expect("bob converges to alice's canvas");
    assert_eq!(graph(&alice).nodes.len(), 40);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_the_whole_canvas_after_everyone_left() {
    let server = TestServer::start().await;
    let alice = server.client("story-late").await;
    for i in 0..10 {
        alice.edit(|txn| canvas::write_node(txn, &node(&format!("n{i}"), 0.0)).unwrap()).await.unwrap();
    }
    // Her frames reach the room before her close does, so closing loses nothing.
    let expected = graph(&alice);
    alice.close().await;

    let carol = server.client("story-late").await;
    assert_eq!(graph(&carol), expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_appears_for_others_and_vanishes_when_its_owner_drops() {
    let server = TestServer::start().await;
    let alice = server.client("story-cursor").await;
    let bob = server.client("story-cursor").await;
    let alice_id = alice.client_id();

    alice.set_presence(&json!({"user": {"name": "Alice"}, "cursor": {"x": 10, "y": 20}})).await.unwrap();
    bob.wait_for("alice's cursor", WAIT, |_| bob.presence().iter().any(|(id, _)| *id == alice_id))
        .await
        .unwrap();
    let (_, state) = bob.presence().into_iter().find(|(id, _)| *id == alice_id).unwrap();
    assert_eq!(state["cursor"], json!({"x": 10, "y": 20}));

    // A late joiner gets the presence of people already there, without asking.
    let carol = server.client("story-cursor").await;
    carol
        .wait_for("alice's cursor at carol", WAIT, |_| carol.presence().iter().any(|(id, _)| *id == alice_id))
        .await
        .unwrap();

    // Alice's tab crashes: no close frame, no "null" state from her. The server removes it.
    alice.abort();
    bob.wait_for("alice's cursor to vanish", WAIT, |_| bob.presence().iter().all(|(id, _)| *id != alice_id))
        .await
        .expect("the server removes the presence of a dropped connection");
    carol.wait_for("alice's cursor to vanish at carol", WAIT, |_| carol.presence().is_empty()).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_can_change_or_remove_someone_elses_presence() {
    let server = TestServer::start().await;
    let alice = server.client("story-spoof").await;
    let mallory = server.client("story-spoof").await;
    let alice_id = alice.client_id();
    alice.set_presence(&json!({"user": {"name": "Alice"}})).await.unwrap();
    mallory.wait_for("alice", WAIT, |_| !mallory.presence().is_empty()).await.unwrap();
    // Alice's own three frames (step 1, step 2, the echo of her presence) are all in before
    // counting, or a late echo would look like news about herself.
    alice.wait_for("her own frames", WAIT, |s| s.frames >= 3).await.unwrap();

    // Mallory claims Alice's client id with a higher clock, then tries to remove her.
    let mut forged = yrs::sync::AwarenessUpdate { clients: Default::default() };
    forged.clients.insert(
        alice_id,
        yrs::sync::awareness::AwarenessUpdateEntry {
            clock: 100,
            json: r#"{"user":{"name":"Mallory"}}"#.into(),
        },
    );
    mallory
        .send_raw(dojo_sync_protocol::encode_message(&yrs::sync::Message::Awareness(forged.clone())))
        .await
        .unwrap();
    forged
        .clients
        .insert(alice_id, yrs::sync::awareness::AwarenessUpdateEntry { clock: 101, json: "null".into() });
    mallory
        .send_raw(dojo_sync_protocol::encode_message(&yrs::sync::Message::Awareness(forged)))
        .await
        .unwrap();

    // A query round trip orders things: the answer comes after the forged frames were handled.
    let frames = alice.status().frames;
    let bob = server.client("story-spoof").await;
    bob.wait_for("presence", WAIT, |_| !bob.presence().is_empty()).await.unwrap();
    assert_eq!(bob.presence(), vec![(alice_id, json!({"user": {"name": "Alice"}}))]);
    assert_eq!(alice.status().frames, frames, "alice was sent nothing about herself");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_rooms_of_five_people_each_converge_without_leaking_into_each_other() {
    let server = TestServer::start().await;
    let mut rooms = Vec::new();
    for r in 0..100 {
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(server.client(&format!("crowd-{r}")).await);
        }
        rooms.push(clients);
    }
    let edits = rooms.iter().enumerate().flat_map(|(r, clients)| {
        clients.iter().enumerate().map(move |(c, client)| async move {
            client
                .edit(|txn| canvas::write_node(txn, &node(&format!("r{r}c{c}"), c as f64)).unwrap())
                .await
                .unwrap();
        })
    });
    futures_util::future::join_all(edits).await;

    for (r, clients) in rooms.iter().enumerate() {
        for client in clients {
            wait_nodes(client, 5).await;
        }
        let expected = state(&clients[0]);
        for client in clients {
            assert_eq!(state(client), expected, "room {r} converged");
            let ids: Vec<String> = graph(client).nodes.into_iter().map(|n| n.id).collect();
            assert_eq!(ids.len(), 5, "room {r} holds only its own nodes: {ids:?}");
            assert!(ids.iter().all(|id| id.starts_with(&format!("r{r}c"))), "room {r}: {ids:?}");
        }
    }
    assert_eq!(server.metric("dojo_rooms_open", "").await, 100.0);
    assert_eq!(server.metric("dojo_connections_open", "").await, 500.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_opening_a_new_room_at_the_same_instant_share_one_room() {
    let server = TestServer::start().await;
    let url = server.url("story-stampede");
    let connects = (0..30).map(|_| SyncClient::connect(&url));
    let clients: Vec<SyncClient> =
        futures_util::future::join_all(connects).await.into_iter().map(|c| c.expect("connect")).collect();
    for (i, client) in clients.iter().enumerate() {
        client.wait_synced(WAIT).await.unwrap();
        client.edit(|txn| canvas::write_node(txn, &node(&format!("n{i}"), 0.0)).unwrap()).await.unwrap();
    }
    for client in &clients {
        wait_nodes(client, 30).await;
    }
    assert_eq!(server.metric("dojo_rooms_open", "").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_goes_in_its_own_frame_starting_with_sync_step_1() {
    let server = TestServer::start().await;
    let alice = server.client("story-frames").await;
    // Counted before sending: the echo can arrive before `set_presence` returns.
    let frames = alice.status().frames;
    alice.set_presence(&json!({"user": {"name": "Alice"}})).await.unwrap();
    alice.wait_for("alice's own presence echo", WAIT, |s| s.frames > frames).await.unwrap();

    let (mut socket, _) = tokio_tungstenite::connect_async(server.url("story-frames")).await.unwrap();
    use futures_util::StreamExt;
    let limits = dojo_sync_protocol::FrameLimits::default();
    let mut next_frame = async || loop {
        match socket.next().await.expect("a frame").expect("no error") {
            tokio_tungstenite::tungstenite::Message::Binary(b) => {
                return dojo_sync_protocol::decode_frame(&b, &limits).expect("valid y-protocols");
            }
            _ => continue,
        }
    };
    let first = next_frame().await;
    assert!(
        matches!(first.as_slice(), [yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep1(_))]),
        "{first:?}"
    );
    let second = next_frame().await;
    assert!(matches!(second.as_slice(), [yrs::sync::Message::Awareness(_)]), "{second:?}");
    server.stop().await;
}

/// A bare WebSocket in a room: it sends only what the story makes it send (no sync step 1, no
/// presence of its own) and reads the server's messages one by one, decoded.
struct RawPeer {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl RawPeer {
    async fn connect(server: &TestServer, room: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(server.url(room)).await.expect("connect");
        Self { socket }
    }

    async fn send(&mut self, message: &yrs::sync::Message) {
        use futures_util::SinkExt;
        let frame = dojo_sync_protocol::encode_message(message);
        self.socket.send(tokio_tungstenite::tungstenite::Message::Binary(frame.into())).await.expect("send");
    }

    /// The next awareness entry about `client` the server sends, skipping every other message.
    async fn next_presence_of(&mut self, client: yrs::ClientID) -> AwarenessUpdateEntry {
        use futures_util::StreamExt;
        let limits = dojo_sync_protocol::FrameLimits::default();
        let wait = async {
            loop {
                let frame = match self.socket.next().await.expect("the socket stays open").expect("a frame") {
                    tokio_tungstenite::tungstenite::Message::Binary(frame) => frame,
                    _ => continue,
                };
                for message in dojo_sync_protocol::decode_frame(&frame, &limits).expect("valid y-protocols") {
                    if let yrs::sync::Message::Awareness(mut update) = message
                        && let Some(entry) = update.clients.remove(&client)
                    {
                        return entry;
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, wait).await.expect("presence arrives")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_presence_gets_everyones_current_presence() {
    let server = TestServer::start().await;
    let mut bob = RawPeer::connect(&server, "story-query").await;
    let alice = server.client("story-query").await;
    let alice_id = alice.client_id();
    let state = json!({"user": {"name": "Alice"}, "cursor": {"x": 3, "y": 4}});
    alice.set_presence(&state).await.unwrap();
    // Bob learns it once: relayed, or in his handshake if he joined the room after her frame.
    let seen = bob.next_presence_of(alice_id).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&seen.json).unwrap(), state);

    // y-protocols' query-awareness (message type 3): the server answers with every state it has.
    // Alice sends nothing more, so the next word about her can only be that answer.
    bob.send(&yrs::sync::Message::AwarenessQuery).await;
    let answer = bob.next_presence_of(alice_id).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&answer.json).unwrap(), state);
    assert_eq!(answer.clock, seen.clock, "her presence is unchanged");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_renewal_is_relayed_so_that_idle_people_do_not_time_out() {
    let server = TestServer::start().await;
    let mut bob = RawPeer::connect(&server, "story-renewal").await;
    let alice = server.client("story-renewal").await;
    let alice_id = alice.client_id();
    alice.set_presence(&json!({"user": {"name": "Alice"}})).await.unwrap();
    let first = bob.next_presence_of(alice_id).await;

    // Every 15 s y-protocols re-sends the local state unchanged with its clock one higher; peers
    // drop a state not renewed for 30 s. Sent directly here instead of waiting. A repeat of the
    // current clock goes first: it is stale, so the next thing Bob hears must be the renewal.
    let entry = |clock| AwarenessUpdateEntry { clock, json: first.json.clone() };
    for clock in [first.clock, first.clock + 1] {
        let mut update = AwarenessUpdate { clients: Default::default() };
        update.clients.insert(alice_id, entry(clock));
        alice
            .send_raw(dojo_sync_protocol::encode_message(&yrs::sync::Message::Awareness(update)))
            .await
            .unwrap();
    }
    let renewal = bob.next_presence_of(alice_id).await;
    assert_eq!(renewal.clock, first.clock + 1, "the renewal is relayed, the stale repeat is not");
    assert_eq!(renewal.json, first.json);
    server.stop().await;
}
