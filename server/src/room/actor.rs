//! The room's actor: one tokio task per open room, around its core.
//!
//! It loads the document, then owns what the core may not: the command queue, the connections'
//! send queues and disconnect signals, the write under way, catch-up reads, compaction, timers and
//! the cluster. Each event becomes an `Input` for the core; the `Effect`s that come back are
//! carried out in order. It decides nothing about the document itself.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dojo_store::{DocumentStore, NewSnapshot, Seq, StoreError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::close::{CloseReason, Disconnect};
use crate::cluster::Cluster;
use crate::compaction::CompactionSlots;
use crate::journal::append_with_retry;
use crate::metrics::{MessageKind, Metrics};
use crate::room_name::RoomName;
use crate::send_queue::{PushError, SendQueue};

use super::core::RoomCore;
use super::effects::{Answer, CatchUp, Compaction, Effect, Input, Recipients, RequestId};
use super::handle::{
    ApplyError, ConnId, RestoreError, RoomCommand, RoomCommands, RoomSettings, WeakRoomHandle,
};
use super::load::{self, LoadError};

/// How often a room in a cluster checks the store for changes it never heard of (a publish that
/// was dropped with nothing after it), and expires presence of clients on dead instances.
const CLUSTER_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The room's place in the registry of open rooms, as the room sees it. Implemented by
/// `rooms::RoomSlot`; a trait, so that the room does not depend on the registry.
pub trait RoomRegistration: Send + Sync {
    /// Tells this opening of the room from earlier and later ones of the same name.
    fn generation(&self) -> u64;
    /// Leaves the registry if no connection holds (or is about to use) the room's address.
    fn release_if_unused(&self) -> bool;
    /// Leaves the registry unconditionally (the room failed). Idempotent.
    fn release(&self);
    /// The room's stored document is unsafe to serve (see `quarantine.rs`), or no longer is.
    fn set_quarantined(&self, reason: Option<&str>);
    /// The room's address without keeping it loaded (for the cluster's subscriber).
    fn weak_handle(&self) -> WeakRoomHandle;
    /// Runs a parked room's task again, as the registry ran its first (see `parking.rs`).
    fn respawn(self: Arc<Self>, task: Pin<Box<dyn Future<Output = TaskEnd> + Send>>);
}

/// A room, not loaded yet: [`Room::run`] loads and serves it.
pub struct Room {
    pub(super) name: RoomName,
    settings: Arc<RoomSettings>,
    pub(super) metrics: Arc<Metrics>,
    store: Arc<dyn DocumentStore>,
    pub(super) slot: Arc<dyn RoomRegistration>,
    pub(super) cluster: Option<Arc<Cluster>>,
    /// Shared by every room of the process (see `CompactionSlots`).
    compactions: CompactionSlots,
    /// `room.updated`'s throttle (`crate::webhooks::RoomUpdates`).
    pub(super) updates: crate::webhooks::RoomUpdates,
}

/// Where a connection's frames go, and how to close it.
struct Link {
    queue: SendQueue,
    disconnect: Disconnect,
}

/// An HTTP command's reply channel, until the core answers it.
pub(super) enum Reply {
    Applied(oneshot::Sender<Result<(), ApplyError>>),
    Restored(oneshot::Sender<Result<(), RestoreError>>),
    State(oneshot::Sender<Vec<u8>>),
}

type Write = Pin<Box<dyn Future<Output = Result<Seq, StoreError>> + Send>>;

/// A loaded room being served.
pub(super) struct Actor {
    pub(super) core: RoomCore,
    pub(super) shell: Room,
    links: HashMap<ConnId, Link>,
    pub(super) replies: HashMap<RequestId, Reply>,
    next_request: RequestId,
    /// The batch being stored. Polled by the room itself rather than spawned: the store's writer
    /// task does the work, so this only waits for its answer, and a task per write would cost a
    /// spawn and a cross-thread wake-up for nothing.
    pub(super) writing: Option<Write>,
    pub(super) catch_up: Option<JoinHandle<Result<CatchUp, StoreError>>>,
    pub(super) compacting: Option<JoinHandle<()>>,
    /// The document of a hibernating room, being loaded again (see `hibernation.rs`).
    pub(super) waking: Option<JoinHandle<Result<load::Loaded, LoadError>>>,
    /// The server stops: store what is queued and end.
    pub(super) stop: CancellationToken,
    /// This opening of the room (see `RoomRegistration::generation`).
    pub(super) generation: u64,
}

impl Room {
    pub fn new(
        name: RoomName,
        settings: Arc<RoomSettings>,
        metrics: Arc<Metrics>,
        store: Arc<dyn DocumentStore>,
        slot: Arc<dyn RoomRegistration>,
        cluster: Option<Arc<Cluster>>,
        compactions: CompactionSlots,
    ) -> Room {
        let updates = crate::webhooks::Webhooks::room_updates(None);
        Room { name, settings, metrics, store, slot, cluster, compactions, updates }
    }

    /// Reports this room's stored changes as `room.updated` (throttled; never waits).
    pub(crate) fn with_webhooks(mut self, webhooks: Option<&crate::webhooks::Webhooks>) -> Room {
        self.updates = crate::webhooks::Webhooks::room_updates(webhooks);
        self
    }

    /// Loads the document, then serves until the room unloads, fails, or `stop` fires (then it
    /// handles what is already queued, stores it, and returns).
    pub async fn run(self, mut commands: RoomCommands, stop: CancellationToken) -> TaskEnd {
        // Subscribed before loading: what other instances store meanwhile waits in the queue
        // and applies after the load (a no-op for what the load already had).
        let generation = self.slot.generation();
        // Allocated before the document loads, not among its allocations: the actor's state
        // outlives a hibernating document, and would keep the pages the document freed resident.
        let place = Box::<Actor>::new_uninit();
        if let Some(cluster) = &self.cluster {
            cluster.subscribe(&self.name, generation, Arc::new(self.slot.weak_handle()));
        }
        let loaded = tokio::select! {
            loaded = load::load(&*self.store, &self.name) => loaded,
            () = stop.cancelled() => return TaskEnd::Stopped,
        };
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                self.metrics.room_load_failures.inc();
                tracing::error!(room = %self.name, %error, "cannot load the room; not serving it");
                let reason = match error {
                    // The database may come back: clients retry.
                    LoadError::Store(_) => CloseReason::StorageUnavailable,
                    // What is stored will not get better by itself: refused until repaired.
                    LoadError::Unsafe(_) | LoadError::Corrupt(_) | LoadError::Task(_) => {
                        self.metrics.rooms_quarantined.inc();
                        self.slot.set_quarantined(Some(&error.to_string()));
                        CloseReason::Quarantined
                    }
                };
                commands.refuse_all(reason);
                return TaskEnd::Stopped;
            }
        };
        self.metrics.room_loads.inc();
        self.slot.set_quarantined(None);
        let instance = self.cluster.as_ref().map(|cluster| cluster.instance());
        let core =
            RoomCore::new(self.name.clone(), self.settings.clone(), self.metrics.clone(), instance, loaded);
        // Boxed: a parked room keeps it without its task (see `parking.rs`).
        let actor = Box::write(
            place,
            Actor {
                core,
                shell: self,
                links: HashMap::new(),
                replies: HashMap::new(),
                next_request: 0,
                writing: None,
                catch_up: None,
                compacting: None,
                waking: None,
                stop,
                generation,
            },
        );
        actor.drive(commands).await
    }
}

/// Why a room's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// The room is done (unloaded, failed, or the server stops): it leaves the registry.
    Stopped,
    /// The room parked (see `parking.rs`): it stays open, and its next command starts a task.
    Parked,
}

/// The room stopped because storing failed.
pub(super) struct Failed;

/// Why `serve` returned without failing.
pub(super) enum Served {
    /// Unloaded, or stopped by the server.
    Ended,
    /// Asleep with nothing to do or wait for: the room may park.
    Quiet,
}

impl Actor {
    pub(super) async fn serve(
        &mut self,
        commands: &mut RoomCommands,
        stop: &CancellationToken,
    ) -> Result<Served, Failed> {
        let mut stopping = false;
        // Set once the queue reports closed and drained, so that branch stops firing.
        let mut drained = false;
        let mut unload_at: Option<Instant> = None;
        let mut hibernate_at: Option<Instant> = None;
        // Only a room shared with other instances checks on them (an interval holds a timer).
        let mut cluster_check = self.shell.cluster.is_some().then(|| {
            let mut check = tokio::time::interval(CLUSTER_CHECK_EVERY);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            check
        });
        loop {
            let webhook_at = self.shell.updates.deadline();
            // One timer for the room's three deadlines: every open room holds its timers for
            // as long as it is open, most of them idle (BENCHMARKS.md, idle memory).
            let next_deadline = [hibernate_at, webhook_at, unload_at].into_iter().flatten().min();
            tokio::select! {
                biased;
                caught_up = join_opt(&mut self.catch_up) => {
                    self.catch_up = None;
                    let outcome = match caught_up {
                        Ok(read) => read.map_err(Into::into),
                        Err(task) => Err(task.into()),
                    };
                    self.input(Input::CaughtUp(outcome));
                }
                () = tick_opt(&mut cluster_check) => {
                    let dead = match &self.shell.cluster {
                        Some(cluster) => {
                            self.core.remote_origins().into_iter().filter(|origin| !cluster.is_live(*origin)).collect()
                        }
                        None => Vec::new(),
                    };
                    self.input(Input::ClusterCheck { dead });
                }
                written = write_opt(&mut self.writing) => {
                    self.writing = None;
                    match written {
                        Ok(last_seq) => {
                            self.input(Input::Stored { last_seq });
                            let (updates, name) = (&mut self.shell.updates, &self.shell.name);
                            updates.stored(name, &self.core.doc, Instant::now());
                        }
                        Err(error) => {
                            tracing::error!(room = %self.shell.name, %error, "cannot store updates; closing the room");
                            self.input(Input::WriteFailed);
                            self.shell.slot.release();
                            commands.refuse_all(CloseReason::StorageUnavailable);
                            return Err(Failed);
                        }
                    }
                }
                _ = join_opt(&mut self.compacting) => {
                    self.compacting = None;
                    self.input(Input::Compacted);
                }
                woken = join_opt(&mut self.waking) => {
                    self.waking = None;
                    let loaded = woken.map_err(LoadError::Task).and_then(|loaded| loaded);
                    self.input(Input::Woken(loaded));
                }
                // Re-armed below after every event.
                () = sleep_until(next_deadline) => {
                    let now = Instant::now();
                    if hibernate_at.is_some_and(|at| at <= now) {
                        self.input(Input::Hibernate);
                    }
                    if webhook_at.is_some_and(|at| at <= now) {
                        self.shell.updates.fire(&self.shell.name, now);
                    }
                    if unload_at.is_some_and(|at| at <= now) {
                        unload_at = None;
                        if self.can_unload() && self.shell.slot.release_if_unused() {
                            self.shell.metrics.rooms_unloaded.inc();
                            tracing::debug!(room = %self.shell.name, "unloaded an idle room");
                            break;
                        }
                    }
                }
                command = commands.recv(), if !drained && !self.core.needs_reload() && !self.core.is_full() && !self.core.is_waking() => match command {
                    Some(command) => self.on_command(command),
                    None => {
                        stopping = true;
                        drained = true;
                    }
                },
                () = stop.cancelled(), if !stopping => {
                    // Finish what clients already sent: it is stored before the room ends.
                    stopping = true;
                    commands.close();
                }
            }
            if stopping && self.core.is_quiet() && (drained || commands.is_empty()) {
                break;
            }
            if self.core.needs_reload() && self.core.is_quiet() {
                // Everything stored is stored; what the document holds beyond it is only
                // held-back updates. Ending the room drops them: everyone reconnects (1012) to a
                // fresh load.
                tracing::warn!(room = %self.shell.name, "dropping held-back updates: reloading the room from the store");
                let effects = self.core.close_all(CloseReason::Reloading);
                self.carry_out_all(effects);
                self.shell.slot.release();
                commands.refuse_all(CloseReason::Reloading);
                break;
            }
            if !self.core.has_peers() && unload_at.is_none() {
                unload_at = Some(Instant::now() + self.shell.settings.unload_after);
            } else if self.core.has_peers() {
                unload_at = None;
            }
            hibernate_at = self.core.hibernate_at().map(Instant::from_std);
            if !stopping
                && unload_at.is_none()
                && hibernate_at.is_none()
                && self.may_park()
                && commands.is_empty()
            {
                return Ok(Served::Quiet);
            }
        }
        // A change still held back by the throttle is reported now, not lost with the room.
        self.shell.updates.fire(&self.shell.name, Instant::now());
        Ok(Served::Ended)
    }

    fn can_unload(&self) -> bool {
        !self.core.has_peers()
            && self.core.is_quiet()
            && self.compacting.as_ref().is_none_or(|task| task.is_finished())
    }

    fn on_command(&mut self, command: RoomCommand) {
        let input = match command {
            RoomCommand::Join(peer) => {
                let peer = *peer;
                self.links.insert(peer.conn, Link { queue: peer.queue, disconnect: peer.disconnect });
                Input::Join {
                    conn: peer.conn,
                    can_write: peer.can_write,
                    protocol: peer.protocol,
                    rules: peer.rules,
                }
            }
            // The reservation is given back once the frame is handled (when it drops below).
            RoomCommand::Messages { conn, messages, reserved: _reserved } => {
                self.input(Input::Messages { conn, messages });
                return;
            }
            RoomCommand::Leave { conn } => Input::Leave { conn },
            RoomCommand::Stateless { conn, body } => Input::Stateless { conn, body },
            RoomCommand::Restore { snapshot, done } => {
                Input::Restore { id: self.reply(Reply::Restored(done)), snapshot }
            }
            RoomCommand::State { done } => Input::State { id: self.reply(Reply::State(done)) },
            RoomCommand::Apply(request) => {
                let super::handle::ApplyRequest { update, rules, done } = *request;
                Input::Apply { id: self.reply(Reply::Applied(done)), update, rules }
            }
            RoomCommand::Remote(message) => Input::Remote(message),
            RoomCommand::CatchUp => Input::CatchUp,
            RoomCommand::Subscribed => Input::Subscribed,
            RoomCommand::PermissionsChanged => Input::PermissionsChanged,
            // Nothing to hand the core: the loop's timer runs what fell due.
            RoomCommand::Due => return,
        };
        self.input(input);
    }

    fn reply(&mut self, reply: Reply) -> RequestId {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        self.replies.insert(id, reply);
        id
    }

    /// Hands `input` to the core and carries out what it asks.
    fn input(&mut self, input: Input) {
        let effects = self.core.handle(input, Instant::now().into_std());
        self.carry_out_all(effects);
    }

    /// Carries out `effects`; connections whose send queue was full are handed back to the core
    /// (which disconnects them and tells the others), until nothing more overflows.
    fn carry_out_all(&mut self, mut effects: Vec<Effect>) {
        loop {
            let overflowed = self.carry_out(effects);
            if overflowed.is_empty() {
                return;
            }
            effects = self.core.handle(Input::Overflowed(overflowed), Instant::now().into_std());
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) -> Vec<ConnId> {
        let mut overflowed = Vec::new();
        for effect in effects {
            match effect {
                Effect::Deliver { to, frame, kind } => self.deliver(&to, &frame, kind, &mut overflowed),
                Effect::Disconnect { conn, reason } => {
                    if let (Some(link), Some(reason)) = (self.links.remove(&conn), reason) {
                        link.disconnect.trigger(reason);
                    }
                }
                Effect::Write(batch) => {
                    let (store, room) = (self.shell.store.clone(), self.shell.name.clone());
                    let metrics = self.shell.metrics.clone();
                    self.writing = Some(Box::pin(async move {
                        let started = std::time::Instant::now();
                        let written = append_with_retry(&*store, &room, &batch).await;
                        if written.is_ok() {
                            metrics.store_commit_seconds.observe(started.elapsed().as_secs_f64());
                        }
                        written
                    }));
                }
                Effect::Publish(message) => {
                    if let Some(cluster) = &self.shell.cluster {
                        cluster.publish(&self.shell.name, &message);
                    }
                }
                Effect::CatchUp { always, seen } => {
                    let (store, room) = (self.shell.store.clone(), self.shell.name.clone());
                    self.catch_up =
                        Some(tokio::spawn(async move { load::catch_up(&*store, &room, always, seen).await }));
                }
                Effect::Compact(compaction) => {
                    let (store, room) = (self.shell.store.clone(), self.shell.name.clone());
                    let keep = self.shell.settings.compaction.keep_versions;
                    let slots = self.shell.compactions.clone();
                    self.compacting = Some(tokio::spawn(async move {
                        let compacted = match compaction {
                            Compaction::FromStore => {
                                slots.compact(&*store, room.as_str(), keep).await.map(drop)
                            }
                            Compaction::Snapshot { data, state_vector, covers_seq } => {
                                let snapshot = NewSnapshot {
                                    data: &data,
                                    state_vector: &state_vector,
                                    covers_seq,
                                    keep: keep.max(1),
                                };
                                slots.store_snapshot(&*store, room.as_str(), snapshot).await.map(drop)
                            }
                        };
                        if let Err(error) = compacted {
                            tracing::warn!(%room, %error, "compaction failed; the log is intact and will be compacted later");
                        }
                    }));
                }
                Effect::Answer { id, answer } => self.answer(id, answer),
                Effect::Wake => {
                    let (store, room) = (self.shell.store.clone(), self.shell.name.clone());
                    self.waking = Some(tokio::spawn(async move { load::load(&*store, &room).await }));
                }
            }
        }
        overflowed
    }

    fn deliver(&self, to: &Recipients, frame: &Bytes, kind: MessageKind, overflowed: &mut Vec<ConnId>) {
        let metrics = &self.shell.metrics;
        match to {
            Recipients::One(conn) => {
                let Some(link) = self.links.get(conn) else { return };
                match link.queue.push(frame.clone()) {
                    Ok(()) => metrics.record_out(kind, frame.len()),
                    Err(PushError::Full) => overflowed.push(*conn),
                    // Closing: its Leave is on the way, and its last frames must still be handled.
                    Err(PushError::Closed) => {}
                }
            }
            Recipients::All | Recipients::Some(_) => {
                // Counted once against the server's outbound budget, however many peers queue it.
                let mut shared = None;
                let mut push = |conn: ConnId, link: &Link| {
                    let counted = shared.get_or_insert_with(|| link.queue.share(frame.clone()));
                    match link.queue.push_shared(counted) {
                        Ok(()) => metrics.record_out(kind, frame.len()),
                        Err(PushError::Full) => overflowed.push(conn),
                        Err(PushError::Closed) => {}
                    }
                };
                match to {
                    Recipients::Some(conns) => {
                        for conn in conns {
                            if let Some(link) = self.links.get(conn) {
                                push(*conn, link);
                            }
                        }
                    }
                    _ => {
                        for (conn, link) in &self.links {
                            push(*conn, link);
                        }
                    }
                }
            }
        }
    }

    fn answer(&mut self, id: RequestId, answer: Answer) {
        // A reply channel whose answer is `Dropped` (or that does not match) just drops.
        match (self.replies.remove(&id), answer) {
            (Some(Reply::Applied(done)), Answer::Applied(result)) => {
                let _ = done.send(result);
            }
            (Some(Reply::Restored(done)), Answer::Restored(result)) => {
                let _ = done.send(result);
            }
            (Some(Reply::State(done)), Answer::State(state)) => {
                let _ = done.send(state);
            }
            _ => {}
        }
    }
}

/// The task's result once it finishes; never, when there is none.
async fn join_opt<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// The write's outcome once it finishes; never, when there is none. Cancel-safe: if this future
/// is dropped, the write stays under way and is awaited next time.
async fn write_opt(write: &mut Option<Write>) -> Result<Seq, StoreError> {
    match write {
        Some(write) => write.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The interval's next tick; never, when there is none.
async fn tick_opt(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::future_size;

    /// Every open room that is not parked has a task holding this future (BENCHMARKS.md, idle
    /// memory): 2,448 bytes before shared settings, one timer and a plain presence map; 1,808
    /// after; about 1,000 with the actor's state boxed (it is kept while the room is parked).
    #[test]
    fn a_room_stays_small() {
        let size = future_size(&Room::run);
        assert!(size <= 1_280, "a room's future holds {size} bytes");
    }
}
