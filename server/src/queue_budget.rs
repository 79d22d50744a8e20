//! Bytes of client frames waiting in one room's command queue.
//!
//! The queue is bounded by count (`DOJO_ROOM_QUEUE`), but a frame may be as large as
//! `DOJO_MAX_FRAME_BYTES`: without a bound on bytes, a few writers sending large frames to a
//! busy room could make it hold count × frame size (gigabytes) while it works through them. A
//! socket reader reserves a frame's bytes before queueing it and waits while the room holds its
//! budget: the same back-pressure as a full queue (the reader stops reading, TCP slows the
//! client down), and nothing is dropped. The reservation travels with the command and ends when
//! the room has handled it.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Debug)]
pub struct QueueBudget {
    bytes: Arc<Semaphore>,
    capacity: u32,
}

/// Bytes of one queued command, given back when it drops.
#[derive(Debug, Default)]
pub struct Reserved(Option<OwnedSemaphorePermit>);

impl Reserved {
    /// Bytes this reservation holds (0 for commands that reserved nothing).
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |permit| permit.num_permits())
    }
}

impl QueueBudget {
    /// A budget of `capacity` bytes (at least 1; at most `u32::MAX`, the most one reservation
    /// can name).
    pub fn new(capacity: usize) -> Self {
        let capacity = u32::try_from(capacity).unwrap_or(u32::MAX).max(1);
        Self { bytes: Arc::new(Semaphore::new(capacity as usize)), capacity }
    }

    /// Waits until `bytes` fit, then holds them. A frame bigger than the whole budget holds all
    /// of it (it waits for the queue to drain, then goes alone), so any frame the decoder
    /// accepted can be queued.
    pub async fn reserve(&self, bytes: usize) -> Reserved {
        let wanted = u32::try_from(bytes).unwrap_or(u32::MAX).clamp(1, self.capacity);
        // The semaphore is never closed, so this only fails if that changes; then nothing is held.
        Reserved(self.bytes.clone().acquire_many_owned(wanted).await.ok())
    }

    /// Bytes free now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_reader_waits_while_the_room_holds_its_budget_and_goes_on_when_it_is_handled() {
        let budget = QueueBudget::new(100);
        let first = budget.reserve(70).await;
        assert_eq!((first.bytes(), budget.available()), (70, 30));
        // 40 more do not fit: the reader waits.
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.reserve(40)).await;
        assert!(waiting.is_err(), "40 bytes must wait while 70 of 100 are held");
        // The room handles the first command: its bytes come back and the next one fits.
        drop(first);
        let second =
            tokio::time::timeout(Duration::from_secs(1), budget.reserve(40)).await.expect("fits now");
        assert_eq!((second.bytes(), budget.available()), (40, 60));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_budget_takes_all_of_it_and_an_empty_one_takes_one_byte() {
        let budget = QueueBudget::new(100);
        let whole = budget.reserve(10_000).await;
        assert_eq!((whole.bytes(), budget.available()), (100, 0));
        drop(whole);
        let empty = budget.reserve(0).await;
        assert_eq!(empty.bytes(), 1);
        assert_eq!(
            QueueBudget::new(0).reserve(5).await.bytes(),
            1,
            "a zero budget still lets one frame through"
        );
    }
}
