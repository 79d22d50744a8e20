//! Property tests for everything that reads bytes a client sent: the frame decoder and the
//! guarded update application.
//!
//! The server runs both on untrusted input from every connection, so the properties are about
//! robustness (no panic escapes, the document survives) and exactness (what decodes is what was
//! encoded, and a cut-off frame is never mistaken for a different valid one).

use std::sync::{Arc, OnceLock};

use dojo_sync_protocol::canvas::{
    CanvasEdge, CanvasNode, Position, move_node, set_node_param, write_edge, write_node,
};
use dojo_sync_protocol::yrs::sync::awareness::AwarenessUpdateEntry;
use dojo_sync_protocol::yrs::updates::decoder::Decode;
use dojo_sync_protocol::yrs::{
    ClientID, Doc, GetString, ReadTxn, StateVector, Text, Transact, Update, WriteTxn,
};
use dojo_sync_protocol::{
    AwarenessUpdate, DecodeError, FrameLimits, Message, SyncMessage, apply_client_update, decode_frame,
    encode_message,
};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

fn limits() -> FrameLimits {
    FrameLimits::default()
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Yjs client ids are 53-bit (safe JavaScript integers); yrs' `ClientID` cannot represent more.
fn client_id() -> impl Strategy<Value = u64> {
    prop_oneof![0..16u64, 0..(1u64 << 53)]
}

fn state_vector() -> impl Strategy<Value = StateVector> {
    vec((client_id(), any::<u32>()), 0..8).prop_map(|entries| {
        let mut sv = StateVector::default();
        for (client, clock) in entries {
            sv.set_max(ClientID::new(client), clock);
        }
        sv
    })
}

/// Any JSON document, as awareness states are (`{"user": …, "cursor": …}` in practice).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            hash_map(any::<String>(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn awareness_update() -> impl Strategy<Value = AwarenessUpdate> {
    let entry = (any::<u32>(), json_value()).prop_map(|(clock, state)| AwarenessUpdateEntry {
        clock,
        // `null` is how a client says it left; serde_json writes it for `Value::Null` too.
        json: Arc::from(serde_json::to_string(&state).expect("a Value serialises")),
    });
    hash_map(client_id(), entry, 0..6).prop_map(|clients| AwarenessUpdate {
        clients: clients.into_iter().map(|(id, entry)| (ClientID::new(id), entry)).collect(),
    })
}

/// Every message the codec accepts, with random content.
fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        state_vector().prop_map(|sv| Message::Sync(SyncMessage::SyncStep1(sv))),
        vec(any::<u8>(), 0..300).prop_map(|u| Message::Sync(SyncMessage::SyncStep2(u))),
        vec(any::<u8>(), 0..300).prop_map(|u| Message::Sync(SyncMessage::Update(u))),
        awareness_update().prop_map(Message::Awareness),
        any::<String>().prop_map(|reason| Message::Auth(Some(reason))),
        Just(Message::Auth(None)),
        Just(Message::AwarenessQuery),
    ]
}

/// A frame of several messages, and the offset where each message ends.
fn multi_message_frame() -> impl Strategy<Value = (Vec<Message>, Vec<u8>, Vec<usize>)> {
    vec(message(), 1..4).prop_map(|messages| {
        let mut frame = Vec::new();
        let mut ends = Vec::new();
        for message in &messages {
            frame.extend(encode_message(message));
            ends.push(frame.len());
        }
        (messages, frame, ends)
    })
}

/// Bytes that start like a real message (a valid type and sub-type) so that the fuzzing gets past
/// the first byte and into the payload decoders.
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(vec![0u8, 0]), Just(vec![0, 1]), Just(vec![0, 2]), Just(vec![1]), Just(vec![2, 0])],
        vec(any::<u8>(), 0..512),
    )
        .prop_map(|(mut head, tail)| {
            head.extend(tail);
            head
        })
}

// ---------------------------------------------------------------------------------------------
// Real updates to mutate
// ---------------------------------------------------------------------------------------------

/// A canvas document: the full state of `base`, and an incremental edit on top of it (which
/// carries a delete set, since replacing `position` deletes the old one).
struct RealUpdates {
    base: Vec<u8>,
    edit: Vec<u8>,
}

fn real_updates() -> &'static RealUpdates {
    static UPDATES: OnceLock<RealUpdates> = OnceLock::new();
    UPDATES.get_or_init(|| {
        let doc = Doc::with_client_id(7);
        let node = |id: &str, x: f64| CanvasNode {
            id: id.into(),
            node_type: "flux".into(),
            position: Position { x, y: 1.5 },
            data: [("prompt".to_owned(), json!("a fox")), ("steps".to_owned(), json!(4))].into(),
        };
        let base = {
            let mut txn = doc.transact_mut();
            write_node(&mut txn, &node("a", 0.0)).unwrap();
            write_node(&mut txn, &node("b", 100.0)).unwrap();
            txn.get_or_insert_text("notes").insert(&mut txn, 0, "hello, canvas");
            txn.encode_update_v1()
        };
        let edit = {
            let mut txn = doc.transact_mut();
            set_node_param(&mut txn, "a", "prompt", &json!("a blue fox")).unwrap();
            move_node(&mut txn, "b", Position { x: -3.0, y: 4.0 }).unwrap();
            let edge = CanvasEdge {
                id: "ab".into(),
                source: "a".into(),
                source_handle: None,
                target: "b".into(),
                target_handle: Some("image".into()),
            };
            write_edge(&mut txn, &edge).unwrap();
            txn.get_or_insert_text("notes").remove_range(&mut txn, 0, 7);
            txn.encode_update_v1()
        };
        RealUpdates { base, edit }
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, mask)| Mutation::Flip(i, mask)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match *m {
            Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), b),
            _ if bytes.is_empty() => {}
            Mutation::Flip(i, mask) => {
                let i = i.index(bytes.len());
                bytes[i] ^= mask;
            }
            Mutation::Delete(i) => {
                bytes.remove(i.index(bytes.len()));
            }
        }
    }
    bytes
}

/// After whatever happened to `doc`, it must still encode its state (what the server sends a
/// joining client as sync step 2), and a well-formed update from a client it has never seen must
/// still apply and be readable.
fn assert_doc_still_usable(doc: &Doc) {
    let state = doc.transact().encode_state_as_update_v1(&StateVector::default());
    assert!(Update::decode_v1(&state).is_ok(), "the document's own encoding decodes");
    // A 53-bit id that no mutation of the small ids used above will produce by accident.
    let other = Doc::with_client_id(0x1a_bcde_f012_3457);
    let update = {
        let mut txn = other.transact_mut();
        txn.get_or_insert_text("liveness").insert(&mut txn, 0, "still here");
        txn.encode_update_v1()
    };
    let changed = apply_client_update(doc, &update).expect("a valid update applies");
    assert!(changed.is_some(), "the valid update changed the document");
    let text = doc.get_or_insert_text("liveness");
    assert_eq!(text.get_string(&doc.transact()), "still here");
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (a) Arbitrary bytes never panic through `decode_frame`. Whatever it does accept is
    /// canonical enough to survive re-encoding: each decoded message encodes to a frame that
    /// decodes back to that same message.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(frame in prop_oneof![vec(any::<u8>(), 0..4096), plausible_frame()]) {
        if let Ok(messages) = decode_frame(&frame, &limits()) {
            prop_assert!(!messages.is_empty());
            for message in messages {
                let again = decode_frame(&encode_message(&message), &limits());
                prop_assert_eq!(again, Ok(vec![message]));
            }
        }
    }

    /// (b) Every valid message survives encode → bytes → decode exactly, alone or several per
    /// frame.
    #[test]
    fn valid_messages_round_trip(message in message()) {
        let frame = encode_message(&message);
        prop_assert_eq!(decode_frame(&frame, &limits()), Ok(vec![message]));
    }

    #[test]
    fn frames_of_several_messages_round_trip((messages, frame, _ends) in multi_message_frame()) {
        prop_assert_eq!(decode_frame(&frame, &limits()), Ok(messages));
    }

    /// (c) Cutting a frame short is detected. Every message is self-delimiting (fixed tags,
    /// length-prefixed payloads), so a cut inside a message is always `Truncated`. A cut exactly
    /// between two messages leaves a shorter frame that *is* valid: it must decode to precisely
    /// the messages before the cut, never to anything else. An empty frame is `Empty`.
    #[test]
    fn truncated_frames_are_rejected((messages, frame, ends) in multi_message_frame()) {
        for cut in 0..frame.len() {
            let decoded = decode_frame(&frame[..cut], &limits());
            if cut == 0 {
                prop_assert_eq!(decoded, Err(DecodeError::Empty));
            } else if let Some(complete) = ends.iter().position(|&end| end == cut) {
                prop_assert_eq!(decoded, Ok(messages[..=complete].to_vec()), "cut at a boundary, {}", cut);
            } else {
                prop_assert_eq!(decoded, Err(DecodeError::Truncated), "cut inside a message, at {}", cut);
            }
        }
    }

    /// (d) Random bytes offered as an update are refused or (rarely) accepted, never a panic
    /// that escapes, and the document keeps working.
    #[test]
    fn applying_random_bytes_never_panics(bytes in vec(any::<u8>(), 0..1024)) {
        let doc = Doc::new();
        let _ = apply_client_update(&doc, &bytes);
        assert_doc_still_usable(&doc);
    }

    /// (d) Same for near-valid updates: a real canvas update with bytes flipped, inserted or
    /// deleted, applied either to an empty document or on top of the state it was made against.
    #[test]
    fn applying_mutated_real_updates_never_panics(
        on_top_of_base in any::<bool>(),
        mutations in vec(mutation(), 1..8),
    ) {
        let real = real_updates();
        let doc = Doc::new();
        let target = if on_top_of_base {
            apply_client_update(&doc, &real.base).expect("the base applies");
            &real.edit
        } else {
            &real.base
        };
        let mutated = mutate(target.clone(), &mutations);
        let _ = apply_client_update(&doc, &mutated);
        // Reading the canvas back must not panic either (it may well be an error).
        let _ = dojo_sync_protocol::canvas::read_graph(&doc.transact());
        assert_doc_still_usable(&doc);
    }
}

/// The real updates used above are valid to begin with, so the mutations are what is tested.
#[test]
fn the_unmutated_real_updates_apply() {
    let real = real_updates();
    let doc = Doc::new();
    assert!(apply_client_update(&doc, &real.base).unwrap().is_some());
    assert!(apply_client_update(&doc, &real.edit).unwrap().is_some());
    assert!(Update::decode_v1(&real.edit).is_ok());
    let graph = dojo_sync_protocol::canvas::read_graph(&doc.transact()).unwrap();
    assert_eq!(graph.edges.len(), 1);
    assert_eq!(graph.nodes[1].position, Position { x: -3.0, y: 4.0 });
    assert_eq!(doc.get_or_insert_text("notes").get_string(&doc.transact()), "canvas");
}
