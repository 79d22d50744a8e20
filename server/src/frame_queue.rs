//! A bounded many-producer, one-consumer queue of frames that holds no memory while it is empty.
//!
//! Every connection has one (its send queue, `send_queue.rs`), and most connections are idle
//! most of the time. tokio's `mpsc` allocates its slots 32 at a time up front and a cache-padded
//! channel header, about 1.5 KiB per connection before a frame is ever queued; this queue is a
//! `VecDeque` behind a mutex (uncontended: the room pushes, the connection's writer pops) that
//! grows with what is queued and gives its memory back once drained (BENCHMARKS.md, idle
//! memory).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Slots a drained queue may keep; a burst that grew it past this gives the rest back.
const KEEP_SLOTS: usize = 8;

#[derive(Debug, PartialEq, Eq)]
pub enum TryPushError<T> {
    /// The queue holds its maximum.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the receiver: a push, or the last sender going.
    ready: Notify,
    senders: AtomicUsize,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    receiver_gone: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; a poisoned lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side; cloning it adds a sender.
#[derive(Debug)]
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving side: once it is dropped, pushes fail with `Closed` and what was queued is
/// dropped.
#[derive(Debug)]
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue of at most `capacity` items (at least one).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::new(), receiver_gone: false }),
        ready: Notify::new(),
        senders: AtomicUsize::new(1),
        capacity: capacity.max(1),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

impl<T> Sender<T> {
    /// Queues `item` without waiting, or gives it back.
    pub fn try_push(&self, item: T) -> Result<(), TryPushError<T>> {
        {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Err(TryPushError::Closed(item));
            }
            if state.items.len() >= self.shared.capacity {
                return Err(TryPushError::Full(item));
            }
            state.items.push_back(item);
        }
        // A permit is stored if the receiver is not waiting yet, so no wake-up is lost.
        self.shared.ready.notify_one();
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is drained.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A last push may have raced with the last sender's drop.
                return self.try_recv();
            }
            self.shared.ready.notified().await;
        }
    }

    /// An item already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        let mut state = self.shared.lock();
        let item = state.items.pop_front();
        if state.items.is_empty() && state.items.capacity() > KEEP_SLOTS {
            state.items.shrink_to(KEEP_SLOTS);
        }
        item
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: an item's drop may do work of its own (a frame gives its
        // bytes back to the server's budget).
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn holds_at_most_its_capacity_in_order() {
        let (tx, mut rx) = bounded(2);
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        assert_eq!(tx.try_push(3), Err(TryPushError::Full(3)));
        assert_eq!(rx.try_recv(), Some(1));
        tx.try_push(3).unwrap();
        assert_eq!((rx.try_recv(), rx.try_recv(), rx.try_recv()), (Some(2), Some(3), None));
    }

    #[test]
    fn a_dropped_receiver_closes_the_queue_and_drops_what_it_held() {
        let (tx, rx) = bounded(4);
        let item = Arc::new(());
        tx.try_push(item.clone()).unwrap();
        drop(rx);
        assert_eq!(Arc::strong_count(&item), 1, "the queued item was dropped");
        assert!(matches!(tx.try_push(item), Err(TryPushError::Closed(_))));
    }

    #[test]
    fn a_drained_queue_gives_back_what_a_burst_grew() {
        let (tx, mut rx) = bounded(1000);
        for i in 0..500 {
            tx.try_push(i).unwrap();
        }
        assert!(rx.shared.lock().items.capacity() >= 500);
        while rx.try_recv().is_some() {}
        assert!(rx.shared.lock().items.capacity() <= KEEP_SLOTS);
    }

    #[tokio::test]
    async fn the_receiver_wakes_for_a_push_and_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = bounded(4);
        let second = tx.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(item) = rx.recv().await {
                got.push(item);
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_push(1).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        second.try_push(2).unwrap();
        drop(tx);
        drop(second);
        let got = tokio::time::timeout(Duration::from_secs(5), reader).await.unwrap().unwrap();
        assert_eq!(got, vec![1, 2]);
    }
}
