//! Hibernation: an idle room drops its document, keeps serving presence, and wakes for changes.

use std::time::Duration;

use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message};
use yrs::{Doc, StateVector, Transact};

use crate::close::CloseReason;
use crate::metrics::MessageKind;

use super::super::effects::{Answer, Effect, Input};
use super::super::load::LoadError;
use super::super::protocol::PeerProtocol;
use super::*;

const AFTER: Duration = Duration::from_secs(30);

fn presence(id: u64, clock: u32) -> Message {
    let id = yrs::ClientID::new(id);
    Message::Awareness(AwarenessUpdate {
        clients: std::collections::HashMap::from([(
            id,
            AwarenessUpdateEntry { clock, json: "{\"name\":\"a\"}".into() },
        )]),
    })
}

fn wakes(effects: &[Effect]) -> usize {
    effects.iter().filter(|effect| matches!(effect, Effect::Wake)).count()
}

/// A room with two quiet peers and "hello" stored, asleep since `start + AFTER`.
fn asleep() -> (RoomCore, Vec<Vec<u8>>, Instant) {
    let author = Doc::new();
    let stored = vec![edit(&author, "hello")];
    let mut room = core(&stored, 8, None);
    let start = now();
    room.handle(join(1, PeerProtocol::YWebsocket, true), start);
    room.handle(join(2, PeerProtocol::YWebsocket, true), start);
    assert_eq!(room.hibernate_at(), Some(start + AFTER), "due once the peers have been quiet long enough");
    room.handle(Input::Hibernate, start + AFTER - Duration::from_millis(1));
    assert!(!room.is_hibernating(), "not before its time");
    room.handle(Input::Hibernate, start + AFTER);
    assert!(room.is_hibernating());
    assert_eq!(text_of(room.doc()), "", "the document is dropped");
    (room, stored, start + AFTER)
}

#[test]
fn presence_is_relayed_while_asleep_without_waking() {
    let (mut room, _, at) = asleep();
    let effects = room.handle(Input::Messages { conn: 1, messages: vec![presence(11, 1)] }, at);
    assert_eq!(wakes(&effects), 0, "presence needs no document");
    assert_eq!(kinds_for(&effects, 2), vec![MessageKind::awareness], "the other peer sees it");
    let effects = room.handle(Input::Leave { conn: 1 }, at);
    assert_eq!(wakes(&effects), 0);
    assert_eq!(kinds_for(&effects, 2), vec![MessageKind::awareness], "and sees it go");
    assert!(room.is_hibernating());
}

#[test]
fn a_change_wakes_the_room_and_runs_once_the_document_is_back() {
    let (mut room, stored, at) = asleep();
    let bob = Doc::new();
    bob.transact_mut().apply_update(yrs::Update::decode_v1(&stored[0]).unwrap()).unwrap();
    let update = edit(&bob, " world");
    let effects = room.handle(Input::Messages { conn: 2, messages: vec![update_message(update)] }, at);
    assert_eq!(wakes(&effects), 1, "the document is asked for");
    assert!(writes(&effects).is_empty() && kinds_for(&effects, 1).is_empty(), "the change waits for it");
    assert!(
        room.is_waking() && !room.is_quiet(),
        "the actor takes no commands, and does not stop, meanwhile"
    );

    // Presence still goes through while the document loads.
    let effects = room.handle(Input::Messages { conn: 1, messages: vec![presence(11, 1)] }, at);
    assert_eq!(kinds_for(&effects, 2), vec![MessageKind::awareness]);

    let effects = room.handle(Input::Woken(Ok(loaded(&stored))), at);
    assert!(!room.is_hibernating());
    assert_eq!(writes(&effects).len(), 1, "the held change is applied and stored");
    let effects = room.handle(Input::Stored { last_seq: 2 }, at);
    assert_eq!(kinds_for(&effects, 1), vec![MessageKind::update]);
    assert_eq!(text_of(room.doc()), "hello world", "on top of the stored document");
    assert_eq!(room.hibernate_at(), Some(at + AFTER), "quiet again from the change on");
}

#[test]
fn a_joining_client_wakes_the_room_and_gets_the_stored_document() {
    let (mut room, stored, at) = asleep();
    let effects = room.handle(join(3, PeerProtocol::YWebsocket, true), at);
    assert_eq!(wakes(&effects), 1);
    assert!(kinds_for(&effects, 3).is_empty(), "no step 1 from an empty document");
    let effects = room.handle(Input::Woken(Ok(loaded(&stored))), at);
    let step1 = frames_for(&effects, 3);
    assert_eq!(step1.first().map(|(_, kind)| *kind), Some(MessageKind::sync_step1));
    let Some(Message::Sync(yrs::sync::SyncMessage::SyncStep1(state))) =
        messages_of(&step1[0].0, step1[0].1).and_then(|m| m.into_iter().next())
    else {
        panic!("a step 1");
    };
    assert_ne!(state, StateVector::default(), "the stored document's state");
}

#[test]
fn a_room_with_unstored_changes_does_not_hibernate() {
    let mut room = core(&[], 8, None);
    let start = now();
    room.handle(join(1, PeerProtocol::YWebsocket, true), start);
    let effects = room
        .handle(Input::Messages { conn: 1, messages: vec![update_message(edit(&Doc::new(), "x"))] }, start);
    assert_eq!(writes(&effects).len(), 1);
    assert_eq!(room.hibernate_at(), None, "a write is under way");
    room.handle(Input::Hibernate, start + AFTER * 2);
    assert!(!room.is_hibernating());
    room.handle(Input::Stored { last_seq: 1 }, start);
    assert_eq!(room.hibernate_at(), Some(start + AFTER));
}

#[test]
fn a_room_shared_with_other_instances_does_not_hibernate() {
    let mut room = core(&[], 8, Some(7));
    room.handle(join(1, PeerProtocol::YWebsocket, true), now());
    assert_eq!(room.hibernate_at(), None);
}

#[test]
fn a_document_that_does_not_load_closes_everyone_and_answers_held_commands() {
    let (mut room, _, at) = asleep();
    let effects = room.handle(Input::State { id: 5 }, at);
    assert_eq!(wakes(&effects), 1);
    let failed = LoadError::Corrupt("test".into());
    let effects = room.handle(Input::Woken(Err(failed)), at);
    assert!(effects.iter().any(|e| matches!(e, Effect::Answer { id: 5, answer: Answer::Dropped })));
    for conn in [1, 2] {
        assert!(effects.iter().any(|e| matches!(
            e,
            Effect::Disconnect { conn: c, reason: Some(CloseReason::StorageUnavailable) } if *c == conn
        )));
    }
    assert!(room.needs_reload(), "the room ends; the next client loads it afresh");
}
