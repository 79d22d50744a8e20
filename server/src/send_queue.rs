//! A connection's send queue (frames waiting for its socket's writer): bounded in frames and in
//! bytes. Not the database run send queue (`dojo_records`), which is another thing entirely.
//!
//! The room pushes without waiting (one slow client must never stall a room); a push that does
//! not fit tells the room to disconnect that client, which then resyncs on reconnect. Frames are
//! never dropped silently: a client that misses one frame has silently diverged.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::frame_queue::{self, TryPushError};
use bytes::Bytes;

use crate::close::Disconnect;
use crate::conn_id::ConnId;
use crate::outbound_budget::{OutboundBudget, QueueBytes, Registration};

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The client is too far behind.
    Full,
    /// The connection has already gone away.
    Closed,
}

#[derive(Debug, Clone)]
pub struct SendQueue {
    tx: frame_queue::Sender<Bytes>,
    bytes: Arc<QueueBytes>,
    max_bytes: usize,
    budget: Arc<OutboundBudget>,
}

#[derive(Debug)]
pub struct SendQueueReceiver {
    rx: frame_queue::Receiver<Bytes>,
    bytes: Arc<QueueBytes>,
    budget: Arc<OutboundBudget>,
    _registration: Option<Registration>,
}

/// A frame counted once against the server-wide budget, to queue for many connections.
#[derive(Debug, Clone)]
pub struct SharedFrame(Bytes);

/// A frame taken from a send queue: its bytes count as this connection's until it is dropped,
/// which the writer does once the frame is flushed to the socket.
#[derive(Debug)]
pub struct Outgoing {
    frame: Bytes,
    counted: usize,
    bytes: Arc<QueueBytes>,
}

impl Outgoing {
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// Sends `frame` in place of the original (a Hocuspocus name prefix in front of it).
    pub fn replace_frame(&mut self, frame: Bytes) {
        self.frame = frame;
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.bytes.in_flight.fetch_sub(self.counted, Ordering::AcqRel);
    }
}

/// A send queue outside any server budget (tests).
#[cfg(test)]
pub fn channel(max_frames: usize, max_bytes: usize) -> (SendQueue, SendQueueReceiver) {
    channel_with(OutboundBudget::unlimited(), max_frames, max_bytes)
}

/// Connection `conn`'s send queue, counted against `budget`; when the budget is exceeded and this
/// connection holds the most, the shedder fires `disconnect`.
pub fn budgeted_channel(
    budget: &Arc<OutboundBudget>,
    conn: ConnId,
    disconnect: &Disconnect,
    max_frames: usize,
    max_bytes: usize,
) -> (SendQueue, SendQueueReceiver) {
    let (queue, mut receiver) = channel_with(budget.clone(), max_frames, max_bytes);
    receiver._registration = Some(budget.register(conn, receiver.bytes.clone(), disconnect.clone()));
    (queue, receiver)
}

fn channel_with(
    budget: Arc<OutboundBudget>,
    max_frames: usize,
    max_bytes: usize,
) -> (SendQueue, SendQueueReceiver) {
    let (tx, rx) = frame_queue::bounded(max_frames);
    let bytes = Arc::new(QueueBytes::default());
    (
        SendQueue { tx, bytes: bytes.clone(), max_bytes, budget: budget.clone() },
        SendQueueReceiver { rx, bytes, budget, _registration: None },
    )
}

impl SendQueue {
    /// Queues a frame, or says why it cannot. A frame is always accepted into an empty queue,
    /// whatever its size (the frame-size limit bounds it), so a large document can still be sent.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        self.push_counted(self.budget.count(frame))
    }

    /// The frame, counted once against the budget, to push to many send queues (a broadcast).
    pub fn share(&self, frame: Bytes) -> SharedFrame {
        SharedFrame(self.budget.count(frame))
    }

    /// Queues a frame made by [`SendQueue::share`].
    pub fn push_shared(&self, frame: &SharedFrame) -> Result<(), PushError> {
        self.push_counted(frame.0.clone())
    }

    fn push_counted(&self, frame: Bytes) -> Result<(), PushError> {
        let len = frame.len();
        let queued = &self.bytes.queued;
        let before = queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            queued.fetch_sub(len, Ordering::AcqRel);
            return Err(PushError::Full);
        }
        self.tx.try_push(frame).map_err(|e| {
            queued.fetch_sub(len, Ordering::AcqRel);
            match e {
                TryPushError::Full(_) => PushError::Full,
                TryPushError::Closed(_) => PushError::Closed,
            }
        })
    }
}

impl SendQueueReceiver {
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let frame = self.rx.recv().await?;
        Some(self.take(frame))
    }

    /// A frame already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let frame = self.rx.try_recv()?;
        Some(self.take(frame))
    }

    /// The budget this queue counts against (for frames derived from its own).
    pub fn budget(&self) -> &Arc<OutboundBudget> {
        &self.budget
    }

    fn take(&self, frame: Bytes) -> Outgoing {
        let counted = frame.len();
        self.bytes.queued.fetch_sub(counted, Ordering::AcqRel);
        self.bytes.in_flight.fetch_add(counted, Ordering::AcqRel);
        Outgoing { frame, counted, bytes: self.bytes.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frame_bound_is_enforced() {
        let (queue, mut rx) = channel(2, 1024);
        queue.push(Bytes::from_static(b"a")).unwrap();
        queue.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(queue.push(Bytes::from_static(b"c")), Err(PushError::Full));
        assert_eq!(rx.recv().await.unwrap().frame(), &Bytes::from_static(b"a"));
        queue.push(Bytes::from_static(b"c")).unwrap();
    }

    #[tokio::test]
    async fn byte_bound_is_enforced_but_one_big_frame_always_fits() {
        let (queue, mut rx) = channel(100, 10);
        queue.push(Bytes::from(vec![0; 50])).unwrap();
        assert_eq!(queue.push(Bytes::from_static(b"x")), Err(PushError::Full));
        assert_eq!(rx.recv().await.unwrap().frame().len(), 50);
        queue.push(Bytes::from(vec![0; 6])).unwrap();
        queue.push(Bytes::from(vec![0; 4])).unwrap();
        assert_eq!(queue.push(Bytes::from_static(b"y")), Err(PushError::Full));
    }

    #[tokio::test]
    async fn frames_count_until_written_and_a_broadcast_counts_once() {
        let budget = OutboundBudget::unlimited();
        let closed = Disconnect::default();
        let (a, mut a_rx) = budgeted_channel(&budget, 1, &closed, 10, 1024);
        let (b, b_rx) = budgeted_channel(&budget, 2, &closed, 10, 1024);
        let shared = a.share(Bytes::from(vec![1; 100]));
        a.push_shared(&shared).unwrap();
        b.push_shared(&shared).unwrap();
        drop(shared);
        a.push(Bytes::from(vec![2; 10])).unwrap();
        assert_eq!(budget.held(), 110);
        let taken = a_rx.recv().await.unwrap();
        // Taken by the writer but not written yet: still this connection's, still held.
        assert_eq!(a_rx.bytes.total(), 110);
        drop(taken);
        assert_eq!(a_rx.bytes.total(), 10);
        assert_eq!(budget.held(), 110, "b still holds the broadcast");
        drop(b_rx);
        drop(a_rx);
        assert_eq!(budget.held(), 0, "a closed connection's queue is freed");
    }

    #[tokio::test]
    async fn a_dropped_receiver_reads_as_closed() {
        let (queue, rx) = channel(2, 10);
        drop(rx);
        assert_eq!(queue.push(Bytes::from_static(b"a")), Err(PushError::Closed));
    }
}
