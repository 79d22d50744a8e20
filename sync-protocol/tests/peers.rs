//! Two editors of one canvas that talk only through this crate's codec.
//!
//! Alice and Bob each hold a Yjs document and an awareness instance. Nothing passes between them
//! except WebSocket-frame-shaped byte vectors: every message is produced by an `encode_*` function,
//! carried as bytes, decoded with [`decode_frame`] and handled the way y-protocols' `sync.js` and
//! `awareness.js` handle it. If the codec dropped, reordered or mangled anything, the two
//! documents would not converge.

use std::collections::{BTreeMap, VecDeque};

use dojo_sync_protocol::canvas::{
    self, CanvasEdge, CanvasGraph, CanvasNode, Position, move_node, read_graph, set_node_param, write_edge,
    write_node,
};
use dojo_sync_protocol::yrs::updates::decoder::Decode;
use dojo_sync_protocol::yrs::{ClientID, Doc, ReadTxn, StateVector, Transact, TransactionMut, Update};
use dojo_sync_protocol::{
    Awareness, FrameLimits, Message, SyncMessage, apply_client_update, decode_frame, encode_message,
    encode_sync_step1, encode_sync_step2, encode_update,
};
use serde_json::{Value, json};

const ALICE: u64 = 1;
const BOB: u64 = 2;

/// One editor: a document, its awareness, and the frames it has queued for the other side.
struct Peer {
    name: &'static str,
    awareness: Awareness,
    outbox: VecDeque<Vec<u8>>,
}

impl Peer {
    fn new(name: &'static str, client_id: u64) -> Self {
        Self { name, awareness: Awareness::new(Doc::with_client_id(client_id)), outbox: VecDeque::new() }
    }

    fn doc(&self) -> &Doc {
        self.awareness.doc()
    }

    fn client_id(&self) -> ClientID {
        self.awareness.client_id()
    }

    /// What a provider does when the socket opens: send sync step 1 (our state vector) and, when
    /// we have one, our awareness state. One message per frame, as the codec always encodes.
    fn connect(&mut self) {
        let state_vector = self.doc().transact().state_vector();
        self.outbox.push_back(encode_sync_step1(&state_vector));
        if self.awareness.local_state_raw().is_some() {
            self.send_awareness_of(self.client_id());
        }
    }

    /// A local edit. Like a provider's `doc.on('update')` handler, the transaction's update is
    /// queued as a sync "update" message once the transaction commits.
    fn edit(&mut self, change: impl FnOnce(&mut TransactionMut)) {
        let update = {
            let mut txn = self.doc().transact_mut();
            change(&mut txn);
            txn.encode_update_v1()
        };
        self.outbox.push_back(encode_update(&update));
    }

    fn set_presence(&mut self, state: Value) {
        self.awareness.set_local_state(state).expect("a JSON value serialises");
        self.send_awareness_of(self.client_id());
    }

    /// Going away: the local state becomes `null` with a bumped clock, which peers read as
    /// "remove this client".
    fn leave(&mut self) {
        self.awareness.clean_local_state();
        self.send_awareness_of(self.client_id());
    }

    fn send_awareness_of(&mut self, client: ClientID) {
        let update = self.awareness.update_with_clients([client]).expect("known client");
        self.outbox.push_back(encode_message(&Message::Awareness(update)));
    }

    /// Handles one received frame. Replies go into our own outbox, back towards the sender.
    fn receive(&mut self, frame: &[u8]) {
        let messages = decode_frame(frame, &FrameLimits::default())
            .unwrap_or_else(|e| panic!("{} received an undecodable frame: {e}", self.name));
        for message in messages {
            match message {
                Message::Sync(SyncMessage::SyncStep1(remote_state)) => {
                    let missing = self.doc().transact().encode_state_as_update_v1(&remote_state);
                    self.outbox.push_back(encode_sync_step2(&missing));
                }
                Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                    apply_client_update(self.doc(), &update)
                        .unwrap_or_else(|e| panic!("{} could not apply an update: {e}", self.name));
                }
                Message::Awareness(update) => {
                    self.awareness.apply_update(update).expect("awareness update applies");
                }
                Message::AwarenessQuery => {
                    let everyone = self.awareness.update().expect("own states encode");
                    self.outbox.push_back(encode_message(&Message::Awareness(everyone)));
                }
                other => panic!("{} did not expect {other:?}", self.name),
            }
        }
    }

    fn graph(&self) -> CanvasGraph {
        read_graph(&self.doc().transact()).expect("the canvas follows the schema")
    }

    fn state_vector(&self) -> StateVector {
        self.doc().transact().state_vector()
    }

    /// The whole document as one v1 update.
    fn encoded_state(&self) -> Vec<u8> {
        self.doc().transact().encode_state_as_update_v1(&StateVector::default())
    }

    fn presence_of(&self, client: ClientID) -> Option<Value> {
        self.awareness.state(client)
    }
}

/// Carries frames both ways until neither side has anything left to say. Returns how many frames
/// crossed, so a test can tell that something actually happened.
fn exchange(a: &mut Peer, b: &mut Peer) -> usize {
    let mut delivered = 0;
    loop {
        let (from_a, from_b): (Vec<_>, Vec<_>) = (a.outbox.drain(..).collect(), b.outbox.drain(..).collect());
        if from_a.is_empty() && from_b.is_empty() {
            return delivered;
        }
        delivered += from_a.len() + from_b.len();
        for frame in &from_a {
            b.receive(frame);
        }
        for frame in &from_b {
            a.receive(frame);
        }
    }
}

fn node(id: &str, node_type: &str, x: f64, params: &[(&str, Value)]) -> CanvasNode {
    CanvasNode {
        id: id.into(),
        node_type: node_type.into(),
        position: Position { x, y: 0.0 },
        data: params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
    }
}

fn edge(id: &str, source: &str, target: &str) -> CanvasEdge {
    CanvasEdge {
        id: id.into(),
        source: source.into(),
        source_handle: Some("out".into()),
        target: target.into(),
        target_handle: Some("in".into()),
    }
}

/// Both editors see the same canvas and hold the same document.
///
/// "Same document" is checked as equal state vectors plus: each side's full encoded state,
/// applied to the other, changes nothing (no unknown insertions, no unknown deletions). Comparing
/// the two encodings byte for byte would be wrong: yrs stores plain objects such as `position` as
/// an `Any::Map` backed by a randomly seeded `HashMap`, so two equal documents can write the keys
/// of one object in different orders.
fn assert_converged(alice: &Peer, bob: &Peer) -> CanvasGraph {
    let graph = alice.graph();
    assert_eq!(graph, bob.graph(), "both editors see the same canvas");
    assert_eq!(alice.state_vector(), bob.state_vector(), "both documents hold the same operations");
    assert_eq!(apply_client_update(bob.doc(), &alice.encoded_state()), Ok(None), "Bob is missing nothing");
    assert_eq!(apply_client_update(alice.doc(), &bob.encoded_state()), Ok(None), "Alice is missing nothing");
    graph
}

#[test]
fn two_editors_sync_a_canvas_and_presence_through_encoded_frames_only() {
    // Alice drew a two-node pipeline while offline; Bob added an upscaler while offline.
    let mut alice = Peer::new("alice", ALICE);
    let mut bob = Peer::new("bob", BOB);
    alice.edit(|txn| {
        write_node(txn, &node("gen", "flux-schnell", 0.0, &[("prompt", json!("a red fox"))])).unwrap();
        write_node(txn, &node("caption", "blip", 200.0, &[])).unwrap();
        write_edge(txn, &edge("gen-caption", "gen", "caption")).unwrap();
    });
    bob.edit(|txn| write_node(txn, &node("upscale", "esrgan", 400.0, &[("scale", json!(2))])).unwrap());
    // Nobody was listening yet: offline edits travel through the handshake, not these frames.
    alice.outbox.clear();
    bob.outbox.clear();
    alice.awareness.set_local_state(json!({"user": {"name": "Alice", "color": "#f00"}})).unwrap();

    // The handshake: both send step 1 (Alice also her presence), both answer with step 2.
    alice.connect();
    bob.connect();
    assert_eq!(exchange(&mut alice, &mut bob), 5, "2 × step 1, 2 × step 2 and Alice's awareness");
    let graph = assert_converged(&alice, &bob);
    let ids: Vec<_> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["caption", "gen", "upscale"]);
    assert_eq!(graph.edges, vec![edge("gen-caption", "gen", "caption")]);
    assert_eq!(bob.presence_of(alice.client_id()), Some(json!({"user": {"name": "Alice", "color": "#f00"}})));

    // Bob joins the presence list.
    bob.set_presence(json!({"user": {"name": "Bob"}, "cursor": {"x": 10, "y": 20}}));
    exchange(&mut alice, &mut bob);
    assert_eq!(
        alice.presence_of(bob.client_id()),
        Some(json!({"user": {"name": "Bob"}, "cursor": {"x": 10, "y": 20}}))
    );

    // Concurrent edits, made before either side sees the other's: different parameters of one
    // node, the same node moved by both, and a new node wired in by Bob.
    alice.edit(|txn| {
        assert!(set_node_param(txn, "gen", "prompt", &json!("a blue fox")).unwrap());
        assert!(move_node(txn, "upscale", Position { x: 500.0, y: 50.0 }).unwrap());
    });
    bob.edit(|txn| {
        assert!(set_node_param(txn, "gen", "seed", &json!(42)).unwrap());
        assert!(move_node(txn, "upscale", Position { x: 450.0, y: -50.0 }).unwrap());
        write_node(txn, &node("save", "save-image", 600.0, &[])).unwrap();
        write_edge(txn, &edge("upscale-save", "upscale", "save")).unwrap();
    });
    assert_eq!(exchange(&mut alice, &mut bob), 2, "one update frame each way, no replies");
    let graph = assert_converged(&alice, &bob);

    // Parameters are a Y.Map: both edits survive.
    let generator = graph.nodes.iter().find(|n| n.id == "gen").unwrap();
    let expected =
        BTreeMap::from([("prompt".to_owned(), json!("a blue fox")), ("seed".to_owned(), json!(42))]);
    assert_eq!(generator.data, expected);
    // Position is replaced whole: one of the two moves wins, never a mix of both.
    let upscaler = graph.nodes.iter().find(|n| n.id == "upscale").unwrap();
    let moves = [Position { x: 500.0, y: 50.0 }, Position { x: 450.0, y: -50.0 }];
    assert!(moves.contains(&upscaler.position), "mixed position {:?}", upscaler.position);
    assert_eq!(graph.edges.len(), 2);

    // Alice removes a node while Bob retypes it: the removal and the edit still converge.
    alice.edit(|txn| canvas::remove_node(txn, "caption"));
    bob.edit(|txn| assert!(set_node_param(txn, "caption", "max_tokens", &json!(30)).unwrap()));
    exchange(&mut alice, &mut bob);
    let graph = assert_converged(&alice, &bob);
    assert!(graph.nodes.iter().all(|n| n.id != "caption"));
    assert!(graph.edges.iter().all(|e| e.source != "caption" && e.target != "caption"));

    // A late awareness query is answered with everyone the answering side knows.
    alice.outbox.push_back(encode_message(&Message::AwarenessQuery));
    assert_eq!(exchange(&mut alice, &mut bob), 2, "the query and its answer");

    // Bob leaves: his state is sent as "null" and Alice forgets him, while keeping her own.
    bob.leave();
    let goodbye = bob.outbox.back().expect("a goodbye frame").clone();
    let Message::Awareness(update) = &decode_frame(&goodbye, &FrameLimits::default()).unwrap()[0] else {
        panic!("the goodbye is an awareness update");
    };
    assert_eq!(&*update.clients[&bob.client_id()].json, "null");
    exchange(&mut alice, &mut bob);
    assert_eq!(alice.presence_of(bob.client_id()), None);
    let advertised = alice.awareness.update().unwrap();
    assert!(!advertised.clients.contains_key(&bob.client_id()), "Alice no longer relays Bob's state");
    assert!(alice.presence_of(alice.client_id()).is_some());
}

#[test]
fn an_update_delivered_before_its_dependency_waits_and_then_converges() {
    // Frames from one sender can arrive out of order after a reconnect; the guarded apply holds
    // the early update back until the missing one arrives.
    let mut alice = Peer::new("alice", ALICE);
    let mut bob = Peer::new("bob", BOB);
    alice.edit(|txn| write_node(txn, &node("a", "flux", 0.0, &[])).unwrap());
    alice.edit(|txn| assert!(set_node_param(txn, "a", "prompt", &json!("late")).unwrap()));
    let first = alice.outbox.pop_front().unwrap();
    let second = alice.outbox.pop_front().unwrap();

    bob.receive(&second);
    assert_eq!(bob.graph(), CanvasGraph::default(), "nothing is visible before its dependency");
    bob.receive(&first);
    let graph = assert_converged(&alice, &bob);
    assert_eq!(graph.nodes[0].data["prompt"], json!("late"));

    // The frames were ordinary y-protocols update messages, decodable by any peer.
    let [Message::Sync(SyncMessage::Update(bytes))] =
        &decode_frame(&first, &FrameLimits::default()).unwrap()[..]
    else {
        panic!("an update message");
    };
    assert!(Update::decode_v1(bytes).is_ok());
}
