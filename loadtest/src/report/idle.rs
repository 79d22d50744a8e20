//! The idle-memory census's report: the server's resident memory per open room and connection.

use serde::Serialize;

use super::{RunMeta, ScenarioReport, Table, show};

/// Idle memory: open rooms, no traffic, the server's resident memory per room and connection.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    #[serde(flatten)]
    pub meta: RunMeta,
    pub rooms: u32,
    pub clients_per_room: u32,
    pub connections: u64,
    pub connect_failures: u64,
    pub connect_s: f64,
    pub settle_s: f64,
    /// `VmRSS` before the first connection.
    pub rss_before_mib: f64,
    /// `VmRSS` with every room open, after settling.
    pub rss_open_mib: f64,
    /// (open − before) ÷ rooms: a room with its clients.
    pub per_room_kib: f64,
    /// (open − before) ÷ connections.
    pub per_connection_kib: f64,
    /// Clients added to every room for the second census (0: none).
    pub extra_connections: u64,
    pub rss_extra_mib: Option<f64>,
    /// (extra − open) ÷ extra connections: one more connection to an open room.
    pub per_extra_connection_kib: Option<f64>,
    /// per_room − clients_per_room × per_extra_connection: the room alone.
    pub per_room_alone_kib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub ok: bool,
}

impl ScenarioReport for IdleReport {
    fn failures(&self) -> Vec<String> {
        if self.connect_failures > 0 {
            vec![format!("{} clients failed to connect", self.connect_failures)]
        } else {
            Vec::new()
        }
    }

    fn table(&self) -> String {
        let mut t = Table::new(&self.meta, self.rooms);
        t.row(
            "opened",
            format_args!(
                "{} rooms × {} = {} connections in {:.2} s ({} failed), settled {} s",
                self.rooms,
                self.clients_per_room,
                self.connections,
                self.connect_s,
                self.connect_failures,
                self.settle_s
            ),
        );
        t.row(
            "server rss",
            format_args!(
                "{:.1} MiB before, {:.1} MiB open: {:.1} KiB per room, {:.1} KiB per connection",
                self.rss_before_mib, self.rss_open_mib, self.per_room_kib, self.per_connection_kib
            ),
        );
        if let (Some(rss), Some(per)) = (self.rss_extra_mib, self.per_extra_connection_kib) {
            t.row(
                "extra connections",
                format_args!(
                    "{} more: {:.1} MiB, {:.1} KiB per extra connection; a room alone {} KiB",
                    self.extra_connections,
                    rss,
                    per,
                    show(self.per_room_alone_kib)
                ),
            );
        }
        t.finish()
    }
}
