//! How many connections each signed-in user holds, across `/rooms` and `/collab`.
//!
//! One token could open thousands of sockets and take the slots everyone else needs. A slot is
//! taken after authentication (the user is known then) and released when its guard drops, so a
//! connection that ends in any way, panics included, gives its slot back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many connections for this user: at most {limit} at once; close some and retry")]
pub struct TooManyConnections {
    pub limit: usize,
}

/// Open connections per user. A std mutex: it is taken once when a connection opens and once
/// when it closes, never held across an await, never per frame.
#[derive(Debug)]
pub struct UserConnections {
    /// 0: no limit.
    limit: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One connection's slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct UserConnectionSlot {
    owner: Arc<UserConnections>,
    user: String,
}

impl UserConnections {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, open: Mutex::new(HashMap::new()) })
    }

    /// Takes one of `user`'s slots, or says that they are all in use.
    pub fn try_acquire(self: &Arc<Self>, user: &str) -> Result<UserConnectionSlot, TooManyConnections> {
        let mut open = self.lock();
        let count = open.entry(user.to_owned()).or_insert(0);
        if self.limit > 0 && *count >= self.limit {
            return Err(TooManyConnections { limit: self.limit });
        }
        *count += 1;
        Ok(UserConnectionSlot { owner: self.clone(), user: user.to_owned() })
    }

    /// Connections `user` holds now.
    #[cfg(test)]
    pub fn open(&self, user: &str) -> usize {
        self.lock().get(user).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // The map stays consistent even if a holder panicked: every change is one statement.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for UserConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.owner.lock();
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Only users with open connections are remembered: the map cannot grow past them.
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_at_most_the_limit_and_slots_come_back_when_dropped() {
        let connections = UserConnections::new(2);
        let a = connections.try_acquire("ada").expect("first");
        let b = connections.try_acquire("ada").expect("second");
        assert_eq!(connections.try_acquire("ada").unwrap_err(), TooManyConnections { limit: 2 });
        // Another user is not affected.
        let _bob = connections.try_acquire("bob").expect("bob");
        drop(a);
        let _c = connections.try_acquire("ada").expect("a slot came back");
        drop(b);
        assert_eq!(connections.open("ada"), 1);
    }

    #[test]
    fn users_without_connections_are_forgotten() {
        let connections = UserConnections::new(1);
        drop(connections.try_acquire("ada").expect("slot"));
        assert!(connections.lock().is_empty());
    }

    #[test]
    fn zero_means_no_limit() {
        let connections = UserConnections::new(0);
        let slots: Vec<_> = (0..1000).map(|_| connections.try_acquire("ada").expect("slot")).collect();
        assert_eq!(connections.open("ada"), 1000);
        drop(slots);
        assert_eq!(connections.open("ada"), 0);
    }
}
