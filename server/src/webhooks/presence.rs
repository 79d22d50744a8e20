//! `user.entered` / `user.left`: a signed-in user's first connection to a room opens their
//! presence there, the end of their last one closes it. Counted per room and user on this
//! instance (a user connected through two instances is reported by each).

use std::collections::HashMap;
use std::sync::Mutex;

use dojo_ids::UserId;

use super::{Trigger, Webhooks};
use crate::room_name::RoomName;

/// Connections per room and user. A std mutex: held for a map update only, never across an
/// await.
#[derive(Debug, Default)]
pub(super) struct Presence {
    connections: Mutex<HashMap<(RoomName, UserId), usize>>,
}

impl Presence {
    /// Counts one more connection; returns whether it is the user's first in the room and how
    /// many users the room then has.
    fn enter(&self, room: &RoomName, user: &UserId) -> (bool, usize) {
        let mut map = self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = map.entry((room.clone(), user.clone())).or_insert(0);
        *count += 1;
        let first = *count == 1;
        (first, users_in(&map, room))
    }

    /// Counts one connection less; returns whether it was the user's last and how many users
    /// the room still has.
    fn leave(&self, room: &RoomName, user: &UserId) -> (bool, usize) {
        let mut map = self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (room.clone(), user.clone());
        let last = match map.get_mut(&key) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                map.remove(&key);
                true
            }
            None => false,
        };
        (last, users_in(&map, room))
    }
}

// A scan of the map: it holds one entry per signed-in connection's (room, user), bounded by the
// connection limit, and is walked once per first or last connection only.
fn users_in(map: &HashMap<(RoomName, UserId), usize>, room: &RoomName) -> usize {
    map.keys().filter(|(r, _)| r == room).count()
}

/// Held for a signed-in connection's lifetime (in `admission::Admitted`).
pub(crate) struct PresenceGuard {
    webhooks: Webhooks,
    room: RoomName,
    user: UserId,
}

impl PresenceGuard {
    pub(super) fn new(webhooks: Webhooks, room: RoomName, user: UserId) -> Self {
        let (first, users) = webhooks.inner.presence.enter(&room, &user);
        if first {
            webhooks.emit(Trigger::UserEntered { room: room.clone(), user: user.clone(), users });
        }
        Self { webhooks, room, user }
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let (last, users) = self.webhooks.inner.presence.leave(&self.room, &self.user);
        if last {
            self.webhooks.emit(Trigger::UserLeft { room: self.room.clone(), user: self.user.clone(), users });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_connection_enters_and_the_last_leaves() {
        let presence = Presence::default();
        let room = RoomName::parse("r").unwrap();
        let (a, b) = (UserId::from("u_a"), UserId::from("u_b"));
        assert_eq!(presence.enter(&room, &a), (true, 1));
        assert_eq!(presence.enter(&room, &a), (false, 1));
        assert_eq!(presence.enter(&room, &b), (true, 2));
        assert_eq!(presence.leave(&room, &a), (false, 2));
        assert_eq!(presence.leave(&room, &a), (true, 1));
        assert_eq!(presence.leave(&room, &a), (false, 1), "an extra leave changes nothing");
        assert_eq!(presence.leave(&room, &b), (true, 0));
    }
}
