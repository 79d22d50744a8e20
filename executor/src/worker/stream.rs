//! The queue across processes: a Redis Stream read by one consumer group, so any number of
//! `dojo-worker` processes (and `dojo-server` instances, if they execute runs too) share it.
//!
//! - `push` is `XADD` (the stream is capped near [`MAX_STREAM_LEN`]; a run lost to the cap is
//!   found again by the relay's orphan scan, like one lost to a Redis restart).
//! - `next` is `XREADGROUP … >` for new entries, and, every so often, `XAUTOCLAIM` for entries
//!   a consumer took and left idle longer than the visibility timeout (its worker died).
//! - A worker executing a run calls `touch` (`XCLAIM` of its own entry, which resets the idle
//!   time) well within the visibility timeout, so a long run is not taken from a live worker.
//! - `ack` is `XACK` + `XDEL` once the run needs nothing more.
//!
//! Whether an entry is executed is decided by the run's lease in the database, not here: a
//! duplicate or a redelivery of a run another worker holds is left pending and looked at again
//! after the visibility timeout, until the run is final.

use std::time::Duration;

use async_trait::async_trait;
use dojo_ids::RunId;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamClaimOptions, StreamId, StreamInfoConsumersReply,
    StreamMaxlen, StreamReadOptions, StreamReadReply,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::queue::{Delivery, QueueError, RunQueue};

/// Entries kept in the stream, approximately (`MAXLEN ~`).
pub const MAX_STREAM_LEN: usize = 100_000;
/// Longest run id accepted from an entry (ours are `run_` + 24 hex digits).
const MAX_RUN_ID: usize = 64;
/// How long one `XREADGROUP` blocks before the loop looks at the shutdown token again.
const BLOCK: Duration = Duration::from_secs(2);
/// How often consumers that left (no pending entries, idle for an hour) are removed.
const CONSUMER_CLEANUP_EVERY: Duration = Duration::from_secs(600);
const STALE_CONSUMER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub stream: String,
    pub group: String,
    /// This process's name in the group (unique per process start).
    pub consumer: String,
    /// An entry idle this long in a consumer's pending list is handed to another consumer.
    pub visibility: Duration,
}

impl StreamSettings {
    pub fn new(consumer: impl Into<String>, visibility: Duration) -> Self {
        Self {
            stream: "dojo:runs".into(),
            group: "dojo-workers".into(),
            consumer: consumer.into(),
            visibility: visibility.max(Duration::from_secs(1)),
        }
    }
}

pub struct StreamQueue {
    settings: StreamSettings,
    /// Short commands (XADD, XACK, XCLAIM…).
    commands: ConnectionManager,
    /// Blocking reads only: a blocked `XREADGROUP` holds its connection for `BLOCK`, and
    /// nothing else should wait behind it.
    reads: Mutex<ConnectionManager>,
    schedule: Mutex<Schedule>,
}

struct Schedule {
    next_reclaim: tokio::time::Instant,
    /// Where the last `XAUTOCLAIM` scan stopped (`0-0`: start over).
    reclaim_cursor: String,
    next_cleanup: tokio::time::Instant,
}

impl StreamQueue {
    /// Connects (two connections) and creates the consumer group if it does not exist yet.
    pub async fn connect(url: &str, settings: StreamSettings) -> Result<Self, QueueError> {
        let client = redis::Client::open(url).map_err(QueueError::Redis)?;
        let config = |response: Duration| {
            redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(response))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(2))
        };
        let commands = ConnectionManager::new_with_config(client.clone(), config(Duration::from_secs(5)))
            .await
            .map_err(QueueError::Redis)?;
        let reads = ConnectionManager::new_with_config(client, config(BLOCK + Duration::from_secs(5)))
            .await
            .map_err(QueueError::Redis)?;
        let queue = Self {
            settings,
            commands,
            reads: Mutex::new(reads),
            schedule: Mutex::new(Schedule {
                next_reclaim: tokio::time::Instant::now(),
                reclaim_cursor: "0-0".into(),
                next_cleanup: tokio::time::Instant::now() + CONSUMER_CLEANUP_EVERY,
            }),
        };
        queue.ensure_group().await?;
        Ok(queue)
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// `XGROUP CREATE … 0 MKSTREAM`: from the stream's beginning, so entries added before the
    /// first worker started are read too. An existing group is fine.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut connection = self.commands.clone();
        let created: Result<(), redis::RedisError> =
            connection.xgroup_create_mkstream(&self.settings.stream, &self.settings.group, "0").await;
        match created {
            Ok(()) => Ok(()),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(QueueError::Redis(error)),
        }
    }

    /// The group is gone (someone flushed Redis): create it again, and report whether that
    /// was the problem.
    async fn recover_from(&self, error: &redis::RedisError) -> bool {
        if error.code() == Some("NOGROUP") {
            tracing::warn!("the run stream's consumer group is gone (Redis flushed?); creating it again");
            return self.ensure_group().await.is_ok();
        }
        false
    }

    /// The reply, or `None` after an error the queue recovered from (the caller reads again
    /// later).
    async fn or_recover<T>(&self, reply: redis::RedisResult<T>) -> Result<Option<T>, QueueError> {
        match reply {
            Ok(reply) => Ok(Some(reply)),
            Err(error) if self.recover_from(&error).await => Ok(None),
            Err(error) => Err(QueueError::Redis(error)),
        }
    }

    fn delivery(&self, entry: &StreamId, redelivered: bool) -> Option<Delivery> {
        let run_id: Option<String> = entry.get("run");
        match run_id {
            Some(run_id) if !run_id.is_empty() && run_id.len() <= MAX_RUN_ID => {
                Some(Delivery { run_id: RunId::from(run_id), receipt: Some(entry.id.clone()), redelivered })
            }
            _ => None,
        }
    }

    /// An entry that names no run: nobody can ever execute it.
    async fn discard(&self, id: &str) {
        tracing::warn!(entry = id, "discarding a run stream entry without a valid run id");
        let mut connection = self.commands.clone();
        let _: Result<(), _> = connection.xack(&self.settings.stream, &self.settings.group, &[id]).await;
        let _: Result<(), _> = connection.xdel(&self.settings.stream, &[id]).await;
    }

    /// One `XAUTOCLAIM` step, when it is due: an entry another consumer left idle too long.
    async fn reclaim(&self) -> Result<Option<Delivery>, QueueError> {
        let cursor = {
            let mut schedule = self.schedule.lock().await;
            let now = tokio::time::Instant::now();
            if now < schedule.next_reclaim {
                return Ok(None);
            }
            if schedule.reclaim_cursor == "0-0" {
                // A full pass is done: the next one after a fraction of the timeout.
                schedule.next_reclaim = now + self.settings.visibility / 4;
            }
            schedule.reclaim_cursor.clone()
        };
        let mut connection = self.commands.clone();
        let idle_ms = usize::try_from(self.settings.visibility.as_millis()).unwrap_or(usize::MAX);
        let reply: Result<StreamAutoClaimReply, _> = connection
            .xautoclaim_options(
                &self.settings.stream,
                &self.settings.group,
                &self.settings.consumer,
                idle_ms,
                &cursor,
                StreamAutoClaimOptions::default().count(1),
            )
            .await;
        let Some(reply) = self.or_recover(reply).await? else { return Ok(None) };
        self.schedule.lock().await.reclaim_cursor = reply.next_stream_id.clone();
        // Entries trimmed from the stream while pending: nothing left to read.
        if !reply.deleted_ids.is_empty() {
            let _: Result<(), _> =
                connection.xack(&self.settings.stream, &self.settings.group, &reply.deleted_ids).await;
        }
        for entry in &reply.claimed {
            match self.delivery(entry, true) {
                Some(delivery) => {
                    tracing::info!(run = %delivery.run_id, entry = %entry.id, "took over a run another worker left idle");
                    return Ok(Some(delivery));
                }
                None => self.discard(&entry.id).await,
            }
        }
        Ok(None)
    }

    /// Removes consumers that have left: no pending entries and idle for an hour.
    async fn clean_up_consumers(&self) {
        {
            let mut schedule = self.schedule.lock().await;
            let now = tokio::time::Instant::now();
            if now < schedule.next_cleanup {
                return;
            }
            schedule.next_cleanup = now + CONSUMER_CLEANUP_EVERY;
        }
        let mut connection = self.commands.clone();
        let info: Result<StreamInfoConsumersReply, _> =
            connection.xinfo_consumers(&self.settings.stream, &self.settings.group).await;
        let Ok(info) = info else { return };
        let stale = usize::try_from(STALE_CONSUMER.as_millis()).unwrap_or(usize::MAX);
        for consumer in info.consumers {
            if consumer.pending == 0 && consumer.idle > stale && consumer.name != self.settings.consumer {
                let _: Result<usize, _> = connection
                    .xgroup_delconsumer(&self.settings.stream, &self.settings.group, &consumer.name)
                    .await;
            }
        }
    }

    async fn read_new(&self) -> Result<Option<Delivery>, QueueError> {
        let options = StreamReadOptions::default()
            .group(&self.settings.group, &self.settings.consumer)
            .count(1)
            .block(usize::try_from(BLOCK.as_millis()).unwrap_or(2000));
        let reply: Result<Option<StreamReadReply>, _> = {
            let mut connection = self.reads.lock().await;
            connection.xread_options(&[&self.settings.stream], &[">"], &options).await
        };
        let Some(reply) = self.or_recover(reply).await? else { return Ok(None) };
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in &key.ids {
                match self.delivery(entry, false) {
                    Some(delivery) => return Ok(Some(delivery)),
                    None => self.discard(&entry.id).await,
                }
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl RunQueue for StreamQueue {
    async fn push(&self, run_id: &RunId) -> Result<(), QueueError> {
        let mut connection = self.commands.clone();
        let added: Result<String, _> = connection
            .xadd_maxlen(
                &self.settings.stream,
                StreamMaxlen::Approx(MAX_STREAM_LEN),
                "*",
                &[("run", run_id.as_str())],
            )
            .await;
        added.map(|_| ()).map_err(QueueError::Redis)
    }

    async fn next(&self, shutdown: &CancellationToken) -> Result<Option<Delivery>, QueueError> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(None);
            }
            self.clean_up_consumers().await;
            if let Some(delivery) = self.reclaim().await? {
                return Ok(Some(delivery));
            }
            // A read cut short by the shutdown leaves its entry, if any, in this consumer's
            // pending list: another worker takes it after the visibility timeout.
            let read = tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                read = self.read_new() => read?,
            };
            if let Some(delivery) = read {
                return Ok(Some(delivery));
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let Some(id) = &delivery.receipt else { return Ok(()) };
        let mut connection = self.commands.clone();
        let _: usize = connection
            .xack(&self.settings.stream, &self.settings.group, &[id])
            .await
            .map_err(QueueError::Redis)?;
        let _: usize = connection.xdel(&self.settings.stream, &[id]).await.map_err(QueueError::Redis)?;
        Ok(())
    }

    async fn touch(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let Some(id) = &delivery.receipt else { return Ok(()) };
        let mut connection = self.commands.clone();
        let _: Vec<String> = connection
            .xclaim_options(
                &self.settings.stream,
                &self.settings.group,
                &self.settings.consumer,
                0,
                &[id],
                StreamClaimOptions::default().with_justid(),
            )
            .await
            .map_err(QueueError::Redis)?;
        Ok(())
    }

    fn touch_every(&self) -> Option<Duration> {
        Some(self.settings.visibility / 3)
    }
}
