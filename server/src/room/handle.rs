//! How the rest of the server talks to a room: its commands, its address, its settings, and
//! the errors its HTTP commands answer with.

use std::time::Duration;

use bytes::Bytes;
use dojo_sync_protocol::update::WriteRules;
use tokio::sync::{mpsc, oneshot};
use yrs::sync::Message;

use crate::close::Disconnect;
use crate::cluster::{ClusterEvent, ClusterMessage, RoomInbox};
use crate::compaction::CompactionPolicy;
use crate::presence_limits::PresenceLimits;
use crate::queue_budget::{QueueBudget, Reserved};
use crate::send_queue::SendQueue;

use super::protocol::PeerProtocol;

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// What a room's queue carries.
///
/// Queued boxed: tokio's channel allocates its slots 32 at a time, up front, for every open room
/// (most of them idle), so a slot holds a pointer rather than the command (about 1.5 KiB less per
/// room; BENCHMARKS.md, idle memory). Kept small anyway (large payloads boxed).
pub enum RoomCommand {
    Join(Box<Peer>),
    Messages {
        conn: ConnId,
        messages: Vec<Message>,
        /// The frame's bytes against the room's queue budget, given back once handled.
        reserved: Reserved,
    },
    Leave {
        conn: ConnId,
    },
    /// A Hocuspocus stateless message (a whole `5 • varString` body): relayed to the room's
    /// other Hocuspocus peers, never stored. y-protocols has no such message, so y-websocket
    /// peers get nothing.
    Stateless {
        conn: ConnId,
        body: Bytes,
    },
    /// Make the canvas equal to `snapshot` (a v1 update holding a whole old document), as a
    /// normal, stored and broadcast change. Answered once the change is stored.
    Restore {
        snapshot: Vec<u8>,
        done: oneshot::Sender<Result<(), RestoreError>>,
    },
    /// The whole document as a v1 update, answered once everything in it is stored (so an HTTP
    /// reader never sees a change that could still be lost).
    State {
        done: oneshot::Sender<Vec<u8>>,
    },
    /// Apply a client update that arrived over HTTP, as if from a connection; answered once it
    /// is stored (and so broadcast).
    Apply(Box<ApplyRequest>),
    /// From another instance, through Redis.
    Remote(ClusterMessage),
    /// Messages from other instances may have been missed: catch up from the store.
    CatchUp,
    /// The room's cluster channel is live (again): it publishes its clients' presence and asks
    /// the other instances for theirs, which it may have missed before.
    Subscribed,
    /// Who may do what here changed (a collaborator removed, the workflow made private or
    /// deleted): everyone reconnects, and so is checked again.
    PermissionsChanged,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("not a valid Yjs update: {0}")]
    Invalid(String),
    #[error("the update depends on changes the document does not have")]
    MissingDependencies,
    #[error("the room could not store the update")]
    NotStored,
    #[error("the room is quarantined: its stored document cannot be loaded safely")]
    Quarantined,
    #[error("{}", too_large(*limit))]
    TooLarge { limit: usize },
}

/// What a client is told when its update would make the document too large.
pub(crate) fn too_large(limit: usize) -> String {
    format!("document too large: a room's document may hold at most {limit} bytes; nothing was applied")
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the stored version is not a valid document: {0}")]
    BadVersion(String),
    #[error("the room could not store the restore")]
    NotStored,
}

/// A client update that arrived over HTTP, applied as if from a connection; answered once it is
/// stored (and so broadcast).
pub struct ApplyRequest {
    pub update: Vec<u8>,
    /// The writer's rules (see `executor_maps.rs`).
    pub rules: WriteRules<'static>,
    pub done: oneshot::Sender<Result<(), ApplyError>>,
}

/// What the room needs to serve one connection.
pub struct Peer {
    pub conn: ConnId,
    pub queue: SendQueue,
    pub disconnect: Disconnect,
    /// Read-only peers get the document and presence; their document changes are refused.
    pub can_write: bool,
    pub protocol: PeerProtocol,
    /// What its updates may change besides the canvas (see `executor_maps.rs`).
    pub rules: WriteRules<'static>,
}

/// A cheap, cloneable address of a room actor.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<Box<RoomCommand>>,
    queue_budget: QueueBudget,
}

impl RoomHandle {
    /// Waits for room in the actor's queue: a busy room slows its senders down instead of
    /// buffering without bound. If the room has stopped, the command comes back.
    pub async fn send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        self.tx.send(Box::new(command)).await.map_err(|e| *e.0)
    }

    pub fn same_room(&self, other: &RoomHandle) -> bool {
        self.tx.same_channel(&other.tx)
    }

    /// Queues without waiting; a full or closed queue gives the command back.
    pub fn try_send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        try_send(&self.tx, command)
    }

    /// An address that does not keep the room loaded (it does not count in `holders`).
    pub fn downgrade(&self) -> WeakRoomHandle {
        WeakRoomHandle { tx: self.tx.downgrade() }
    }

    /// A room's address and the queue its actor reads: at most `capacity` commands, and client
    /// frames of at most `queue_bytes` bytes together (see `queue_budget.rs`).
    pub fn channel(capacity: usize, queue_bytes: usize) -> (RoomHandle, RoomCommands) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (RoomHandle { tx, queue_budget: QueueBudget::new(queue_bytes) }, RoomCommands(rx))
    }

    /// Waits until a client frame of `bytes` fits in the room's queue budget.
    pub async fn reserve(&self, bytes: usize) -> Reserved {
        self.queue_budget.reserve(bytes).await
    }

    /// How many copies of this address exist (the registry's, the room's own, connections').
    pub fn holders(&self) -> usize {
        self.tx.strong_count()
    }
}

/// A room's address that does not keep it alive: for the cluster's subscriber.
#[derive(Clone)]
pub struct WeakRoomHandle {
    tx: mpsc::WeakSender<Box<RoomCommand>>,
}

impl WeakRoomHandle {
    pub fn try_send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        match self.tx.upgrade() {
            Some(tx) => try_send(&tx, command),
            None => Err(command),
        }
    }
}

/// Queues without waiting; a full or closed queue gives the command back.
fn try_send(tx: &mpsc::Sender<Box<RoomCommand>>, command: RoomCommand) -> Result<(), RoomCommand> {
    tx.try_send(Box::new(command)).map_err(|e| match e {
        mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => *c,
    })
}

/// The queue a room's actor reads its commands from.
pub struct RoomCommands(mpsc::Receiver<Box<RoomCommand>>);

impl RoomCommands {
    /// The next command; `None` once the queue is closed and empty.
    pub async fn recv(&mut self) -> Option<RoomCommand> {
        self.0.recv().await.map(|command| *command)
    }

    /// A command already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<RoomCommand> {
        self.0.try_recv().ok().map(|command| *command)
    }

    /// Takes no more commands; those already queued can still be read.
    pub fn close(&mut self) {
        self.0.close();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The cluster's subscriber delivers to a room through this, knowing nothing of rooms.
impl RoomInbox for WeakRoomHandle {
    fn deliver(&self, event: ClusterEvent) -> bool {
        let command = match event {
            ClusterEvent::Message(message) => RoomCommand::Remote(message),
            ClusterEvent::CatchUp => RoomCommand::CatchUp,
            ClusterEvent::Subscribed => RoomCommand::Subscribed,
        };
        self.try_send(command).is_ok()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RoomSettings {
    pub queue: usize,
    /// Bytes of client frames the queue may hold (see `queue_budget.rs`).
    pub queue_bytes: usize,
    pub max_awareness_clients_per_connection: usize,
    /// Size bounds on presence states, per state and per connection.
    pub presence: PresenceLimits,
    /// How long a room with no clients stays loaded.
    pub unload_after: Duration,
    /// How long a room's clients stay quiet before it hibernates (see `hibernation.rs`); zero:
    /// never.
    pub hibernate_after: Duration,
    pub compaction: CompactionPolicy,
    /// Most changes stored in one transaction.
    pub max_batch_updates: usize,
    /// Largest the document may grow (see `document_size.rs`); 0: no limit.
    pub max_document_bytes: usize,
}
#[cfg(test)]
mod tests {
    /// Boxed in the queue, but a command is still moved through every layer on its way there.
    #[test]
    fn a_room_command_stays_small() {
        assert!(
            std::mem::size_of::<super::RoomCommand>() <= 56,
            "{}",
            std::mem::size_of::<super::RoomCommand>()
        );
    }
}
