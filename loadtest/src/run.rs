//! Running a scenario: connect, edit at a steady rate, wait for convergence, measure. The entry
//! point and the plain editing run live here; the shared machinery in `context.rs`,
//! `clients.rs` and `editing.rs`, the ramp in `ramp.rs`, the cold load, reconnect storm and
//! idle-memory census in `scenarios.rs`.

use std::time::Duration;

use tokio::time::Instant;

use crate::bench::BenchClock;
use crate::clients::{
    CONVERGE_TIMEOUT, close_all, connect_and_prepare, group_by_room, wait_converged, warn_unconverged,
};
use crate::config::{Config, Phase, Scenario};
use crate::context::{Context, Mark, Meter};
use crate::editing::{EditPhase, edit_all, tally};
use crate::report::{LatencySummary, Outcome, Report, ScenarioReport, ServerFigures, per_second, round3};
use crate::{ramp, scenarios};

pub use crate::context::RunError;

/// Editing starts this long after the last client connected, on every client at once.
const START_DELAY: Duration = Duration::from_millis(100);

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
