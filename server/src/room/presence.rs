//! Presence ownership: which connection controls which awareness client ids, the bounds on
//! what each may hold, and removing a connection together with its presence.

use bytes::Bytes;
use dojo_sync_protocol::codec::encode_message;
use yrs::ClientID;
use yrs::sync::{AwarenessUpdate, Message};

use crate::close::CloseReason;
use crate::cluster::ClusterMessage;
use crate::metrics::MessageKind;
use crate::presence_limits::{self, PresenceError};

use super::core::RoomCore;
use super::effects::Effect;
use super::handle::ConnId;

/// Removed awareness states kept as tombstones (their clocks); past this many the room forgets
/// them, so connection churn cannot grow memory without bound.
const MAX_AWARENESS_TOMBSTONES: usize = 1024;

/// Largest frame of presence a joining client receives; more presence goes in more frames.
const PRESENCE_FRAME_BYTES: usize = 64 * 1024;

impl RoomCore {
    pub(super) fn apply_awareness(&mut self, conn: ConnId, mut update: AwarenessUpdate) {
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
        let max_ids = self.settings.max_awareness_clients_per_connection;
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        for (id, entry) in &update.clients {
            if entry.json.as_ref() != "null" && !peer.awareness_ids.contains(id) {
                if peer.awareness_ids.len() >= max_ids {
                    let why = format!("a connection may control at most {max_ids} awareness client ids");
                    self.evict(vec![(conn, Some(CloseReason::Policy(why)))]);
                    return;
                }
                peer.awareness_ids.insert(*id);
                self.owners.insert(*id, conn);
            }
        }
        let Some(summary) = self.awareness.apply(update) else { return };
        let Some(peer) = self.peers.get_mut(&conn) else { return };
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

    pub(super) fn publish_presence(&mut self, frame: &Bytes) {
        if let Some(origin) = self.instance {
            self.emit(Effect::Publish(ClusterMessage::Awareness { origin, frame: frame.clone() }));
        }
    }

    /// The presence of this instance's own clients (never what it heard from others).
    pub(super) fn publish_local_presence(&mut self) {
        if let Some(frame) = self.encode_awareness(self.owners.keys().copied().collect()) {
            self.publish_presence(&frame);
        }
    }

    /// Everyone's presence, in as many frames as keep each within `PRESENCE_FRAME_BYTES`: a
    /// room full of presence stays joinable.
    pub(super) fn send_presence_to(&mut self, conn: ConnId) {
        let states = self.awareness.live().map(|(id, json)| (id, json.len()));
        let frame_bytes = PRESENCE_FRAME_BYTES.max(self.settings.presence.max_state_bytes + 1024);
        for ids in presence_limits::group_for_frames(states.collect::<Vec<_>>(), frame_bytes) {
            if let Some(frame) = self.encode_awareness(ids) {
                self.send_to(conn, frame, MessageKind::awareness);
            }
        }
    }

    pub(super) fn encode_awareness(&self, ids: Vec<ClientID>) -> Option<Bytes> {
        if ids.is_empty() {
            return None;
        }
        // Every id passed here is known to `awareness`, so this cannot fail; if it ever did,
        // skipping one presence frame is harmless (the next renewal carries the state).
        let update = self.awareness.update_with_clients(ids)?;
        Some(Bytes::from(encode_message(&Message::Awareness(update))))
    }

    pub(super) fn compact_awareness(&mut self) {
        if self.tombstones <= MAX_AWARENESS_TOMBSTONES {
            return;
        }
        self.awareness.drop_removed();
        self.tombstones = 0;
    }

    /// Removes connections from the room, telling each why (`None`: it left on its own), and
    /// tells everyone else their presence is gone. Each peer is removed at most once; telling
    /// the others can overflow more send queues, which the actor reports back as
    /// `Input::Overflowed`.
    pub(super) fn evict(&mut self, pending: Vec<(ConnId, Option<CloseReason>)>) {
        for (conn, reason) in pending {
            let Some(peer) = self.peers.remove(&conn) else { continue };
            if let Some(reason) = &reason {
                if *reason == CloseReason::SlowConsumer {
                    // Its edits already queued are good data: they are still applied.
                    self.metrics.slow_client_disconnects.inc();
                    tracing::info!(room = %self.name, conn, "disconnecting a client that reads too slowly");
                } else {
                    self.refused.insert(conn);
                }
            }
            self.emit(Effect::Disconnect { conn, reason });
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
            let removed = self.awareness.apply(removal).map(|summary| summary.removed).unwrap_or_default();
            self.tombstones += removed.len();
            if let Some(frame) = self.encode_awareness(removed) {
                self.publish_presence(&frame);
                self.broadcast(frame, MessageKind::awareness);
            }
        }
        self.compact_awareness();
    }
}
