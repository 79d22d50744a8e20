//! The room's core: a state machine over the document, its peers and its journal, without I/O.
//!
//! It owns the room's `yrs::Doc`, `Awareness` and what it knows of each connection, and applies
//! [`Input`]s in arrival order; everything it wants done (frames to queue, batches to store,
//! messages to publish, reads to make, answers to give) comes out as [`Effect`]s for the actor
//! to carry out. Time comes in with each input; nothing in here waits, spawns or reads a clock,
//! so it runs the same in a unit test as in the server.
//!
//! The invariant it keeps: nothing a change carries reaches a peer (broadcast, step 2 reply,
//! acknowledgement, HTTP answer) before the journal reports the change stored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dojo_sync_protocol::codec::{encode_sync_step2, encode_update};
use dojo_sync_protocol::update::WriteRules;
use yrs::sync::{Message, SyncMessage};
use yrs::{ClientID, Doc, ReadTxn, Transact};

use crate::close::CloseReason;
use crate::cluster::{ClusterMessage, InstanceId};
use crate::document_size::DocumentSize;
use crate::journal::Journal;
use crate::metrics::{MessageKind, Metrics};
use crate::presence_states::PresenceStates;
use crate::room_name::RoomName;

use super::effects::{Answer, Compaction, Effect, Input, Recipients, RequestId};
use super::handle::{ConnId, RoomSettings, too_large};
use super::load::Loaded;
use super::protocol::PeerProtocol;
use super::replication::Replication;
use super::schedule::{CompactFrom, CompactionSchedule};
use super::sleep::Hibernation;

/// Bytes of updates yrs may hold back for missing dependencies before the room drops them by
/// reloading from the store (they were never stored). Honest clients hold back little, briefly:
/// a client always has the dependencies of what it sends, except content it got from a peer
/// that has not reached the server yet.
const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// Held until the journal says the changes they depend on are stored.
pub(super) enum AfterStore {
    /// A frame computed from a document holding unstored changes (a sync step 2), or an
    /// acknowledgement of a change.
    Frame {
        conn: ConnId,
        frame: Bytes,
        kind: MessageKind,
    },
    Restored(RequestId),
    Applied(RequestId),
    State(RequestId, Vec<u8>),
}

pub(super) struct PeerState {
    /// Awareness client ids this connection controls; removed for everyone when it leaves.
    pub(super) awareness_ids: HashSet<ClientID>,
    /// Bytes of the presence state of each id it controls (their sum is bounded).
    pub(super) presence_bytes: HashMap<ClientID, usize>,
    can_write: bool,
    /// A read-only client is told once that its edits are refused, not on every keystroke.
    told_read_only: bool,
    pub(super) protocol: PeerProtocol,
    /// Hocuspocus updates from this peer held back for missing dependencies: acknowledged
    /// with the peer's next update that leaves nothing held back (they are stored then).
    held_acks: usize,
    rules: WriteRules<'static>,
}

pub(crate) struct RoomCore {
    pub(super) name: RoomName,
    pub(super) doc: Doc,
    pub(super) awareness: PresenceStates,
    /// Effects naming several peers list them in connection order (`peer_ids`), not in this
    /// map's, so that a failing randomized seed replays exactly. Not a BTreeMap: its smallest
    /// node holds eleven entries, which costs a room with one client more than it needs. Boxed:
    /// the map allocates its slots four at a time, and a slot then holds a pointer, not a peer.
    pub(super) peers: HashMap<ConnId, Box<PeerState>>,
    /// Which connection controls each live awareness client id. A connection may not change or
    /// remove another connection's presence.
    pub(super) owners: HashMap<ClientID, ConnId>,
    /// Connections removed for what they sent: their frames still in the queue are dropped.
    /// (A client that just closed is not in here: edits it sent before closing still count.)
    pub(super) refused: HashSet<ConnId>,
    pub(super) tombstones: usize,
    pub(super) settings: Arc<RoomSettings>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) journal: Journal<AfterStore>,
    pub(super) schedule: CompactionSchedule,
    /// Whether the document is held, dropped, or being loaded again (see `hibernation.rs`).
    pub(super) hibernation: Hibernation,
    /// Set when the document must be rebuilt from the store (see `MAX_PENDING_BYTES`).
    pub(super) reload: bool,
    /// Storing failed: the document holds changes the store may not, and the room is ending.
    failed: bool,
    /// This instance, when the room is shared with others through the cluster.
    pub(super) instance: Option<InstanceId>,
    pub(super) replication: Replication,
    /// A catch-up read is under way.
    pub(super) catching_up: bool,
    /// Presence of clients connected to other instances: whose, and when last heard of.
    pub(super) remote_presence: HashMap<ClientID, (InstanceId, Instant)>,
    /// How big the document is, at least (see `document_size.rs`).
    pub(super) size: DocumentSize,
    effects: Vec<Effect>,
}

impl RoomCore {
    /// A room serving a document just loaded from the store. `instance`: this instance's id
    /// when the room is shared through the cluster.
    pub(crate) fn new(
        name: RoomName,
        settings: Arc<RoomSettings>,
        metrics: Arc<Metrics>,
        instance: Option<InstanceId>,
        loaded: Loaded,
    ) -> Self {
        let doc = loaded.doc;
        RoomCore {
            name,
            awareness: PresenceStates::default(),
            doc,
            peers: HashMap::new(),
            owners: HashMap::new(),
            refused: HashSet::new(),
            tombstones: 0,
            journal: Journal::new(settings.max_batch_updates),
            schedule: CompactionSchedule::new(settings.compaction, loaded.log_rows, loaded.log_bytes),
            hibernation: Hibernation::new(settings.hibernate_after),
            metrics,
            reload: false,
            failed: false,
            instance,
            replication: Replication::loaded(loaded.last_seq),
            catching_up: false,
            remote_presence: HashMap::new(),
            size: DocumentSize::new(settings.max_document_bytes, loaded.document_bytes),
            settings,
            effects: Vec::new(),
        }
    }

    /// Applies one input at time `now` and returns what to do about it, in order.
    pub(crate) fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        match input {
            Input::Hibernate => self.hibernate(now),
            Input::Woken(loaded) => {
                for held in self.woken(loaded, now) {
                    self.step(held, now);
                }
            }
            input => {
                if let Some(input) = self.gate(input, now) {
                    self.step(input, now);
                }
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// Handles one input, its effects added to `effects`.
    fn step(&mut self, input: Input, now: Instant) {
        match input {
            // Handled by `handle`.
            Input::Hibernate | Input::Woken(_) => {}
            Input::Join { conn, can_write, protocol, rules } => self.join(conn, can_write, protocol, rules),
            Input::Messages { conn, messages } => {
                for message in messages {
                    if self.refused.contains(&conn) {
                        break;
                    }
                    self.message(conn, message);
                }
            }
            Input::Leave { conn } => {
                // A connection sends nothing after its Leave, so its entry can go.
                self.refused.remove(&conn);
                self.evict(vec![(conn, None)]);
            }
            Input::Stateless { conn, body } => self.relay_stateless(conn, body),
            Input::Restore { id, snapshot } => self.restore(id, &snapshot),
            Input::State { id } => self.state(id),
            Input::Apply { id, update, rules } => self.apply_http_update(id, &update, rules),
            Input::Remote(message) => self.on_remote(message, now),
            Input::CatchUp => self.start_catch_up(true),
            Input::Subscribed => self.on_subscribed(),
            Input::PermissionsChanged => self.permissions_changed(),
            Input::Stored { last_seq } => self.on_stored(last_seq, now),
            Input::WriteFailed => {
                // The room stops: nothing more to write or compact.
                self.on_write_failed();
                return;
            }
            Input::CaughtUp(outcome) => self.on_caught_up(outcome, now),
            Input::Compacted => self.schedule.finished(),
            Input::ClusterCheck { dead } => self.cluster_check(&dead, now),
            Input::Overflowed(conns) => {
                self.evict(conns.into_iter().map(|conn| (conn, Some(CloseReason::SlowConsumer))).collect())
            }
        }
        // As the actor's loop did after every event: start the next write, and compact when due.
        if let Some(batch) = self.journal.next_batch() {
            self.effects.push(Effect::Write(batch));
        }
        // A failed room compacts nothing: its journal is abandoned, so it would look quiet while
        // its document holds changes that were never stored.
        if !self.failed && self.schedule.is_due() {
            let live = self.live_document();
            if let Some(from) = self.schedule.poll(live) {
                self.metrics.compactions.inc();
                let compaction = match from {
                    CompactFrom::Document => self.fold(),
                    CompactFrom::Store => Compaction::FromStore,
                };
                if matches!(compaction, Compaction::Snapshot { .. }) {
                    self.metrics.compactions_folded.inc();
                }
                self.effects.push(Effect::Compact(compaction));
            }
        }
    }

    /// Whether a connection was removed for what it sent (its queued frames are dropped).
    #[cfg(test)]
    pub(crate) fn is_refused(&self, conn: ConnId) -> bool {
        self.refused.contains(&conn)
    }

    pub(crate) fn has_peers(&self) -> bool {
        !self.peers.is_empty()
    }

    /// The document holds nothing unstored and no write is under way.
    pub(crate) fn is_quiet(&self) -> bool {
        self.journal.is_quiet() && !self.is_waking()
    }

    /// Too much waits to be stored: the actor stops taking commands until a write finishes.
    pub(crate) fn is_full(&self) -> bool {
        self.journal.is_full()
    }

    /// The document must be rebuilt from the store (once everything stored is stored).
    pub(crate) fn needs_reload(&self) -> bool {
        self.reload
    }

    /// A compaction is under way.
    #[cfg(test)]
    pub(crate) fn is_compacting(&self) -> bool {
        self.schedule.is_running()
    }

    /// The room's document.
    #[cfg(test)]
    pub(crate) fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Instances whose clients' presence the room holds (for [`Input::ClusterCheck`]).
    pub(crate) fn remote_origins(&self) -> HashSet<InstanceId> {
        self.remote_presence.values().map(|(origin, _)| *origin).collect()
    }

    /// Every peer's connection, in connection order (see `peers`).
    fn peer_ids(&self) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self.peers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Closes every connection with `reason` (the room is failing or reloading).
    pub(crate) fn close_all(&mut self, reason: CloseReason) -> Vec<Effect> {
        let everyone: Vec<_> = self.peer_ids().into_iter().map(|conn| (conn, Some(reason.clone()))).collect();
        self.evict(everyone);
        std::mem::take(&mut self.effects)
    }

    pub(super) fn emit(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    pub(super) fn answer(&mut self, id: RequestId, answer: Answer) {
        self.effects.push(Effect::Answer { id, answer });
    }

    pub(super) fn send_to(&mut self, conn: ConnId, frame: impl Into<Bytes>, kind: MessageKind) {
        if self.peers.contains_key(&conn) {
            self.effects.push(Effect::Deliver { to: Recipients::One(conn), frame: frame.into(), kind });
        }
    }

    pub(super) fn broadcast(&mut self, frame: impl Into<Bytes>, kind: MessageKind) {
        if !self.peers.is_empty() {
            self.effects.push(Effect::Deliver { to: Recipients::All, frame: frame.into(), kind });
        }
    }

    /// Sends `item` once everything applied so far is stored (at once if it already is).
    pub(super) fn after_durable(&mut self, item: AfterStore) {
        if let Some(item) = self.journal.after_durable(item) {
            self.release(item);
        }
    }

    fn release(&mut self, item: AfterStore) {
        match item {
            AfterStore::Frame { conn, frame, kind } => self.send_to(conn, frame, kind),
            AfterStore::Restored(id) => self.answer(id, Answer::Restored(Ok(()))),
            AfterStore::Applied(id) => self.answer(id, Answer::Applied(Ok(()))),
            AfterStore::State(id, state) => self.answer(id, Answer::State(state)),
        }
    }

    fn join(&mut self, conn: ConnId, can_write: bool, protocol: PeerProtocol, rules: WriteRules<'static>) {
        self.peers.insert(
            conn,
            Box::new(PeerState {
                awareness_ids: HashSet::new(),
                presence_bytes: HashMap::new(),
                can_write,
                told_read_only: false,
                protocol,
                held_acks: 0,
                rules,
            }),
        );
        let state = self.doc.transact().state_vector();
        if let Some((frame, kind)) = protocol.greeting(&state) {
            self.send_to(conn, frame, kind);
        }
        self.send_presence_to(conn);
    }

    fn message(&mut self, conn: ConnId, message: Message) {
        match message {
            Message::Sync(SyncMessage::SyncStep1(state_vector)) => {
                let Some(protocol) = self.peers.get(&conn).map(|peer| peer.protocol) else { return };
                let state = self.doc.transact().state_vector();
                if let Some((frame, kind)) = protocol.step1_answer_prefix(&state) {
                    self.after_durable(AfterStore::Frame { conn, frame, kind });
                }
                // Only what the document integrated: `encode_state_as_update_v1` would add any
                // update yrs held back for missing dependencies, which is not stored (and merges it
                // with an `unwrap`). Client updates that place content on what the document lacks
                // are refused before yrs sees them, so this is a second line, not the first.
                let missing = self.doc.transact().encode_diff_v1(&state_vector);
                let frame = Bytes::from(encode_sync_step2(&missing));
                // The reply may carry changes not stored yet: it waits until they are.
                self.after_durable(AfterStore::Frame { conn, frame, kind: MessageKind::sync_step2 });
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

    /// Not applied, stored nor relayed; the client is told as its protocol expects.
    fn refuse_read_only(&mut self, conn: ConnId, update: &[u8]) {
        self.metrics.read_only_refusals.inc();
        let would_change = dojo_sync_protocol::update::would_change(&self.doc, update);
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        if let Some((frame, kind)) = peer.protocol.read_only_answer(would_change, &mut peer.told_read_only) {
            self.send_to(conn, frame, kind);
        }
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
    pub(super) fn apply_within_limits(
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

    /// Acknowledges a stored update, for protocols that expect it: released once everything
    /// applied so far (this update included) is stored, in the same `on_stored` as its
    /// broadcast. An update yrs holds back for missing dependencies is not stored yet, so its
    /// acknowledgement waits for an update of the peer's that leaves nothing held back.
    fn acknowledge(&mut self, conn: ConnId) {
        let nothing_held = dojo_sync_protocol::update::pending_bytes(&self.doc) == 0;
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        let Some((frame, kind)) = peer.protocol.stored_ack() else { return };
        if !nothing_held {
            peer.held_acks += 1;
            return;
        }
        let acks = std::mem::take(&mut peer.held_acks) + 1;
        for _ in 0..acks {
            self.after_durable(AfterStore::Frame { conn, frame: frame.clone(), kind });
        }
    }

    /// Relays a stateless message to the room's other peers that take them.
    fn relay_stateless(&mut self, conn: ConnId, body: Bytes) {
        if !self.peers.contains_key(&conn) || self.refused.contains(&conn) {
            return;
        }
        let mut to: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(other, peer)| **other != conn && peer.protocol.receives_stateless())
            .map(|(other, _)| *other)
            .collect();
        to.sort_unstable();
        if !to.is_empty() {
            self.emit(Effect::Deliver {
                to: Recipients::Some(to),
                frame: body,
                kind: MessageKind::stateless,
            });
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

    pub(super) fn permissions_changed(&mut self) {
        let everyone: Vec<_> =
            self.peer_ids().into_iter().map(|conn| (conn, Some(CloseReason::PermissionsChanged))).collect();
        self.evict(everyone);
    }

    /// A batch is stored: now everyone may see it.
    fn on_stored(&mut self, last_seq: i64, now: Instant) {
        let Some(written) = self.journal.stored(last_seq) else { return };
        if !written.changes.is_empty() {
            let first = written.last_seq - written.changes.len() as i64 + 1;
            self.replication.note_stored(first, written.last_seq, now);
            if let Some(origin) = self.instance {
                self.emit(Effect::Publish(ClusterMessage::Updates {
                    origin,
                    first_seq: first,
                    last_seq: written.last_seq,
                    changes: written.changes.clone(),
                }));
            }
        }
        self.metrics.persisted_updates.inc_by(written.changes.len() as u64);
        self.metrics.persisted_batches.inc();
        self.schedule.stored(&written.changes);
        for change in &written.changes {
            // Everyone gets it, the sender too: y-websocket's sync status counts an update as
            // confirmed when it comes back.
            self.broadcast(encode_update(change), MessageKind::update);
        }
        for item in written.released {
            self.release(item);
        }
    }

    /// Storing failed even after retries. The document now holds changes the store does not, so
    /// it must not be served: everyone is disconnected (their clients still hold their edits and
    /// send them again on reconnect) and the next connection loads the room afresh.
    fn on_write_failed(&mut self) {
        self.failed = true;
        self.metrics.persist_failures.inc();
        for item in self.journal.abandon() {
            let (id, answer) = match item {
                AfterStore::Restored(id) => (id, Answer::Restored(Err(super::RestoreError::NotStored))),
                AfterStore::Applied(id) => (id, Answer::Applied(Err(super::ApplyError::NotStored))),
                // Dropping the reply channel tells the caller the room failed.
                AfterStore::State(id, _) => (id, Answer::Dropped),
                AfterStore::Frame { .. } => continue,
            };
            self.answer(id, answer);
        }
        let everyone: Vec<_> =
            self.peer_ids().into_iter().map(|conn| (conn, Some(CloseReason::StorageUnavailable))).collect();
        self.evict(everyone);
    }
}
