//! The ramp's report: steps of rising load until one fails, and the capacity found.

use serde::Serialize;

use super::{LatencySummary, RunMeta, ScenarioReport, ServerSample, Table, show};

/// One step of a ramp.
#[derive(Debug, Clone, Serialize)]
pub struct RampStep {
    pub step: u32,
    /// Edits per second per client, as asked.
    pub rate: f64,
    pub edit_s: f64,
    pub edits_sent: u64,
    pub edits_per_s: f64,
    pub missed_ticks: u64,
    pub deliveries: u64,
    pub deliveries_expected: u64,
    pub deliveries_per_s: f64,
    pub disconnects: u64,
    pub rooms_not_converged: u64,
    pub latency_ms: LatencySummary,
    pub server_cpu_percent: Option<f64>,
    pub loadgen_cpu_percent: Option<f64>,
    pub passed: bool,
    /// Why the step failed (empty when it passed).
    pub verdict: String,
    /// Why the first attempt at this rate failed, when the step was run again (`--ramp-retries`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_after: Option<String>,
}

/// The load the last passing step carried.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub rate: f64,
    pub edits_per_s: f64,
    pub deliveries_per_s: f64,
    pub p99_ms: Option<f64>,
}

/// A ramp: steps of rising load until one fails.
#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    #[serde(flatten)]
    pub meta: RunMeta,
    pub rooms: u32,
    pub clients_per_room: u32,
    pub clients_connected: u64,
    pub connect_failures: u64,
    pub connect_s: f64,
    pub p99_bound_ms: f64,
    pub step_s: f64,
    /// Seconds of unjudged editing at the first step's rate before the first step.
    pub warmup_s: f64,
    /// p99 of the warm-up, in milliseconds: what the first seconds of a fresh server cost.
    pub warmup_p99_ms: Option<f64>,
    pub factor: f64,
    pub steps: Vec<RampStep>,
    /// The last step that passed, if any did.
    pub capacity: Option<Capacity>,
    /// Why the ramp stopped.
    pub stopped: String,
    pub server: Option<ServerSample>,
    pub ok: bool,
}

impl ScenarioReport for RampReport {
    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.connect_failures > 0 {
            failures.push(format!("{} clients failed to connect", self.connect_failures));
        }
        if self.capacity.is_none() {
            failures.push(format!("no step passed: {}", self.stopped));
        }
        failures
    }

    fn table(&self) -> String {
        let mut t = Table::new(&self.meta, self.rooms);
        t.row(
            "clients",
            format_args!(
                "{} rooms × {} = {} connected in {:.2} s; steps of {} s, ×{}, p99 bound {} ms",
                self.rooms,
                self.clients_per_room,
                self.clients_connected,
                self.connect_s,
                self.step_s,
                self.factor,
                self.p99_bound_ms
            ),
        );
        t.line(format_args!(
            "{:>4} {:>8} {:>10} {:>12} {:>8} {:>8} {:>8} {:>7} {:>7}  verdict",
            "step", "rate/s", "edits/s", "deliveries/s", "p50 ms", "p99 ms", "max ms", "srv %", "gen %"
        ));
        for step in &self.steps {
            let l = &step.latency_ms;
            t.line(format_args!(
                "{:>4} {:>8.2} {:>10.1} {:>12.1} {:>8} {:>8} {:>8} {:>7} {:>7}  {}",
                step.step,
                step.rate,
                step.edits_per_s,
                step.deliveries_per_s,
                show(l.p50),
                show(l.p99),
                show(l.max),
                show(step.server_cpu_percent.map(|c| c.round())),
                show(step.loadgen_cpu_percent.map(|c| c.round())),
                if step.passed { "pass".to_owned() } else { format!("FAIL: {}", step.verdict) }
            ));
        }
        let capacity = match &self.capacity {
            Some(c) => format!(
                "{:.1} edits/s, {:.1} deliveries/s (rate {}/s per client, p99 {} ms)",
                c.edits_per_s,
                c.deliveries_per_s,
                c.rate,
                show(c.p99_ms)
            ),
            None => "none: the first step failed".into(),
        };
        t.row("capacity", format_args!("{capacity}"));
        t.row("stopped", format_args!("{}", self.stopped));
        t.server(self.server.as_ref());
        t.finish()
    }
}
