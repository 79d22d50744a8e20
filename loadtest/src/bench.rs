//! Timestamps carried inside the document, and the receiving side that turns them into latencies.
//!
//! Every edit also writes `bench[{client_id}] = "{n}:{sent_us}"` (a root `Y.Map`) in the same
//! transaction, so the timestamp travels in the very update it measures. Each client observes
//! the `bench` map; an entry written by another client is one delivery, and the time between its
//! stamp and the moment the update is applied here is its end-to-end propagation latency (client
//! → server → store → broadcast → client). All clients live in this process and share one clock.
//!
//! Each client overwrites its own key rather than adding one key per edit, so the live map holds
//! one entry per client however long the run. The overwritten values stay in the document's
//! history as deleted items, as every canvas edit does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use yrs::types::EntryChange;
use yrs::{Any, Doc, Map, Observable, Out, TransactionMut, WriteTxn};

/// The root map holding the timestamps.
pub const BENCH: &str = "bench";
/// Largest latency the histogram tells apart: one hour, in microseconds; longer ones count as that.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Microseconds since the Unix epoch, read from a monotonic clock: the wall clock at start-up
/// plus the time elapsed since, so a wall-clock step during a run does not distort latencies.
#[derive(Debug, Clone, Copy)]
pub struct BenchClock {
    origin: Instant,
    origin_us: u64,
}

impl BenchClock {
    pub fn start() -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self { origin: Instant::now(), origin_us: saturating_micros(since_epoch.as_micros()) }
    }

    pub fn now_us(&self) -> u64 {
        self.origin_us.saturating_add(saturating_micros(self.origin.elapsed().as_micros()))
    }

    /// When this clock started: earlier stamps are not from this run.
    pub fn origin_us(&self) -> u64 {
        self.origin_us
    }
}

fn saturating_micros(micros: u128) -> u64 {
    u64::try_from(micros).unwrap_or(u64::MAX)
}

/// A latency histogram in microseconds (1 µs to 1 h, three significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts; this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid constant histogram bounds")
}

/// What one client received from the others.
#[derive(Debug)]
pub struct Received {
    /// Propagation latency of every stamp seen, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Edits of other clients applied here. A server that merges several updates of one sender
    /// into one broadcast (Hocuspocus batches per event-loop turn) delivers several edits in one
    /// transaction, where only the last stamp is visible: the edit numbers tell how many arrived,
    /// and the latency is sampled once, for the newest.
    pub deliveries: u64,
    /// Stamps from before this run (a reused `--room-prefix`): not counted.
    pub stale: u64,
    /// The newest edit number seen from each sender.
    newest: HashMap<String, u64>,
}

impl Default for Received {
    fn default() -> Self {
        Self { latency_us: latency_histogram(), deliveries: 0, stale: 0, newest: HashMap::new() }
    }
}

impl Received {
    /// Records `sender`'s stamp seen at `now_us`.
    pub fn record(&mut self, sender: &str, stamp: &str, now_us: u64, clock_origin_us: u64) {
        match parse_stamp(stamp) {
            Some((n, sent_us)) if sent_us >= clock_origin_us => {
                let newest = self.newest.entry(sender.to_owned()).or_default();
                self.deliveries += n.saturating_sub(*newest);
                *newest = (*newest).max(n);
                self.latency_us.saturating_record(now_us.saturating_sub(sent_us).max(1));
            }
            _ => self.stale += 1,
        }
    }

    /// The latencies and deliveries recorded so far, leaving this empty (the newest edit numbers
    /// stay, so the next interval counts from there).
    pub fn take(&mut self) -> (Histogram<u64>, u64) {
        let latency = std::mem::replace(&mut self.latency_us, latency_histogram());
        (latency, std::mem::take(&mut self.deliveries))
    }
}

/// Shared between a client's observer (which runs while its reader applies an update) and the run.
pub type SharedReceived = Arc<Mutex<Received>>;

pub fn lock(received: &SharedReceived) -> MutexGuard<'_, Received> {
    received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts recording deliveries into `doc`: call before the document is connected.
///
/// The observer runs inside the transaction that applies an incoming update. It reads only what
/// that transaction hands it and never opens a transaction of its own (that would deadlock on
/// the document's lock).
pub fn observe(doc: &Doc, clock: BenchClock) -> SharedReceived {
    let received = SharedReceived::default();
    let own_key = doc.client_id().to_string();
    let sink = received.clone();
    doc.get_or_insert_map(BENCH).observe("dojo-loadtest", move |txn: &TransactionMut, event| {
        let now_us = clock.now_us();
        let mut received = lock(&sink);
        for (key, change) in event.keys(txn) {
            if key.as_ref() == own_key {
                continue;
            }
            if let EntryChange::Inserted(Out::Any(Any::String(stamp)))
            | EntryChange::Updated(_, Out::Any(Any::String(stamp))) = change
            {
                received.record(key.as_ref(), stamp, now_us, clock.origin_us());
            }
        }
    });
    received
}

/// Writes this client's stamp for its `n`th edit, sent now, into the transaction.
pub fn stamp(txn: &mut TransactionMut, own_key: &str, n: u64, clock: BenchClock) {
    let bench = txn.get_or_insert_map(BENCH);
    bench.insert(txn, own_key, format_stamp(n, clock.now_us()));
}

pub fn format_stamp(n: u64, sent_us: u64) -> String {
    format!("{n}:{sent_us}")
}

/// `(n, sent_us)` from a stamp.
pub fn parse_stamp(stamp: &str) -> Option<(u64, u64)> {
    let (n, sent) = stamp.split_once(':')?;
    Some((n.parse().ok()?, sent.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{ReadTxn, Transact, Update};

    #[test]
    fn stamps_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_stamp(&format_stamp(7, 1_700_000_000_123_456)), Some((7, 1_700_000_000_123_456)));
        for bad in ["", "7", "7:", ":5", "a:5", "7:-5", "7:5:6"] {
            assert_eq!(parse_stamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_clock_is_epoch_microseconds_and_does_not_go_back() {
        let clock = BenchClock::start();
        let a = clock.now_us();
        let b = clock.now_us();
        assert!(b >= a && a >= clock.origin_us());
        // After 2020 and before 2100.
        assert!((1_577_836_800_000_000..4_102_444_800_000_000).contains(&a), "{a}");
    }

    #[test]
    fn stamps_from_before_the_run_are_not_latencies() {
        let mut received = Received::default();
        received.record("a", &format_stamp(1, 1_000), 3_500, 1_000);
        received.record("a", &format_stamp(2, 999), 3_500, 1_000);
        received.record("a", "junk", 3_500, 1_000);
        assert_eq!((received.deliveries, received.stale), (1, 2));
        let max = received.latency_us.max();
        assert!(received.latency_us.equivalent(max, 2_500), "{max}");
    }

    #[test]
    fn merged_updates_count_every_edit_they_carry() {
        let mut received = Received::default();
        received.record("a", &format_stamp(1, 1_000), 2_000, 0);
        // Edits 2 and 3 of `a` arrived merged: only 3 is visible.
        received.record("a", &format_stamp(3, 1_500), 2_000, 0);
        received.record("b", &format_stamp(1, 1_500), 2_000, 0);
        // A stamp seen again (a resync) delivers nothing new.
        received.record("a", &format_stamp(3, 1_500), 9_000, 0);
        assert_eq!(received.deliveries, 4);
        let (latency, deliveries) = received.take();
        assert_eq!((latency.len(), deliveries), (4, 4));
        assert_eq!((received.latency_us.len(), received.deliveries), (0, 0));
        received.record("a", &format_stamp(4, 1_500), 2_000, 0);
        assert_eq!(received.deliveries, 1);
    }

    #[test]
    fn a_peer_records_deliveries_from_others_but_not_its_own_edits() {
        let clock = BenchClock::start();
        let alice = Doc::new();
        let bob = Doc::new();
        let alice_received = observe(&alice, clock);
        let bob_received = observe(&bob, clock);
        let alice_key = alice.client_id().to_string();

        for n in 1..=3 {
            let update = {
                let mut txn = alice.transact_mut();
                stamp(&mut txn, &alice_key, n, clock);
                txn.encode_update_v1()
            };
            bob.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
        }
        assert_eq!(lock(&alice_received).deliveries, 0);
        let bob_received = lock(&bob_received);
        assert_eq!((bob_received.deliveries, bob_received.latency_us.len()), (3, 3));
        // The live map holds one entry per writer, not one per edit.
        let txn = bob.transact();
        assert_eq!(txn.get_map(BENCH).unwrap().len(&txn), 1);
    }
}
