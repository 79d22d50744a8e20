//! Who opened which rooms: a per-user share of the server-wide room limit.
//!
//! `DOJO_MAX_ROOMS` bounds the rooms one instance holds; without a share per user, one account
//! (with many workflows, or many public ones to read) could take every slot and keep everyone
//! else's rooms from opening. A room counts against the user whose connection or request
//! opened it on this instance, from the moment it opens until it unloads; joining a room that
//! is already open costs nothing. Anonymous callers (dev mode only) are not counted.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// Rooms open on this instance, counted per user who opened them.
pub struct RoomOpeners {
    /// 0: no quota (nothing is counted).
    max_per_user: usize,
    /// Only users with at least one room open here: the map shrinks as rooms unload.
    counts: DashMap<String, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "you have opened {0} rooms that are still open on this server, the most one user may; close some and retry"
)]
pub struct RoomQuotaFull(pub usize);

impl RoomOpeners {
    pub fn new(max_per_user: usize) -> Self {
        Self { max_per_user, counts: DashMap::new() }
    }

    /// Counts one more room opened by `user`, unless that would pass the quota.
    pub fn try_take(&self, user: &str) -> Result<(), RoomQuotaFull> {
        if self.max_per_user == 0 {
            return Ok(());
        }
        match self.counts.entry(user.to_owned()) {
            Entry::Occupied(mut held) => {
                if *held.get() >= self.max_per_user {
                    return Err(RoomQuotaFull(self.max_per_user));
                }
                *held.get_mut() += 1;
            }
            Entry::Vacant(slot) => {
                slot.insert(1);
            }
        }
        Ok(())
    }

    /// One of `user`'s rooms unloaded.
    pub fn release(&self, user: &str) {
        if self.max_per_user == 0 {
            return;
        }
        if let Entry::Occupied(mut held) = self.counts.entry(user.to_owned()) {
            if *held.get() <= 1 {
                held.remove();
            } else {
                *held.get_mut() -= 1;
            }
        }
    }

    /// Rooms open here that `user` opened.
    #[cfg(test)]
    pub fn held(&self, user: &str) -> usize {
        self.counts.get(user).map_or(0, |held| *held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_quota_and_gets_slots_back_as_rooms_unload() {
        let openers = RoomOpeners::new(2);
        assert_eq!(openers.try_take("alice"), Ok(()));
        assert_eq!(openers.try_take("alice"), Ok(()));
        assert_eq!(openers.try_take("alice"), Err(RoomQuotaFull(2)));
        assert_eq!(openers.try_take("bob"), Ok(()), "one user's quota is not another's");
        openers.release("alice");
        assert_eq!(openers.held("alice"), 1);
        assert_eq!(openers.try_take("alice"), Ok(()));
        openers.release("alice");
        openers.release("alice");
        assert_eq!(openers.held("alice"), 0);
        assert!(openers.counts.get("alice").is_none(), "users with nothing open are forgotten");
        openers.release("alice");
        assert_eq!(openers.held("alice"), 0, "an extra release never goes below zero");
    }

    #[test]
    fn zero_means_no_quota() {
        let openers = RoomOpeners::new(0);
        for _ in 0..1000 {
            assert_eq!(openers.try_take("alice"), Ok(()));
        }
        assert_eq!(openers.held("alice"), 0, "nothing is counted");
    }
}
