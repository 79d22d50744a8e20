//! `--ramp`: the same clients edit in steps of rising rate until a step fails; the last passing
//! step is the capacity.
//!
//! Every step's rate is the previous one's times `--ramp-factor`, from `--ramp-start`, so every
//! server sees the same sequence of loads and figures can be compared step by step (Dojo's p99 at
//! the rate where a peer reached its capacity, say). A step fails when its p99 passes the bound,
//! a client disconnects, a room does not converge, deliveries go missing, or more than 1 % of the
//! scheduled edits could not be sent on time (the server stopped reading, or the generator could
//! not keep up: either way the load was not carried).

use std::time::Duration;

use tokio::time::Instant;

use crate::clients::{
    CONVERGE_TIMEOUT, Member, close_all, connect_and_prepare, group_by_room, wait_converged, warn_unconverged,
};
use crate::config::Config;
use crate::context::Context;
use crate::editing::{EditPhase, edit_all, tally};
use crate::report::{Capacity, LatencySummary, RampReport, RampStep, ScenarioReport, per_second, round3};

/// The highest rate per client the generator schedules (one edit per millisecond).
const MAX_RATE: f64 = 1000.0;
/// Share of scheduled edits that may be skipped before a step counts as not carried.
const MAX_MISSED_SHARE: f64 = 0.01;
/// Pause between steps, after convergence, so one step's tail does not start the next.
const STEP_PAUSE: Duration = Duration::from_millis(500);

/// The rates of a ramp: `start × factor^k`, rounded to 3 significant digits, at most
/// `max_steps` of them and none above [`MAX_RATE`].
pub fn rates(start: f64, factor: f64, max_steps: u32) -> Vec<f64> {
    let mut rates = Vec::new();
    let mut rate = start;
    while rates.len() < max_steps as usize && rate <= MAX_RATE {
        let rounded = round_significant(rate, 3);
        if rates.last().is_none_or(|last| rounded > *last) {
            rates.push(rounded);
        }
        rate *= factor;
    }
    rates
}

fn round_significant(value: f64, digits: i32) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return value;
    }
    let scale = 10f64.powi(digits - 1 - value.log10().floor() as i32);
    (value * scale).round() / scale
}

/// What decides a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFigures {
    pub p99_ms: Option<f64>,
    pub edits_sent: u64,
    pub missed_ticks: u64,
    pub deliveries: u64,
    pub deliveries_expected: u64,
    pub disconnects: u64,
    pub rooms_not_converged: u64,
}

/// `Ok` when the step carried its load within the bound, else why not.
pub fn judge(step: &StepFigures, p99_bound_ms: f64) -> Result<(), String> {
    if step.disconnects > 0 {
        return Err(format!("{} clients disconnected", step.disconnects));
    }
    if step.rooms_not_converged > 0 {
        return Err(format!("{} rooms did not converge", step.rooms_not_converged));
    }
    let scheduled = step.edits_sent + step.missed_ticks;
    if scheduled > 0 && step.missed_ticks as f64 > scheduled as f64 * MAX_MISSED_SHARE {
        return Err(format!(
            "{} of {} scheduled edits could not be sent on time",
            step.missed_ticks, scheduled
        ));
    }
    if step.deliveries < step.deliveries_expected {
        return Err(format!("{} of {} deliveries arrived", step.deliveries, step.deliveries_expected));
    }
    match step.p99_ms {
        Some(p99) if p99 > p99_bound_ms => Err(format!("p99 {p99:.1} ms over {p99_bound_ms} ms")),
        Some(_) => Ok(()),
        // One client per room: nothing to time, nothing to fail on.
        None if step.deliveries_expected == 0 => Ok(()),
        None => Err("no deliveries to time".into()),
    }
}

/// The capacity: the last step before the first failure.
pub fn capacity(steps: &[RampStep]) -> Option<Capacity> {
    steps.iter().take_while(|s| s.passed).last().map(|s| Capacity {
        rate: s.rate,
        edits_per_s: s.edits_per_s,
        deliveries_per_s: s.deliveries_per_s,
        p99_ms: s.latency_ms.p99,
    })
}

pub(crate) async fn run(config: &Config, context: &Context) -> RampReport {
    let (rooms, clients) = (config.rooms(), config.clients());
    let (mut members, connect_failures, connect_s) = connect_and_prepare(config, context).await;
    let connected = members.len() as u64;
    let rates = rates(config.ramp_start.unwrap_or(config.rate()), config.ramp_factor, config.ramp_max_steps);
    let mut steps: Vec<RampStep> = Vec::new();
    let mut stopped = format!("all {} steps passed", rates.len());
    let (after, warmup_p99_ms) = warm_up(config, context, members, rates.first().copied()).await;
    members = after;

    for (index, &rate) in rates.iter().enumerate() {
        let step_number = index as u32 + 1;
        let (after, mut step) = run_step(config, context, members, rate, step_number).await;
        members = after;
        let mut retries = 0;
        // One stall on shared cores can decide an 8 s step: a step that failed with every client
        // still connected is run again, and only a second failure ends the ramp.
        while !step.passed && step.disconnects == 0 && retries < config.ramp_retries {
            retries += 1;
            tracing::info!(step = step_number, "repeating the step: {}", step.verdict);
            tokio::time::sleep(STEP_PAUSE).await;
            let first_verdict = std::mem::take(&mut step.verdict);
            let (after, again) = run_step(config, context, members, rate, step_number).await;
            members = after;
            step = RampStep { retried_after: Some(first_verdict), ..again };
        }
        let failed = (!step.passed).then(|| step.verdict.clone());
        steps.push(step);
        if let Some(why) = failed {
            stopped = format!("step {step_number} ({rate}/s per client) failed: {why}");
            break;
        }
        tokio::time::sleep(STEP_PAUSE).await;
    }

    let server = context.meter.sample(None);
    close_all(members).await;
    let capacity = capacity(&steps);
    let mut report = RampReport {
        meta: context.meta(config, "ramp"),
        rooms,
        clients_per_room: clients,
        clients_connected: connected,
        connect_failures,
        connect_s: round3(connect_s),
        p99_bound_ms: config.ramp_p99_ms,
        step_s: config.ramp_step_secs,
        warmup_s: config.ramp_warmup_secs,
        warmup_p99_ms,
        factor: config.ramp_factor,
        steps,
        capacity,
        stopped,
        server,
        ok: false,
    };
    report.ok = report.failures().is_empty();
    report
}

/// Runs one step at `rate` and judges it.
async fn run_step(
    config: &Config,
    context: &Context,
    members: Vec<Member>,
    rate: f64,
    step_number: u32,
) -> (Vec<Member>, RampStep) {
    tracing::info!(
        step = step_number,
        rate,
        "ramp step: {rate}/s per client for {} s",
        config.ramp_step_secs
    );
    let mark = context.meter.mark();
    let start = Instant::now() + Duration::from_millis(100);
    let phase = EditPhase {
        rate,
        duration: Duration::from_secs_f64(config.ramp_step_secs),
        awareness: config.awareness_period(),
    };
    let (members, sent, lost) = edit_all(members, &phase, start, context.clock).await;
    let edit_s = start.elapsed().as_secs_f64();
    let server_cpu = context.meter.server_cpu(&mark);
    let loadgen_cpu = context.meter.loadgen_cpu(&mark);

    let by_room = group_by_room(&members, config.rooms());
    let converged = wait_converged(&members, &by_room, CONVERGE_TIMEOUT).await;
    warn_unconverged(&context.prefix, &by_room, &converged);
    let tally = tally(&members, &sent, &by_room, lost);
    let latency = LatencySummary::from_micros(&tally.latency);
    let figures = StepFigures {
        p99_ms: latency.p99,
        edits_sent: tally.edits_sent,
        missed_ticks: tally.missed_ticks,
        deliveries: tally.deliveries,
        deliveries_expected: tally.deliveries_expected,
        disconnects: tally.disconnects,
        rooms_not_converged: converged.iter().filter(|ok| !**ok).count() as u64,
    };
    let verdict = judge(&figures, config.ramp_p99_ms);
    let step = RampStep {
        step: step_number,
        rate,
        edit_s: round3(edit_s),
        edits_sent: tally.edits_sent,
        edits_per_s: per_second(tally.edits_sent, edit_s),
        missed_ticks: tally.missed_ticks,
        deliveries: tally.deliveries,
        deliveries_expected: tally.deliveries_expected,
        deliveries_per_s: per_second(tally.deliveries, edit_s),
        disconnects: tally.disconnects,
        rooms_not_converged: figures.rooms_not_converged,
        latency_ms: latency,
        server_cpu_percent: server_cpu.map(|(_, percent)| percent),
        loadgen_cpu_percent: loadgen_cpu.map(|(_, percent)| percent),
        passed: verdict.is_ok(),
        verdict: verdict.err().unwrap_or_default(),
        retried_after: None,
    };
    tracing::info!(
        step = step_number,
        edits_per_s = step.edits_per_s,
        deliveries_per_s = step.deliveries_per_s,
        p99_ms = ?step.latency_ms.p99,
        "{}",
        if step.passed { "pass".to_owned() } else { format!("fail: {}", step.verdict) }
    );
    (members, step)
}

/// Edits at `rate` for `--ramp-warmup-secs` without judging: a fresh server's first seconds
/// (rooms created, buffers grown, caches cold) would otherwise decide the first step. Returns the
/// clients and the warm-up's p99, which only goes into the report.
async fn warm_up(
    config: &Config,
    context: &Context,
    members: Vec<Member>,
    rate: Option<f64>,
) -> (Vec<Member>, Option<f64>) {
    let Some(rate) = rate.filter(|_| config.ramp_warmup_secs > 0.0) else { return (members, None) };
    tracing::info!(rate, "warming up: {rate}/s per client for {} s, not judged", config.ramp_warmup_secs);
    let phase = EditPhase {
        rate,
        duration: Duration::from_secs_f64(config.ramp_warmup_secs),
        awareness: config.awareness_period(),
    };
    let start = Instant::now() + Duration::from_millis(100);
    let (members, sent, lost) = edit_all(members, &phase, start, context.clock).await;
    let by_room = group_by_room(&members, config.rooms());
    wait_converged(&members, &by_room, CONVERGE_TIMEOUT).await;
    // Empties the clients' histograms, so the first step counts only its own deliveries.
    let tally = tally(&members, &sent, &by_room, lost);
    let p99 = LatencySummary::from_micros(&tally.latency).p99;
    tracing::info!(p99_ms = ?p99, "warm-up done");
    tokio::time::sleep(STEP_PAUSE).await;
    (members, p99)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passing() -> StepFigures {
        StepFigures {
            p99_ms: Some(12.0),
            edits_sent: 1_000,
            missed_ticks: 0,
            deliveries: 3_000,
            deliveries_expected: 3_000,
            disconnects: 0,
            rooms_not_converged: 0,
        }
    }

    #[test]
    fn rates_grow_geometrically_and_stop_at_the_limits() {
        assert_eq!(rates(1.0, 1.5, 6), vec![1.0, 1.5, 2.25, 3.38, 5.06, 7.59]);
        assert_eq!(rates(0.25, 2.0, 4), vec![0.25, 0.5, 1.0, 2.0]);
        // Never above one edit per millisecond.
        assert_eq!(rates(400.0, 2.0, 10), vec![400.0, 800.0]);
        // Tiny factors that would repeat a rounded rate skip it.
        let slow = rates(1.0, 1.0001, 5);
        assert!(slow.windows(2).all(|w| w[1] > w[0]), "{slow:?}");
    }

    #[test]
    fn a_step_within_the_bound_passes() {
        assert_eq!(judge(&passing(), 50.0), Ok(()));
        // At the bound exactly still passes.
        assert_eq!(judge(&StepFigures { p99_ms: Some(50.0), ..passing() }, 50.0), Ok(()));
        // A few skipped ticks (under 1 %) are noise.
        assert_eq!(judge(&StepFigures { missed_ticks: 10, ..passing() }, 50.0), Ok(()));
        // Lone clients: no latency to measure is not a failure.
        let alone = StepFigures { p99_ms: None, deliveries: 0, deliveries_expected: 0, ..passing() };
        assert_eq!(judge(&alone, 50.0), Ok(()));
    }

    #[test]
    fn each_failure_reason_fails_the_step() {
        let fails = |step: StepFigures, needle: &str| {
            let verdict = judge(&step, 50.0).unwrap_err();
            assert!(verdict.contains(needle), "{verdict:?} lacks {needle:?}");
        };
        fails(StepFigures { p99_ms: Some(50.1), ..passing() }, "p99 50.1 ms over 50 ms");
        fails(StepFigures { disconnects: 1, ..passing() }, "disconnected");
        fails(StepFigures { rooms_not_converged: 2, ..passing() }, "did not converge");
        fails(StepFigures { missed_ticks: 11, ..passing() }, "11 of 1011 scheduled edits");
        fails(StepFigures { deliveries: 2_999, ..passing() }, "2999 of 3000 deliveries");
        fails(StepFigures { p99_ms: None, ..passing() }, "no deliveries");
    }

    fn step(n: u32, rate: f64, passed: bool) -> RampStep {
        RampStep {
            step: n,
            rate,
            edit_s: 10.0,
            edits_sent: 0,
            edits_per_s: rate * 100.0,
            missed_ticks: 0,
            deliveries: 0,
            deliveries_expected: 0,
            deliveries_per_s: rate * 300.0,
            disconnects: 0,
            rooms_not_converged: 0,
            latency_ms: LatencySummary { p99: Some(rate), ..LatencySummary::default() },
            server_cpu_percent: None,
            loadgen_cpu_percent: None,
            passed,
            verdict: String::new(),
            retried_after: None,
        }
    }

    #[test]
    fn capacity_is_the_last_step_before_the_first_failure() {
        let steps = [step(1, 1.0, true), step(2, 2.0, true), step(3, 4.0, false)];
        let capacity = capacity(&steps).unwrap();
        assert_eq!((capacity.rate, capacity.edits_per_s, capacity.deliveries_per_s), (2.0, 200.0, 600.0));
        assert_eq!(capacity.p99_ms, Some(2.0));
        assert!(super::capacity(&[step(1, 1.0, false)]).is_none());
        assert!(super::capacity(&[]).is_none());
        // A pass after a failure does not count (the ramp stops at the first failure anyway).
        let steps = [step(1, 1.0, true), step(2, 2.0, false), step(3, 4.0, true)];
        assert_eq!(super::capacity(&steps).unwrap().rate, 1.0);
    }
}
