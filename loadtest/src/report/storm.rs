//! The reconnect storm's report: every client dropped at once, reconnected and resynced.

use serde::Serialize;

use super::{LatencySummary, RunMeta, ScenarioReport, ServerSample, Table, show_latency};

/// Reconnect storm: every client dropped at once and reconnected.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    #[serde(flatten)]
    pub meta: RunMeta,
    pub rooms: u32,
    pub clients_per_room: u32,
    pub clients_connected: u64,
    pub connect_failures: u64,
    pub reconnect_concurrency: u32,
    /// Clients dropped (all connected ones).
    pub dropped: u64,
    pub resynced: u64,
    /// Clients that could not reconnect or resync within the timeout.
    pub resync_failures: u64,
    /// From the drop until the last client had resynced.
    pub all_resynced_s: f64,
    /// Per client: from the drop until its sync step 2 arrived.
    pub resync_ms: LatencySummary,
    /// Rooms whose clients all hold the same state afterwards (the offline edits included).
    pub rooms_converged: u64,
    pub rooms_not_converged: u64,
    pub convergence_wait_s: f64,
    /// Over the storm (drop to convergence).
    pub server: Option<ServerSample>,
    pub ok: bool,
}

impl ScenarioReport for StormReport {
    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.connect_failures > 0 {
            failures.push(format!("{} clients failed to connect before the storm", self.connect_failures));
        }
        if self.resync_failures > 0 {
            failures.push(format!("{} clients failed to reconnect and resync", self.resync_failures));
        }
        if self.rooms_not_converged > 0 {
            failures.push(format!("{} of {} rooms did not converge", self.rooms_not_converged, self.rooms));
        }
        failures
    }

    fn table(&self) -> String {
        let mut t = Table::new(&self.meta, self.rooms);
        t.row(
            "storm",
            format_args!(
                "{} clients dropped at once, {} resynced, {} failed ({} reconnecting at a time)",
                self.dropped, self.resynced, self.resync_failures, self.reconnect_concurrency
            ),
        );
        t.row("all resynced after", format_args!("{:.3} s", self.all_resynced_s));
        t.row("resync ms", format_args!("{}", show_latency(&self.resync_ms)));
        t.row(
            "converged",
            format_args!(
                "{} of {} rooms ({} not), after {:.2} s",
                self.rooms_converged, self.rooms, self.rooms_not_converged, self.convergence_wait_s
            ),
        );
        t.server(self.server.as_ref());
        t.finish()
    }
}
