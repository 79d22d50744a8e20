//! The cold load's reports: seeding rooms with history, then opening them all from the store.

use serde::Serialize;

use super::{LatencySummary, RunMeta, ScenarioReport, ServerSample, Table, show_latency};

/// Cold load, seed phase.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    #[serde(flatten)]
    pub meta: RunMeta,
    pub rooms: u32,
    /// Updates written into each room.
    pub history: u32,
    pub updates_sent: u64,
    pub seed_s: f64,
    pub updates_per_s: f64,
    /// Rooms a fresh client found complete (every update there) after seeding.
    pub rooms_verified: u64,
    pub rooms_failed: u64,
    /// Bytes of one room's document (state as one update), as the verifying client saw it.
    pub document_bytes: Option<u64>,
    pub server: Option<ServerSample>,
    pub ok: bool,
}

impl ScenarioReport for SeedReport {
    fn failures(&self) -> Vec<String> {
        if self.rooms_failed > 0 {
            vec![format!("{} of {} rooms were not seeded completely", self.rooms_failed, self.rooms)]
        } else {
            Vec::new()
        }
    }

    fn table(&self) -> String {
        let mut t = Table::new(&self.meta, self.rooms);
        t.row("seeded", format_args!("{} updates ({} per room) in {:.2} s ({:.1}/s); {} rooms verified, {} failed; document {} bytes",
            self.updates_sent,
            self.history,
            self.seed_s,
            self.updates_per_s,
            self.rooms_verified,
            self.rooms_failed,
            self.document_bytes.map_or_else(|| "-".into(), |b| b.to_string())));
        t.server(self.server.as_ref());
        t.finish()
    }
}

/// Cold load, measure phase: every seeded room opened once.
#[derive(Debug, Clone, Serialize)]
pub struct ColdLoadReport {
    #[serde(flatten)]
    pub meta: RunMeta,
    pub rooms: u32,
    pub clients_per_room: u32,
    pub history: u32,
    pub connect_concurrency: u32,
    /// From the first connection attempt until every client had its first sync.
    pub open_all_s: f64,
    pub rooms_per_s: f64,
    /// Per client: from starting to connect until sync step 2 arrived.
    pub first_sync_ms: LatencySummary,
    /// Per client: from starting to connect until the whole seeded history was in its document
    /// (a server may answer the handshake before its store has loaded the room).
    pub content_ms: LatencySummary,
    pub connect_failures: u64,
    /// Rooms whose client found every seeded update.
    pub rooms_complete: u64,
    pub rooms_incomplete: u64,
    /// Server memory with every room open (and CPU over the opening).
    pub server: Option<ServerSample>,
    pub ok: bool,
}

impl ScenarioReport for ColdLoadReport {
    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.connect_failures > 0 {
            failures.push(format!("{} clients failed to connect or sync", self.connect_failures));
        }
        if self.rooms_incomplete > 0 {
            failures.push(format!("{} of {} rooms came back incomplete", self.rooms_incomplete, self.rooms));
        }
        failures
    }

    fn table(&self) -> String {
        let mut t = Table::new(&self.meta, self.rooms);
        t.row(
            "opened",
            format_args!(
                "{} rooms × {} ({} updates of history each) in {:.2} s ({:.1} rooms/s), {} at a time",
                self.rooms,
                self.clients_per_room,
                self.history,
                self.open_all_s,
                self.rooms_per_s,
                self.connect_concurrency
            ),
        );
        t.row("first sync ms", format_args!("{}", show_latency(&self.first_sync_ms)));
        t.row("full history ms", format_args!("{}", show_latency(&self.content_ms)));
        t.row(
            "content",
            format_args!(
                "{} rooms complete, {} incomplete; {} connection failures",
                self.rooms_complete, self.rooms_incomplete, self.connect_failures
            ),
        );
        t.server(self.server.as_ref());
        t.finish()
    }
}
