//! HTTP routes and the state they share.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use dojo_store::DocumentStore;

use crate::Storage;
use crate::api::{self, ApiError};
use crate::auth::{Auth, Caller};
use crate::compaction::CompactionPolicy;
use crate::config::{Config, Limits};
use crate::connection::{Connection, UserRate};
use crate::metrics::{Metrics, ReasonLabel};
use crate::rate::{self, UserLimiter};
use crate::room::RoomSettings;
use crate::room_name::RoomName;
use crate::rooms::Rooms;

/// Bytes tungstenite may buffer for writing beyond one frame; past it a send fails rather than
/// growing memory (its default is unbounded).
const WRITE_BUFFER_SLACK: usize = 1024 * 1024;

/// tungstenite's read buffer per connection (its default is 128 KiB, allocated up front): most
/// frames are tens of bytes, and bigger ones are still read whole, in more reads. With the
/// default, an idle connection cost ~135 KiB (BENCHMARKS.md, idle memory).
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Bytes tungstenite gathers before writing to the socket without a flush. Our writer flushes
/// after each batch of frames, so this only caps how much one batch holds before it is written.
pub const WRITE_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Arc<Limits>,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
    connection_slots: Arc<Semaphore>,
    preauth: crate::preauth::Preauth,
    next_conn_id: AtomicU64,
    shutdown: CancellationToken,
    connections: TaskTracker,
    auth: Arc<Auth>,
    http_limiter: Arc<UserLimiter>,
    ws_limiter: Arc<UserLimiter>,
    /// Per client IP, for the routes that take no token (`crate::public_rate`).
    public_limiter: Arc<UserLimiter>,
    config: Arc<Config>,
    executor: Arc<crate::execution::Executor>,
    /// The executor's dispatcher, workers and sweeper.
    executor_tasks: TaskTracker,
    /// Bytes waiting to be sent, server-wide.
    outbound: Arc<crate::outbound_budget::OutboundBudget>,
    user_connections: Arc<crate::user_connections::UserConnections>,
}

impl AppState {
    pub async fn new(
        config: &Config,
        storage: Storage,
        metrics: Arc<Metrics>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
        shutdown: CancellationToken,
    ) -> Result<Self, crate::ServeError> {
        let auth = Arc::new(Auth::new(&config.auth, storage.accounts)?);
        let store = storage.documents;
        let http_limiter = rate::user_limiter(config.http.http_rate_per_sec, config.http.http_burst);
        let ws_limiter = rate::user_limiter(config.http.ws_rate_per_sec, config.http.ws_burst);
        let public_limiter = rate::user_limiter(config.http.public_rate_per_sec, config.http.public_burst);
        rate::forget_idle_users(
            vec![http_limiter.clone(), ws_limiter.clone(), public_limiter.clone()],
            shutdown.clone(),
        );
        let limits = Arc::new(config.limits.clone());
        let settings = RoomSettings {
            queue: limits.room_queue,
            queue_bytes: limits.room_queue_bytes,
            max_awareness_clients_per_connection: limits.max_awareness_clients_per_connection,
            presence: crate::presence_limits::PresenceLimits::from(&*limits),
            unload_after: std::time::Duration::from_secs(config.rooms.unload_after_secs),
            compaction: CompactionPolicy {
                after_rows: config.rooms.compact_after_updates.max(1),
                after_bytes: config.rooms.compact_after_bytes.max(1),
                keep_versions: config.rooms.keep_versions.max(1),
            },
            max_batch_updates: config.rooms.max_batch_updates.max(1),
            max_document_bytes: limits.max_document_bytes,
        };
        let rooms = Arc::new(Rooms::new(
            limits.max_rooms,
            limits.max_rooms_per_user,
            settings,
            metrics.clone(),
            store,
            cluster,
        ));
        let outbound = crate::outbound_budget::OutboundBudget::new(limits.outbound_global_bytes);
        outbound.spawn_shedder(metrics.clone(), shutdown.clone());
        let user_connections = crate::user_connections::UserConnections::new(limits.max_connections_per_user);
        let executor_tasks = TaskTracker::new();
        let executor = crate::execution::Executor::start(
            &config.executor,
            storage.runs,
            crate::execution::room_readers(&auth),
            rooms.clone(),
            config.redis_url.as_deref(),
            shutdown.clone(),
            &executor_tasks,
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                rooms,
                executor,
                executor_tasks,
                connection_slots: Arc::new(Semaphore::new(limits.max_connections)),
                preauth: crate::preauth::Preauth::new(
                    limits.max_unauthenticated,
                    limits.max_unauthenticated_per_ip,
                    limits.preauth_total_bytes,
                    metrics.edge.unauthenticated_sockets.clone(),
                    metrics.edge.preauth_queued_bytes.clone(),
                ),
                limits,
                metrics,
                next_conn_id: AtomicU64::new(1),
                shutdown,
                connections: TaskTracker::new(),
                auth,
                http_limiter,
                ws_limiter,
                public_limiter,
                config: Arc::new(config.clone()),
                outbound,
                user_connections,
            }),
        })
    }

    pub fn auth(&self) -> &Arc<Auth> {
        &self.inner.auth
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn http_limiter(&self) -> &Arc<UserLimiter> {
        &self.inner.http_limiter
    }

    pub fn public_limiter(&self) -> &Arc<UserLimiter> {
        &self.inner.public_limiter
    }

    pub fn rooms_open(&self) -> usize {
        self.inner.rooms.len()
    }

    pub fn executor(&self) -> &Arc<crate::execution::Executor> {
        &self.inner.executor
    }

    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.inner.rooms
    }

    // What the Hocuspocus endpoint (`crate::hocuspocus`) shares with `/rooms`.

    pub(crate) fn limits(&self) -> &Arc<Limits> {
        &self.inner.limits
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Connection ids come from one counter: a room cannot confuse its peers across endpoints.
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.inner.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn try_connection_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.inner.connection_slots.clone().try_acquire_owned().ok()
    }

    pub(crate) fn preauth(&self) -> &crate::preauth::Preauth {
        &self.inner.preauth
    }

    pub(crate) fn outbound(&self) -> &Arc<crate::outbound_budget::OutboundBudget> {
        &self.inner.outbound
    }

    /// One of the caller's connection slots (`None`: anonymous callers are not counted).
    pub(crate) fn user_connection_slot(
        &self,
        caller: &Caller,
    ) -> Result<
        Option<crate::user_connections::UserConnectionSlot>,
        crate::user_connections::TooManyConnections,
    > {
        match caller.user() {
            Some(user) => self.inner.user_connections.try_acquire(&user.id).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn connections(&self) -> &TaskTracker {
        &self.inner.connections
    }

    pub(crate) fn ws_limiter(&self) -> &Arc<UserLimiter> {
        &self.inner.ws_limiter
    }

    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        self.inner.rooms.store()
    }

    /// After the listener has stopped: lets every connection send its close frame (bounded by
    /// the shutdown grace period), then stops the rooms.
    pub async fn drain(&self) {
        self.inner.shutdown.cancel();
        self.inner.connections.close();
        let grace = self.inner.limits.shutdown_grace();
        if tokio::time::timeout(grace, self.inner.connections.wait()).await.is_err() {
            tracing::warn!(
                remaining = self.inner.connections.len(),
                "shutdown grace period over; dropping connections"
            );
        }
        // Runs in flight stop where they are (they resume after a restart) before the rooms
        // they write into go away.
        self.inner.executor_tasks.close();
        if tokio::time::timeout(grace, self.inner.executor_tasks.wait()).await.is_err() {
            tracing::warn!("runs did not stop within the shutdown grace period");
        }
        self.inner.rooms.shutdown().await;
    }
}

pub fn router(state: AppState) -> Router {
    let by_ip = axum::middleware::from_fn_with_state(state.clone(), crate::public_rate::limit_by_ip);
    let origins = Arc::new(crate::origin::OriginPolicy::new(
        &state.config().http.cors_origins,
        state.auth().dev_mode(),
    ));
    Router::new()
        .route("/rooms/{room}", get(room_socket))
        .route("/collab", get(crate::hocuspocus::collab_socket))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).layer(by_ip))
        .route("/metrics", get(metrics))
        .merge(api::routes(&state))
        .merge(crate::web::routes(&state.config().http.web_dir))
        .layer(axum::middleware::from_fn_with_state(origins, crate::origin::refuse_foreign_origins))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.inner.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.store().ping().await {
        Ok(()) => "ready".into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: storage unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unreachable").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    let token = crate::auth::bearer_token(request.headers(), None);
    let configured = state.config().http.metrics_token.as_ref();
    if let Err(error) =
        crate::metrics_access::check(peer.map(|info| info.0.ip()), configured, token.as_deref())
    {
        return error.into_response();
    }
    state.inner.metrics.outbound_bytes_held.set(state.inner.outbound.held().try_into().unwrap_or(i64::MAX));
    let body = state.inner.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

pub(crate) fn refuse_with(state: &AppState, reason: &'static str, error: ApiError) -> Response {
    state.inner.metrics.rejected.get_or_create(&ReasonLabel { reason }).inc();
    error.into_response()
}

pub(crate) fn refuse(
    state: &AppState,
    status: StatusCode,
    reason: &'static str,
    message: String,
) -> Response {
    state.inner.metrics.rejected.get_or_create(&ReasonLabel { reason }).inc();
    (status, message).into_response()
}

async fn room_socket(
    State(state): State<AppState>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let name = match RoomName::parse(&room) {
        Ok(name) => name,
        Err(error) => return refuse(&state, StatusCode::BAD_REQUEST, "bad_room_name", error.to_string()),
    };
    // Refused before the upgrade: an unauthenticated client costs no socket and no room.
    let token = crate::auth::bearer_token(&headers, query.as_deref());
    let caller = match state.inner.auth.authenticate(token.as_deref()).await {
        Ok(caller) => caller,
        Err(error) => return refuse_with(&state, "unauthorized", ApiError::from(error)),
    };
    let permission = match state.inner.auth.room_permission(&caller, name.as_str()).await {
        Ok(permission) => permission,
        Err(error) => return refuse_with(&state, "forbidden", ApiError::from(error)),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    if state.inner.shutdown.is_cancelled() {
        return refuse(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "server shutting down".into(),
        );
    }
    let Ok(permit) = state.inner.connection_slots.clone().try_acquire_owned() else {
        return refuse(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "too many connections".into(),
        );
    };
    let user_slot = match state.user_connection_slot(&caller) {
        Ok(slot) => slot,
        Err(error) => return too_many_connections(&state, &error),
    };
    let room = match state.inner.rooms.get_or_open_for(&name, caller.user().map(|user| user.id.as_str())) {
        Ok(room) => room,
        Err(error @ crate::rooms::OpenRefused::UserQuota(_)) => {
            return refuse_with(&state, "room_quota", ApiError::from(error));
        }
        Err(error) => {
            return refuse(&state, StatusCode::SERVICE_UNAVAILABLE, "too_many_rooms", error.to_string());
        }
    };
    let limits = state.inner.limits.clone();
    let id = state.inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let expires_at = caller.identity().map(|identity| {
        tokio::time::Instant::now() + std::time::Duration::from_secs(identity.seconds_left())
    });
    let rate = match &caller {
        Caller::Anonymous => None,
        Caller::User(signed_in) => {
            Some(UserRate { limiter: state.inner.ws_limiter.clone(), user: signed_in.user.id.clone() })
        }
    };
    let user = caller.user().map(|user| user.id.clone()).unwrap_or_default();
    let connection = Connection {
        id,
        room,
        room_name: name.clone(),
        rooms: state.inner.rooms.clone(),
        limits: limits.clone(),
        metrics: state.inner.metrics.clone(),
        shutdown: state.inner.shutdown.clone(),
        permit,
        user_slot,
        outbound: state.inner.outbound.clone(),
        can_write: permission.can_write(),
        rules: crate::executor_maps::write_rules(&caller, &state.inner.config),
        expires_at,
        rate,
    };
    let span = tracing::info_span!("connection", room = %name, conn = id, %user, %permission);
    let connections = state.inner.connections.clone();
    upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(limits.max_frame_bytes.saturating_add(WRITE_BUFFER_SLACK))
        .on_failed_upgrade(|error| tracing::debug!(%error, "websocket upgrade failed"))
        .on_upgrade(move |socket| connections.track_future(connection.run(socket).instrument(span)))
}

/// 429 in the API's error envelope (`{"error", "code"}`), code `too_many_connections`.
fn too_many_connections(state: &AppState, error: &crate::user_connections::TooManyConnections) -> Response {
    state.inner.metrics.rejected.get_or_create(&ReasonLabel { reason: "too_many_user_connections" }).inc();
    let body = serde_json::json!({ "error": error.to_string(), "code": "too_many_connections" });
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}
