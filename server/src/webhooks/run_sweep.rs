//! Reports run and node ends that happened in other processes. A `dojo-worker` executes runs
//! outside any server, so the run store wrapper (`run_events`) never sees them end; with
//! `REDIS_URL` set (workers possible), every server polls the database for ends since its last
//! look and reports them like its own. Ends have ids derived from the run (`payload::event_id`),
//! so an end reported by several servers, or by the wrapper too, is recorded once.

use std::sync::Arc;
use std::time::Duration;

use dojo_executor::worker::now_millis;
use dojo_records::RunStore;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Trigger;

/// How often the database is asked.
const POLL: Duration = Duration::from_secs(2);
/// At start-up, ends this recent are reported (a restart loses none of a short outage).
const LOOKBACK_MS: i64 = 10 * 60 * 1000;
/// Rows read per poll and kind; more wait for the next poll.
const BATCH: u32 = 200;

pub(super) async fn run(
    runs: Arc<dyn RunStore>,
    reports: mpsc::Sender<Trigger>,
    shutdown: CancellationToken,
) {
    let start = now_millis().saturating_sub(LOOKBACK_MS);
    let (mut nodes_since, mut runs_since) = (start, start);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Nodes first: a run ends after its nodes, so its webhook follows theirs.
        match runs.finished_nodes_since(nodes_since, BATCH).await {
            Ok(nodes) => {
                let ends: Vec<i64> = nodes.iter().map(|node| node.finished_at).collect();
                for node in nodes {
                    let trigger = Trigger::NodeFinished { run_id: node.run_id, node_id: node.node_id };
                    if !report(&reports, trigger, &shutdown).await {
                        return;
                    }
                }
                nodes_since = next_since(nodes_since, &ends);
            }
            Err(error) => tracing::warn!(%error, "webhooks: cannot read finished nodes"),
        }
        match runs.finished_runs_since(runs_since, BATCH).await {
            Ok(finished) => {
                let ends: Vec<i64> = finished.iter().filter_map(|run| run.finished_at).collect();
                for run in finished {
                    if !report(&reports, Trigger::RunFinished { run_id: run.id }, &shutdown).await {
                        return;
                    }
                }
                runs_since = next_since(runs_since, &ends);
            }
            Err(error) => tracing::warn!(%error, "webhooks: cannot read finished runs"),
        }
    }
}

/// Waits for room in the writer's queue (the sweep is no room: it may wait); `false` on shutdown.
async fn report(reports: &mpsc::Sender<Trigger>, trigger: Trigger, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        sent = reports.send(trigger) => sent.is_ok(),
        () = shutdown.cancelled() => false,
    }
}

/// Where the next poll starts: at the last end seen, inclusive (ends in the same millisecond
/// may not all have been read; reading one again is harmless), or one past it when a whole
/// page ended in that millisecond (else the poll would read the same page for ever).
fn next_since(since: i64, ends: &[i64]) -> i64 {
    let Some(&last) = ends.iter().max() else { return since };
    if ends.len() >= BATCH as usize && ends.iter().all(|&end| end == last) {
        last + 1
    } else {
        last.max(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_moves_to_the_last_end_and_never_stalls_on_a_full_page() {
        assert_eq!(next_since(100, &[]), 100);
        assert_eq!(next_since(100, &[120, 150, 130]), 150);
        assert_eq!(next_since(100, &[90]), 100, "never backwards");
        let same = vec![200; BATCH as usize];
        assert_eq!(next_since(100, &same), 201);
        let mut mixed = vec![200; BATCH as usize - 1];
        mixed.push(199);
        assert_eq!(next_since(100, &mixed), 200);
    }
}
