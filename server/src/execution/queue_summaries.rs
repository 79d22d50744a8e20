//! Queue positions in the rooms: while a run waits, its summary in the room's `runs` map
//! carries `queuePosition` and `estimatedStartAt` (docs/queue.md), so everyone watching the
//! room sees where it stands without asking the API.
//!
//! Bounded: one pass a second over the head of the queue (at most [`HEAD`] runs), writing only
//! into rooms open on this server and only when a run's position changed. A write replaces the
//! summary only while it still says `queued`; a run that left the queue since its last write is
//! checked once more, and if a worker's `running` summary lost a race with a position write,
//! the summary is written again from the run's record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dojo_executor::worker::run_summary_json;
use dojo_ids::{NodeId, RunId};
use dojo_records::{QueueStore, Run, RunStatus, RunStore};
use dojo_sync_protocol::canvas::{RUNS, write_run_summary};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use yrs::types::ToJson;
use yrs::{Map, ReadTxn};

use super::now_millis;
use super::room_writer::RoomWriter;
use crate::queue_estimate::QueueClock;
use crate::room_name::RoomName;
use crate::room_registry::Rooms;

/// Runs of the queue's head whose positions are written.
const HEAD: u32 = 100;
/// At most one pass this often.
const EVERY: Duration = Duration::from_secs(1);
/// Runs the average duration is taken over (as `GET /api/queue`).
const DURATION_SAMPLE: u32 = 50;

/// Where a queued run stands, as last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    position: i64,
    estimate: Option<i64>,
}

/// Writes queue positions into open rooms until `shutdown`. `slots`: runs executing at once
/// across every worker, for the estimate.
pub async fn run(
    queue: Arc<dyn QueueStore>,
    runs: Arc<dyn RunStore>,
    rooms: Arc<Rooms>,
    slots: i64,
    shutdown: CancellationToken,
) {
    let mut written: HashMap<RunId, (String, Written)> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let head = match queue.head_of_queue(HEAD).await {
            Ok(head) => head,
            Err(error) => {
                tracing::debug!(%error, "could not read the queue for positions");
                continue;
            }
        };
        let average = queue.average_run_ms(DURATION_SAMPLE).await.ok().flatten();
        let limit = u32::try_from(slots.max(0)).unwrap_or(u32::MAX);
        let running_started = match average {
            Some(_) => queue.running_started_at(limit).await.unwrap_or_default(),
            None => Vec::new(),
        };
        let now = now_millis();
        let mut seen = HashMap::new();
        for queued in head {
            let Some(position) = queued.position else { continue };
            let estimate = average.and_then(|average_ms| {
                QueueClock { slots, average_ms, running_started: &running_started, now }.start_of(position)
            });
            let next = Written { position, estimate };
            let run = queued.run;
            seen.insert(run.id.clone(), ());
            // Estimates move with the clock; only a changed position (or a first write) counts.
            if written.get(&run.id).is_some_and(|(_, last)| last.position == next.position) {
                continue;
            }
            if write_position(&rooms, &run, next).await {
                written.insert(run.id.clone(), (run.room.clone(), next));
            }
        }
        // Runs that left the head (claimed, cancelled, paused or behind the head): make sure
        // their summary does not keep a stale `queued` from a lost race.
        let gone: Vec<RunId> = written.keys().filter(|id| !seen.contains_key(*id)).cloned().collect();
        for id in gone {
            written.remove(&id);
            if let Ok(Some(run)) = runs.run(&id).await
                && run.status != RunStatus::Queued
            {
                repair(&rooms, &run).await;
            }
        }
    }
}

/// The run's summary as the room holds it.
fn summary<T: ReadTxn>(txn: &T, run: &str) -> Option<Value> {
    let map = txn.get_map(RUNS)?;
    let any = map.get(txn, run)?.to_json(txn);
    serde_json::to_value(&any).ok()
}

fn open_writer_room(rooms: &Rooms, room: &str) -> Option<RoomName> {
    let name = RoomName::parse(room).ok()?;
    // Only rooms someone has open here: nobody else would see it, and opening one costs a load.
    rooms.get(&name).map(|_| name)
}

async fn write_position(rooms: &Arc<Rooms>, run: &Run, at: Written) -> bool {
    let Some(name) = open_writer_room(rooms, &run.room) else { return false };
    let Ok(writer) = RoomWriter::open(rooms.clone(), name).await else { return false };
    let id = run.id.to_string();
    let result = writer
        .write(|txn| {
            let Some(Value::Object(mut current)) = summary(txn, &id) else { return Ok(()) };
            if current.get("status").and_then(Value::as_str) != Some("queued") {
                return Ok(());
            }
            current.insert("queuePosition".into(), Value::from(at.position));
            current.insert("estimatedStartAt".into(), at.estimate.map_or(Value::Null, Value::from));
            write_run_summary(txn, &id, &Value::Object(current))
        })
        .await;
    result.is_ok()
}

async fn repair(rooms: &Arc<Rooms>, run: &Run) {
    let Some(name) = open_writer_room(rooms, &run.room) else { return };
    let Ok(writer) = RoomWriter::open(rooms.clone(), name).await else { return };
    let id = run.id.to_string();
    let _ = writer
        .write(|txn| {
            let Some(Value::Object(current)) = summary(txn, &id) else { return Ok(()) };
            if current.get("status").and_then(Value::as_str) != Some("queued") {
                return Ok(());
            }
            let nodes: Vec<NodeId> = current
                .get("nodes")
                .and_then(Value::as_array)
                .map(|nodes| nodes.iter().filter_map(Value::as_str).map(NodeId::from).collect())
                .unwrap_or_default();
            write_run_summary(txn, &id, &run_summary_json(run, &nodes))
        })
        .await;
}
