//! `room.updated`, throttled in the room actor: at most one per room per interval
//! (`DOJO_WEBHOOK_ROOM_INTERVAL_SECS`). A change inside the interval is not lost: the room
//! reports it when the interval ends, with the state vector as it then is. The actor calls
//! [`RoomUpdates::stored`] after each batch it stored and [`RoomUpdates::fire`] at
//! [`RoomUpdates::deadline`]; both only `try_send` (see `Webhooks::emit`).

use tokio::time::Instant;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact};

use super::{Trigger, Webhooks};
use crate::room_name::RoomName;

pub(crate) struct RoomUpdates {
    webhooks: Option<Webhooks>,
    /// No report before this.
    quiet_until: Option<Instant>,
    /// The state vector of a change not reported yet (reported at `quiet_until`).
    pending: Option<Vec<u8>>,
}

impl RoomUpdates {
    pub(super) fn new(webhooks: Option<Webhooks>) -> Self {
        Self { webhooks, quiet_until: None, pending: None }
    }

    /// A batch of this room's changes was stored (by this instance: each change is stored,
    /// and so reported, by one instance only).
    pub(crate) fn stored(&mut self, room: &RoomName, doc: &Doc, now: Instant) {
        let Some(webhooks) = &self.webhooks else { return };
        let state_vector = doc.transact().state_vector().encode_v1();
        if self.quiet_until.is_some_and(|until| now < until) {
            self.pending = Some(state_vector);
            return;
        }
        self.quiet_until = Some(now + webhooks.settings().room_interval());
        webhooks.emit(Trigger::RoomUpdated { room: room.clone(), state_vector });
    }

    /// When a held-back change is due to be reported.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().and(self.quiet_until)
    }

    /// Reports the held-back change, if any, and starts a new interval.
    pub(crate) fn fire(&mut self, room: &RoomName, now: Instant) {
        let (Some(webhooks), Some(state_vector)) = (&self.webhooks, self.pending.take()) else { return };
        self.quiet_until = Some(now + webhooks.settings().room_interval());
        webhooks.emit(Trigger::RoomUpdated { room: room.clone(), state_vector });
    }
}
