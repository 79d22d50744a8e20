//! One load-generator run: connect, edit at a steady rate, wait for convergence, measure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dojo_sync_protocol::canvas::{self, CanvasNode, Position};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use yrs::{ReadTxn, StateVector, Transact};

use crate::bench::{self, BenchClock, SharedReceived};
use crate::client::SyncClient;
use crate::config::{Config, room_url};
use crate::procfs::{self, ProcError, Process};
use crate::report::{
    LatencySummary, Report, ServerFigures, cpu_usage, expected_deliveries, kib_to_mib, per_second, round3,
};

/// Longest wait for one client's WebSocket handshake, and then for its initial sync.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait, after editing stops, for every room's clients to hold the same state.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an edit may wait for room in the client's send queue after the run's end.
const SEND_GRACE: Duration = Duration::from_secs(5);
/// Editing starts this long after the last client connected, on every client at once.
const START_DELAY: Duration = Duration::from_millis(100);
/// Connection errors logged one by one; the rest are only counted.
const ERRORS_LOGGED: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--server-pid {pid}: {error} (is it a process on this machine?)")]
    ServerPid { pid: u32, error: ProcError },
}

/// One connected client and what it knows about itself.
struct Member {
    room: u32,
    slot: u32,
    client: SyncClient,
    node_id: String,
    received: SharedReceived,
}

/// What one client sent while editing.
#[derive(Debug, Default)]
struct Sent {
    edits: u64,
    missed_ticks: u64,
    awareness: u64,
    /// Why the client stopped early, if it did (its connection broke).
    error: Option<String>,
}

/// When and how fast one client edits.
#[derive(Clone, Copy)]
struct Schedule {
    first_edit: Instant,
    edit_period: Duration,
    awareness: Option<(Instant, Duration)>,
    end: Instant,
    clock: BenchClock,
}

/// Runs the load described by `config` and measures it. Connection problems are figures of the
/// report, not errors; only a `--server-pid` that cannot be read stops the run (before it starts).
pub async fn run(config: &Config) -> Result<Report, RunError> {
    let prefix = config.resolved_prefix();
    let server = match config.server_pid {
        Some(pid) => {
            let process = Process::pid(pid);
            process.cpu_ticks().map_err(|error| RunError::ServerPid { pid, error })?;
            Some((pid, process))
        }
        None => None,
    };
    let (clk_tck, clk_tck_source) = procfs::clock_ticks_per_second();
    let me = Process::current();
    let clock = BenchClock::start();

    tracing::info!(
        url = %config.url, %prefix, rooms = config.rooms, clients = config.clients,
        "connecting {} clients", u64::from(config.rooms) * u64::from(config.clients)
    );
    let connect_started = Instant::now();
    let (members, connect_failures) = connect_all(config, &prefix, clock).await;
    let connect_s = connect_started.elapsed().as_secs_f64();
    tracing::info!(connected = members.len(), failed = connect_failures, "connected in {connect_s:.2} s");

    // Edit.
    let server_ticks_before = server.as_ref().and_then(|(_, p)| p.cpu_ticks().ok());
    let my_ticks_before = me.cpu_ticks().ok();
    let start = Instant::now() + START_DELAY;
    let end = start + config.edit_duration();
    tracing::info!("editing for {} s", config.duration);
    let connected = members.len() as u64;
    let (members, sent) = edit_all(members, config, start, end, clock).await;
    // A client whose edit task failed is gone; it counts as disconnected.
    let lost = connected - members.len() as u64;
    let edit_s = start.elapsed().as_secs_f64();
    let server_figures = server.as_ref().and_then(|(pid, process)| {
        let (cpu_s, cpu_percent) =
            cpu_usage(server_ticks_before?, process.cpu_ticks().ok()?, clk_tck, edit_s);
        Some(ServerFigures {
            pid: *pid,
            cpu_s,
            cpu_percent,
            peak_rss_mib: kib_to_mib(process.status_kib("VmHWM").ok()?),
            rss_mib: kib_to_mib(process.status_kib("VmRSS").ok()?),
            clk_tck,
            clk_tck_source: clk_tck_source.into(),
        })
    });
    if server.is_some() && server_figures.is_none() {
        tracing::warn!("the server's /proc figures could not be read after the run (did it exit?)");
    }
    let loadgen = my_ticks_before
        .zip(me.cpu_ticks().ok())
        .map(|(before, after)| cpu_usage(before, after, clk_tck, edit_s));

    // Converge.
    let by_room = group_by_room(&members, config.rooms);
    let converge_started = Instant::now();
    let converged = wait_converged(&members, &by_room, CONVERGE_TIMEOUT).await;
    let convergence_wait_s = converge_started.elapsed().as_secs_f64();
    for (room, ok) in converged.iter().enumerate() {
        if !ok {
            let connected = by_room[room].len();
            tracing::warn!(room = %format!("{prefix}-{room}"), connected, "room did not converge");
        }
    }

    // Tally.
    let mut latency = bench::latency_histogram();
    let (mut deliveries, mut frames_received, mut stale) = (0, 0, 0);
    for member in &members {
        let received = bench::lock(&member.received);
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = latency.add(&received.latency_us);
        deliveries += received.deliveries;
        stale += received.stale;
        frames_received += member.client.status().frames;
    }
    if stale > 0 {
        tracing::warn!(stale, "ignored timestamps from before this run (reused --room-prefix?)");
    }
    let disconnects = lost
        + sent.iter().filter(|s| s.error.is_some()).count() as u64
        + members.iter().zip(&sent).filter(|(m, s)| s.error.is_none() && m.client.status().ended).count()
            as u64;
    for error in sent.iter().filter_map(|s| s.error.as_deref()).take(ERRORS_LOGGED) {
        tracing::warn!("client stopped early: {error}");
    }
    let deliveries_expected = expected_deliveries(by_room.iter().map(|room| {
        let edits: u64 = room.iter().map(|&i| sent[i].edits).sum();
        (edits, room.len() as u64)
    }));
    let edits_sent = sent.iter().map(|s| s.edits).sum();
    let rooms_converged = converged.iter().filter(|ok| **ok).count() as u64;

    tracing::info!("closing {} clients", members.len());
    futures_util::future::join_all(members.into_iter().map(|m| m.client.close())).await;

    let mut report = Report {
        url: config.url.clone(),
        room_prefix: prefix,
        rooms: config.rooms,
        clients_per_room: config.clients,
        rate: config.rate,
        duration_s: config.duration,
        awareness_hz: config.awareness_hz,
        clients_connected: connected,
        connection_errors: connect_failures + disconnects,
        connect_failures,
        disconnects,
        connect_s: round3(connect_s),
        edit_s: round3(edit_s),
        edits_sent,
        edits_per_s: per_second(edits_sent, edit_s),
        missed_ticks: sent.iter().map(|s| s.missed_ticks).sum(),
        awareness_sent: sent.iter().map(|s| s.awareness).sum(),
        deliveries,
        deliveries_expected,
        deliveries_per_s: per_second(deliveries, edit_s),
        frames_received,
        latency_ms: LatencySummary::from_micros(&latency),
        rooms_converged,
        rooms_not_converged: u64::from(config.rooms) - rooms_converged,
        convergence_wait_s: round3(convergence_wait_s),
        server: server_figures,
        loadgen_cpu_s: loadgen.map(|(cpu, _)| cpu),
        loadgen_cpu_percent: loadgen.map(|(_, percent)| percent),
        ok: false,
    };
    report.ok = report.failures().is_empty();
    Ok(report)
}

/// Connects every client, at most `--connect-concurrency` at a time. Returns the clients that
/// connected and synced (ordered by room, then slot) and how many did not.
async fn connect_all(config: &Config, prefix: &str, clock: BenchClock) -> (Vec<Member>, u64) {
    let permits = Arc::new(Semaphore::new(config.connect_concurrency as usize));
    let mut tasks = JoinSet::new();
    for room in 0..config.rooms {
        let url = room_url(&config.url, prefix, room);
        for slot in 0..config.clients {
            let (url, permits) = (url.clone(), permits.clone());
            tasks.spawn(async move {
                // The semaphore is never closed, so a permit always comes.
                let _permit = permits.acquire_owned().await;
                connect_one(&url, room, slot, clock).await.map_err(|e| format!("{url}: {e}"))
            });
        }
    }
    let mut members = Vec::new();
    let mut failures = 0u64;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(member)) => members.push(member),
            Ok(Err(error)) => {
                failures += 1;
                if failures as usize <= ERRORS_LOGGED {
                    tracing::warn!("connection failed: {error}");
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!("connection task failed: {error}");
            }
        }
    }
    members.sort_by_key(|m| (m.room, m.slot));
    (members, failures)
}

/// Connects one client, waits for its initial sync and gives it a node of its own to edit.
async fn connect_one(url: &str, room: u32, slot: u32, clock: BenchClock) -> Result<Member, String> {
    let doc = yrs::Doc::new();
    let received = bench::observe(&doc, clock);
    let client = tokio::time::timeout(CONNECT_TIMEOUT, SyncClient::connect_with_doc(url, doc))
        .await
        .map_err(|_| format!("no WebSocket handshake within {} s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    client.wait_synced(CONNECT_TIMEOUT).await.map_err(|e| e.to_string())?;
    let node_id = format!("lt-node-{}", client.client_id());
    let node = CanvasNode {
        id: node_id.clone(),
        node_type: "flux-schnell".into(),
        position: Position { x: f64::from(slot) * 240.0, y: 0.0 },
        data: BTreeMap::from([("prompt".into(), json!("a red fox"))]),
    };
    client
        .edit(|txn| canvas::write_node(txn, &node))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(Member { room, slot, client, node_id, received })
}

/// Runs every client's edit loop until `end`; returns the clients (in their order) and what each sent.
async fn edit_all(
    members: Vec<Member>,
    config: &Config,
    start: Instant,
    end: Instant,
    clock: BenchClock,
) -> (Vec<Member>, Vec<Sent>) {
    let count = members.len().max(1) as f64;
    let mut tasks = JoinSet::new();
    for (index, member) in members.into_iter().enumerate() {
        // Spread clients evenly over one period rather than firing them all on the same tick.
        let phase = index as f64 / count;
        let schedule = Schedule {
            first_edit: start + config.edit_period().mul_f64(phase),
            edit_period: config.edit_period(),
            awareness: config.awareness_period().map(|period| (start + period.mul_f64(phase), period)),
            end,
            clock,
        };
        tasks.spawn(async move { (index, edit_loop(&member, schedule).await, member) });
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
    done.into_iter().map(|(_, sent, member)| (member, sent)).unzip()
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
    let own_key = member.client.client_id().to_string();
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
                let n = sent.edits + 1;
                let edit = member.client.edit(|txn| {
                    let changed = if n % 2 == 0 {
                        let position = Position { x: (n % 1000) as f64, y: (n % 700) as f64 };
                        canvas::move_node(txn, &member.node_id, position)
                    } else {
                        let prompt = json!(format!("a red fox, take {n}"));
                        canvas::set_node_param(txn, &member.node_id, "prompt", &prompt)
                    };
                    bench::stamp(txn, &own_key, n, schedule.clock);
                    changed
                });
                match tokio::time::timeout_at(schedule.end + SEND_GRACE, edit).await {
                    Ok(Ok(Ok(true))) => sent.edits = n,
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

/// Indexes into `members` per room.
fn group_by_room(members: &[Member], rooms: u32) -> Vec<Vec<usize>> {
    let mut by_room = vec![Vec::new(); rooms as usize];
    for (index, member) in members.iter().enumerate() {
        by_room[member.room as usize].push(index);
    }
    by_room
}

/// Polls until every room has converged or `timeout` passed; whether each room converged.
///
/// A room has converged when all its clients are still connected and hold the same state vector
/// (they have seen the same updates). A room none of whose clients connected, or one of whose
/// clients lost its connection, never will: it is not waited for.
async fn wait_converged(members: &[Member], by_room: &[Vec<usize>], timeout: Duration) -> Vec<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let states: Vec<RoomState> = by_room.iter().map(|room| room_state(members, room)).collect();
        if !states.contains(&RoomState::Pending) || Instant::now() >= deadline {
            return states.into_iter().map(|state| state == RoomState::Converged).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoomState {
    Converged,
    Pending,
    /// No clients, or one of them is disconnected.
    Broken,
}

fn room_state(members: &[Member], room: &[usize]) -> RoomState {
    if room.is_empty() || room.iter().any(|&i| members[i].client.status().ended) {
        return RoomState::Broken;
    }
    // A read transaction waits for a reader applying an update; none is held across an await.
    let states: Vec<StateVector> =
        room.iter().map(|&i| members[i].client.doc().transact().state_vector()).collect();
    if all_equal(&states) { RoomState::Converged } else { RoomState::Pending }
}

fn all_equal<T: PartialEq>(items: &[T]) -> bool {
    items.windows(2).all(|pair| pair[0] == pair[1])
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

    #[test]
    fn equality_of_state_vectors() {
        assert!(all_equal::<u8>(&[]));
        assert!(all_equal(&[1]));
        assert!(all_equal(&[1, 1, 1]));
        assert!(!all_equal(&[1, 1, 2]));
    }
}
