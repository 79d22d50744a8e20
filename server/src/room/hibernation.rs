//! Hibernation: a room whose clients have made no document change for a while drops its
//! document, and loads it again from the store when something needs it.
//!
//! Most open rooms are idle most of the time: people have a canvas open and look at it. The
//! store holds everything such a room's document holds (hibernating waits until nothing is
//! unstored, held back, being read or compacted), so the document can go; what stays is what the
//! store does not have: the peers, their presence (stock clients renew it every 15 s, and
//! relaying renewals needs no document), and the room's bookkeeping.
//!
//! While asleep, inputs that need no document (presence, a client leaving, a stateless message,
//! a permissions change, an overflowing send queue) are handled as usual. The first input that
//! needs the document (a change, a join, a step 1, an HTTP command) is held, the core asks the
//! actor to load the document (`Effect::Wake`), and once it arrives (`Input::Woken`) the held
//! inputs run in order. Rooms shared with other instances do not hibernate: what the others
//! publish needs the document.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::Instant;

use yrs::Doc;
use yrs::sync::Message;

use crate::close::CloseReason;

use super::core::RoomCore;
use super::effects::{Answer, Effect, Input};
use super::load::{LoadError, Loaded};
use super::sleep::Sleep;

/// What an asleep room's document field holds: an empty document nobody reads or writes (the
/// core holds every input that would, until it is awake). One for the process, so sleeping
/// costs no document at all.
static ASLEEP: LazyLock<Doc> = LazyLock::new(Doc::new);

impl Input {
    /// Whether handling this input reads or changes the document (or the journal that writes
    /// it). Everything else is presence and peer bookkeeping.
    fn needs_document(&self) -> bool {
        match self {
            Input::Messages { messages, .. } => !messages.iter().all(|message| {
                matches!(
                    message,
                    Message::Awareness(_) | Message::AwarenessQuery | Message::Auth(_) | Message::Custom(..)
                )
            }),
            Input::Leave { .. }
            | Input::Stateless { .. }
            | Input::PermissionsChanged
            | Input::Overflowed(_)
            | Input::ClusterCheck { .. }
            | Input::Hibernate
            | Input::Woken(_) => false,
            Input::Join { .. }
            | Input::Restore { .. }
            | Input::State { .. }
            | Input::Apply { .. }
            | Input::Remote(_)
            | Input::CatchUp
            | Input::Subscribed
            | Input::Stored { .. }
            | Input::WriteFailed
            | Input::CaughtUp(_)
            | Input::Compacted => true,
        }
    }
}

impl RoomCore {
    /// Whether the document is dropped (asleep or being loaded again).
    pub(crate) fn is_hibernating(&self) -> bool {
        !matches!(self.hibernation.sleep, Sleep::Awake)
    }

    /// The document is being loaded again: the actor takes no more commands until it is.
    pub(crate) fn is_waking(&self) -> bool {
        matches!(self.hibernation.sleep, Sleep::Waking(_))
    }

    /// When the room may hibernate if nothing happens before (`None`: not now; checked again
    /// after every input). [`Input::Hibernate`] at that time makes it sleep.
    pub(crate) fn hibernate_at(&self) -> Option<Instant> {
        let after = self.hibernation.after;
        (!after.is_zero() && self.may_sleep()).then(|| self.hibernation.last_active.map(|at| at + after))?
    }

    /// Everything the document holds is stored and nothing will touch it by itself.
    fn may_sleep(&self) -> bool {
        matches!(self.hibernation.sleep, Sleep::Awake)
            && self.instance.is_none()
            && self.has_peers()
            && self.journal.is_quiet()
            && !self.catching_up
            && !self.reload
            && !self.schedule.is_running()
    }

    /// Routes `input` while the room hibernates: `None` when it was held until the document is
    /// back; `Some` to handle it now.
    pub(super) fn gate(&mut self, input: Input, now: Instant) -> Option<Input> {
        if !input.needs_document() {
            return Some(input);
        }
        match &mut self.hibernation.sleep {
            Sleep::Awake => {
                self.hibernation.last_active = Some(now);
                Some(input)
            }
            Sleep::Waking(held) => {
                held.push_back(input);
                None
            }
            Sleep::Asleep => {
                self.hibernation.sleep = Sleep::Waking(VecDeque::from([input]));
                self.emit(Effect::Wake);
                None
            }
        }
    }

    /// [`Input::Hibernate`]: drops the document if the room may sleep and has been quiet long
    /// enough by `now`.
    pub(super) fn hibernate(&mut self, now: Instant) {
        if self.hibernate_at().is_none_or(|at| at > now) {
            return;
        }
        // Updates yrs holds back for missing dependencies are in no store: they keep the room
        // awake until they integrate (or the room reloads).
        if dojo_sync_protocol::update::pending_bytes(&self.doc) > 0 {
            self.hibernation.last_active = Some(now);
            return;
        }
        self.doc = ASLEEP.clone();
        self.journal.shrink();
        self.hibernation.sleep = Sleep::Asleep;
        self.metrics.rooms_hibernating.inc();
        self.metrics.room_hibernations.inc();
        tracing::debug!(room = %self.name, "hibernating: the document is dropped until the next change");
    }

    /// [`Input::Woken`]: the document is back; the inputs held meanwhile run in order. Returns
    /// them for the caller to handle.
    pub(super) fn woken(&mut self, loaded: Result<Loaded, LoadError>, now: Instant) -> VecDeque<Input> {
        let held = match std::mem::replace(&mut self.hibernation.sleep, Sleep::Awake) {
            Sleep::Waking(held) => held,
            other => {
                // Not waiting for a document: nothing to do with this one.
                self.hibernation.sleep = other;
                return VecDeque::new();
            }
        };
        self.metrics.rooms_hibernating.dec();
        match loaded {
            Ok(loaded) => {
                self.metrics.room_wakes.inc();
                self.doc = loaded.doc;
                self.size = crate::document_size::DocumentSize::new(self.size.limit(), loaded.document_bytes);
                self.hibernation.last_active = Some(now);
                held
            }
            Err(error) => {
                // As when a write fails: nobody may be served a document that is not the stored
                // one. Clients reconnect to a fresh load; HTTP callers are told it failed.
                tracing::error!(room = %self.name, %error, "cannot wake the room: its document does not load");
                self.reload = true;
                for input in held {
                    match input {
                        Input::Restore { id, .. } => {
                            self.answer(id, Answer::Restored(Err(super::RestoreError::NotStored)))
                        }
                        Input::Apply { id, .. } => {
                            self.answer(id, Answer::Applied(Err(super::ApplyError::NotStored)))
                        }
                        Input::State { id } => self.answer(id, Answer::Dropped),
                        Input::Join { conn, .. } => self
                            .emit(Effect::Disconnect { conn, reason: Some(CloseReason::StorageUnavailable) }),
                        _ => {}
                    }
                }
                let effects = self.close_all(CloseReason::StorageUnavailable);
                for effect in effects {
                    self.emit(effect);
                }
                VecDeque::new()
            }
        }
    }
}
