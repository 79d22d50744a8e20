//! A connection's outbound queue: bounded in frames and in bytes.
//!
//! The room pushes without waiting (one slow client must never stall a room); a push that does
//! not fit tells the room to disconnect that client, which then resyncs on reconnect. Frames are
//! never dropped silently: a client that misses one frame has silently diverged.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The client is too far behind.
    Full,
    /// The connection has already gone away.
    Closed,
}

#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
}

pub fn channel(max_frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_frames.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (Outbox { tx, queued_bytes: queued_bytes.clone(), max_bytes }, OutboxReceiver { rx, queued_bytes })
}

impl Outbox {
    /// Queues a frame, or says why it cannot. A frame is always accepted into an empty queue,
    /// whatever its size (the frame-size limit bounds it), so a large document can still be sent.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let len = frame.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(PushError::Full);
        }
        self.tx.try_send(frame).map_err(|e| {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => PushError::Full,
                mpsc::error::TrySendError::Closed(_) => PushError::Closed,
            }
        })
    }
}

impl OutboxReceiver {
    pub async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// A frame already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.try_recv().ok()?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frame_bound_is_enforced() {
        let (outbox, mut rx) = channel(2, 1024);
        outbox.push(Bytes::from_static(b"a")).unwrap();
        outbox.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(outbox.push(Bytes::from_static(b"c")), Err(PushError::Full));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"a"));
        outbox.push(Bytes::from_static(b"c")).unwrap();
    }

    #[tokio::test]
    async fn byte_bound_is_enforced_but_one_big_frame_always_fits() {
        let (outbox, mut rx) = channel(100, 10);
        outbox.push(Bytes::from(vec![0; 50])).unwrap();
        assert_eq!(outbox.push(Bytes::from_static(b"x")), Err(PushError::Full));
        assert_eq!(rx.recv().await.unwrap().len(), 50);
        outbox.push(Bytes::from(vec![0; 6])).unwrap();
        outbox.push(Bytes::from(vec![0; 4])).unwrap();
        assert_eq!(outbox.push(Bytes::from_static(b"y")), Err(PushError::Full));
    }

    #[tokio::test]
    async fn a_dropped_receiver_reads_as_closed() {
        let (outbox, rx) = channel(2, 10);
        drop(rx);
        assert_eq!(outbox.push(Bytes::from_static(b"a")), Err(PushError::Closed));
    }
}
