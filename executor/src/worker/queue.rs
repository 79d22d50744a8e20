//! Where accepted runs wait for a worker. The queue only carries run ids: a run is a database
//! row before it is work (written with its credit hold), and a worker must claim it there
//! before executing it, so a lost, duplicated or redelivered entry delays a run, never runs it
//! twice at once or charges twice.

use std::time::Duration;

use async_trait::async_trait;
use dojo_ids::RunId;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is full")]
    Full,
    #[error("the queue is closed")]
    Closed,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One run taken from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub run_id: RunId,
    /// The queue's own handle on the entry (a Redis stream entry id), if it has one.
    pub receipt: Option<String>,
    /// Handed out before to a worker that did not finish with it.
    pub redelivered: bool,
}

#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Adds a run at the end of the line.
    async fn push(&self, run_id: &RunId) -> Result<(), QueueError>;

    /// The next run; `Ok(None)` once `shutdown` fires.
    async fn next(&self, shutdown: &CancellationToken) -> Result<Option<Delivery>, QueueError>;

    /// The run needs nothing more from the queue (finished, or gone).
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// The worker still executes the run: do not hand it to anyone else yet.
    async fn touch(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Back to the end of the line (its user is at their limit).
    async fn defer(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.push(&delivery.run_id).await?;
        self.ack(delivery).await
    }

    /// How often [`touch`](Self::touch) must be called while a run executes (`None`: never).
    fn touch_every(&self) -> Option<Duration> {
        None
    }
}

/// The embedded default: a bounded channel inside one process. What it loses on a crash is
/// found again in the database (the outbox and orphaned runs, see [`super::relay`]).
pub struct MemoryQueue {
    sender: mpsc::Sender<RunId>,
    receiver: Mutex<mpsc::Receiver<RunId>>,
}

impl MemoryQueue {
    pub fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self { sender, receiver: Mutex::new(receiver) }
    }
}

#[async_trait]
impl RunQueue for MemoryQueue {
    /// Never waits: a full queue has work enough, and the run is found again in the database.
    async fn push(&self, run_id: &RunId) -> Result<(), QueueError> {
        self.sender.try_send(run_id.clone()).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })
    }

    async fn next(&self, shutdown: &CancellationToken) -> Result<Option<Delivery>, QueueError> {
        let mut receiver = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            receiver = self.receiver.lock() => receiver,
        };
        tokio::select! {
            () = shutdown.cancelled() => Ok(None),
            run_id = receiver.recv() => match run_id {
                Some(run_id) => Ok(Some(Delivery { run_id, receipt: None, redelivered: false })),
                None => Err(QueueError::Closed),
            },
        }
    }

    async fn ack(&self, _delivery: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }

    async fn touch(&self, _delivery: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }
}
