//! A server-wide budget for bytes waiting to be sent to clients.
//!
//! Each send queue is bounded on its own (`send queue.rs`), but N clients that never read could each
//! fill theirs: memory grew with the number of slow readers. This counts every frame that sits
//! in an send queue or is being written to a socket, **once** however many connections it is
//! queued for (a broadcast is one `Bytes` shared by all its send queues: the count is kept by the
//! frame's owner and released when its last copy is dropped). When the total passes the
//! budget, the shedder closes the connections holding the most bytes (1013; they resync on
//! reconnect) until enough is on its way out.
//!
//! The hot path is one atomic add when a frame is created and one subtraction when it is
//! freed; the registry's lock is taken when a connection opens or closes and by the shedder,
//! never per frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::close::{CloseReason, Disconnect};
use crate::conn_id::ConnId;
use crate::metrics::Metrics;

/// How long the shedder lets closed connections free their memory before it judges again
/// (closing a socket takes a moment; without the pause it would close more than needed).
const SETTLE: Duration = Duration::from_millis(50);

/// Bytes one connection holds: queued in its send queue, and taken by its writer but not yet
/// flushed to the socket (tungstenite copies them into its write buffer meanwhile).
#[derive(Debug, Default)]
pub struct QueueBytes {
    pub queued: AtomicUsize,
    pub in_flight: AtomicUsize,
}

impl QueueBytes {
    pub fn total(&self) -> usize {
        self.queued.load(Ordering::Acquire).saturating_add(self.in_flight.load(Ordering::Acquire))
    }
}

#[derive(Debug)]
pub struct OutboundBudget {
    /// Bytes of frames alive in send queues or writers, each frame counted once.
    held: AtomicUsize,
    /// 0: no budget (nothing is shed).
    limit: usize,
    queues: Mutex<HashMap<ConnId, Registered>>,
    over: Notify,
}

#[derive(Debug)]
struct Registered {
    bytes: Arc<QueueBytes>,
    disconnect: Disconnect,
    /// Closed by the shedder, not gone yet: what it holds is about to be freed.
    shed: bool,
}

/// Keeps a connection's send queue known to the shedder; dropped with the send queue's receiver.
#[derive(Debug)]
pub struct Registration {
    budget: Arc<OutboundBudget>,
    conn: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.budget.lock().remove(&self.conn);
    }
}

/// The owner of a counted frame: gives its bytes back to the budget when the last copy goes.
struct Counted {
    frame: Bytes,
    budget: Arc<OutboundBudget>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.frame
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.frame.len(), Ordering::AcqRel);
    }
}

impl OutboundBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            limit,
            queues: Mutex::new(HashMap::new()),
            over: Notify::new(),
        })
    }

    /// A budget that never sheds (counts nonetheless): for send queues outside a server.
    #[cfg(test)]
    pub fn unlimited() -> Arc<Self> {
        Self::new(0)
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// The same bytes, counted against the budget until the last copy of the result is dropped.
    pub fn count(self: &Arc<Self>, frame: Bytes) -> Bytes {
        let len = frame.len();
        let held = self.held.fetch_add(len, Ordering::AcqRel).saturating_add(len);
        if self.limit > 0 && held > self.limit {
            self.over.notify_one();
        }
        Bytes::from_owner(Counted { frame, budget: self.clone() })
    }

    pub fn register(
        self: &Arc<Self>,
        conn: ConnId,
        bytes: Arc<QueueBytes>,
        disconnect: Disconnect,
    ) -> Registration {
        self.lock().insert(conn, Registered { bytes, disconnect, shed: false });
        Registration { budget: self.clone(), conn }
    }

    /// Closes the connections holding the most bytes while the budget is exceeded, until
    /// `shutdown`. Does nothing without a limit.
    pub fn spawn_shedder(self: &Arc<Self>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        if self.limit == 0 {
            return;
        }
        let budget = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = budget.over.notified() => {}
                    () = shutdown.cancelled() => return,
                }
                while budget.held() > budget.limit && !shutdown.is_cancelled() {
                    for disconnect in budget.mark_victims() {
                        metrics.outbound_budget_sheds.inc();
                        disconnect.trigger(CloseReason::OutboundBudget);
                    }
                    tokio::time::sleep(SETTLE).await;
                }
            }
        });
    }

    /// Picks (and marks) the connections to close now, given what is already on its way out.
    fn mark_victims(&self) -> Vec<Disconnect> {
        let held = self.held();
        let mut queues = self.lock();
        let leaving: usize = queues.values().filter(|q| q.shed).map(|q| q.bytes.total()).sum();
        let excess = held.saturating_sub(self.limit).saturating_sub(leaving);
        let candidates: Vec<(ConnId, usize)> =
            queues.iter().filter(|(_, q)| !q.shed).map(|(conn, q)| (*conn, q.bytes.total())).collect();
        let victims = choose_victims(candidates, excess);
        if !victims.is_empty() {
            tracing::warn!(
                held,
                limit = self.limit,
                victims = victims.len(),
                "outbound budget exceeded; closing the slowest readers"
            );
        }
        victims
            .into_iter()
            .filter_map(|conn| {
                let queue = queues.get_mut(&conn)?;
                queue.shed = true;
                Some(queue.disconnect.clone())
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Registered>> {
        // Every change to the map is one statement: a panic elsewhere cannot leave it half-done.
        self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The connections to close to free `excess` bytes: the biggest holders first (the slowest
/// readers) until they cover it, and with them every connection holding at least half as much
/// as the biggest. Frames are shared: while several equally slow readers hold the same frames,
/// closing one of them frees nothing, so they go together rather than one per round while the
/// frames pile up. Connections holding nothing are never chosen.
pub fn choose_victims(mut candidates: Vec<(ConnId, usize)>, excess: usize) -> Vec<ConnId> {
    if excess == 0 {
        return Vec::new();
    }
    candidates.retain(|(_, bytes)| *bytes > 0);
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let Some(&(_, biggest)) = candidates.first() else { return Vec::new() };
    let mut freed = 0usize;
    let mut victims = Vec::new();
    for (conn, bytes) in candidates {
        if freed >= excess && bytes.saturating_mul(2) < biggest {
            break;
        }
        freed = freed.saturating_add(bytes);
        victims.push(conn);
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_biggest_holders_go_first_and_only_as_many_as_needed() {
        let candidates = vec![(1, 10), (2, 500), (3, 0), (4, 240), (5, 200)];
        assert_eq!(choose_victims(candidates.clone(), 0), Vec::<ConnId>::new());
        assert_eq!(choose_victims(candidates.clone(), 400), vec![2]);
        assert_eq!(choose_victims(candidates.clone(), 501), vec![2, 4]);
        // Never one that holds nothing, even when the excess cannot be covered.
        assert_eq!(choose_victims(candidates, 10_000), vec![2, 4, 5, 1]);
    }

    #[test]
    fn equally_slow_readers_go_together() {
        // Twenty readers that never read hold the same shared frames: closing one frees nothing
        // while the others keep them, so all of them go at once; the owner, who reads, stays.
        let mut candidates: Vec<(ConnId, usize)> =
            (1..=20).map(|conn| (conn, 9_000 + conn as usize)).collect();
        candidates.push((99, 300));
        let victims = choose_victims(candidates, 1_000);
        assert_eq!(victims.len(), 20);
        assert!(!victims.contains(&99));
    }

    #[test]
    fn a_shared_frame_counts_once_until_its_last_copy_is_dropped() {
        let budget = OutboundBudget::unlimited();
        let frame = budget.count(Bytes::from(vec![7; 1000]));
        let copies: Vec<_> = (0..50).map(|_| frame.clone()).collect();
        assert_eq!(budget.held(), 1000);
        assert_eq!(&copies[3][..3], &[7, 7, 7]);
        drop(frame);
        assert_eq!(budget.held(), 1000);
        drop(copies);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn the_shedder_marks_the_biggest_holder_once() {
        let budget = OutboundBudget::new(100);
        let (big, small) = (Arc::new(QueueBytes::default()), Arc::new(QueueBytes::default()));
        big.queued.store(150, Ordering::Release);
        small.queued.store(20, Ordering::Release);
        let (big_closed, small_closed) = (Disconnect::default(), Disconnect::default());
        let _a = budget.register(1, big, big_closed.clone());
        let _b = budget.register(2, small, small_closed.clone());
        let _held = budget.count(Bytes::from(vec![0; 170]));
        let victims = budget.mark_victims();
        assert_eq!(victims.len(), 1);
        victims[0].trigger(CloseReason::OutboundBudget);
        assert_eq!(big_closed.reason(), Some(&CloseReason::OutboundBudget));
        assert_eq!(small_closed.reason(), None);
        // What the first victim holds covers the excess: nobody else is closed meanwhile.
        assert!(budget.mark_victims().is_empty());
        drop(_a);
        assert_eq!(budget.lock().len(), 1);
    }
}
