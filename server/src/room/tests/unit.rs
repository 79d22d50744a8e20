//! The core's rules, one story each.

use std::time::Duration;

use bytes::Bytes;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::close::CloseReason;
use crate::cluster::ClusterMessage;
use crate::metrics::MessageKind;

use super::super::effects::{Answer, CatchUp, Compaction, Effect, Input};
use super::super::handle::ApplyError;
use super::super::protocol::PeerProtocol;
use super::super::replication::GAP_TIMEOUT;
use super::*;

#[test]
fn a_y_websocket_peer_is_greeted_with_step1_then_presence() {
    let mut room = core(&[], 8, None);
    let effects = room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::sync_step1], "no presence yet, so only step 1");
    let effects = room.handle(join(2, PeerProtocol::Hocuspocus, true), now());
    assert!(kinds_for(&effects, 2).is_empty(), "Hocuspocus sends its step 1 in answer to the client's");
}

#[test]
fn an_update_reaches_no_one_before_it_is_stored_then_everyone() {
    let mut room = core(&[], 8, None);
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    room.handle(join(2, PeerProtocol::YWebsocket, true), now());
    let alice = Doc::new();
    let update = edit(&alice, "hello");
    let effects = room.handle(Input::Messages { conn: 1, messages: vec![update_message(update)] }, now());
    assert!(kinds_for(&effects, 2).is_empty(), "nothing before it is stored");
    assert_eq!(writes(&effects).len(), 1, "one write starts");
    // A step 1 meanwhile: its step 2 carries the unstored change, so it waits too.
    let bob = Doc::new();
    let step1 = Message::Sync(SyncMessage::SyncStep1(bob.transact().state_vector()));
    let effects = room.handle(Input::Messages { conn: 2, messages: vec![step1] }, now());
    assert!(kinds_for(&effects, 2).is_empty(), "the step 2 waits for the store");

    let effects = room.handle(Input::Stored { last_seq: 1 }, now());
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::update], "the sender gets its echo");
    assert_eq!(kinds_for(&effects, 2), vec![MessageKind::update, MessageKind::sync_step2]);
    assert_eq!(text_of(room.doc()), "hello");
}

#[test]
fn hocuspocus_answers_step1_with_step1_and_acknowledges_stored_updates() {
    let mut room = core(&[], 8, None);
    room.handle(join(1, PeerProtocol::Hocuspocus, true), now());
    let doc = Doc::new();
    let step1 = Message::Sync(SyncMessage::SyncStep1(doc.transact().state_vector()));
    let effects = room.handle(Input::Messages { conn: 1, messages: vec![step1] }, now());
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::sync_step1, MessageKind::sync_step2]);

    let update = edit(&doc, "x");
    let effects = room.handle(Input::Messages { conn: 1, messages: vec![update_message(update)] }, now());
    assert!(kinds_for(&effects, 1).is_empty(), "acknowledged only once stored");
    let effects = room.handle(Input::Stored { last_seq: 1 }, now());
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::update, MessageKind::sync_status]);
}

#[test]
fn a_read_only_peer_is_refused_and_told_once() {
    let mut room = core(&[], 8, None);
    room.handle(join(1, PeerProtocol::YWebsocket, false), now());
    let doc = Doc::new();
    let first = edit(&doc, "a");
    let second = edit(&doc, "b");
    let effects = room.handle(
        Input::Messages { conn: 1, messages: vec![update_message(first), update_message(second)] },
        now(),
    );
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::auth], "told once");
    assert!(writes(&effects).is_empty(), "nothing stored");
    assert_eq!(text_of(room.doc()), "");
}

#[test]
fn an_invalid_update_closes_its_connection_and_drops_the_rest_of_its_frame() {
    let mut room = core(&[], 8, None);
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    let good = edit(&Doc::new(), "late");
    let effects = room.handle(
        Input::Messages {
            conn: 1,
            messages: vec![update_message(vec![0xff, 0xff, 0xff]), update_message(good)],
        },
        now(),
    );
    assert!(effects.iter().any(|effect| matches!(
        effect,
        Effect::Disconnect { conn: 1, reason: Some(CloseReason::InvalidPayload(_)) }
    )));
    assert!(writes(&effects).is_empty(), "what followed in the frame is dropped");
    assert!(room.is_refused(1));
    room.handle(Input::Leave { conn: 1 }, now());
    assert!(!room.is_refused(1), "forgotten once the connection is gone");
}

#[test]
fn http_apply_is_answered_once_stored_and_a_failed_write_answers_not_stored() {
    let mut room = core(&[], 8, None);
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    let effects = room.handle(
        Input::Apply {
            id: 7,
            update: edit(&Doc::new(), "x"),
            rules: dojo_sync_protocol::update::WriteRules::ANYTHING,
        },
        now(),
    );
    assert!(!effects.iter().any(|effect| matches!(effect, Effect::Answer { .. })));
    let effects = room.handle(Input::State { id: 8 }, now());
    assert!(!effects.iter().any(|effect| matches!(effect, Effect::Answer { .. })), "the state waits too");
    let effects = room.handle(Input::WriteFailed, now());
    assert!(effects.iter().any(|effect| matches!(
        effect,
        Effect::Answer { id: 7, answer: Answer::Applied(Err(ApplyError::NotStored)) }
    )));
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Answer { id: 8, answer: Answer::Dropped })));
    assert!(effects.iter().any(|effect| matches!(
        effect,
        Effect::Disconnect { conn: 1, reason: Some(CloseReason::StorageUnavailable) }
    )));
    assert!(frames_for(&effects, 1).is_empty(), "the unstored change never reached anyone");
}

#[test]
fn http_apply_of_something_invalid_is_answered_at_once() {
    let mut room = core(&[], 8, None);
    let rules = dojo_sync_protocol::update::WriteRules::ANYTHING;
    let effects = room.handle(Input::Apply { id: 1, update: vec![0xff, 0xff], rules }, now());
    assert!(matches!(
        effects.as_slice(),
        [Effect::Answer { id: 1, answer: Answer::Applied(Err(ApplyError::Invalid(_))) }]
    ));
}

#[test]
fn a_full_outbox_disconnects_its_reader_and_its_presence_goes() {
    let mut room = core(&[], 8, None);
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    room.handle(join(2, PeerProtocol::YWebsocket, true), now());
    let presence = yrs::sync::AwarenessUpdate {
        clients: [(
            yrs::ClientID::new(42),
            yrs::sync::awareness::AwarenessUpdateEntry { clock: 1, json: "{\"name\":\"slow\"}".into() },
        )]
        .into(),
    };
    let effects =
        room.handle(Input::Messages { conn: 1, messages: vec![Message::Awareness(presence)] }, now());
    assert_eq!(kinds_for(&effects, 2), vec![MessageKind::awareness]);
    let effects = room.handle(Input::Overflowed(vec![1]), now());
    assert!(matches!(effects[0], Effect::Disconnect { conn: 1, reason: Some(CloseReason::SlowConsumer) }));
    assert_eq!(kinds_for(&effects, 2), vec![MessageKind::awareness], "its presence is removed for the rest");
    assert!(!room.is_refused(1), "a slow reader's queued edits still count");
}

#[test]
fn stateless_messages_go_to_the_other_hocuspocus_peers_only() {
    let mut room = core(&[], 8, None);
    room.handle(join(1, PeerProtocol::Hocuspocus, true), now());
    room.handle(join(2, PeerProtocol::Hocuspocus, true), now());
    room.handle(join(3, PeerProtocol::YWebsocket, true), now());
    let effects = room.handle(Input::Stateless { conn: 1, body: Bytes::from_static(b"\x05hi") }, now());
    assert!(kinds_for(&effects, 1).is_empty());
    assert_eq!(kinds_for(&effects, 2), vec![MessageKind::stateless]);
    assert!(kinds_for(&effects, 3).is_empty());
}

#[test]
fn stored_batches_are_published_with_their_sequences() {
    let mut room = core(&[edit(&Doc::new(), "old")], 8, Some(9));
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    let doc = Doc::new();
    room.handle(Input::Messages { conn: 1, messages: vec![update_message(edit(&doc, "a"))] }, now());
    let effects = room.handle(Input::Stored { last_seq: 2 }, now());
    assert!(effects.iter().any(|effect| matches!(
        effect,
        Effect::Publish(ClusterMessage::Updates { origin: 9, first_seq: 2, last_seq: 2, .. })
    )));
}

#[test]
fn a_gap_in_remote_sequences_is_caught_up_after_the_timeout() {
    let start = now();
    let mut room = core(&[], 8, Some(1));
    room.handle(join(1, PeerProtocol::YWebsocket, true), start);
    let other = Doc::new();
    let first = edit(&other, "a");
    let second = edit(&other, "b");
    // Sequence 1 is lost; 2 arrives. Stored elsewhere already: broadcast at once (yrs holds it
    // back until its dependency arrives, so there is nothing to broadcast yet).
    let effects = room.handle(
        Input::Remote(ClusterMessage::Updates {
            origin: 2,
            first_seq: 2,
            last_seq: 2,
            changes: vec![second],
        }),
        start,
    );
    assert!(!effects.iter().any(|effect| matches!(effect, Effect::CatchUp { .. })));
    let effects = room.handle(Input::ClusterCheck { dead: vec![] }, start + GAP_TIMEOUT / 2);
    assert!(
        effects.iter().any(|effect| matches!(effect, Effect::CatchUp { always: false, .. })),
        "with clients, the periodic check asks the store cheaply"
    );
    room.handle(Input::CaughtUp(Ok(CatchUp::UpToDate)), start);
    let effects = room.handle(Input::ClusterCheck { dead: vec![] }, start + GAP_TIMEOUT);
    assert!(effects.iter().any(|effect| matches!(effect, Effect::CatchUp { always: true, seen: 0 })));
    let effects = room.handle(Input::CatchUp, start + GAP_TIMEOUT);
    assert!(!effects.iter().any(|effect| matches!(effect, Effect::CatchUp { .. })), "one read at a time");

    let mut stored = dojo_store::StoredDocument::default();
    stored.updates.push(dojo_store::LoggedUpdate { seq: 1, data: first });
    let effects = room.handle(Input::CaughtUp(Ok(CatchUp::Read(stored))), start + GAP_TIMEOUT);
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::update]);
    assert_eq!(text_of(room.doc()), "ab");
}

#[test]
fn presence_of_clients_on_a_dead_instance_is_removed() {
    let start = now();
    let mut room = core(&[], 8, Some(1));
    room.handle(join(1, PeerProtocol::YWebsocket, true), start);
    let update = yrs::sync::AwarenessUpdate {
        clients: [(
            yrs::ClientID::new(5),
            yrs::sync::awareness::AwarenessUpdateEntry { clock: 1, json: "{}".into() },
        )]
        .into(),
    };
    let frame = Bytes::from(dojo_sync_protocol::codec::encode_message(&Message::Awareness(update)));
    let effects = room.handle(Input::Remote(ClusterMessage::Awareness { origin: 2, frame }), start);
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::awareness]);
    assert_eq!(room.remote_origins().into_iter().collect::<Vec<_>>(), vec![2]);
    let effects = room.handle(Input::ClusterCheck { dead: vec![] }, start + Duration::from_secs(1));
    assert!(kinds_for(&effects, 1).is_empty(), "alive and recent: kept");
    let effects = room.handle(Input::ClusterCheck { dead: vec![2] }, start + Duration::from_secs(2));
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::awareness], "removed");
    assert!(room.remote_origins().is_empty());
}

fn nineteen_changes() -> Vec<Vec<u8>> {
    let doc = Doc::new();
    (0..19).map(|i| edit(&doc, &i.to_string())).collect()
}

fn compactions(effects: &[Effect]) -> Vec<&Compaction> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Compact(compaction) => Some(compaction),
            _ => None,
        })
        .collect()
}

#[test]
fn once_the_log_is_long_enough_the_room_folds_its_document_covering_every_stored_row() {
    let changes = nineteen_changes();
    let mut room = core(&changes, 8, None);
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    let doc = Doc::new();
    let effects =
        room.handle(Input::Messages { conn: 1, messages: vec![update_message(edit(&doc, "z"))] }, now());
    assert!(compactions(&effects).is_empty(), "nineteen rows stored, one being written");
    let effects = room.handle(Input::Stored { last_seq: 20 }, now());
    let [Compaction::Snapshot { data, covers_seq, .. }] = compactions(&effects)[..] else {
        panic!("one compaction from the live document: {effects:?}");
    };
    assert_eq!(*covers_seq, 20);
    let folded = Doc::new();
    folded.transact_mut().apply_update(Update::decode_v1(data).expect("decodes")).expect("applies");
    assert_eq!(text_of(&folded), text_of(room.doc()), "the twenty stored changes");
    assert!(room.is_compacting());
    room.handle(Input::Compacted, now());
    assert!(!room.is_compacting());
}

#[test]
fn a_room_between_writes_folds_its_document_once_the_last_one_is_stored() {
    let mut room = core(&nineteen_changes(), 1, None);
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    let doc = Doc::new();
    let (first, second) = (edit(&doc, "a"), edit(&doc, "b"));
    let effects = room.handle(
        Input::Messages { conn: 1, messages: vec![update_message(first), update_message(second)] },
        now(),
    );
    assert_eq!(writes(&effects).len(), 1, "one change per batch");
    let effects = room.handle(Input::Stored { last_seq: 20 }, now());
    assert_eq!(writes(&effects).len(), 1, "the second change is being written");
    assert!(compactions(&effects).is_empty(), "due, but the document holds a change not stored yet");
    let effects = room.handle(Input::Stored { last_seq: 21 }, now());
    assert!(
        matches!(compactions(&effects)[..], [Compaction::Snapshot { covers_seq: 21, .. }]),
        "{effects:?}"
    );
}

#[test]
fn a_room_whose_write_failed_compacts_nothing() {
    // Found by the randomized test (seed 389): the failed room's journal is abandoned, so it
    // looks quiet while its document holds the change that was not stored.
    let mut room = core(&nineteen_changes(), 1, None);
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    room.handle(join(2, PeerProtocol::YWebsocket, true), now());
    let doc = Doc::new();
    let (first, second) = (edit(&doc, "a"), edit(&doc, "b"));
    room.handle(
        Input::Messages { conn: 1, messages: vec![update_message(first), update_message(second)] },
        now(),
    );
    let effects = room.handle(Input::Stored { last_seq: 20 }, now());
    assert!(compactions(&effects).is_empty(), "due, but the second change is being written");
    let effects = room.handle(Input::WriteFailed, now());
    assert!(compactions(&effects).is_empty());
    let effects = room.handle(Input::Overflowed(vec![2]), now());
    assert!(compactions(&effects).is_empty(), "{effects:?}");
}

#[test]
fn a_document_holding_updates_back_is_compacted_from_the_store() {
    // A stored change whose predecessor is missing: yrs holds it back, so the live document
    // lacks a stored row's content and folding it would lose that row.
    let author = Doc::new();
    let _missing = edit(&author, "x");
    let mut changes = vec![edit(&author, "y")];
    changes.extend(nineteen_changes().into_iter().take(18));
    let mut room = core(&changes, 8, None);
    assert!(dojo_sync_protocol::update::has_pending_updates(room.doc()));
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    let doc = Doc::new();
    room.handle(Input::Messages { conn: 1, messages: vec![update_message(edit(&doc, "z"))] }, now());
    let effects = room.handle(Input::Stored { last_seq: 20 }, now());
    assert!(matches!(compactions(&effects)[..], [Compaction::FromStore]), "{effects:?}");
}

/// yrs 0.28.1, found by seed 163 of the randomized test and reduced to six updates a client
/// received (v1, hex). yrs integrates 1002#6 although 1002#0..6 are missing (Yjs would hold it
/// pending: yrs puts a skip in the gap), then holds 1002#0 and 1002#12 pending (their origins
/// are missing). Encoding the document's state, as for a sync step 2 (it merges the pending
/// updates in), then places the content of 1002#12 at another clock: content under an id its
/// author uses for something else, so whoever integrates that encoding diverges for good.
/// The randomized test's clients therefore send neither pending structs with an edit (Yjs does
/// not either) nor in their step 2 (Yjs does, correctly encoded).
#[test]
#[ignore = "yrs 0.28.1 bug, kept as a reproduction"]
fn yrs_encodes_a_pending_block_beside_a_skip_at_the_wrong_clock() {
    let received = [
        "0101eb07000401017402333200",
        "0101eb070284eb070102333700",
        "0101eb070484eb070302333900",
        "0101ea070684eb070502323000",
        "0306eb070c84eb070b02333184eb070d02333684eb070f02333784eb07110233370a0284eb071502333701ea070084e9070302323901e8071e84ea070902303800",
        "0101ea070c84eb070b02323000",
    ];
    let doc = Doc::new();
    for hex in received {
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        doc.transact_mut().apply_update(Update::decode_v1(&bytes).unwrap()).unwrap();
    }
    let state = doc.transact().encode_state_as_update_v1(&StateVector::default());
    let shape = format!("{:?}", Update::decode_v1(&state).unwrap());
    assert!(shape.contains("<1002#12>, len: 2, origin-l: <1003#11>: '20'"), "1002#12 moved: {shape}");
}
