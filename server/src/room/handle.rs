//! How the rest of the server talks to a room: its commands, its address, its settings, and
//! the errors its HTTP commands answer with.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use dojo_sync_protocol::update::WriteRules;
use tokio::sync::{mpsc, oneshot};
use yrs::sync::Message;

use crate::close::{CloseReason, Disconnect};
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
    /// A deadline the room left behind when it parked has come (see `parking.rs`): the room
    /// resumes and does what fell due.
    Due,
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

/// A cheap, cloneable address of a room.
///
/// Commands reach the room's actor through a bounded queue while the room has a task. A
/// hibernating room with nothing to do gives up its task and its queue ("parks": see
/// `parking.rs`); the next command sent here starts both again, with that command first in the
/// queue. Every push happens under the route's lock, so the room can tell for certain that its
/// queue is empty when it parks, and no command is lost between the two.
#[derive(Clone)]
pub struct RoomHandle {
    shared: Arc<Shared>,
}

struct Shared {
    route: Mutex<Route>,
    queue_budget: QueueBudget,
    /// The queue's capacity, for a queue made again when a parked room resumes.
    capacity: usize,
}

/// Where a room's commands go.
enum Route {
    /// Into the queue its task reads. Once that task has stopped for good, pushes fail.
    Running(mpsc::Sender<Box<RoomCommand>>),
    /// The room has no task and no queue: the next command resumes it.
    Parked(Box<dyn ParkedRoom>),
}

/// A room without a task, waiting for its next command (see `parking.rs`).
pub trait ParkedRoom: Send {
    /// Starts the room's task again, reading `commands`, which already hold the command that
    /// woke it.
    fn resume(self: Box<Self>, commands: RoomCommands);
}

/// What a push into the route did.
enum Pushed {
    Queued,
    /// The room stopped for good: the command comes back.
    Stopped(Box<RoomCommand>),
    /// The queue is full: the command comes back, with the queue to wait on.
    Full(Box<RoomCommand>, mpsc::Sender<Box<RoomCommand>>),
}

impl Shared {
    fn route(&self) -> MutexGuard<'_, Route> {
        // Nothing panics while holding the lock; if something did, the route is still whole.
        self.route.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `command` without waiting, resuming a parked room.
    fn push(self: &Arc<Self>, command: Box<RoomCommand>) -> Pushed {
        let mut route = self.route();
        if let Route::Running(tx) = &*route {
            return match tx.try_send(command) {
                Ok(()) => Pushed::Queued,
                Err(mpsc::error::TrySendError::Full(command)) => Pushed::Full(command, tx.clone()),
                Err(mpsc::error::TrySendError::Closed(command)) => Pushed::Stopped(command),
            };
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        // A new queue has room for one command.
        if let Err(error) = tx.try_send(command) {
            return Pushed::Stopped(error.into_inner());
        }
        if let Route::Parked(parked) = std::mem::replace(&mut *route, Route::Running(tx)) {
            drop(route);
            parked.resume(RoomCommands { rx, shared: Arc::downgrade(self) });
        }
        Pushed::Queued
    }

    /// Whether the room's queue is still `tx`'s (and not one made since it parked and resumed).
    fn still_routes_to(&self, tx: &mpsc::Sender<Box<RoomCommand>>) -> bool {
        matches!(&*self.route(), Route::Running(current) if current.same_channel(tx))
    }
}

impl RoomHandle {
    /// Waits for room in the actor's queue: a busy room slows its senders down instead of
    /// buffering without bound. If the room has stopped, the command comes back.
    pub async fn send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        let mut command = Box::new(command);
        loop {
            let tx = match self.shared.push(command) {
                Pushed::Queued => return Ok(()),
                Pushed::Stopped(command) => return Err(*command),
                Pushed::Full(back, tx) => {
                    command = back;
                    tx
                }
            };
            // Room is waited for outside the lock, and the command pushed under it, into the
            // same queue if the room did not park meanwhile (else: again, which resumes it).
            match tx.reserve().await {
                Ok(permit) => {
                    let route = self.shared.route();
                    if matches!(&*route, Route::Running(current) if current.same_channel(&tx)) {
                        permit.send(command);
                        return Ok(());
                    }
                }
                Err(_) if self.shared.still_routes_to(&tx) => return Err(*command),
                Err(_) => {}
            }
        }
    }

    pub fn same_room(&self, other: &RoomHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Queues without waiting; a full queue or a stopped room gives the command back.
    pub fn try_send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        match self.shared.push(Box::new(command)) {
            Pushed::Queued => Ok(()),
            Pushed::Stopped(command) | Pushed::Full(command, _) => Err(*command),
        }
    }

    /// An address that does not keep the room loaded (it does not count in `holders`).
    pub fn downgrade(&self) -> WeakRoomHandle {
        WeakRoomHandle { shared: Arc::downgrade(&self.shared) }
    }

    /// A room's address and the queue its actor reads: at most `capacity` commands, and client
    /// frames of at most `queue_bytes` bytes together (see `queue_budget.rs`).
    pub fn channel(capacity: usize, queue_bytes: usize) -> (RoomHandle, RoomCommands) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(Shared {
            route: Mutex::new(Route::Running(tx)),
            queue_budget: QueueBudget::new(queue_bytes),
            capacity,
        });
        let commands = RoomCommands { rx, shared: Arc::downgrade(&shared) };
        (RoomHandle { shared }, commands)
    }

    /// Waits until a client frame of `bytes` fits in the room's queue budget.
    pub async fn reserve(&self, bytes: usize) -> Reserved {
        self.shared.queue_budget.reserve(bytes).await
    }

    /// How many copies of this address exist (the registry's, the room's own, connections').
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.shared)
    }
}

/// A room's address that does not keep it alive: for the cluster's subscriber.
#[derive(Clone)]
pub struct WeakRoomHandle {
    shared: Weak<Shared>,
}

impl WeakRoomHandle {
    pub fn try_send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        match self.shared.upgrade() {
            Some(shared) => RoomHandle { shared }.try_send(command),
            None => Err(command),
        }
    }
}

/// The queue a room's actor reads its commands from.
pub struct RoomCommands {
    rx: mpsc::Receiver<Box<RoomCommand>>,
    /// The route this queue belongs to, for parking (weak: the queue must not keep the room's
    /// address alive, or the queue would never report that every sender is gone).
    shared: Weak<Shared>,
}

impl RoomCommands {
    /// The next command; `None` once the queue is closed and empty.
    pub async fn recv(&mut self) -> Option<RoomCommand> {
        self.rx.recv().await.map(|command| *command)
    }

    /// A command already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<RoomCommand> {
        self.rx.try_recv().ok().map(|command| *command)
    }

    /// Takes no more commands; those already queued can still be read.
    pub fn close(&mut self) {
        self.rx.close();
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Closes the queue and turns away whoever is waiting in it.
    pub fn refuse_all(&mut self, reason: CloseReason) {
        self.close();
        while let Some(command) = self.try_recv() {
            match command {
                RoomCommand::Join(peer) => peer.disconnect.trigger(reason.clone()),
                RoomCommand::Restore { done, .. } => {
                    let _ = done.send(Err(RestoreError::NotStored));
                }
                RoomCommand::Apply(request) => {
                    let done = request.done;
                    let refusal = if reason == CloseReason::Quarantined {
                        ApplyError::Quarantined
                    } else {
                        ApplyError::NotStored
                    };
                    let _ = done.send(Err(refusal));
                }
                RoomCommand::Messages { .. }
                | RoomCommand::Stateless { .. }
                | RoomCommand::Leave { .. }
                | RoomCommand::State { .. }
                | RoomCommand::Remote(_)
                | RoomCommand::CatchUp
                | RoomCommand::Subscribed
                | RoomCommand::PermissionsChanged
                | RoomCommand::Due => {}
            }
        }
    }

    /// Gives up the queue if nothing is in it: the room's next command resumes `parked`, with a
    /// new queue. If a command is queued (or every address is gone), both come back.
    pub fn park<P: ParkedRoom + 'static>(self, parked: Box<P>) -> Result<(), (RoomCommands, Box<P>)> {
        let Some(shared) = self.shared.upgrade() else { return Err((self, parked)) };
        let mut route = shared.route();
        // Exact: pushes happen under this lock.
        if !self.rx.is_empty() || !matches!(&*route, Route::Running(_)) {
            drop(route);
            return Err((self, parked));
        }
        *route = Route::Parked(parked);
        Ok(())
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

    mod parking {
        use std::collections::HashMap;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use super::super::{ParkedRoom, RoomCommand, RoomCommands, RoomHandle};

        /// A stand-in room: it reads its queue, records each `Leave`'s connection, and parks
        /// whenever its queue looks empty.
        struct Recorder {
            seen: Arc<Mutex<Vec<u64>>>,
            resumes: Arc<AtomicUsize>,
        }

        impl ParkedRoom for Recorder {
            fn resume(self: Box<Self>, commands: RoomCommands) {
                self.resumes.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(self, commands));
            }
        }

        async fn serve(mut room: Box<Recorder>, mut commands: RoomCommands) {
            loop {
                while let Some(command) = commands.try_recv() {
                    if let RoomCommand::Leave { conn } = command {
                        room.seen.lock().unwrap().push(conn);
                    }
                }
                tokio::task::yield_now().await;
                match commands.park(room) {
                    Ok(()) => return,
                    Err((queue, back)) => (commands, room) = (queue, back),
                }
            }
        }

        /// Senders race a room that parks whenever its queue empties (a queue of 4, so they
        /// also wait for room): every command arrives once, each sender's in order.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn no_command_is_lost_or_reordered_while_a_room_parks_and_resumes() {
            const SENDERS: u64 = 8;
            const EACH: u64 = 500;
            let (handle, commands) = RoomHandle::channel(4, 1024);
            let seen = Arc::new(Mutex::new(Vec::new()));
            let resumes = Arc::new(AtomicUsize::new(0));
            tokio::spawn(serve(
                Box::new(Recorder { seen: seen.clone(), resumes: resumes.clone() }),
                commands,
            ));
            let senders: Vec<_> = (0..SENDERS)
                .map(|sender| {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        for i in 0..EACH {
                            let conn = sender * 1_000_000 + i;
                            let command = RoomCommand::Leave { conn };
                            let sent = if i % 3 == 0 {
                                handle.try_send(command)
                            } else {
                                handle.send(command).await
                            };
                            if sent.is_err() {
                                // A full queue refuses a `try_send`; wait and send it again.
                                handle
                                    .send(RoomCommand::Leave { conn })
                                    .await
                                    .ok()
                                    .expect("the room never stops");
                            }
                            if i % 50 == 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    })
                })
                .collect();
            for sender in senders {
                sender.await.expect("sender");
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while seen.lock().unwrap().len() < (SENDERS * EACH) as usize {
                assert!(tokio::time::Instant::now() < deadline, "commands were lost");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let seen = seen.lock().unwrap().clone();
            assert_eq!(seen.len(), (SENDERS * EACH) as usize, "no command arrived twice");
            let mut next: HashMap<u64, u64> = HashMap::new();
            for conn in seen {
                let (sender, i) = (conn / 1_000_000, conn % 1_000_000);
                let expected = next.entry(sender).or_default();
                assert_eq!(i, *expected, "sender {sender}'s commands arrived in order");
                *expected += 1;
            }
            assert!(resumes.load(Ordering::SeqCst) > 0, "the room parked and resumed");
        }

        /// A room whose task stopped for good (not parked) gives commands back.
        #[tokio::test]
        async fn a_stopped_room_gives_commands_back() {
            let (handle, commands) = RoomHandle::channel(4, 1024);
            drop(commands);
            assert!(matches!(
                handle.send(RoomCommand::Leave { conn: 1 }).await,
                Err(RoomCommand::Leave { conn: 1 })
            ));
            assert!(handle.try_send(RoomCommand::Leave { conn: 2 }).is_err());
            let weak = handle.downgrade();
            drop(handle);
            assert!(weak.try_send(RoomCommand::Leave { conn: 3 }).is_err(), "no address is left");
        }

        /// Parking refuses while a command waits, and gives everything back.
        #[tokio::test]
        async fn a_room_with_a_queued_command_does_not_park() {
            let (handle, commands) = RoomHandle::channel(4, 1024);
            handle.try_send(RoomCommand::Leave { conn: 7 }).ok().expect("queued");
            let recorder = Box::new(Recorder { seen: Default::default(), resumes: Default::default() });
            let Err((mut commands, _)) = commands.park(recorder) else {
                panic!("parked over a queued command")
            };
            assert!(matches!(commands.try_recv(), Some(RoomCommand::Leave { conn: 7 })));
            assert_eq!(handle.holders(), 1, "the queue does not hold the room's address");
        }
    }
}
