//! Dojo's room server: one Yjs document per room, served over y-protocols on WebSockets.
//!
//! See `ARCHITECTURE.md` at the repository root for how a frame flows through these modules.

pub mod api;
pub mod app;
pub mod auth;
pub mod close;
pub mod cluster;
pub mod cluster_presence;
pub mod compaction;
pub mod config;
pub mod connection;
pub mod document_size;
pub mod execution;
pub mod executor_maps;
pub mod hocuspocus;
pub mod http_server;
pub mod journal;
pub mod metrics;
pub mod metrics_access;
pub mod origin;
pub mod outbound_budget;
pub mod outbox;
pub mod preauth;
pub mod presence_limits;
pub mod public_rate;
pub mod quarantine;
pub mod queue_budget;
pub mod rate;
pub mod room;
pub mod room_name;
pub mod room_openers;
pub mod rooms;
pub mod services;
pub mod stall_guard;
pub mod user_connections;
pub mod web;

use std::sync::Arc;

use dojo_accounts::AccountStore;
use dojo_store::{DocumentStore, StoreError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use app::{AppState, router};
pub use config::Config;

/// Where everything durable lives: documents, and accounts (users, workflows, credits), on one
/// database.
#[derive(Clone)]
pub struct Storage {
    pub documents: Arc<dyn DocumentStore>,
    pub accounts: Arc<dyn AccountStore>,
    /// Runs, credit holds and asset records (same database).
    pub runs: Arc<dyn dojo_accounts::RunStore>,
}

impl Storage {
    /// Opens the database `url` names and applies its migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let database = dojo_store::open_database(url).await?;
        Ok(Self {
            documents: database.documents(),
            accounts: dojo_accounts::accounts(&database),
            runs: dojo_accounts::runs(&database),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("authentication is misconfigured: {0}")]
    Auth(#[from] auth::AuthSetupError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("scale-out (REDIS_URL) needs PostgreSQL: an SQLite file belongs to one process")]
    ClusterNeedsPostgres,
    #[error("runs cannot execute: {0}")]
    Executor(#[from] execution::StartError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves until `shutdown` fires, then closes every WebSocket with a close frame, stops the rooms
/// (each stores what it holds first) and returns.
pub async fn serve(
    config: Config,
    storage: Storage,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let metrics = Arc::new(metrics::Metrics::new());
    let cluster = match &config.redis_url {
        Some(url) => {
            if !(config.database_url.starts_with("postgres://")
                || config.database_url.starts_with("postgresql://"))
            {
                return Err(ServeError::ClusterNeedsPostgres);
            }
            Some(cluster::Cluster::start(url, metrics.clone(), shutdown.clone()).await?)
        }
        None => None,
    };
    let state = AppState::new(&config, storage, metrics, cluster, shutdown.clone()).await?;
    let app = router(state.clone());
    let edge = http_server::EdgeSettings {
        header_timeout: std::time::Duration::from_secs(config.http.header_timeout_secs.max(1)),
        body_idle_timeout: std::time::Duration::from_secs(config.http.http_idle_secs.max(1)),
        max_tcp_connections: config.tcp_connection_limit(),
        shutdown_grace: config.limits.shutdown_grace(),
    };
    // The HTTP server's graceful shutdown covers plain HTTP only; upgraded sockets watch
    // `shutdown` themselves and are awaited in `drain`.
    http_server::serve(listener, app, edge, state.metrics().clone(), shutdown.clone()).await;
    state.drain().await;
    Ok(())
}
