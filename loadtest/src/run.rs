//! Running a scenario: connect, edit at a steady rate, wait for convergence, measure. The shared
//! machinery lives here, with the plain editing run; the ramp is in `ramp.rs`, the cold load,
//! reconnect storm and idle-memory census in `scenarios.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dojo_sync_protocol::canvas::{self, CanvasNode, Position};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use yrs::{ReadTxn, StateVector, Transact};

use crate::bench::{self, BenchClock, SharedReceived, StampSink};
use crate::client::{Applying, ClientOptions, Framing, SyncClient};
use crate::config::{Config, Phase, Scenario, room_url};
use crate::procfs::{self, ProcError, Process};
use crate::report::{
    LatencySummary, Outcome, Report, RunMeta, ServerFigures, ServerSample, cpu_usage, expected_deliveries,
    kib_to_mib, per_second, round3,
};
use crate::{ramp, scenarios};

/// Longest wait for one client's WebSocket handshake, and then for its initial sync.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait, after editing stops, for every room's clients to hold the same state.
pub(crate) const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an edit may wait for room in the client's send queue after the run's end.
const SEND_GRACE: Duration = Duration::from_secs(5);
/// Editing starts this long after the last client connected, on every client at once.
const START_DELAY: Duration = Duration::from_millis(100);
/// Connection errors logged one by one; the rest are only counted.
pub(crate) const ERRORS_LOGGED: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--server-pid {pid}: {error} (is it a process on this machine?)")]
    ServerPid { pid: u32, error: ProcError },
    #[error("{0}")]
    Flags(String),
}

/// Where one room's clients connect, and how they frame their messages.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub url: String,
    pub framing: Framing,
}

impl Target {
    pub fn new(config: &Config, prefix: &str, room: u32) -> Self {
        Self::for_slot(config, prefix, room, 0)
    }

    /// Client `slot` of the room: with `--also-url`, a room's clients are spread over the
    /// servers in turn (slot 0 on `--url`), so every room spans several instances.
    pub fn for_slot(config: &Config, prefix: &str, room: u32, slot: u32) -> Self {
        let servers = 1 + config.also_url.len();
        let base = match slot as usize % servers {
            0 => &config.url,
            i => &config.also_url[i - 1],
        };
        let document = format!("{prefix}-{room}");
        let framing = Framing::new(config.protocol, &document);
        let url = match framing {
            Framing::YWebsocket => room_url(base, prefix, room),
            // Hocuspocus names the document in every frame; the path is not looked at.
            Framing::Hocuspocus { .. } => base.clone(),
        };
        Self { url, framing }
    }
}

/// One connected client and what it knows about itself.
pub(crate) struct Member {
    pub room: u32,
    pub slot: u32,
    pub target: Target,
    pub client: SyncClient,
    pub node_id: String,
    pub received: SharedReceived,
    /// Edits sent over the whole run (stamps carry this number, so it never restarts).
    pub edits: u64,
}

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

/// What every scenario shares: the room prefix, the clock, and the processes measured.
pub(crate) struct Context {
    pub prefix: String,
    pub clock: BenchClock,
    pub meter: Meter,
}

impl Context {
    pub fn meta(&self, config: &Config, kind: &str) -> RunMeta {
        RunMeta {
            kind: kind.into(),
            scenario: config.scenario.name().into(),
            protocol: match config.protocol {
                crate::client::Protocol::YWebsocket => "y-websocket".into(),
                crate::client::Protocol::Hocuspocus => "hocuspocus".into(),
            },
            server_name: config.server_name.clone(),
            url: config.url.clone(),
            room_prefix: self.prefix.clone(),
        }
    }
}

/// CPU time and memory of the server (with `--server-pid`, plus any `--also-server-pid`: a
/// cluster's figures are the sums over its processes) and of this process.
pub(crate) struct Meter {
    server: Option<(u32, Vec<Process>)>,
    me: Process,
    pub clk_tck: u64,
    pub clk_tck_source: &'static str,
}

/// CPU counters at the start of a measured phase.
pub(crate) struct Mark {
    at: Instant,
    server_ticks: Option<u64>,
    my_ticks: Option<u64>,
}

/// The sum of `read` over `processes`; `Err` if any one cannot be read.
fn sum_over<E>(processes: &[Process], read: impl Fn(&Process) -> Result<u64, E>) -> Result<u64, E> {
    processes.iter().try_fold(0u64, |total, process| Ok(total.saturating_add(read(process)?)))
}

impl Meter {
    fn new(server_pid: Option<u32>, also_server_pids: &[u32]) -> Result<Self, RunError> {
        let server = match server_pid {
            Some(first) => {
                let mut processes = Vec::with_capacity(1 + also_server_pids.len());
                for &pid in std::iter::once(&first).chain(also_server_pids) {
                    let process = Process::pid(pid);
                    process.cpu_ticks().map_err(|error| RunError::ServerPid { pid, error })?;
                    processes.push(process);
                }
                Some((first, processes))
            }
            None => None,
        };
        let (clk_tck, clk_tck_source) = procfs::clock_ticks_per_second();
        Ok(Self { server, me: Process::current(), clk_tck, clk_tck_source })
    }

    fn server_ticks(&self) -> Option<u64> {
        sum_over(&self.server.as_ref()?.1, Process::cpu_ticks).ok()
    }

    fn server_status_kib(&self, field: &str) -> Option<u64> {
        sum_over(&self.server.as_ref()?.1, |process| process.status_kib(field)).ok()
    }

    pub fn mark(&self) -> Mark {
        Mark { at: Instant::now(), server_ticks: self.server_ticks(), my_ticks: self.me.cpu_ticks().ok() }
    }

    /// The server's CPU seconds since `mark` and that as a percentage of one core.
    pub fn server_cpu(&self, mark: &Mark) -> Option<(f64, f64)> {
        let after = self.server_ticks()?;
        Some(cpu_usage(mark.server_ticks?, after, self.clk_tck, mark.at.elapsed().as_secs_f64()))
    }

    pub fn loadgen_cpu(&self, mark: &Mark) -> Option<(f64, f64)> {
        let after = self.me.cpu_ticks().ok()?;
        Some(cpu_usage(mark.my_ticks?, after, self.clk_tck, mark.at.elapsed().as_secs_f64()))
    }

    /// The server's `VmRSS` now, in KiB.
    pub fn server_rss_kib(&self) -> Option<u64> {
        self.server_status_kib("VmRSS")
    }

    pub fn has_server(&self) -> bool {
        self.server.is_some()
    }

    /// Memory now, and CPU since `mark` if given.
    pub fn sample(&self, mark: Option<&Mark>) -> Option<ServerSample> {
        let (pid, processes) = self.server.as_ref()?;
        let cpu = mark.and_then(|mark| self.server_cpu(mark));
        Some(ServerSample {
            pid: *pid,
            processes: processes.len(),
            rss_mib: self.server_status_kib("VmRSS").map(kib_to_mib),
            // With several processes, the sum of each one's peak: an upper bound of the
            // cluster's peak, as the peaks need not coincide.
            peak_rss_mib: self.server_status_kib("VmHWM").map(kib_to_mib),
            cpu_s: cpu.map(|(s, _)| s),
            cpu_percent: cpu.map(|(_, p)| p),
        })
    }
}

/// Runs the scenario `config` describes and measures it. Connection problems are figures of the
/// report, not errors; only a `--server-pid` that cannot be read, or flags that contradict each
/// other, stop the run (before it starts).
pub async fn run(config: &Config) -> Result<Outcome, RunError> {
    config.check().map_err(RunError::Flags)?;
    let context = Context {
        prefix: config.resolved_prefix(),
        clock: BenchClock::start(),
        meter: Meter::new(config.server_pid, &config.also_server_pid)?,
    };
    Ok(match config.scenario {
        _ if config.ramp => Outcome::Ramp(ramp::run(config, &context).await),
        Scenario::ColdLoad => match config.phase {
            Phase::Seed => Outcome::Seed(scenarios::seed(config, &context).await),
            Phase::Measure => Outcome::ColdLoad(scenarios::cold_load(config, &context).await),
        },
        Scenario::ReconnectStorm => Outcome::Storm(scenarios::storm(config, &context).await),
        Scenario::IdleMemory => Outcome::Idle(scenarios::idle(config, &context).await),
        Scenario::Edit | Scenario::SmallRooms | Scenario::Crowded => {
            Outcome::Edit(run_edit(config, &context).await)
        }
    })
}

/// Connects every client, gives each a node, then edits at `--rate` for `--duration` seconds.
async fn run_edit(config: &Config, context: &Context) -> Report {
    let (rooms, clients) = (config.rooms(), config.clients());
    let (members, connect_failures, connect_s) = connect_and_prepare(config, context).await;
    let connected = members.len() as u64;

    // Edit.
    let mark = context.meter.mark();
    let start = Instant::now() + START_DELAY;
    tracing::info!("editing for {} s at {}/s per client", config.duration, config.rate());
    let phase = EditPhase {
        rate: config.rate(),
        duration: config.edit_duration(),
        awareness: config.awareness_period(),
    };
    let (members, sent, lost) = edit_all(members, &phase, start, context.clock).await;
    let edit_s = start.elapsed().as_secs_f64();
    let server_figures = server_figures(&context.meter, &mark);
    let loadgen = context.meter.loadgen_cpu(&mark);

    // Converge.
    let by_room = group_by_room(&members, rooms);
    let converge_started = Instant::now();
    let converged = wait_converged(&members, &by_room, CONVERGE_TIMEOUT).await;
    let convergence_wait_s = converge_started.elapsed().as_secs_f64();
    warn_unconverged(&context.prefix, &by_room, &converged);

    // Tally.
    let tally = tally(&members, &sent, &by_room, lost);
    let rooms_converged = converged.iter().filter(|ok| **ok).count() as u64;
    close_all(members).await;

    let mut report = Report {
        meta: context.meta(config, "edit"),
        rooms,
        clients_per_room: clients,
        rate: config.rate(),
        duration_s: config.duration,
        awareness_hz: config.awareness_hz,
        clients_connected: connected,
        connection_errors: connect_failures + tally.disconnects,
        connect_failures,
        disconnects: tally.disconnects,
        connect_s: round3(connect_s),
        edit_s: round3(edit_s),
        edits_sent: tally.edits_sent,
        edits_per_s: per_second(tally.edits_sent, edit_s),
        missed_ticks: tally.missed_ticks,
        awareness_sent: tally.awareness_sent,
        deliveries: tally.deliveries,
        deliveries_expected: tally.deliveries_expected,
        deliveries_per_s: per_second(tally.deliveries, edit_s),
        frames_received: tally.frames_received,
        latency_ms: LatencySummary::from_micros(&tally.latency),
        rooms_converged,
        rooms_not_converged: u64::from(rooms) - rooms_converged,
        convergence_wait_s: round3(convergence_wait_s),
        server: server_figures,
        loadgen_cpu_s: loadgen.map(|(cpu, _)| cpu),
        loadgen_cpu_percent: loadgen.map(|(_, percent)| percent),
        ok: false,
    };
    report.ok = report.failures().is_empty();
    report
}

fn server_figures(meter: &Meter, mark: &Mark) -> Option<ServerFigures> {
    if !meter.has_server() {
        return None;
    }
    let figures = (|| {
        let sample = meter.sample(Some(mark))?;
        Some(ServerFigures {
            pid: sample.pid,
            processes: sample.processes,
            cpu_s: sample.cpu_s?,
            cpu_percent: sample.cpu_percent?,
            peak_rss_mib: sample.peak_rss_mib?,
            rss_mib: sample.rss_mib?,
            clk_tck: meter.clk_tck,
            clk_tck_source: meter.clk_tck_source.into(),
        })
    })();
    if figures.is_none() {
        tracing::warn!("the server's /proc figures could not be read after the run (did it exit?)");
    }
    figures
}

/// Connects `--rooms` × `--clients`, gives every client a node of its own and waits until every
/// room holds all its nodes (so that editing starts from the same document everywhere, also on a
/// server that keeps no state). Returns the clients, the connection failures and the seconds spent.
pub(crate) async fn connect_and_prepare(config: &Config, context: &Context) -> (Vec<Member>, u64, f64) {
    let (rooms, clients) = (config.rooms(), config.clients());
    tracing::info!(
        url = %config.url, prefix = %context.prefix, rooms, clients,
        "connecting {} clients", u64::from(rooms) * u64::from(clients)
    );
    let started = Instant::now();
    let slots: Vec<(u32, u32)> =
        (0..rooms).flat_map(|room| (0..clients).map(move |slot| (room, slot))).collect();
    let (members, failures) = connect_all(config, context, &slots, config.connect_concurrency).await;
    let nodes_failed = create_nodes(&members).await;
    if nodes_failed > 0 {
        tracing::warn!(nodes_failed, "clients could not write their node");
    }
    let by_room = group_by_room(&members, rooms);
    let converged = wait_converged(&members, &by_room, CONVERGE_TIMEOUT).await;
    let behind = converged.iter().filter(|ok| !**ok).count();
    if behind > 0 {
        tracing::warn!(rooms = behind, "rooms did not converge before editing started");
    }
    let connect_s = started.elapsed().as_secs_f64();
    tracing::info!(connected = members.len(), failed = failures, "connected in {connect_s:.2} s");
    (members, failures, connect_s)
}

/// Connects one client per `(room, slot)`, at most `concurrency` at a time. Returns the clients
/// that connected and synced (ordered by room, then slot) and how many did not.
pub(crate) async fn connect_all(
    config: &Config,
    context: &Context,
    slots: &[(u32, u32)],
    concurrency: u32,
) -> (Vec<Member>, u64) {
    let permits = Arc::new(Semaphore::new(concurrency as usize));
    let mut tasks = JoinSet::new();
    for &(room, slot) in slots {
        let target = Target::for_slot(config, &context.prefix, room, slot);
        let (permits, clock, applying) = (permits.clone(), context.clock, config.applying());
        tasks.spawn(async move {
            // The semaphore is never closed, so a permit always comes.
            let _permit = permits.acquire_owned().await;
            let url = target.url.clone();
            connect_one(target, room, slot, clock, applying)
                .await
                .map_err(|e| format!("{url} (room {room}): {e}"))
        });
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

/// Connects one editing client (it times what others send it) and waits for its initial sync.
async fn connect_one(
    target: Target,
    room: u32,
    slot: u32,
    clock: BenchClock,
    applying: Applying,
) -> Result<Member, String> {
    let doc = yrs::Doc::new();
    let stamps = StampSink::new(clock, doc.client_id().get());
    let received = stamps.received.clone();
    let options = ClientOptions { applying, stamps: Some(stamps), ..ClientOptions::default() };
    let client = connect_client_with(&target, doc, options).await?;
    let node_id = format!("lt-node-{}", client.client_id());
    Ok(Member { room, slot, target, client, node_id, received, edits: 0 })
}

/// Connects a client for `doc` and waits for its initial sync (each within [`CONNECT_TIMEOUT`]).
pub(crate) async fn connect_client(target: &Target, doc: yrs::Doc) -> Result<SyncClient, String> {
    connect_client_with(target, doc, ClientOptions::default()).await
}

/// [`connect_client`] with options.
pub(crate) async fn connect_client_with(
    target: &Target,
    doc: yrs::Doc,
    options: ClientOptions,
) -> Result<SyncClient, String> {
    let client = tokio::time::timeout(
        CONNECT_TIMEOUT,
        SyncClient::connect_with(&target.url, doc, target.framing.clone(), options),
    )
    .await
    .map_err(|_| format!("no WebSocket handshake within {} s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| e.to_string())?;
    if let Err(error) = client.wait_synced(CONNECT_TIMEOUT).await {
        let status = client.status();
        return Err(match (status.denied, status.close) {
            (Some(reason), _) => format!("permission denied: {reason}"),
            (None, Some((code, reason))) => format!("closed by the server: {code} {reason}"),
            (None, None) => error.to_string(),
        });
    }
    Ok(client)
}

/// Gives every client a canvas node of its own to edit. Returns how many could not.
pub(crate) async fn create_nodes(members: &[Member]) -> u64 {
    let writes = members.iter().map(|member| async move {
        let node = CanvasNode {
            id: member.node_id.clone(),
            node_type: "flux-schnell".into(),
            position: Position { x: f64::from(member.slot) * 240.0, y: 0.0 },
            data: BTreeMap::from([("prompt".into(), json!("a red fox"))]),
        };
        matches!(member.client.edit(|txn| canvas::write_node(txn, &node)).await, Ok(Ok(())))
    });
    futures_util::future::join_all(writes).await.into_iter().filter(|ok| !ok).count() as u64
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

/// Closes every client politely.
pub(crate) async fn close_all(members: Vec<Member>) {
    tracing::info!("closing {} clients", members.len());
    futures_util::future::join_all(members.into_iter().map(|m| m.client.close())).await;
}

/// Indexes into `members` per room.
pub(crate) fn group_by_room(members: &[Member], rooms: u32) -> Vec<Vec<usize>> {
    let mut by_room = vec![Vec::new(); rooms as usize];
    for (index, member) in members.iter().enumerate() {
        if let Some(room) = by_room.get_mut(member.room as usize) {
            room.push(index);
        }
    }
    by_room
}

pub(crate) fn warn_unconverged(prefix: &str, by_room: &[Vec<usize>], converged: &[bool]) {
    for (room, ok) in converged.iter().enumerate().filter(|(_, ok)| !**ok).take(ERRORS_LOGGED) {
        let _ = ok;
        let connected = by_room[room].len();
        tracing::warn!(room = %format!("{prefix}-{room}"), connected, "room did not converge");
    }
}

/// Polls until every room has converged or `timeout` passed; whether each room converged.
///
/// A room has converged when all its clients are still connected and hold the same state vector
/// (they have seen the same updates). A room none of whose clients connected, or one of whose
/// clients lost its connection, never will: it is not waited for.
pub(crate) async fn wait_converged(
    members: &[Member],
    by_room: &[Vec<usize>],
    timeout: Duration,
) -> Vec<bool> {
    let mut deadline = Instant::now() + timeout;
    loop {
        // Applying what the clients received is the generator's own work, not time spent waiting
        // for the server: it does not count against the timeout.
        let applying = Instant::now();
        catch_up_all(members).await;
        deadline += applying.elapsed();
        let states: Vec<RoomState> = by_room.iter().map(|room| room_state(members, room)).collect();
        if !states.contains(&RoomState::Pending) || Instant::now() >= deadline {
            return states.into_iter().map(|state| state == RoomState::Converged).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Applies every client's deferred updates, on as many blocking threads as there are cores.
pub(crate) async fn catch_up_all(members: &[Member]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut work: Vec<Vec<crate::client::CatchUp>> = (0..threads).map(|_| Vec::new()).collect();
    for (index, member) in members.iter().enumerate() {
        work[index % threads].push(member.client.take_deferred());
    }
    let tasks = work.into_iter().map(|share| {
        tokio::task::spawn_blocking(move || share.into_iter().for_each(crate::client::CatchUp::apply))
    });
    for outcome in futures_util::future::join_all(tasks).await {
        if let Err(error) = outcome {
            tracing::error!("applying received updates failed: {error}");
        }
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
    fn a_cluster_meter_adds_up_its_processes() {
        let me = std::process::id();
        let one = Meter::new(Some(me), &[]).expect("own pid readable");
        let twice = Meter::new(Some(me), &[me]).expect("own pid readable");
        let single = one.sample(None).expect("a server is measured");
        let summed = twice.sample(None).expect("a server is measured");
        assert_eq!((single.processes, summed.processes), (1, 2));
        // The peak only grows, so the sum of two readings is at least one reading (rounding aside).
        assert!(summed.peak_rss_mib.unwrap() > single.peak_rss_mib.unwrap());
        // A process that does not exist is refused before the run starts.
        assert!(Meter::new(Some(me), &[u32::MAX]).is_err());
    }

    #[test]
    fn equality_of_state_vectors() {
        assert!(all_equal::<u8>(&[]));
        assert!(all_equal(&[1]));
        assert!(all_equal(&[1, 1, 1]));
        assert!(!all_equal(&[1, 1, 2]));
    }
}
