//! Tests of the room's core, driven directly: no runtime, no sockets, no clock.

mod hibernation;
mod randomized;
mod unit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dojo_sync_protocol::codec::{FrameLimits, decode_frame};
use dojo_sync_protocol::update::WriteRules;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

use crate::compaction::CompactionPolicy;
use crate::metrics::{MessageKind, Metrics};
use crate::presence_limits::PresenceLimits;
use crate::room_name::RoomName;

use super::core::RoomCore;
use super::effects::{Effect, Input, Recipients};
use super::handle::{ConnId, RoomSettings};
use super::load::Loaded;
use super::protocol::PeerProtocol;

pub(super) fn settings(max_batch_updates: usize) -> RoomSettings {
    RoomSettings {
        queue: 64,
        queue_bytes: 1 << 20,
        max_awareness_clients_per_connection: 4,
        presence: PresenceLimits { max_state_bytes: 1024, max_connection_bytes: 4096 },
        unload_after: Duration::from_secs(1),
        hibernate_after: Duration::from_secs(30),
        compaction: CompactionPolicy { after_rows: 20, after_bytes: 1 << 20, keep_versions: 2 },
        max_batch_updates,
        max_document_bytes: 0,
    }
}

/// A document as the store would load it: `changes` stored with sequences `1..`.
pub(super) fn loaded(changes: &[Vec<u8>]) -> Loaded {
    let doc = Doc::new();
    {
        let mut txn = doc.transact_mut();
        for change in changes {
            let update = Update::decode_v1(change).expect("a stored change decodes");
            txn.apply_update(update).expect("a stored change applies");
        }
    }
    let document_bytes = doc.transact().encode_state_as_update_v1(&StateVector::default()).len();
    Loaded {
        doc,
        document_bytes,
        log_rows: changes.len(),
        log_bytes: changes.iter().map(Vec::len).sum(),
        last_seq: changes.len() as i64,
    }
}

pub(super) fn core(changes: &[Vec<u8>], max_batch: usize, instance: Option<u64>) -> RoomCore {
    let name = RoomName::parse("core-test").expect("a valid room name");
    RoomCore::new(name, Arc::new(settings(max_batch)), Arc::new(Metrics::new()), instance, loaded(changes))
}

pub(super) fn join(conn: ConnId, protocol: PeerProtocol, can_write: bool) -> Input {
    Input::Join { conn, can_write, protocol, rules: WriteRules::NOT_EXECUTOR_MAPS }
}

/// An edit made on `doc` (text appended to "t"), as the update a client sends: the edit's own
/// transaction, as Yjs's `update` event carries it. (Not `encode_state_as_update_v1(&before)`:
/// that also carries every update the document holds pending, re-encoded by yrs, which no Yjs
/// client sends with an edit, and yrs 0.28.1 has been seen (seed 163) to re-encode pending
/// blocks under the wrong clocks, so the room stored content under an id its author later
/// used for something else.)
pub(super) fn edit(doc: &Doc, text: &str) -> Vec<u8> {
    let shared = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    let len = shared.len(&txn);
    shared.insert(&mut txn, len, text);
    txn.encode_update_v1()
}

pub(super) fn text_of(doc: &Doc) -> String {
    let shared = doc.get_or_insert_text("t");
    shared.get_string(&doc.transact())
}

pub(super) fn update_message(update: Vec<u8>) -> Message {
    Message::Sync(SyncMessage::Update(update))
}

/// The y-protocols messages of a frame (a Hocuspocus sync status is not one: `None`).
pub(super) fn messages_of(frame: &Bytes, kind: MessageKind) -> Option<Vec<Message>> {
    if matches!(kind, MessageKind::sync_status | MessageKind::stateless) {
        return None;
    }
    Some(decode_frame(frame, &FrameLimits::default()).expect("the room sends valid frames"))
}

/// Frames for `conn` among `effects` (sent to it alone, or to everyone, or to a list holding it).
pub(super) fn frames_for(effects: &[Effect], conn: ConnId) -> Vec<(Bytes, MessageKind)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Deliver { to, frame, kind } => {
                let mine = match to {
                    Recipients::One(one) => *one == conn,
                    Recipients::All => true,
                    Recipients::Some(list) => list.contains(&conn),
                };
                mine.then(|| (frame.clone(), *kind))
            }
            _ => None,
        })
        .collect()
}

pub(super) fn kinds_for(effects: &[Effect], conn: ConnId) -> Vec<MessageKind> {
    frames_for(effects, conn).into_iter().map(|(_, kind)| kind).collect()
}

pub(super) fn writes(effects: &[Effect]) -> Vec<Vec<Vec<u8>>> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Write(batch) => Some(batch.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn now() -> Instant {
    Instant::now()
}
