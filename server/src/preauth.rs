//! What a `/collab` socket may hold before it has authenticated anything.
//!
//! `/rooms` checks the token before the upgrade, so an unauthenticated client there costs no
//! socket. A Hocuspocus provider sends its token inside the socket, per document, so `/collab`
//! must upgrade first; without bounds, anonymous sockets that never authenticate held every
//! connection slot and megabytes each (issue 17, attack 2). Here they are bounded three ways:
//!
//! - **slots**: an unauthenticated socket holds a [`PreauthSlot`] from a small pool of its own
//!   (`DOJO_MAX_UNAUTHENTICATED`), never one of the `DOJO_MAX_CONNECTIONS` slots signed-in users
//!   need; it takes one of those only when its first document authenticates, and gives the
//!   pre-authentication slot back. One client address may hold only
//!   `DOJO_MAX_UNAUTHENTICATED_PER_IP` of the pool, so a single attacker cannot fill it;
//! - **bytes**: frames queued for documents whose token has not arrived reserve bytes from a
//!   server-wide [`PreauthBudget`] (`DOJO_PREAUTH_TOTAL_BYTES`), on top of the per-socket cap
//!   the socket enforces (`DOJO_PREAUTH_SOCKET_BYTES`);
//! - **time**: the socket closes itself when nothing authenticated by its deadline
//!   (`DOJO_AUTH_TIMEOUT_SECS`), whatever pings and pongs it exchanges.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The pre-authentication pool and byte budget, one per server.
pub struct Preauth {
    slots: Arc<Semaphore>,
    /// Slots held per client (`public_rate::client_key`), entries removed at zero.
    per_client: Arc<DashMap<String, usize>>,
    max_per_client: usize,
    /// Unauthenticated sockets open now (the pool's permits in use), for `/metrics`.
    sockets: Gauge,
    budget: Arc<PreauthBudget>,
}

impl Preauth {
    pub fn new(
        max_sockets: usize,
        max_per_client: usize,
        max_bytes: usize,
        sockets: Gauge,
        queued_bytes: Gauge,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_sockets)),
            per_client: Arc::new(DashMap::new()),
            max_per_client,
            sockets,
            budget: Arc::new(PreauthBudget::new(max_bytes, queued_bytes)),
        }
    }

    /// A slot for a socket of `client` that has not authenticated yet, if the pool has one
    /// and the client has not used up its share.
    pub fn try_slot(&self, client: String) -> Result<PreauthSlot, PoolFull> {
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| PoolFull::Server)?;
        match self.per_client.entry(client.clone()) {
            Entry::Occupied(mut held) if *held.get() < self.max_per_client => *held.get_mut() += 1,
            Entry::Vacant(vacant) if self.max_per_client > 0 => {
                vacant.insert(1);
            }
            _ => return Err(PoolFull::Client),
        }
        self.sockets.inc();
        Ok(PreauthSlot {
            _permit: permit,
            sockets: self.sockets.clone(),
            per_client: self.per_client.clone(),
            client,
        })
    }

    pub fn budget(&self) -> &Arc<PreauthBudget> {
        &self.budget
    }
}

/// Why no pre-authentication slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolFull {
    /// Every slot of the pool is taken.
    Server,
    /// This client address holds its whole share.
    Client,
}

/// A socket's place in the pre-authentication pool, given back when dropped.
pub struct PreauthSlot {
    _permit: OwnedSemaphorePermit,
    sockets: Gauge,
    per_client: Arc<DashMap<String, usize>>,
    client: String,
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        self.sockets.dec();
        if let Entry::Occupied(mut held) = self.per_client.entry(std::mem::take(&mut self.client)) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
    }
}

/// Which pool a `/collab` socket counts against. Held, never read: the slot is given back
/// when the value drops.
#[allow(dead_code)]
pub enum SocketSlot {
    Unauthenticated(PreauthSlot),
    /// One of the `DOJO_MAX_CONNECTIONS` slots.
    Authenticated(OwnedSemaphorePermit),
}

impl SocketSlot {
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Self::Authenticated(_))
    }
}

/// Bytes queued before authentication, across every socket. Reservations give their bytes
/// back when dropped, so a socket that closes, or a queue that is handled, frees them.
pub struct PreauthBudget {
    limit: usize,
    used: AtomicUsize,
    gauge: Gauge,
}

impl PreauthBudget {
    pub fn new(limit: usize, gauge: Gauge) -> Self {
        Self { limit, used: AtomicUsize::new(0), gauge }
    }

    /// Reserves `bytes`, or `None` when that would pass the limit.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .ok()?;
        self.gauge.inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
        Some(Reservation { budget: self.clone(), bytes })
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes held from a [`PreauthBudget`] until dropped.
pub struct Reservation {
    budget: Arc<PreauthBudget>,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.gauge.dec_by(i64::try_from(self.bytes).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_what_would_pass_its_limit_and_frees_on_drop() {
        let gauge = Gauge::default();
        let budget = Arc::new(PreauthBudget::new(100, gauge.clone()));
        let first = budget.try_reserve(60).expect("within the limit");
        assert!(budget.try_reserve(41).is_none(), "60 + 41 > 100");
        let second = budget.try_reserve(40).expect("exactly the limit");
        assert_eq!((budget.used(), gauge.get()), (100, 100));
        drop(first);
        assert_eq!((budget.used(), gauge.get()), (40, 40));
        assert!(budget.try_reserve(usize::MAX).is_none(), "no overflow");
        drop(second);
        assert_eq!((budget.used(), gauge.get()), (0, 0));
    }

    #[test]
    fn the_pool_has_a_fixed_number_of_slots_given_back_on_drop() {
        let sockets = Gauge::default();
        let preauth = Preauth::new(2, 2, 10, sockets.clone(), Gauge::default());
        let a = preauth.try_slot("a".into()).expect("first");
        let _b = preauth.try_slot("b".into()).expect("second");
        assert_eq!(preauth.try_slot("c".into()).err(), Some(PoolFull::Server));
        assert_eq!(sockets.get(), 2);
        drop(a);
        assert_eq!(sockets.get(), 1);
        assert!(preauth.try_slot("c".into()).is_ok(), "a slot was given back");
    }

    #[test]
    fn one_client_holds_at_most_its_share_and_gets_it_back() {
        let preauth = Preauth::new(10, 2, 10, Gauge::default(), Gauge::default());
        let first = preauth.try_slot("1.2.3.4".into()).expect("first");
        let _second = preauth.try_slot("1.2.3.4".into()).expect("second");
        assert_eq!(preauth.try_slot("1.2.3.4".into()).err(), Some(PoolFull::Client));
        let _other = preauth.try_slot("5.6.7.8".into()).expect("another client has its own share");
        drop(first);
        let _again = preauth.try_slot("1.2.3.4".into()).expect("the share was given back");
        drop((_second, _again));
        assert!(!preauth.per_client.contains_key("1.2.3.4"), "no entry is kept at zero");
    }
}
