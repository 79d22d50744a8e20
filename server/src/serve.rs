//! The server's lifecycle: start the cluster link, the shared state and the HTTP listener;
//! on shutdown, close the sockets and stop the rooms.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::{AppState, StateError};
use crate::storage::Storage;
use crate::{cluster, http_server, metrics};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("scale-out (REDIS_URL) needs PostgreSQL: an SQLite file belongs to one process")]
    ClusterNeedsPostgres,
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
    crate::memory_trim::spawn(metrics.clone(), shutdown.clone());
    let state = AppState::new(&config, storage, metrics, cluster, shutdown.clone()).await?;
    crate::services::provider_keys::rewrap_on_start(
        state.provider_keys(),
        config.keys.keyring(),
        state.audit(),
    );
    crate::agents::start(&state, &shutdown, state.background_tasks());
    let app = crate::app::router(state.clone());
    let edge = http_server::EdgeSettings {
        header_timeout: std::time::Duration::from_secs(config.http.header_timeout_secs.max(1)),
        body_idle_timeout: std::time::Duration::from_secs(config.http.http_idle_secs.max(1)),
        max_tcp_connections: config.tcp_connection_limit(),
        shutdown_grace: config.limits.shutdown_grace(),
        trusted_proxies: config.http.trusted_proxies.clone().into(),
    };
    // The HTTP server's graceful shutdown covers plain HTTP only; upgraded sockets watch
    // `shutdown` themselves and are awaited in `drain`.
    http_server::serve(listener, app, edge, state.metrics().clone(), shutdown.clone()).await;
    state.drain().await;
    Ok(())
}
