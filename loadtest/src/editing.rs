//! Editing at a steady rate: every client's edit loop (a node edit with its timestamp, and
//! presence), and the tally of what was sent and received over a phase.

use std::time::Duration;

use dojo_sync_protocol::canvas::{self, Position};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::bench::{self, BenchClock};
use crate::clients::{ERRORS_LOGGED, Member};
use crate::report::expected_deliveries;

/// How long an edit may wait for room in the client's send queue after the run's end.
const SEND_GRACE: Duration = Duration::from_secs(5);

/// What one client sent while editing.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub edits: u64,
    pub missed_ticks: u64,
    pub awareness: u64,
    /// Why the client stopped early, if it did (its connection broke).
    pub error: Option<String>,
}

/// When and how fast one client edits.
#[derive(Clone, Copy)]
struct Schedule {
    first_edit: Instant,
    edit_period: Duration,
    awareness: Option<(Instant, Duration)>,
    end: Instant,
    clock: BenchClock,
    /// The number of the client's last edit before this phase.
    edits_before: u64,
}

/// How clients edit during one phase.
pub(crate) struct EditPhase {
    pub rate: f64,
    pub duration: Duration,
    pub awareness: Option<Duration>,
}

/// Runs every client's edit loop from `start` for the phase's duration; returns the clients (in
/// their order), what each sent, and how many were lost (their task failed).
pub(crate) async fn edit_all(
    members: Vec<Member>,
    phase: &EditPhase,
    start: Instant,
    clock: BenchClock,
) -> (Vec<Member>, Vec<Sent>, u64) {
    let count = members.len().max(1) as f64;
    let connected = members.len() as u64;
    let period = Duration::from_secs_f64(1.0 / phase.rate);
    let end = start + phase.duration;
    let mut tasks = JoinSet::new();
    for (index, member) in members.into_iter().enumerate() {
        // Spread clients evenly over one period rather than firing them all on the same tick.
        let fraction = index as f64 / count;
        let schedule = Schedule {
            first_edit: start + period.mul_f64(fraction),
            edit_period: period,
            awareness: phase.awareness.map(|p| (start + p.mul_f64(fraction), p)),
            end,
            clock,
            edits_before: member.edits,
        };
        tasks.spawn(async move {
            let sent = edit_loop(&member, schedule).await;
            (index, sent, member)
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => done.push(result),
            // An edit loop does not panic; if one did, its client is lost and counted as missing.
            Err(error) => tracing::error!("an edit task failed: {error}"),
        }
    }
    done.sort_by_key(|(index, _, _)| *index);
    let lost = connected - done.len() as u64;
    let (members, sent) = done
        .into_iter()
        .map(|(_, sent, mut member)| {
            member.edits += sent.edits;
            (member, sent)
        })
        .unzip();
    (members, sent, lost)
}

/// Edits at `schedule`'s rate (and announces presence) until its end.
///
/// Ticks are never made up: when an edit takes longer than a period (the send queue is full
/// because the server reads slowly), the ticks that passed are counted as missed and skipped.
async fn edit_loop(member: &Member, schedule: Schedule) -> Sent {
    let mut sent = Sent::default();
    let mut edits = tokio::time::interval_at(schedule.first_edit, schedule.edit_period);
    edits.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut presence = schedule.awareness.map(|(first, period)| {
        let mut interval = tokio::time::interval_at(first, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        interval
    });
    let own = member.client.client_id().get();
    let deadline = tokio::time::sleep_until(schedule.end);
    tokio::pin!(deadline);
    let mut previous_tick: Option<Instant> = None;

    loop {
        tokio::select! {
            biased;
            () = &mut deadline => break,
            tick = edits.tick() => {
                if let Some(previous) = previous_tick {
                    sent.missed_ticks += skipped_ticks(tick - previous, schedule.edit_period);
                }
                previous_tick = Some(tick);
                let n = schedule.edits_before + sent.edits + 1;
                let edit = member.client.edit(|txn| {
                    let changed = if n.is_multiple_of(2) {
                        let position = Position { x: (n % 1000) as f64, y: (n % 700) as f64 };
                        canvas::move_node(txn, &member.node_id, position)
                    } else {
                        let prompt = json!(format!("a red fox, take {n}"));
                        canvas::set_node_param(txn, &member.node_id, "prompt", &prompt)
                    };
                    bench::stamp(txn, own, n, schedule.clock);
                    changed
                });
                match tokio::time::timeout_at(schedule.end + SEND_GRACE, edit).await {
                    Ok(Ok(Ok(true))) => sent.edits += 1,
                    Ok(Ok(Ok(false))) => {
                        sent.error = Some(format!("{}: its node disappeared", member.node_id));
                        break;
                    }
                    Ok(Ok(Err(error))) => {
                        sent.error = Some(format!("{}: edit refused by the schema: {error}", member.node_id));
                        break;
                    }
                    Ok(Err(error)) => {
                        sent.error = Some(format!("client {}: {error}", member.client.client_id()));
                        break;
                    }
                    Err(_) => {
                        sent.error = Some(format!(
                            "client {}: an edit could not be sent for {} s after the end (server not reading)",
                            member.client.client_id(),
                            SEND_GRACE.as_secs()
                        ));
                        break;
                    }
                }
            }
            () = next_tick(&mut presence) => {
                let state = json!({
                    "user": { "name": format!("load {}/{}", member.room, member.slot) },
                    "cursor": { "x": sent.awareness % 1000, "y": sent.awareness % 700 },
                });
                match member.client.set_presence(&state).await {
                    Ok(()) => sent.awareness += 1,
                    Err(error) => {
                        sent.error = Some(format!("client {}: {error}", member.client.client_id()));
                        break;
                    }
                }
            }
        }
    }
    sent
}

/// Ticks skipped between two ticks `gap` apart of an interval of `period`.
fn skipped_ticks(gap: Duration, period: Duration) -> u64 {
    let periods = (gap.as_secs_f64() / period.as_secs_f64()).round();
    (periods as u64).saturating_sub(1)
}

async fn next_tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What the clients received and sent over one phase.
pub(crate) struct Tally {
    pub latency: Histogram<u64>,
    pub deliveries: u64,
    pub deliveries_expected: u64,
    pub frames_received: u64,
    pub disconnects: u64,
    pub edits_sent: u64,
    pub missed_ticks: u64,
    pub awareness_sent: u64,
}

/// Adds up one phase and empties the clients' latency histograms for the next.
pub(crate) fn tally(members: &[Member], sent: &[Sent], by_room: &[Vec<usize>], lost: u64) -> Tally {
    let mut latency = bench::latency_histogram();
    let (mut deliveries, mut frames_received, mut stale) = (0, 0, 0);
    for member in members {
        let mut received = bench::lock(&member.received);
        let (histogram, delivered) = received.take();
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = latency.add(&histogram);
        deliveries += delivered;
        stale += std::mem::take(&mut received.stale);
        frames_received += member.client.status().frames;
    }
    if stale > 0 {
        tracing::warn!(stale, "ignored timestamps from before this run (reused --room-prefix?)");
    }
    let disconnects = lost
        + sent.iter().filter(|s| s.error.is_some()).count() as u64
        + members.iter().zip(sent).filter(|(m, s)| s.error.is_none() && m.client.status().ended).count()
            as u64;
    for error in sent.iter().filter_map(|s| s.error.as_deref()).take(ERRORS_LOGGED) {
        tracing::warn!("client stopped early: {error}");
    }
    let deliveries_expected = expected_deliveries(by_room.iter().map(|room| {
        let edits: u64 = room.iter().map(|&i| sent[i].edits).sum();
        (edits, room.len() as u64)
    }));
    Tally {
        latency,
        deliveries,
        deliveries_expected,
        frames_received,
        disconnects,
        edits_sent: sent.iter().map(|s| s.edits).sum(),
        missed_ticks: sent.iter().map(|s| s.missed_ticks).sum(),
        awareness_sent: sent.iter().map(|s| s.awareness).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_ticks_count_whole_periods_only() {
        let period = Duration::from_millis(100);
        assert_eq!(skipped_ticks(Duration::from_millis(100), period), 0);
        assert_eq!(skipped_ticks(Duration::from_millis(101), period), 0);
        assert_eq!(skipped_ticks(Duration::from_millis(200), period), 1);
        assert_eq!(skipped_ticks(Duration::from_millis(1000), period), 9);
    }
}
