//! What goes into the room's core, and what comes out of it.
//!
//! The core (`core.rs`) is a state machine without I/O: the actor (`actor.rs`) turns what
//! happens (a connection's frame, a finished write, a timer) into an [`Input`], hands it to
//! the core with the current time, and carries out the [`Effect`]s it returns, in order.

use bytes::Bytes;
use dojo_sync_protocol::update::WriteRules;
use yrs::sync::Message;

use crate::close::CloseReason;
use crate::cluster::{ClusterMessage, InstanceId};
use crate::metrics::MessageKind;

use super::handle::{ApplyError, ConnId, RestoreError};
pub(crate) use super::load::CatchUp;
use super::load::{CatchUpError, LoadError, Loaded};
use super::protocol::PeerProtocol;

/// Numbers an HTTP command, so that its answer finds its caller (the actor keeps the reply
/// channels; the core only says what to answer).
pub(crate) type RequestId = u64;

pub(crate) enum Input {
    /// A connection joins (the actor keeps its send queue and disconnect signal).
    Join { conn: ConnId, can_write: bool, protocol: PeerProtocol, rules: WriteRules<'static> },
    /// A connection's decoded frame.
    Messages { conn: ConnId, messages: Vec<Message> },
    /// The connection has gone; it sends nothing after this.
    Leave { conn: ConnId },
    /// A Hocuspocus stateless message, relayed to the other Hocuspocus peers.
    Stateless { conn: ConnId, body: Bytes },
    /// HTTP: make the canvas equal to a stored version.
    Restore { id: RequestId, snapshot: Vec<u8> },
    /// HTTP: the whole document, once all of it is stored.
    State { id: RequestId },
    /// HTTP: apply an update as if from a connection.
    Apply { id: RequestId, update: Vec<u8>, rules: WriteRules<'static> },
    /// Published by another instance.
    Remote(ClusterMessage),
    /// Messages from other instances may have been missed.
    CatchUp,
    /// The room's cluster channel is live (again).
    Subscribed,
    /// Who may do what here changed: everyone reconnects.
    PermissionsChanged,
    /// The batch from the last [`Effect::Write`] is stored; its last change has `last_seq`.
    Stored { last_seq: i64 },
    /// The batch could not be stored, even after retries.
    WriteFailed,
    /// The read asked for by [`Effect::CatchUp`] finished.
    CaughtUp(Result<CatchUp, CatchUpError>),
    /// The compaction asked for by [`Effect::Compact`] finished (whatever its outcome).
    Compacted,
    /// The periodic cluster check; `dead`: instances among [`RoomCore::remote_origins`] that
    /// stopped refreshing their heartbeat.
    ///
    /// [`RoomCore::remote_origins`]: super::core::RoomCore::remote_origins
    ClusterCheck { dead: Vec<InstanceId> },
    /// These connections' send queues were full when a frame was delivered to them.
    Overflowed(Vec<ConnId>),
    /// The time [`RoomCore::hibernate_at`] named has come: drop the document if still due.
    ///
    /// [`RoomCore::hibernate_at`]: super::core::RoomCore::hibernate_at
    Hibernate,
    /// The load asked for by [`Effect::Wake`] finished.
    Woken(Result<Loaded, LoadError>),
}

#[derive(Debug)]
pub(crate) enum Effect {
    /// Queue a frame for connections. A full send queue is reported back as [`Input::Overflowed`].
    Deliver { to: Recipients, frame: Bytes, kind: MessageKind },
    /// The connection is no longer in the room; with a reason, close it with that reason.
    Disconnect { conn: ConnId, reason: Option<CloseReason> },
    /// Store these changes (one batch); answer with [`Input::Stored`] or [`Input::WriteFailed`].
    Write(Vec<Vec<u8>>),
    /// Publish to the other instances holding the room.
    Publish(ClusterMessage),
    /// Read the store: always (`always`), or only if it holds sequences past `seen`. Answer with
    /// [`Input::CaughtUp`].
    CatchUp { always: bool, seen: i64 },
    /// Compact the room's log; answer with [`Input::Compacted`].
    Compact(Compaction),
    /// Answer an HTTP command.
    Answer { id: RequestId, answer: Answer },
    /// Load the hibernating room's document again; answer with [`Input::Woken`].
    Wake,
}

/// How to compact a room's log.
pub(crate) enum Compaction {
    /// Read the stored log back and fold it, off the room's task.
    FromStore,
    /// Store this snapshot of the live document, which holds exactly the log up to
    /// `covers_seq` (see `folding.rs`).
    Snapshot { data: Vec<u8>, state_vector: Vec<u8>, covers_seq: i64 },
}

impl std::fmt::Debug for Compaction {
    /// Sizes, not bytes: a snapshot can be large.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compaction::FromStore => f.write_str("FromStore"),
            Compaction::Snapshot { data, covers_seq, .. } => f
                .debug_struct("Snapshot")
                .field("bytes", &data.len())
                .field("covers_seq", covers_seq)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipients {
    One(ConnId),
    /// Every connection in the room.
    All,
    /// These connections (counted once against the outbound budget, like `All`).
    Some(Vec<ConnId>),
}

#[derive(Debug)]
pub(crate) enum Answer {
    Applied(Result<(), ApplyError>),
    Restored(Result<(), RestoreError>),
    State(Vec<u8>),
    /// No answer: the caller learns the room failed when its reply channel drops.
    Dropped,
}
