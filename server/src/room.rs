//! One actor task per open room. It alone owns the room's `yrs::Doc` and `Awareness`; sockets
//! talk to it over a bounded channel, so there are no locks around the document and every
//! update is applied once, in arrival order.
//!
//! Life of a room: it loads its document from the store once (connections wait in the queue
//! meanwhile), serves, and unloads a grace period after its last client left. Every change is
//! stored before anyone sees it (see `journal.rs`). If loading or storing fails, the room stops
//! serving: its clients are disconnected and reconnect to a fresh load, rather than being
//! served a document that disagrees with the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dojo_store::{DocumentStore, StoreError};
use dojo_sync_protocol::codec::{encode_message, encode_sync_step1, encode_sync_step2, encode_update};
use dojo_sync_protocol::hocuspocus;
use dojo_sync_protocol::update::{WriteRules, apply_client_update};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
use yrs::{ClientID, Doc, ReadTxn, Transact};

use crate::close::{CloseReason, Disconnect};
use crate::cluster::{Cluster, ClusterMessage, InstanceId};
use crate::compaction::{self, CompactionPolicy};
use crate::document_size::DocumentSize;
use crate::journal::{Journal, WriteError};
use crate::metrics::{MessageKind, Metrics};
use crate::outbox::{Outbox, PushError};
use crate::presence_limits::{self, PresenceError, PresenceLimits};
use crate::queue_budget::{QueueBudget, Reserved};
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

/// Largest frame of presence a joining client receives; more presence goes in more frames.
const PRESENCE_FRAME_BYTES: usize = 64 * 1024;

/// Presence states a room keeps for clients of other instances (each within the state bound).
const MAX_REMOTE_PRESENCE: usize = 4096;

/// How long a gap in the store sequences received from other instances may stay open (their
/// messages can arrive out of order) before the room catches up from the store.
const GAP_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a room in a cluster checks the store for changes it never heard of (a publish that
/// was dropped with nothing after it), and expires presence of clients on dead instances.
const CLUSTER_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Presence from another instance not renewed for this long is removed (clients renew every
/// 15 s; the reference server times them out after 30 s).
const REMOTE_PRESENCE_TIMEOUT: Duration = Duration::from_secs(40);

pub enum RoomCommand {
    Join(Peer),
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
    Apply {
        update: Vec<u8>,
        /// The writer's rules (see `executor_maps.rs`).
        rules: WriteRules<'static>,
        done: oneshot::Sender<Result<(), ApplyError>>,
    },
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
fn too_large(limit: usize) -> String {
    format!("document too large: a room's document may hold at most {limit} bytes; nothing was applied")
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
    pub protocol: PeerProtocol,
    /// What its updates may change besides the canvas (see `executor_maps.rs`).
    pub rules: WriteRules<'static>,
}

/// What a peer's client speaks; the room's frames are y-protocols frames either way (the
/// Hocuspocus socket puts the document name in front of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerProtocol {
    /// y-websocket: step 1 on join; an update counts as saved when its echo arrives; a refused
    /// edit is answered with y-protocols' permission-denied.
    #[default]
    YWebsocket,
    /// `@hocuspocus/provider`: the server's step 1 goes out in answer to the client's; every
    /// update and step 2 is acknowledged with SyncStatus(1) once it is stored (its unsynced-
    /// changes counter relies on it), or SyncStatus(0) when refused as read-only.
    Hocuspocus,
}

/// A cheap, cloneable address of a room actor.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomCommand>,
    queue_budget: QueueBudget,
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

    /// Queues without waiting; a full or closed queue gives the command back.
    pub fn try_send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
        })
    }

    /// An address that does not keep the room loaded (it does not count in `holders`).
    pub fn downgrade(&self) -> WeakRoomHandle {
        WeakRoomHandle { tx: self.tx.downgrade() }
    }

    /// A room's address and the queue its actor reads: at most `capacity` commands, and client
    /// frames of at most `queue_bytes` bytes together (see `queue_budget.rs`).
    pub fn channel(capacity: usize, queue_bytes: usize) -> (RoomHandle, mpsc::Receiver<RoomCommand>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (RoomHandle { tx, queue_budget: QueueBudget::new(queue_bytes) }, rx)
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
    tx: mpsc::WeakSender<RoomCommand>,
}

impl WeakRoomHandle {
    pub fn try_send(&self, command: RoomCommand) -> Result<(), RoomCommand> {
        match self.tx.upgrade() {
            Some(tx) => tx.try_send(command).map_err(|error| match error {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            }),
            None => Err(command),
        }
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
    pub compaction: CompactionPolicy,
    /// Most changes stored in one transaction.
    pub max_batch_updates: usize,
    /// Largest the document may grow (see `document_size.rs`); 0: no limit.
    pub max_document_bytes: usize,
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
    /// Bytes of the presence state of each id it controls (their sum is bounded).
    presence_bytes: HashMap<ClientID, usize>,
    can_write: bool,
    /// A read-only client is told once that its edits are refused, not on every keystroke.
    told_read_only: bool,
    protocol: PeerProtocol,
    /// Hocuspocus updates from this peer held back for missing dependencies: acknowledged
    /// with the peer's next update that leaves nothing held back (they are stored then).
    held_acks: usize,
    rules: WriteRules<'static>,
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
    cluster: Option<Arc<Cluster>>,
    /// Store sequence up to which the document holds every stored change (own and others').
    seen_seq: i64,
    /// Ranges stored elsewhere that arrived ahead of a missing one: first → last.
    ahead: BTreeMap<i64, i64>,
    /// Since when `ahead` has been waiting for the missing range.
    gap_since: Option<Instant>,
    catch_up: Option<tokio::task::JoinHandle<Result<Option<dojo_store::StoredDocument>, StoreError>>>,
    /// Presence of clients connected to other instances: whose, and when last heard of.
    remote_presence: HashMap<ClientID, (InstanceId, Instant)>,
    /// How big the document is, at least (see `document_size.rs`).
    size: DocumentSize,
}

impl Room {
    /// A room, not loaded yet: [`Room::run`] loads it.
    pub fn new(
        name: RoomName,
        settings: RoomSettings,
        metrics: Arc<Metrics>,
        store: Arc<dyn DocumentStore>,
        slot: Arc<RoomSlot>,
        cluster: Option<Arc<Cluster>>,
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
            cluster,
            seen_seq: 0,
            ahead: BTreeMap::new(),
            gap_since: None,
            catch_up: None,
            remote_presence: HashMap::new(),
            size: DocumentSize::new(settings.max_document_bytes, 0),
        }
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    /// Loads the document, then serves until the room unloads, fails, or `stop` fires (then it
    /// handles what is already queued, stores it, and returns).
    pub async fn run(mut self, mut commands: mpsc::Receiver<RoomCommand>, stop: CancellationToken) {
        // Subscribed before loading: what other instances store meanwhile waits in the queue
        // and applies after the load (a no-op for what the load already had).
        let generation = self.slot.generation();
        if let Some(cluster) = &self.cluster {
            cluster.subscribe(&self.name, generation, self.slot.weak_handle());
        }
        let loaded = tokio::select! {
            loaded = load(&*self.store, &self.name) => loaded,
            () = stop.cancelled() => return,
        };
        match loaded {
            Ok(load) => self.install(load),
            Err(error) => {
                self.metrics.room_load_failures.inc();
                tracing::error!(room = %self.name, %error, "cannot load the room; not serving it");
                let reason = match error {
                    // The database may come back: clients retry.
                    LoadError::Store(_) => CloseReason::StorageUnavailable,
                    // What is stored will not get better by itself: refused until repaired.
                    LoadError::Unsafe(_) | LoadError::Corrupt(_) => {
                        self.metrics.rooms_quarantined.inc();
                        self.slot.set_quarantined(Some(&error.to_string()));
                        CloseReason::Quarantined
                    }
                };
                self.refuse_queued(&mut commands, reason);
                return;
            }
        }

        let mut stopping = false;
        // Set once the queue reports closed and drained, so that branch stops firing.
        let mut drained = false;
        let mut unload_at: Option<Instant> = None;
        let mut cluster_check = tokio::time::interval(CLUSTER_CHECK_EVERY);
        cluster_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                caught_up = join_opt(&mut self.catch_up) => {
                    self.catch_up = None;
                    self.on_caught_up(caught_up);
                }
                _ = cluster_check.tick(), if self.cluster.is_some() => self.cluster_check(),
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
        if let Some(cluster) = &self.cluster {
            cluster.unsubscribe(&self.name, generation);
        }
        if let Some(compaction) = self.compacting.take() {
            let _ = compaction.await;
        }
        tracing::debug!(room = %self.name, "room stopped");
    }

    fn install(&mut self, load: Loaded) {
        self.metrics.room_loads.inc();
        self.slot.set_quarantined(None);
        self.doc = load.doc;
        self.awareness = Awareness::new(self.doc.clone());
        self.log_rows = load.log_rows;
        self.log_bytes = load.log_bytes;
        self.seen_seq = load.last_seq;
        self.size = DocumentSize::new(self.settings.max_document_bytes, load.document_bytes);
    }

    fn on_command(&mut self, command: RoomCommand) {
        match command {
            RoomCommand::Join(peer) => self.join(peer),
            RoomCommand::Messages { conn, messages, reserved: _reserved } => {
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
            RoomCommand::Apply { update, rules, done } => self.apply_http_update(&update, rules, done),
            RoomCommand::Stateless { conn, body } => self.relay_stateless(conn, &body),
            RoomCommand::Remote(message) => self.on_remote(message),
            RoomCommand::CatchUp => self.start_catch_up(true),
            RoomCommand::Subscribed => self.on_subscribed(),
            RoomCommand::PermissionsChanged => {
                let everyone: Vec<_> =
                    self.peers.keys().map(|conn| (*conn, Some(CloseReason::PermissionsChanged))).collect();
                self.evict(everyone);
            }
        }
    }

    // --- Cluster: what other instances stored and their clients' presence -------------------

    fn on_remote(&mut self, message: ClusterMessage) {
        self.metrics.cluster_messages_received.inc();
        match message {
            ClusterMessage::Updates { first_seq, last_seq, changes, .. } => {
                for change in &changes {
                    // Stored already (by the instance that received it): broadcast at once.
                    match apply_client_update(&self.doc, change) {
                        Ok(Some(diff)) => {
                            self.size.grew(dojo_sync_protocol::update::growth_bound(&diff));
                            self.broadcast(encode_update(&diff), MessageKind::update);
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(room = %self.name, %error, "a change from another instance does not apply; catching up");
                            self.start_catch_up(true);
                        }
                    }
                }
                self.note_stored(first_seq, last_seq);
            }
            ClusterMessage::Awareness { origin, frame } => self.on_remote_presence(origin, &frame),
            ClusterMessage::PermissionsChanged { .. } => self.on_command(RoomCommand::PermissionsChanged),
            ClusterMessage::PresenceQuery { .. } => self.publish_local_presence(),
        }
    }

    /// From now on this room hears what others publish; what they published before (their
    /// clients' presence, sent once and renewed only every 15 s) it asks for. Our own clients'
    /// presence goes out again too, for instances that subscribed after it was first published
    /// and before this.
    fn on_subscribed(&mut self) {
        let Some(cluster) = self.cluster.clone() else { return };
        self.publish_local_presence();
        cluster.publish(&self.name, &ClusterMessage::PresenceQuery { origin: cluster.instance() });
    }

    /// The presence of this instance's own clients (never what it heard from others).
    fn publish_local_presence(&self) {
        if let Some(frame) = self.encode_awareness(self.owners.keys().copied().collect()) {
            self.publish_presence(&frame);
        }
    }

    /// Records that sequences `first..=last` are in the document.
    fn note_stored(&mut self, first: i64, last: i64) {
        if last > self.seen_seq {
            if first <= self.seen_seq + 1 {
                self.seen_seq = last;
            } else {
                let end = self.ahead.entry(first).or_insert(last);
                *end = (*end).max(last);
            }
        }
        self.absorb_ahead();
    }

    fn absorb_ahead(&mut self) {
        while let Some((&first, &last)) = self.ahead.first_key_value() {
            if first > self.seen_seq + 1 {
                break;
            }
            self.seen_seq = self.seen_seq.max(last);
            self.ahead.pop_first();
        }
        if self.ahead.is_empty() {
            self.gap_since = None;
        } else if self.gap_since.is_none() {
            self.gap_since = Some(Instant::now());
        }
    }

    fn on_remote_presence(&mut self, origin: InstanceId, frame: &[u8]) {
        let limits = dojo_sync_protocol::codec::FrameLimits::default();
        let Ok(messages) = dojo_sync_protocol::codec::decode_frame(frame, &limits) else { return };
        for message in messages {
            let Message::Awareness(mut update) = message else { continue };
            // Another instance may not change the presence of our own clients, nor send states
            // bigger than ours may be, nor more of them than a room keeps from elsewhere.
            update.clients.retain(|id, _| !self.owners.contains_key(id));
            let before = update.clients.len();
            let max_state = self.settings.presence.max_state_bytes;
            update.clients.retain(|_, entry| presence_limits::state_bytes(&entry.json) <= max_state);
            let room_left = MAX_REMOTE_PRESENCE.saturating_sub(self.remote_presence.len());
            let mut new_ids = 0usize;
            update.clients.retain(|id, entry| {
                if entry.json.as_ref() == "null" || self.remote_presence.contains_key(id) {
                    return true;
                }
                new_ids += 1;
                new_ids <= room_left
            });
            let dropped = before - update.clients.len();
            if dropped > 0 {
                self.metrics.presence_refused.inc_by(dropped as u64);
                tracing::warn!(room = %self.name, dropped, "dropped presence from another instance over the limits");
            }
            let now = Instant::now();
            for (id, entry) in &update.clients {
                if entry.json.as_ref() == "null" {
                    self.remote_presence.remove(id);
                } else {
                    self.remote_presence.insert(*id, (origin, now));
                }
            }
            if let Ok(Some(summary)) = self.awareness.apply_update_summary(update) {
                self.tombstones += summary.removed.len();
                if let Some(frame) = self.encode_awareness(summary.all_changes()) {
                    let failed = self.fan_out(&frame, MessageKind::awareness);
                    self.evict(failed);
                }
            }
        }
        self.compact_awareness();
    }

    fn cluster_check(&mut self) {
        if self.gap_since.is_some_and(|since| since.elapsed() >= GAP_TIMEOUT) {
            self.start_catch_up(true);
        } else if !self.peers.is_empty() {
            self.start_catch_up(false);
        }
        // Presence of clients whose instance died or went silent.
        let cluster = self.cluster.clone();
        let expired: Vec<ClientID> = self
            .remote_presence
            .iter()
            .filter(|(_, (origin, heard))| {
                heard.elapsed() >= REMOTE_PRESENCE_TIMEOUT
                    || cluster.as_ref().is_some_and(|c| !c.is_live(*origin))
            })
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            self.remote_presence.remove(id);
        }
        // At the clocks we hold: if the client is alive after all, its next renewal applies.
        let removal = crate::cluster_presence::removal_at_known_clocks(&self.awareness, &expired);
        if let Ok(Some(summary)) = self.awareness.apply_update_summary(removal) {
            self.tombstones += summary.removed.len();
            if let Some(frame) = self.encode_awareness(summary.removed) {
                self.broadcast(frame, MessageKind::awareness);
            }
        }
        self.compact_awareness();
    }

    /// Reads the store in the background: `always` loads the document; otherwise only when
    /// the store holds sequences the room has not seen (one cheap query).
    fn start_catch_up(&mut self, always: bool) {
        if self.catch_up.is_some() {
            return;
        }
        let (store, room, seen) = (self.store.clone(), self.name.clone(), self.seen_seq);
        self.catch_up = Some(tokio::spawn(async move {
            if !always && store.append(room.as_str(), &[]).await? <= seen {
                return Ok(None);
            }
            store.load(room.as_str()).await.map(Some)
        }));
    }

    fn on_caught_up(
        &mut self,
        result: Result<Result<Option<dojo_store::StoredDocument>, StoreError>, String>,
    ) {
        let stored = match result.and_then(|read| read.map_err(|e| e.to_string())) {
            Ok(Some(stored)) => stored,
            Ok(None) => return,
            Err(error) => {
                // The next gap, resubscribe or periodic check tries again.
                tracing::warn!(room = %self.name, %error, "catching up from the store failed");
                return;
            }
        };
        self.metrics.cluster_catch_ups.inc();
        let last = stored
            .updates
            .last()
            .map(|u| u.seq)
            .or(stored.snapshot.as_ref().map(|s| s.covers_seq))
            .unwrap_or(0);
        let parts = stored.snapshot.iter().map(|s| &s.data).chain(stored.updates.iter().map(|u| &u.data));
        for part in parts {
            match apply_client_update(&self.doc, part) {
                Ok(Some(diff)) => {
                    self.size.grew(dojo_sync_protocol::update::growth_bound(&diff));
                    self.broadcast(encode_update(&diff), MessageKind::update);
                }
                Ok(None) => {}
                Err(error) => tracing::error!(room = %self.name, %error, "a stored change does not apply"),
            }
        }
        self.seen_seq = self.seen_seq.max(last);
        self.ahead.retain(|_, end| *end > last);
        self.absorb_ahead();
    }

    fn apply_http_update(
        &mut self,
        update: &[u8],
        rules: WriteRules<'static>,
        done: oneshot::Sender<Result<(), ApplyError>>,
    ) {
        let pending_before = dojo_sync_protocol::update::pending_bytes(&self.doc);
        match self.apply_within_limits(update, rules) {
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
            Err(dojo_sync_protocol::ApplyError::DocumentTooLarge) => {
                let _ = done.send(Err(ApplyError::TooLarge { limit: self.size.limit() }));
                return;
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
        if !written.changes.is_empty() {
            let first = written.last_seq - written.changes.len() as i64 + 1;
            self.note_stored(first, written.last_seq);
            if let Some(cluster) = &self.cluster {
                let message = ClusterMessage::Updates {
                    origin: cluster.instance(),
                    first_seq: first,
                    last_seq: written.last_seq,
                    changes: written.changes.clone(),
                };
                cluster.publish(&self.name, &message);
            }
        }
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
                | RoomCommand::PermissionsChanged => {}
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
            Ok(change) if change != [0, 0] => {
                self.size.grew(dojo_sync_protocol::update::growth_bound(&change));
                self.journal.record(change);
            }
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
                presence_bytes: HashMap::new(),
                can_write: peer.can_write,
                told_read_only: false,
                protocol: peer.protocol,
                held_acks: 0,
                rules: peer.rules,
            },
        );
        // As the reference server does: our step 1 first, then (a separate frame, since clients
        // before y-websocket v4 read only a frame's first message) everyone's presence. The
        // Hocuspocus server sends only presence; its step 1 answers the client's.
        if peer.protocol == PeerProtocol::YWebsocket {
            let step1 = encode_sync_step1(&self.doc.transact().state_vector());
            self.send_to(conn, step1, MessageKind::sync_step1);
        }
        self.send_presence_to(conn);
    }

    fn handle(&mut self, conn: ConnId, message: Message) {
        match message {
            Message::Sync(SyncMessage::SyncStep1(state_vector)) => {
                if self.protocol_of(conn) == Some(PeerProtocol::Hocuspocus) {
                    // Hocuspocus answers a step 1 with its own step 1, then the step 2. Queued
                    // behind unstored changes like the step 2, so the two keep their order.
                    let step1 = Bytes::from(encode_sync_step1(&self.doc.transact().state_vector()));
                    let frame = AfterStore::Frame { conn, frame: step1, kind: MessageKind::sync_step1 };
                    if let Some(frame) = self.journal.after_durable(frame) {
                        self.release(frame);
                    }
                }
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
            Message::AwarenessQuery => self.send_presence_to(conn),
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
        if peer.protocol == PeerProtocol::Hocuspocus {
            // As the Hocuspocus server does: SyncStatus(0) for a change that is refused, (1) for
            // one that holds nothing new (a read-only client's routine step 2), so its unsynced
            // counter stays up exactly while it holds edits the server did not take.
            let applied = !dojo_sync_protocol::update::would_change(&self.doc, update);
            let frame = Bytes::copy_from_slice(&hocuspocus::sync_status_body(applied));
            self.send_to(conn, frame, MessageKind::sync_status);
            return;
        }
        if peer.told_read_only || !dojo_sync_protocol::update::would_change(&self.doc, update) {
            return;
        }
        peer.told_read_only = true;
        let frame =
            dojo_sync_protocol::codec::encode_permission_denied("read-only: your changes are not saved");
        self.send_to(conn, frame, MessageKind::auth);
    }

    fn apply_update(&mut self, conn: ConnId, update: &[u8]) {
        let rules = self.peers.get(&conn).map_or(WriteRules::NOT_EXECUTOR_MAPS, |peer| peer.rules);
        match self.apply_within_limits(update, rules) {
            // Stored first, broadcast after (see `on_stored`).
            Ok(Some(changes)) => {
                self.journal.record(changes);
                self.bound_pending(conn);
            }
            Ok(None) => self.bound_pending(conn),
            Err(error) => {
                tracing::warn!(room = %self.name, conn, %error, "refused a client update");
                let reason = match error {
                    dojo_sync_protocol::ApplyError::DocumentTooLarge => {
                        CloseReason::Policy(too_large(self.size.limit()))
                    }
                    error => CloseReason::InvalidPayload(error.to_string()),
                };
                self.evict(vec![(conn, Some(reason))]);
                return;
            }
        }
        self.acknowledge(conn);
    }

    /// Applies a client's update (WebSocket or HTTP) within the document's limits: nesting (in
    /// `apply_client_update`) and size (see `document_size.rs`), both checked before anything
    /// of it is integrated.
    fn apply_within_limits(
        &mut self,
        update: &[u8],
        rules: WriteRules<'static>,
    ) -> Result<Option<Vec<u8>>, dojo_sync_protocol::ApplyError> {
        let size = &mut self.size;
        let result = dojo_sync_protocol::apply_client_update_within(&self.doc, update, rules, |incoming| {
            size.admits(incoming)
        });
        match &result {
            Ok(Some(changes)) => self.size.grew(dojo_sync_protocol::update::growth_bound(changes)),
            Ok(None) => {}
            Err(error) => {
                use dojo_sync_protocol::update::NestingError;
                let reason = match error {
                    dojo_sync_protocol::ApplyError::DocumentTooLarge => "document_size",
                    dojo_sync_protocol::ApplyError::Nesting(NestingError::ExecutorOnly) => "executor_maps",
                    dojo_sync_protocol::ApplyError::Nesting(_) => "nesting",
                    _ => "invalid",
                };
                self.metrics.document_refusals.get_or_create(&crate::metrics::ReasonLabel { reason }).inc();
            }
        }
        result
    }

    /// Hocuspocus peers learn that their update is saved: SyncStatus(1), released once
    /// everything applied so far (this update included) is stored, in the same `on_stored` as
    /// its broadcast. An update yrs holds back for missing dependencies is not stored yet, so
    /// its acknowledgement waits for an update of the peer's that leaves nothing held back.
    fn acknowledge(&mut self, conn: ConnId) {
        let nothing_held = dojo_sync_protocol::update::pending_bytes(&self.doc) == 0;
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        if peer.protocol != PeerProtocol::Hocuspocus {
            return;
        }
        if !nothing_held {
            peer.held_acks += 1;
            return;
        }
        let acks = std::mem::take(&mut peer.held_acks) + 1;
        for _ in 0..acks {
            let frame = Bytes::copy_from_slice(&hocuspocus::sync_status_body(true));
            let ack = AfterStore::Frame { conn, frame, kind: MessageKind::sync_status };
            if let Some(ack) = self.journal.after_durable(ack) {
                self.release(ack);
            }
        }
    }

    fn protocol_of(&self, conn: ConnId) -> Option<PeerProtocol> {
        self.peers.get(&conn).map(|peer| peer.protocol)
    }

    /// Relays a stateless message to the room's other Hocuspocus peers.
    fn relay_stateless(&mut self, conn: ConnId, body: &Bytes) {
        if !self.peers.contains_key(&conn) || self.refused.contains(&conn) {
            return;
        }
        let mut failed = Vec::new();
        let mut shared = None;
        for (other, peer) in &self.peers {
            if *other == conn || peer.protocol != PeerProtocol::Hocuspocus {
                continue;
            }
            let counted = shared.get_or_insert_with(|| peer.outbox.share(body.clone()));
            match peer.outbox.push_shared(counted) {
                Ok(()) => self.metrics.record_out(MessageKind::stateless, body.len()),
                Err(PushError::Full) => failed.push((*other, Some(CloseReason::SlowConsumer))),
                Err(PushError::Closed) => {}
            }
        }
        self.evict(failed);
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
        // Ids of other connections, or of clients on other instances, are not this one's; nor
        // are echoes of states the room already holds (see `cluster_presence::may_claim`).
        update.clients.retain(|id, entry| match self.owners.get(id) {
            Some(owner) => *owner == conn,
            None => crate::cluster_presence::may_claim(
                &self.awareness,
                self.remote_presence.contains_key(id),
                *id,
                entry,
            ),
        });
        if let Err(error) = self.check_presence(conn, &update) {
            self.metrics.presence_refused.inc();
            tracing::info!(room = %self.name, conn, %error, "refused oversized presence");
            self.evict(vec![(conn, Some(CloseReason::Policy(error.to_string())))]);
            return;
        }
        let sizes: Vec<(ClientID, usize)> = update
            .clients
            .iter()
            .map(|(id, entry)| (*id, presence_limits::state_bytes(&entry.json)))
            .collect();
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
                peer.presence_bytes.remove(id);
            }
            self.tombstones += 1;
        }
        for (id, size) in sizes {
            if peer.awareness_ids.contains(&id)
                && (summary.added.contains(&id) || summary.updated.contains(&id))
            {
                peer.presence_bytes.insert(id, size);
            }
        }
        // Renewals count as changes (they are in `updated`): relaying them is what keeps every
        // other client from timing this one out after 30 s.
        if let Some(frame) = self.encode_awareness(summary.all_changes()) {
            self.publish_presence(&frame);
            self.broadcast(frame, MessageKind::awareness);
        }
        self.compact_awareness();
    }

    /// Each state within its bound, and the connection's presence, once this update replaces
    /// what it held, within the per-connection bound.
    fn check_presence(&self, conn: ConnId, update: &AwarenessUpdate) -> Result<(), PresenceError> {
        let limits = &self.settings.presence;
        presence_limits::check_update(update, limits)?;
        let Some(peer) = self.peers.get(&conn) else { return Ok(()) };
        let incoming: Vec<(ClientID, usize)> = update
            .clients
            .iter()
            .map(|(id, entry)| (*id, presence_limits::state_bytes(&entry.json)))
            .collect();
        let held = peer.presence_bytes.iter().map(|(id, size)| (*id, *size));
        let total = presence_limits::connection_total_after(held, &incoming);
        if total > limits.max_connection_bytes {
            return Err(PresenceError::ConnectionTooLarge { total, limit: limits.max_connection_bytes });
        }
        Ok(())
    }

    fn publish_presence(&self, frame: &Bytes) {
        if let Some(cluster) = &self.cluster {
            let message = ClusterMessage::Awareness { origin: cluster.instance(), frame: frame.clone() };
            cluster.publish(&self.name, &message);
        }
    }

    /// Everyone's presence, in as many frames as keep each within `PRESENCE_FRAME_BYTES`: a
    /// room full of presence stays joinable.
    fn send_presence_to(&mut self, conn: ConnId) {
        let states = self.awareness.iter().filter_map(|(id, state)| Some((id, state.data.as_ref()?.len())));
        let frame_bytes = PRESENCE_FRAME_BYTES.max(self.settings.presence.max_state_bytes + 1024);
        for ids in presence_limits::group_for_frames(states.collect::<Vec<_>>(), frame_bytes) {
            if let Some(frame) = self.encode_awareness(ids) {
                self.send_to(conn, frame, MessageKind::awareness);
            }
        }
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
        // Counted once against the server's outbound budget, however many peers queue it.
        let mut shared = None;
        for (conn, peer) in &self.peers {
            let counted = shared.get_or_insert_with(|| peer.outbox.share(frame.clone()));
            match peer.outbox.push_shared(counted) {
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
            let mut owned = Vec::new();
            for id in peer.awareness_ids {
                if self.owners.get(&id) == Some(&conn) {
                    self.owners.remove(&id);
                    owned.push(id);
                }
            }
            // At the clocks the room holds, as the reference server removes a leaving client's
            // presence (not one past them, as `Awareness::remove_state` would): a client that
            // reconnects shows again with its next renewal (within 15 s), which one past them
            // would refuse here and in every other client until the renewal after (30 s).
            let removal = crate::cluster_presence::removal_at_known_clocks(&self.awareness, &owned);
            let removed = match self.awareness.apply_update_summary(removal) {
                Ok(Some(summary)) => summary.removed,
                _ => Vec::new(),
            };
            self.tombstones += removed.len();
            if let Some(frame) = self.encode_awareness(removed) {
                self.publish_presence(&frame);
                pending.extend(self.fan_out(&frame, MessageKind::awareness));
            }
        }
        self.compact_awareness();
    }
}

/// A document read from the store and applied, off the async threads.
struct Loaded {
    doc: Doc,
    /// Its exact size, encoded as one update.
    document_bytes: usize,
    log_rows: usize,
    log_bytes: usize,
    /// The highest store sequence the document contains.
    last_seq: i64,
}

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored document does not apply: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Unsafe(compaction::RebuildError),
}

async fn load(store: &dyn DocumentStore, room: &RoomName) -> Result<Loaded, LoadError> {
    let stored = store.load(room.as_str()).await?;
    let log_rows = stored.updates.len();
    let log_bytes = stored.updates.iter().map(|u| u.data.len()).sum();
    let last_seq =
        stored.updates.last().map(|u| u.seq).or(stored.snapshot.as_ref().map(|s| s.covers_seq)).unwrap_or(0);
    let (doc, document_bytes) = tokio::task::spawn_blocking(move || {
        compaction::rebuild(&stored).map(|doc| {
            let bytes = doc.transact().encode_state_as_update_v1(&yrs::StateVector::default()).len();
            (doc, bytes)
        })
    })
    .await
    .map_err(|e| LoadError::Corrupt(e.to_string()))?
    .map_err(|error| match error {
        compaction::RebuildError::Corrupt(why) => LoadError::Corrupt(why),
        unsafe_part => LoadError::Unsafe(unsafe_part),
    })?;
    Ok(Loaded { doc, document_bytes, log_rows, log_bytes, last_seq })
}

/// The task's result once it finishes; never, when there is none.
async fn join_opt<T>(task: &mut Option<tokio::task::JoinHandle<T>>) -> Result<T, String> {
    match task {
        Some(task) => task.await.map_err(|e| e.to_string()),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
