//! One actor task per open room. It alone owns the room's `yrs::Doc` and `Awareness`; sockets
//! talk to it over a bounded channel, so there are no locks around the document and every
//! update is applied once, in arrival order.
//!
//! Life of a room: it loads its document from the store once (connections wait in the queue
//! meanwhile), serves, and unloads a grace period after its last client left. Every change is
//! stored before anyone sees it (see `journal.rs`). If loading or storing fails, the room stops
//! serving: its clients are disconnected and reconnect to a fresh load, rather than being
//! served a document that disagrees with the store.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dojo_store::{DocumentStore, StoreError};
use dojo_sync_protocol::codec::{encode_message, encode_sync_step1, encode_sync_step2, encode_update};
use dojo_sync_protocol::update::apply_client_update;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
use yrs::{ClientID, Doc, ReadTxn, Transact};

use crate::close::{CloseReason, Disconnect};
use crate::compaction::{self, CompactionPolicy};
use crate::journal::{Journal, WriteError};
use crate::metrics::{MessageKind, Metrics};
use crate::outbox::{Outbox, PushError};
use crate::room_name::RoomName;
use crate::rooms::RoomSlot;

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// Bytes of updates yrs may hold back for missing dependencies before the room drops them by
/// reloading from the store (they were never stored). Honest clients hold back little, briefly:
/// a client always has the dependencies of what it sends, except content it got from a peer
/// that has not reached the server yet.
const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// Removed awareness states that yrs keeps as tombstones; past this many the room rebuilds its
/// `Awareness` from the live states, so connection churn cannot grow memory without bound.
const MAX_AWARENESS_TOMBSTONES: usize = 1024;

pub enum RoomCommand {
    Join(Peer),
    Messages {
        conn: ConnId,
        messages: Vec<Message>,
    },
    Leave {
        conn: ConnId,
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
    Apply {
        update: Vec<u8>,
        done: oneshot::Sender<Result<(), ApplyError>>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("not a valid Yjs update: {0}")]
    Invalid(String),
    #[error("the update depends on changes the document does not have")]
    MissingDependencies,
    #[error("the room could not store the update")]
    NotStored,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the stored version is not a valid document: {0}")]
    BadVersion(String),
    #[error("the room could not store the restore")]
    NotStored,
}

/// What the room needs to serve one connection.
pub struct Peer {
    pub conn: ConnId,
    pub outbox: Outbox,
    pub disconnect: Disconnect,
    /// Read-only peers get the document and presence; their document changes are refused.
    pub can_write: bool,
}

/// A cheap, cloneable address of a room actor.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomCommand>,
}

impl RoomHandle {
    /// Waits for room in the actor's queue: a busy room slows its senders down instead of
    /// buffering without bound. If the room has stopped, the command comes back.
    pub async fn send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        self.tx.send(command).await.map_err(|e| e.0)
    }

    pub fn same_room(&self, other: &RoomHandle) -> bool {
        self.tx.same_channel(&other.tx)
    }

    /// A room's address and the queue its actor reads.
    pub fn channel(capacity: usize) -> (RoomHandle, mpsc::Receiver<RoomCommand>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (RoomHandle { tx }, rx)
    }

    /// How many copies of this address exist (the registry's, the room's own, connections').
    pub fn holders(&self) -> usize {
        self.tx.strong_count()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RoomSettings {
    pub queue: usize,
    pub max_awareness_clients_per_connection: usize,
    /// How long a room with no clients stays loaded.
    pub unload_after: Duration,
    pub compaction: CompactionPolicy,
    /// Most changes stored in one transaction.
    pub max_batch_updates: usize,
}

/// Held until the journal says the changes they depend on are stored.
enum AfterStore {
    /// A frame computed from a document holding unstored changes (a sync step 2).
    Frame {
        conn: ConnId,
        frame: Bytes,
        kind: MessageKind,
    },
    Restored(oneshot::Sender<Result<(), RestoreError>>),
    Applied(oneshot::Sender<Result<(), ApplyError>>),
    State(oneshot::Sender<Vec<u8>>, Vec<u8>),
}

struct PeerState {
    outbox: Outbox,
    disconnect: Disconnect,
    /// Awareness client ids this connection controls; removed for everyone when it leaves.
    awareness_ids: HashSet<ClientID>,
    can_write: bool,
    /// A read-only client is told once that its edits are refused, not on every keystroke.
    told_read_only: bool,
}

pub struct Room {
    name: RoomName,
    doc: Doc,
    awareness: Awareness,
    peers: HashMap<ConnId, PeerState>,
    /// Which connection controls each live awareness client id. A connection may not change or
    /// remove another connection's presence.
    owners: HashMap<ClientID, ConnId>,
    /// Connections removed for what they sent: their frames still in the queue are dropped.
    /// (A client that just closed is not in here: edits it sent before closing still count.)
    refused: HashSet<ConnId>,
    tombstones: usize,
    settings: RoomSettings,
    metrics: Arc<Metrics>,
    store: Arc<dyn DocumentStore>,
    journal: Journal<AfterStore>,
    /// Log rows and bytes since the last snapshot: what compaction would fold.
    log_rows: usize,
    log_bytes: usize,
    compacting: Option<tokio::task::JoinHandle<()>>,
    slot: Arc<RoomSlot>,
    /// Set when the document must be rebuilt from the store (see `MAX_PENDING_BYTES`).
    reload: bool,
}

impl Room {
    /// A room, not loaded yet: [`Room::run`] loads it.
    pub fn new(
        name: RoomName,
        settings: RoomSettings,
        metrics: Arc<Metrics>,
        store: Arc<dyn DocumentStore>,
        slot: Arc<RoomSlot>,
    ) -> Room {
        let doc = Doc::new();
        Room {
            journal: Journal::new(store.clone(), name.clone(), settings.max_batch_updates),
            name,
            awareness: Awareness::new(doc.clone()),
            doc,
            peers: HashMap::new(),
            owners: HashMap::new(),
            refused: HashSet::new(),
            tombstones: 0,
            settings,
            metrics,
            store,
            log_rows: 0,
            log_bytes: 0,
            compacting: None,
            slot,
            reload: false,
        }
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    /// Loads the document, then serves until the room unloads, fails, or `stop` fires (then it
    /// handles what is already queued, stores it, and returns).
    pub async fn run(mut self, mut commands: mpsc::Receiver<RoomCommand>, stop: CancellationToken) {
        let loaded = tokio::select! {
            loaded = load(&*self.store, &self.name) => loaded,
            () = stop.cancelled() => return,
        };
        match loaded {
            Ok(load) => self.install(load),
            Err(error) => {
                self.metrics.room_load_failures.inc();
                tracing::error!(room = %self.name, %error, "cannot load the room; not serving it");
                self.refuse_queued(&mut commands, CloseReason::StorageUnavailable);
                return;
            }
        }

        let mut stopping = false;
        // Set once the queue reports closed and drained, so that branch stops firing.
        let mut drained = false;
        let mut unload_at: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                written = self.journal.written(), if self.journal.is_writing() => {
                    if let Err(error) = written.map(|w| self.on_stored(w)) {
                        self.fail(&mut commands, error);
                        return;
                    }
                }
                command = commands.recv(), if !drained && !self.reload && !self.journal.is_full() => match command {
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
                () = sleep_until(unload_at) => {
                    unload_at = None;
                    if self.can_unload() && self.slot.release_if_unused() {
                        self.metrics.rooms_unloaded.inc();
                        tracing::debug!(room = %self.name, "unloaded an idle room");
                        break;
                    }
                }
            }
            self.journal.start_write();
            if stopping && self.journal.is_quiet() && (drained || commands.is_empty()) {
                break;
            }
            if self.reload && self.journal.is_quiet() {
                self.reload_from_store(&mut commands);
                break;
            }
            if self.peers.is_empty() && unload_at.is_none() {
                unload_at = Some(Instant::now() + self.settings.unload_after);
            } else if !self.peers.is_empty() {
                unload_at = None;
            }
            self.maybe_compact();
        }
        if let Some(compaction) = self.compacting.take() {
            let _ = compaction.await;
        }
        tracing::debug!(room = %self.name, "room stopped");
    }

    fn install(&mut self, load: Loaded) {
        self.metrics.room_loads.inc();
        self.doc = load.doc;
        self.awareness = Awareness::new(self.doc.clone());
        self.log_rows = load.log_rows;
        self.log_bytes = load.log_bytes;
    }

    fn on_command(&mut self, command: RoomCommand) {
        match command {
            RoomCommand::Join(peer) => self.join(peer),
            RoomCommand::Messages { conn, messages } => {
                for message in messages {
                    if self.refused.contains(&conn) {
                        break;
                    }
                    self.handle(conn, message);
                }
            }
            RoomCommand::Leave { conn } => {
                // A connection sends nothing after its Leave, so its entry can go.
                self.refused.remove(&conn);
                self.evict(vec![(conn, None)]);
            }
            RoomCommand::Restore { snapshot, done } => self.restore(&snapshot, done),
            RoomCommand::State { done } => {
                let state = self.doc.transact().encode_state_as_update_v1(&yrs::StateVector::default());
                if let Some(item) = self.journal.after_durable(AfterStore::State(done, state)) {
                    self.release(item);
                }
            }
            RoomCommand::Apply { update, done } => self.apply_http_update(&update, done),
        }
    }

    fn apply_http_update(&mut self, update: &[u8], done: oneshot::Sender<Result<(), ApplyError>>) {
        let pending_before = dojo_sync_protocol::update::pending_bytes(&self.doc);
        match apply_client_update(&self.doc, update) {
            Ok(Some(changes)) => self.journal.record(changes),
            Ok(None) => {
                // Nothing new: either already known, or held back for missing dependencies,
                // which an HTTP caller cannot supply later.
                if dojo_sync_protocol::update::pending_bytes(&self.doc) > pending_before {
                    let _ = done.send(Err(ApplyError::MissingDependencies));
                    self.reload = true;
                    return;
                }
            }
            Err(error) => {
                let _ = done.send(Err(ApplyError::Invalid(error.to_string())));
                return;
            }
        }
        if let Some(item) = self.journal.after_durable(AfterStore::Applied(done)) {
            self.release(item);
        }
    }

    fn can_unload(&self) -> bool {
        self.peers.is_empty()
            && self.journal.is_quiet()
            && self.compacting.as_ref().is_none_or(|task| task.is_finished())
    }

    /// A batch is stored: now everyone may see it.
    fn on_stored(&mut self, written: crate::journal::Written<AfterStore>) {
        self.metrics.persisted_updates.inc_by(written.changes.len() as u64);
        self.metrics.persisted_batches.inc();
        self.log_rows += written.changes.len();
        for change in &written.changes {
            self.log_bytes += change.len();
            // Everyone gets it, the sender too: y-websocket's sync status counts an update as
            // confirmed when it comes back.
            self.broadcast(encode_update(change), MessageKind::update);
        }
        for item in written.released {
            self.release(item);
        }
    }

    fn release(&mut self, item: AfterStore) {
        match item {
            AfterStore::Frame { conn, frame, kind } => self.send_to(conn, frame, kind),
            AfterStore::Restored(done) => {
                let _ = done.send(Ok(()));
            }
            AfterStore::Applied(done) => {
                let _ = done.send(Ok(()));
            }
            AfterStore::State(done, state) => {
                let _ = done.send(state);
            }
        }
    }

    /// Storing failed even after retries. The document now holds changes the store does not, so
    /// it must not be served: everyone is disconnected (their clients still hold their edits and
    /// send them again on reconnect) and the next connection loads the room afresh.
    fn fail(&mut self, commands: &mut mpsc::Receiver<RoomCommand>, error: WriteError) {
        self.metrics.persist_failures.inc();
        tracing::error!(room = %self.name, %error, "cannot store updates; closing the room");
        for item in self.journal.abandon() {
            match item {
                AfterStore::Restored(done) => {
                    let _ = done.send(Err(RestoreError::NotStored));
                }
                AfterStore::Applied(done) => {
                    let _ = done.send(Err(ApplyError::NotStored));
                }
                // Dropping the sender tells the caller the room failed.
                AfterStore::State(..) | AfterStore::Frame { .. } => {}
            }
        }
        let everyone: Vec<_> =
            self.peers.keys().map(|conn| (*conn, Some(CloseReason::StorageUnavailable))).collect();
        self.evict(everyone);
        self.slot.release();
        self.refuse_queued(commands, CloseReason::StorageUnavailable);
    }

    /// Everything stored is stored; what the document holds beyond it is only held-back
    /// updates. Ending the room drops them: everyone reconnects (1012) to a fresh load.
    fn reload_from_store(&mut self, commands: &mut mpsc::Receiver<RoomCommand>) {
        tracing::warn!(room = %self.name, "dropping held-back updates: reloading the room from the store");
        let everyone: Vec<_> = self.peers.keys().map(|conn| (*conn, Some(CloseReason::Reloading))).collect();
        self.evict(everyone);
        self.slot.release();
        self.refuse_queued(commands, CloseReason::Reloading);
    }

    /// Closes the queue and turns away whoever is waiting in it.
    fn refuse_queued(&mut self, commands: &mut mpsc::Receiver<RoomCommand>, reason: CloseReason) {
        commands.close();
        while let Ok(command) = commands.try_recv() {
            match command {
                RoomCommand::Join(peer) => peer.disconnect.trigger(reason.clone()),
                RoomCommand::Restore { done, .. } => {
                    let _ = done.send(Err(RestoreError::NotStored));
                }
                RoomCommand::Apply { done, .. } => {
                    let _ = done.send(Err(ApplyError::NotStored));
                }
                RoomCommand::Messages { .. } | RoomCommand::Leave { .. } | RoomCommand::State { .. } => {}
            }
        }
    }

    fn maybe_compact(&mut self) {
        if let Some(task) = &self.compacting {
            if !task.is_finished() {
                return;
            }
            self.compacting = None;
        }
        if !self.settings.compaction.is_due(self.log_rows, self.log_bytes) {
            return;
        }
        // Compaction works from what is stored, not from the live document, so it never waits
        // for the room to be quiet and never blocks it.
        self.log_rows = 0;
        self.log_bytes = 0;
        self.metrics.compactions.inc();
        let store = self.store.clone();
        let room = self.name.clone();
        let keep = self.settings.compaction.keep_versions;
        self.compacting = Some(tokio::spawn(async move {
            if let Err(error) = compaction::compact(&*store, room.as_str(), keep).await {
                tracing::warn!(%room, %error, "compaction failed; the log is intact and will be compacted later");
            }
        }));
    }

    fn restore(&mut self, snapshot: &[u8], done: oneshot::Sender<Result<(), RestoreError>>) {
        let old = Doc::new();
        if let Err(error) = apply_client_update(&old, snapshot) {
            let _ = done.send(Err(RestoreError::BadVersion(error.to_string())));
            return;
        }
        let change = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            dojo_sync_protocol::canvas::replace_canvas(&mut txn, &old.transact());
            txn.encode_update_v1()
        }));
        match change {
            Ok(change) if change != [0, 0] => self.journal.record(change),
            Ok(_) => {}
            Err(_) => {
                let _ = done.send(Err(RestoreError::BadVersion("restoring panicked".into())));
                return;
            }
        }
        if let Some(item) = self.journal.after_durable(AfterStore::Restored(done)) {
            self.release(item);
        }
    }

    fn join(&mut self, peer: Peer) {
        let conn = peer.conn;
        self.peers.insert(
            conn,
            PeerState {
                outbox: peer.outbox,
                disconnect: peer.disconnect,
                awareness_ids: HashSet::new(),
                can_write: peer.can_write,
                told_read_only: false,
            },
        );
        // As the reference server does: our step 1 first, then (a separate frame, since clients
        // before y-websocket v4 read only a frame's first message) everyone's presence.
        let step1 = encode_sync_step1(&self.doc.transact().state_vector());
        self.send_to(conn, step1, MessageKind::sync_step1);
        if let Some(frame) = self.encode_awareness(self.live_awareness_ids()) {
            self.send_to(conn, frame, MessageKind::awareness);
        }
    }

    fn handle(&mut self, conn: ConnId, message: Message) {
        match message {
            Message::Sync(SyncMessage::SyncStep1(state_vector)) => {
                let missing = self.doc.transact().encode_state_as_update_v1(&state_vector);
                let frame = Bytes::from(encode_sync_step2(&missing));
                // The reply may carry changes not stored yet: it waits until they are.
                let reply = AfterStore::Frame { conn, frame, kind: MessageKind::sync_step2 };
                if let Some(reply) = self.journal.after_durable(reply) {
                    self.release(reply);
                }
            }
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                if self.peers.get(&conn).is_some_and(|peer| peer.can_write) {
                    self.apply_update(conn, &update)
                } else {
                    self.refuse_read_only(conn, &update)
                }
            }
            Message::Awareness(update) => self.apply_awareness(conn, update),
            Message::AwarenessQuery => {
                if let Some(frame) = self.encode_awareness(self.live_awareness_ids()) {
                    self.send_to(conn, frame, MessageKind::awareness);
                }
            }
            // Clients have nothing to say to the server in the auth channel.
            Message::Auth(_) | Message::Custom(..) => {}
        }
    }

    /// Not applied, stored nor relayed. The client keeps its local edit (a CRDT cannot be told
    /// to undo it), so it is told why, in y-protocols' auth channel, once per connection. An
    /// empty update (a read-only client's routine sync step 2) needs no answer.
    fn refuse_read_only(&mut self, conn: ConnId, update: &[u8]) {
        self.metrics.read_only_refusals.inc();
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        if peer.told_read_only || !dojo_sync_protocol::update::would_change(&self.doc, update) {
            return;
        }
        peer.told_read_only = true;
        let frame =
            dojo_sync_protocol::codec::encode_permission_denied("read-only: your changes are not saved");
        self.send_to(conn, frame, MessageKind::auth);
    }

    fn apply_update(&mut self, conn: ConnId, update: &[u8]) {
        match apply_client_update(&self.doc, update) {
            // Stored first, broadcast after (see `on_stored`).
            Ok(Some(changes)) => {
                self.journal.record(changes);
                self.bound_pending(conn);
            }
            Ok(None) => self.bound_pending(conn),
            Err(error) => {
                tracing::warn!(room = %self.name, conn, %error, "refused a client update");
                self.evict(vec![(conn, Some(CloseReason::InvalidPayload(error.to_string())))]);
            }
        }
    }

    fn bound_pending(&mut self, conn: ConnId) {
        let pending = dojo_sync_protocol::update::pending_bytes(&self.doc);
        if pending > MAX_PENDING_BYTES {
            let why = format!("{pending} bytes of updates whose dependencies never arrived");
            tracing::warn!(room = %self.name, conn, pending, "a client sent too many updates with missing dependencies");
            self.evict(vec![(conn, Some(CloseReason::Policy(why)))]);
            self.reload = true;
        }
    }

    fn apply_awareness(&mut self, conn: ConnId, mut update: AwarenessUpdate) {
        update.clients.retain(|id, _| self.owners.get(id).is_none_or(|owner| *owner == conn));
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        for (id, entry) in &update.clients {
            if entry.json.as_ref() != "null" && !peer.awareness_ids.contains(id) {
                if peer.awareness_ids.len() >= self.settings.max_awareness_clients_per_connection {
                    let why = format!(
                        "a connection may control at most {} awareness client ids",
                        self.settings.max_awareness_clients_per_connection
                    );
                    self.evict(vec![(conn, Some(CloseReason::Policy(why)))]);
                    return;
                }
                peer.awareness_ids.insert(*id);
                self.owners.insert(*id, conn);
            }
        }
        let summary = match self.awareness.apply_update_summary(update) {
            Ok(Some(summary)) => summary,
            Ok(None) => return,
            Err(error) => {
                self.evict(vec![(conn, Some(CloseReason::InvalidPayload(error.to_string())))]);
                return;
            }
        };
        for id in &summary.removed {
            if self.owners.get(id) == Some(&conn) {
                self.owners.remove(id);
                peer.awareness_ids.remove(id);
            }
            self.tombstones += 1;
        }
        // Renewals count as changes (they are in `updated`): relaying them is what keeps every
        // other client from timing this one out after 30 s.
        if let Some(frame) = self.encode_awareness(summary.all_changes()) {
            self.broadcast(frame, MessageKind::awareness);
        }
        self.compact_awareness();
    }

    fn live_awareness_ids(&self) -> Vec<ClientID> {
        self.awareness.iter().filter(|(_, state)| state.data.is_some()).map(|(id, _)| id).collect()
    }

    fn encode_awareness(&self, ids: Vec<ClientID>) -> Option<Bytes> {
        if ids.is_empty() {
            return None;
        }
        // Every id passed here is known to `awareness`, so this cannot fail; if it ever did,
        // skipping one presence frame is harmless (the next renewal carries the state).
        let update = self.awareness.update_with_clients(ids).ok()?;
        Some(Bytes::from(encode_message(&Message::Awareness(update))))
    }

    fn compact_awareness(&mut self) {
        if self.tombstones <= MAX_AWARENESS_TOMBSTONES {
            return;
        }
        let mut fresh = Awareness::new(self.doc.clone());
        if let Ok(live) = self.awareness.update() {
            let _ = fresh.apply_update(live);
        }
        self.awareness = fresh;
        self.tombstones = 0;
    }

    fn send_to(&mut self, conn: ConnId, frame: impl Into<Bytes>, kind: MessageKind) {
        let Some(peer) = self.peers.get(&conn) else { return };
        let frame = frame.into();
        let size = frame.len();
        match peer.outbox.push(frame) {
            Ok(()) => self.metrics.record_out(kind, size),
            Err(PushError::Full) => self.evict(vec![(conn, Some(CloseReason::SlowConsumer))]),
            // Closing: its Leave is on the way, and its last frames must still be handled.
            Err(PushError::Closed) => {}
        }
    }

    fn broadcast(&mut self, frame: impl Into<Bytes>, kind: MessageKind) {
        let failed = self.fan_out(&frame.into(), kind);
        self.evict(failed);
    }

    /// Queues `frame` for every peer and returns those it could not be queued for.
    fn fan_out(&self, frame: &Bytes, kind: MessageKind) -> Vec<(ConnId, Option<CloseReason>)> {
        let mut failed = Vec::new();
        for (conn, peer) in &self.peers {
            match peer.outbox.push(frame.clone()) {
                Ok(()) => self.metrics.record_out(kind, frame.len()),
                Err(PushError::Full) => failed.push((*conn, Some(CloseReason::SlowConsumer))),
                Err(PushError::Closed) => {}
            }
        }
        failed
    }

    /// Removes connections from the room, telling each why (`None`: it left on its own), and
    /// tells everyone else their presence is gone. Telling others can overflow more queues, so
    /// this works through a list rather than recursing; each peer is removed at most once.
    fn evict(&mut self, mut pending: Vec<(ConnId, Option<CloseReason>)>) {
        while let Some((conn, reason)) = pending.pop() {
            let Some(peer) = self.peers.remove(&conn) else { continue };
            if let Some(reason) = reason {
                if reason == CloseReason::SlowConsumer {
                    // Its edits already queued are good data: they are still applied.
                    self.metrics.slow_client_disconnects.inc();
                    tracing::info!(room = %self.name, conn, "disconnecting a client that reads too slowly");
                } else {
                    self.refused.insert(conn);
                }
                peer.disconnect.trigger(reason);
            }
            let mut removed = Vec::new();
            for id in peer.awareness_ids {
                if self.owners.get(&id) == Some(&conn) {
                    self.owners.remove(&id);
                    self.awareness.remove_state(id);
                    self.tombstones += 1;
                    removed.push(id);
                }
            }
            if let Some(frame) = self.encode_awareness(removed) {
                pending.extend(self.fan_out(&frame, MessageKind::awareness));
            }
        }
        self.compact_awareness();
    }
}

/// A document read from the store and applied, off the async threads.
struct Loaded {
    doc: Doc,
    log_rows: usize,
    log_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored document does not apply: {0}")]
    Corrupt(String),
}

async fn load(store: &dyn DocumentStore, room: &RoomName) -> Result<Loaded, LoadError> {
    let stored = store.load(room.as_str()).await?;
    let log_rows = stored.updates.len();
    let log_bytes = stored.updates.iter().map(|u| u.data.len()).sum();
    let doc = tokio::task::spawn_blocking(move || compaction::rebuild(&stored))
        .await
        .map_err(|e| LoadError::Corrupt(e.to_string()))?
        .map_err(LoadError::Corrupt)?;
    Ok(Loaded { doc, log_rows, log_bytes })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
