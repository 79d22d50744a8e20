//! What other instances stored and their clients' presence: the core's side of the cluster.
//! Sequence bookkeeping is `replication.rs`; the transport is `crate::cluster`.

use std::time::{Duration, Instant};

use dojo_sync_protocol::codec::encode_update;
use dojo_sync_protocol::update::apply_client_update;
use yrs::ClientID;
use yrs::sync::Message;

use crate::cluster::{ClusterMessage, InstanceId};
use crate::metrics::MessageKind;
use crate::presence_limits;

use super::core::RoomCore;
use super::effects::{CatchUp, Effect};
use super::load::CatchUpError;

/// Presence states a room keeps for clients of other instances (each within the state bound).
const MAX_REMOTE_PRESENCE: usize = 4096;

/// Presence from another instance not renewed for this long is removed (clients renew every
/// 15 s; the reference server times them out after 30 s).
const REMOTE_PRESENCE_TIMEOUT: Duration = Duration::from_secs(40);

impl RoomCore {
    pub(super) fn on_remote(&mut self, message: ClusterMessage, now: Instant) {
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
                self.replication.note_stored(first_seq, last_seq, now);
            }
            ClusterMessage::Awareness { origin, frame } => self.on_remote_presence(origin, &frame, now),
            ClusterMessage::PermissionsChanged { .. } => self.permissions_changed(),
            ClusterMessage::PresenceQuery { .. } => self.publish_local_presence(),
        }
    }

    /// From now on this room hears what others publish; what they published before (their
    /// clients' presence, sent once and renewed only every 15 s) it asks for. Our own clients'
    /// presence goes out again too, for instances that subscribed after it was first published
    /// and before this.
    pub(super) fn on_subscribed(&mut self) {
        let Some(origin) = self.instance else { return };
        self.publish_local_presence();
        self.emit(Effect::Publish(ClusterMessage::PresenceQuery { origin }));
    }

    fn on_remote_presence(&mut self, origin: InstanceId, frame: &[u8], now: Instant) {
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
            for (id, entry) in &update.clients {
                if entry.json.as_ref() == "null" {
                    self.remote_presence.remove(id);
                } else {
                    self.remote_presence.insert(*id, (origin, now));
                }
            }
            if let Some(summary) = self.awareness.apply(update) {
                self.tombstones += summary.removed.len();
                if let Some(frame) = self.encode_awareness(summary.all_changes()) {
                    self.broadcast(frame, MessageKind::awareness);
                }
            }
        }
        self.compact_awareness();
    }

    /// The periodic check of a room in a cluster: a gap open too long, or (with clients) changes
    /// the room never heard of, make it read the store; presence of clients whose instance died
    /// (`dead`) or went silent is removed.
    pub(super) fn cluster_check(&mut self, dead: &[InstanceId], now: Instant) {
        if self.replication.gap_overdue(now) {
            self.start_catch_up(true);
        } else if !self.peers.is_empty() {
            self.start_catch_up(false);
        }
        let expired: Vec<ClientID> = self
            .remote_presence
            .iter()
            .filter(|(_, (origin, heard))| {
                now.saturating_duration_since(*heard) >= REMOTE_PRESENCE_TIMEOUT || dead.contains(origin)
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
        if let Some(summary) = self.awareness.apply(removal) {
            self.tombstones += summary.removed.len();
            if let Some(frame) = self.encode_awareness(summary.removed) {
                self.broadcast(frame, MessageKind::awareness);
            }
        }
        self.compact_awareness();
    }

    /// Asks for a store read unless one is under way: `always` loads the document; otherwise
    /// only when the store holds sequences the room has not seen (one cheap query).
    pub(super) fn start_catch_up(&mut self, always: bool) {
        if self.catching_up {
            return;
        }
        self.catching_up = true;
        let seen = self.replication.seen();
        self.emit(Effect::CatchUp { always, seen });
    }

    pub(super) fn on_caught_up(&mut self, outcome: Result<CatchUp, CatchUpError>, now: Instant) {
        self.catching_up = false;
        let stored = match outcome {
            Ok(CatchUp::Read(stored)) => stored,
            Ok(CatchUp::UpToDate) => return,
            Err(error) => {
                // The next gap, resubscribe or periodic check tries again.
                tracing::warn!(room = %self.name, %error, "catching up from the store failed");
                return;
            }
        };
        self.metrics.cluster_catch_ups.inc();
        let last = stored.last_seq();
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
        self.replication.caught_up(last, now);
    }
}
