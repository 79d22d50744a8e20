//! One typed configuration, read from flags and the environment at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "dojo-server",
    version,
    about = "Dojo: a real-time Yjs room server for node-based AI canvases"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "DOJO_ADDR", default_value = "127.0.0.1:8787")]
    pub addr: SocketAddr,

    /// Log filter, in `RUST_LOG` syntax (e.g. `info`, `dojo_server=debug,info`).
    #[arg(long, env = "DOJO_LOG", default_value = "info")]
    pub log: String,

    /// Log output format.
    #[arg(long, env = "DOJO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Where documents are stored: `postgres://…`, or `sqlite:PATH`. Unset: an SQLite file
    /// under `./data/`, so a first run persists with nothing else installed.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub rooms: RoomPolicy,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Serve rooms (the default).
    Serve,
    /// Apply database migrations and exit (serving applies them too).
    Migrate,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/dojo.db";

/// How rooms live in memory and in the store.
#[derive(Debug, Clone, clap::Args)]
pub struct RoomPolicy {
    /// Seconds a room stays loaded after its last client left.
    #[arg(long, env = "DOJO_ROOM_UNLOAD_SECS", default_value_t = 30)]
    pub unload_after_secs: u64,

    /// Compact a room's update log once it holds this many rows since the last snapshot…
    #[arg(long, env = "DOJO_COMPACT_AFTER_UPDATES", default_value_t = 500)]
    pub compact_after_updates: usize,

    /// …or this many bytes.
    #[arg(long, env = "DOJO_COMPACT_AFTER_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub compact_after_bytes: usize,

    /// Most updates stored in one transaction (group commit). 1 stores each update on its own,
    /// which only benchmarks want.
    #[arg(long, env = "DOJO_MAX_BATCH_UPDATES", default_value_t = 1024)]
    pub max_batch_updates: usize,

    /// Snapshots kept per room as restorable versions.
    #[arg(long, env = "DOJO_KEEP_VERSIONS", default_value_t = 10)]
    pub keep_versions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every bound the server enforces. Defaults are safe for a public deployment.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Largest WebSocket message accepted from a client, in bytes. Bigger ones close the
    /// connection with code 1009. It also caps the sync step 2 a new client can receive.
    #[arg(long, env = "DOJO_MAX_FRAME_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_frame_bytes: usize,

    /// Most simultaneous WebSocket connections; further upgrades get HTTP 503.
    #[arg(long, env = "DOJO_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most rooms held in memory; joining a new room beyond it gets HTTP 503.
    #[arg(long, env = "DOJO_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Frames that may wait to be written to one client. A client that falls this far behind
    /// is disconnected (it resyncs when it reconnects), never silently skipped.
    #[arg(long, env = "DOJO_OUTBOUND_QUEUE_FRAMES", default_value_t = 1024)]
    pub outbound_queue_frames: usize,

    /// Bytes that may wait to be written to one client (one frame is always let through, so a
    /// large sync step 2 is never refused on this account).
    #[arg(long, env = "DOJO_OUTBOUND_QUEUE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub outbound_queue_bytes: usize,

    /// Commands that may wait for one room's actor; senders wait when it is full.
    #[arg(long, env = "DOJO_ROOM_QUEUE", default_value_t = 512)]
    pub room_queue: usize,

    /// Seconds between WebSocket pings to each client.
    #[arg(long, env = "DOJO_PING_INTERVAL_SECS", default_value_t = 20)]
    pub ping_interval_secs: u64,

    /// Seconds without any frame from a client (pongs included) before it counts as dead
    /// (at least twice the ping interval).
    #[arg(long, env = "DOJO_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Awareness client ids one connection may control (a browser tab uses one).
    #[arg(long, env = "DOJO_MAX_AWARENESS_CLIENTS", default_value_t = 8)]
    pub max_awareness_clients_per_connection: usize,

    /// Seconds to wait, on shutdown, for connections to close before exiting anyway.
    #[arg(long, env = "DOJO_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

impl Limits {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    /// At least two ping intervals: a peer gets two chances to answer before it counts as dead.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1)).max(self.ping_interval() * 2)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Config::parse_from(["dojo-server"]).limits
    }
}

impl Config {
    /// The defaults, listening on an ephemeral local port and storing in `database_url`: what
    /// tests and embedders start from.
    pub fn for_tests(database_url: &str) -> Self {
        let mut config = Config::parse_from(["dojo-server"]);
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.database_url = database_url.to_owned();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let config = Config::try_parse_from(["dojo-server"]).expect("defaults parse");
        assert_eq!(config.addr, "127.0.0.1:8787".parse().unwrap());
        assert_eq!(config.limits.max_frame_bytes, 16 * 1024 * 1024);
        assert_eq!(config.limits.outbound_queue_frames, 1024);
    }

    #[test]
    fn flags_override_defaults_and_bad_values_fail_fast() {
        let config =
            Config::try_parse_from(["dojo-server", "--max-rooms", "3", "--addr", "0.0.0.0:9000"]).unwrap();
        assert_eq!(config.limits.max_rooms, 3);
        assert_eq!(config.addr.port(), 9000);
        assert!(Config::try_parse_from(["dojo-server", "--max-rooms", "lots"]).is_err());
        assert!(Config::try_parse_from(["dojo-server", "--addr", "nowhere"]).is_err());
    }
}
