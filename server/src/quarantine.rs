//! Rooms whose stored document must not be served.
//!
//! A room whose stored state fails the checks every client update gets (shared types nested
//! too deep, say: written before the check existed) or does not apply at all is quarantined:
//! its actor refuses everyone with a clear reason instead of loading it, and the reason is kept
//! here so the HTTP API can say why a room is unavailable rather than "try again". Loading it
//! again is tried on the next open (an operator may have repaired the store meanwhile); a load
//! that succeeds lifts the quarantine.

use std::sync::Mutex;

use crate::room_name::RoomName;

/// Most quarantined rooms remembered. Past it the oldest reason is forgotten: that room is
/// still refused when opened (its load fails again), it only loses the precise HTTP error.
const MAX_REMEMBERED: usize = 1024;

#[derive(Default)]
pub struct Quarantine {
    /// Oldest first; a handful of entries in practice, so a list is enough.
    rooms: Mutex<Vec<(RoomName, String)>>,
}

impl Quarantine {
    pub fn record(&self, room: &RoomName, reason: &str) {
        let mut rooms = self.lock();
        rooms.retain(|(name, _)| name != room);
        if rooms.len() >= MAX_REMEMBERED {
            rooms.remove(0);
        }
        rooms.push((room.clone(), reason.to_owned()));
    }

    pub fn lift(&self, room: &RoomName) {
        self.lock().retain(|(name, _)| name != room);
    }

    /// Why the room is quarantined, if it is.
    pub fn reason(&self, room: &RoomName) -> Option<String> {
        self.lock().iter().find(|(name, _)| name == room).map(|(_, reason)| reason.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(RoomName, String)>> {
        // A panic while holding this lock leaves a valid list behind: keep using it.
        self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("valid")
    }

    #[test]
    fn records_lifts_and_forgets_the_oldest_past_the_bound() {
        let quarantine = Quarantine::default();
        quarantine.record(&room("a"), "too deep");
        assert_eq!(quarantine.reason(&room("a")).as_deref(), Some("too deep"));
        assert_eq!(quarantine.reason(&room("b")), None);
        quarantine.lift(&room("a"));
        assert_eq!(quarantine.reason(&room("a")), None);
        for i in 0..=MAX_REMEMBERED {
            quarantine.record(&room(&format!("r{i}")), "x");
        }
        assert_eq!(quarantine.reason(&room("r0")), None, "the oldest is forgotten");
        assert!(quarantine.reason(&room(&format!("r{MAX_REMEMBERED}"))).is_some());
    }
}
