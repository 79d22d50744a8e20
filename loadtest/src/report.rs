//! The figures of one run, the arithmetic behind them, and how they are printed: the editing
//! run's [`Report`] here, the other scenarios' in the submodules.

use std::fmt::{Display, Write as _};

use hdrhistogram::Histogram;
use serde::Serialize;

mod cold;
mod idle;
mod ramp;
mod storm;

pub use cold::{ColdLoadReport, SeedReport};
pub use idle::IdleReport;
pub use ramp::{Capacity, RampReport, RampStep};
pub use storm::StormReport;

/// What every report starts with: what ran, against what.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunMeta {
    /// `edit`, `ramp`, `cold-seed`, `cold-load`, `reconnect-storm` or `idle-memory`.
    pub kind: String,
    /// The `--scenario` (its sizes).
    pub scenario: String,
    pub protocol: String,
    /// `--server-name`, if given.
    pub server_name: Option<String>,
    pub url: String,
    pub room_prefix: String,
}

/// Everything one editing run measured. Serialised as the single JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub meta: RunMeta,
    pub rooms: u32,
    pub clients_per_room: u32,
    /// Edits per second per client, as asked.
    pub rate: f64,
    /// Seconds of editing, as asked.
    pub duration_s: f64,
    pub awareness_hz: f64,

    pub clients_connected: u64,
    /// Clients that could not connect or sync, plus clients that lost their connection during the run.
    pub connection_errors: u64,
    pub connect_failures: u64,
    pub disconnects: u64,
    /// Time to connect and sync every client.
    pub connect_s: f64,

    /// How long editing actually lasted (the rates below are per this time).
    pub edit_s: f64,
    pub edits_sent: u64,
    pub edits_per_s: f64,
    /// Ticks at which a client was still busy with the previous edit (the generator fell behind).
    pub missed_ticks: u64,
    pub awareness_sent: u64,

    /// Stamped updates from other clients applied by a client (one edit reaching one peer).
    pub deliveries: u64,
    /// Edits sent × (clients in the room − 1), summed over rooms.
    pub deliveries_expected: u64,
    pub deliveries_per_s: f64,
    /// Every frame clients received (updates, their own echoes, presence, sync).
    pub frames_received: u64,
    pub latency_ms: LatencySummary,

    pub rooms_converged: u64,
    pub rooms_not_converged: u64,
    /// Time from the end of editing until every room converged (or the wait gave up).
    pub convergence_wait_s: f64,

    pub server: Option<ServerFigures>,
    /// This process's CPU time while editing.
    pub loadgen_cpu_s: Option<f64>,
    pub loadgen_cpu_percent: Option<f64>,

    pub ok: bool,
}

/// The server's resource use, from `/proc/{pid}`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    /// `--server-pid`; with `--also-server-pid`, the figures below are sums over `processes`.
    pub pid: u32,
    pub processes: usize,
    /// User plus system CPU time while editing.
    pub cpu_s: f64,
    /// `cpu_s` over the editing time: 100 is one core busy.
    pub cpu_percent: f64,
    /// `VmHWM`: the peak resident set since the server started, not just during this run.
    pub peak_rss_mib: f64,
    /// `VmRSS` at the end of editing.
    pub rss_mib: f64,
    pub clk_tck: u64,
    /// `getconf` or `assumed` (100).
    pub clk_tck_source: String,
}

/// Latency percentiles in milliseconds; `None` without samples (one client per room).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl LatencySummary {
    /// From a histogram of microseconds. Percentiles are the histogram's (exact to 0.1 %).
    pub fn from_micros(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| Some(round3(micros as f64 / 1000.0));
        Self {
            samples: histogram.len(),
            mean: Some(round3(histogram.mean() / 1000.0)),
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        }
    }
}

impl Report {
    /// The report as one line of JSON.
    pub fn json_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

impl ScenarioReport for Report {
    /// Connection errors or rooms that did not converge.
    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.connection_errors > 0 {
            failures.push(format!(
                "{} connection errors ({} failed to connect, {} disconnected during the run)",
                self.connection_errors, self.connect_failures, self.disconnects
            ));
        }
        if self.rooms_not_converged > 0 {
            failures.push(format!("{} of {} rooms did not converge", self.rooms_not_converged, self.rooms));
        }
        failures
    }

    fn table(&self) -> String {
        let mut t = Table::new(&self.meta, self.rooms);
        let mut row = |label: &str, value: String| t.row(label, value);
        row(
            "clients",
            format!(
                "{} rooms × {} = {} connected in {:.2} s, {} connection errors",
                self.rooms,
                self.clients_per_room,
                self.clients_connected,
                self.connect_s,
                self.connection_errors
            ),
        );
        let awareness = match self.awareness_hz {
            hz if hz > 0.0 => format!(", presence {hz}/s"),
            _ => String::new(),
        };
        row("load", format!("{}/s edits per client for {:.1} s{awareness}", self.rate, self.edit_s));
        row(
            "edits sent",
            format!("{} ({:.1}/s), {} missed ticks", self.edits_sent, self.edits_per_s, self.missed_ticks),
        );
        if self.awareness_hz > 0.0 {
            row("presence sent", self.awareness_sent.to_string());
        }
        row(
            "deliveries",
            format!(
                "{} of {} expected ({:.1}/s), {} frames received",
                self.deliveries, self.deliveries_expected, self.deliveries_per_s, self.frames_received
            ),
        );
        row("latency ms", show_latency(&self.latency_ms));
        row(
            "converged",
            format!(
                "{} of {} rooms ({} not), after {:.2} s",
                self.rooms_converged, self.rooms, self.rooms_not_converged, self.convergence_wait_s
            ),
        );
        if let Some(server) = &self.server {
            row(
                "server",
                format!(
                    "{}: cpu {:.2} s ({:.1} % of a core), rss {:.1} MiB, peak rss {:.1} MiB (since start)",
                    processes_label(server.pid, server.processes),
                    server.cpu_s,
                    server.cpu_percent,
                    server.rss_mib,
                    server.peak_rss_mib
                ),
            );
        }
        if let (Some(cpu), Some(percent)) = (self.loadgen_cpu_s, self.loadgen_cpu_percent) {
            row("load generator", format!("cpu {cpu:.2} s ({percent:.1} % of a core)"));
        }
        let failures = self.failures();
        row(
            "result",
            if failures.is_empty() { "ok".into() } else { format!("FAILED: {}", failures.join("; ")) },
        );
        t.finish()
    }
}

/// `count` per second over `seconds`; 0 for an empty interval.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { round3(count as f64 / seconds) } else { 0.0 }
}

/// CPU seconds from a tick delta, and that time as a percentage of one core over `wall_s`.
pub fn cpu_usage(ticks_before: u64, ticks_after: u64, clk_tck: u64, wall_s: f64) -> (f64, f64) {
    let cpu_s = ticks_after.saturating_sub(ticks_before) as f64 / clk_tck.max(1) as f64;
    let percent = if wall_s > 0.0 { cpu_s / wall_s * 100.0 } else { 0.0 };
    (round3(cpu_s), round3(percent))
}

/// Edits sent × (clients − 1) per room: how many deliveries a loss-free server produces.
pub fn expected_deliveries(rooms: impl IntoIterator<Item = (u64, u64)>) -> u64 {
    rooms.into_iter().map(|(edits, clients)| edits * clients.saturating_sub(1)).sum()
}

pub fn kib_to_mib(kib: u64) -> f64 {
    round3(kib as f64 / 1024.0)
}

/// Three decimals: enough for milliseconds and rates, and a JSON line that stays readable.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

pub(crate) fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// `url/prefix-{0..n}` and the protocol and scenario.
fn target(meta: &RunMeta, rooms: u32) -> String {
    let name = meta.server_name.as_deref().map(|n| format!("{n}: ")).unwrap_or_default();
    format!(
        "{name}{}/{}-{{0..{}}} ({}, scenario {})",
        meta.url,
        meta.room_prefix,
        rooms.saturating_sub(1),
        meta.protocol,
        meta.scenario
    )
}

/// `p50 … p99 … max …` of a summary.
pub fn show_latency(l: &LatencySummary) -> String {
    format!(
        "p50 {}  p95 {}  p99 {}  max {}  mean {}  ({} samples)",
        show(l.p50),
        show(l.p95),
        show(l.p99),
        show(l.max),
        show(l.mean),
        l.samples
    )
}

/// "pid 12", or "pid 12 and 1 more" for a cluster measured as a whole.
fn processes_label(pid: u32, processes: usize) -> String {
    match processes {
        0 | 1 => format!("pid {pid}"),
        n => format!("pid {pid} and {} more", n - 1),
    }
}

/// The server's memory now (`VmRSS`) and its peak since start (`VmHWM`), and CPU over a phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerSample {
    /// `--server-pid`; with `--also-server-pid`, the figures below are sums over `processes`.
    pub pid: u32,
    pub processes: usize,
    pub rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// CPU seconds over the measured phase, and as a percentage of one core.
    pub cpu_s: Option<f64>,
    pub cpu_percent: Option<f64>,
}

impl ServerSample {
    pub(crate) fn show(&self) -> String {
        format!(
            "{}: cpu {} s ({} % of a core), rss {} MiB, peak rss {} MiB (since start)",
            processes_label(self.pid, self.processes),
            show(self.cpu_s),
            show(self.cpu_percent),
            show(self.rss_mib),
            show(self.peak_rss_mib)
        )
    }
}

/// The result of any scenario. Serialised as the scenario's own report (untagged).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Edit(Report),
    Ramp(RampReport),
    Seed(SeedReport),
    ColdLoad(ColdLoadReport),
    Storm(StormReport),
    Idle(IdleReport),
}

impl Outcome {
    fn report(&self) -> &dyn ScenarioReport {
        match self {
            Self::Edit(r) => r,
            Self::Ramp(r) => r,
            Self::Seed(r) => r,
            Self::ColdLoad(r) => r,
            Self::Storm(r) => r,
            Self::Idle(r) => r,
        }
    }

    pub fn table(&self) -> String {
        self.report().table()
    }

    pub fn failures(&self) -> Vec<String> {
        self.report().failures()
    }

    /// The report as one line of JSON.
    pub fn json_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    pub fn ok(&self) -> bool {
        self.failures().is_empty()
    }
}

/// What every scenario's report tells: why it failed, and a table for people.
pub trait ScenarioReport {
    /// Why the run failed, if it did (empty: it passed).
    fn failures(&self) -> Vec<String>;
    /// The human-readable table.
    fn table(&self) -> String;
}

/// A report's table: `  label              value` rows, the label column 18 wide.
pub(crate) struct Table(String);

impl Table {
    /// A table whose first row is the run's target.
    pub(crate) fn new(meta: &RunMeta, rooms: u32) -> Self {
        let mut table = Self(String::new());
        table.row("target", target(meta, rooms));
        table
    }

    pub(crate) fn row(&mut self, label: &str, value: impl Display) {
        let _ = writeln!(self.0, "  {label:<18} {value}");
    }

    /// A line of its own (a grid's), indented like the rows.
    pub(crate) fn line(&mut self, text: impl Display) {
        let _ = writeln!(self.0, "  {text}");
    }

    /// The server's figures, when it was measured.
    pub(crate) fn server(&mut self, server: Option<&ServerSample>) {
        if let Some(server) = server {
            self.row("server", server.show());
        }
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::latency_histogram;

    fn close_to(actual: Option<f64>, expected: f64) -> bool {
        // hdrhistogram with three significant digits: within 0.1 %.
        actual.is_some_and(|a| (a - expected).abs() <= expected * 0.001 + 1e-9)
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut histogram = latency_histogram();
        for ms in 1..=1000u64 {
            histogram.record(ms * 1000).unwrap();
        }
        let summary = LatencySummary::from_micros(&histogram);
        assert_eq!(summary.samples, 1000);
        assert!(close_to(summary.p50, 500.0), "{summary:?}");
        assert!(close_to(summary.p95, 950.0), "{summary:?}");
        assert!(close_to(summary.p99, 990.0), "{summary:?}");
        assert!(close_to(summary.max, 1000.0), "{summary:?}");
        assert!(close_to(summary.mean, 500.5), "{summary:?}");
    }

    #[test]
    fn one_slow_delivery_shows_in_the_tail_only() {
        let mut histogram = latency_histogram();
        for _ in 0..999 {
            histogram.record(2_000).unwrap();
        }
        histogram.record(250_000).unwrap();
        let summary = LatencySummary::from_micros(&histogram);
        assert!(close_to(summary.p50, 2.0) && close_to(summary.p99, 2.0), "{summary:?}");
        assert!(close_to(summary.max, 250.0), "{summary:?}");
    }

    #[test]
    fn no_samples_means_no_percentiles() {
        let summary = LatencySummary::from_micros(&latency_histogram());
        assert_eq!(summary, LatencySummary::default());
        assert_eq!(show(summary.p50), "-");
    }

    #[test]
    fn rates_cpu_and_expected_deliveries() {
        assert_eq!(per_second(500, 5.0), 100.0);
        assert_eq!(per_second(1, 3.0), 0.333);
        assert_eq!(per_second(10, 0.0), 0.0);
        // 250 ticks at 100 Hz over 5 s: 2.5 s of CPU, half a core.
        assert_eq!(cpu_usage(1_000, 1_250, 100, 5.0), (2.5, 50.0));
        assert_eq!(cpu_usage(10, 5, 100, 5.0), (0.0, 0.0));
        // Two rooms: 100 edits among 4 clients, 10 edits by a lone client.
        assert_eq!(expected_deliveries([(100, 4), (10, 1), (0, 0)]), 300);
        assert_eq!(kib_to_mib(51_200), 50.0);
    }

    fn report() -> Report {
        Report {
            meta: RunMeta {
                kind: "edit".into(),
                scenario: "edit".into(),
                protocol: "y-websocket".into(),
                server_name: None,
                url: "ws://127.0.0.1:1/rooms".into(),
                room_prefix: "lt-x".into(),
            },
            rooms: 2,
            clients_per_room: 2,
            rate: 1.0,
            duration_s: 1.0,
            awareness_hz: 0.0,
            clients_connected: 4,
            connection_errors: 0,
            connect_failures: 0,
            disconnects: 0,
            connect_s: 0.1,
            edit_s: 1.0,
            edits_sent: 4,
            edits_per_s: 4.0,
            missed_ticks: 0,
            awareness_sent: 0,
            deliveries: 4,
            deliveries_expected: 4,
            deliveries_per_s: 4.0,
            frames_received: 20,
            latency_ms: LatencySummary::default(),
            rooms_converged: 2,
            rooms_not_converged: 0,
            convergence_wait_s: 0.0,
            server: None,
            loadgen_cpu_s: None,
            loadgen_cpu_percent: None,
            ok: true,
        }
    }

    #[test]
    fn connection_errors_and_divergence_fail_the_run() {
        assert!(report().failures().is_empty());
        let mut failed = report();
        failed.connection_errors = 1;
        failed.connect_failures = 1;
        failed.rooms_not_converged = 1;
        let failures = failed.failures();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failed.table().contains("FAILED"));
    }

    #[test]
    fn the_json_is_one_line_with_every_figure() {
        let line = report().json_line().unwrap();
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["edits_sent"], 4);
        assert_eq!(value["kind"], "edit");
        assert_eq!(value["protocol"], "y-websocket");
        assert_eq!(value["latency_ms"]["p99"], serde_json::Value::Null);
        assert_eq!(value["ok"], true);
    }
}
