//! `AppState`: what every handler and socket shares (limits, rooms, auth, budgets, metrics,
//! the executor), built once at start-up. Its own module so that the router (`app`), the API
//! handlers and the socket endpoints all import it without importing each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use dojo_store::DocumentStore;

use crate::caller::{Auth, Caller};
use crate::compaction::CompactionPolicy;
use crate::config::{Config, Limits};
use crate::metrics::Metrics;
use crate::outbound_budget::OutboundBudget;
use crate::preauth::Preauth;
use crate::rate::{self, ClientLimiter, UserLimiter};
use crate::room::RoomSettings;
use crate::room_registry::Rooms;
use crate::storage::Storage;
use crate::user_connections::{TooManyConnections, UserConnectionSlot, UserConnections};

/// Why the shared state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("authentication is misconfigured: {0}")]
    Auth(#[from] crate::caller::AuthSetupError),
    #[error("runs cannot execute: {0}")]
    Executor(#[from] crate::execution::StartError),
}

#[derive(Clone)]
/// Cheap to clone: one `Arc`.
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Arc<Limits>,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
    connection_slots: Arc<Semaphore>,
    preauth: Preauth,
    next_conn_id: AtomicU64,
    shutdown: CancellationToken,
    connections: TaskTracker,
    auth: Arc<Auth>,
    http_limiter: Arc<UserLimiter>,
    ws_limiter: Arc<UserLimiter>,
    /// Per client IP, for the routes that take no token (`crate::public_rate`).
    public_limiter: Arc<ClientLimiter>,
    config: Arc<Config>,
    executor: Arc<crate::execution::Executor>,
    /// The executor's dispatcher, workers and sweeper.
    executor_tasks: TaskTracker,
    /// Bytes waiting to be sent, server-wide.
    outbound: Arc<OutboundBudget>,
    user_connections: Arc<UserConnections>,
    /// Recent graph edits made over HTTP, with what undoing each needs (bounded).
    edits: Arc<crate::edit_history::EditHistory>,
    webhooks: crate::webhooks::Webhooks,
    teams: Arc<dyn dojo_records::TeamStore>,
    audit: Arc<dyn dojo_records::AuditLog>,
    provider_keys: Arc<dyn dojo_records::ProviderKeyStore>,
    data_rights: Arc<dyn dojo_records::DataRightsStore>,
    jobs: Arc<dyn dojo_records::JobStore>,
    support: Arc<dyn dojo_records::SupportStore>,
    fraud: Arc<dyn dojo_records::FraudStore>,
    engagement: Arc<dyn dojo_records::EngagementStore>,
    suggestions: Arc<dyn dojo_records::SuggestionStore>,
    queue: Arc<dyn dojo_records::QueueStore>,
    apps: Arc<dyn dojo_records::AppStore>,
    /// One export per user per `DOJO_EXPORT_INTERVAL_SECS`.
    export_limiter: Arc<UserLimiter>,
    /// The webhook writer and delivery loop.
    webhook_tasks: TaskTracker,
}

impl AppState {
    pub async fn new(
        config: &Config,
        storage: Storage,
        metrics: Arc<Metrics>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
        shutdown: CancellationToken,
    ) -> Result<Self, StateError> {
        let webhook_tasks = TaskTracker::new();
        let webhooks = crate::webhooks::Webhooks::start(
            &config.webhooks,
            storage.webhooks.clone(),
            crate::webhooks::Sources { accounts: storage.accounts.clone(), runs: storage.runs.clone() },
            // With Redis, `dojo-worker`s may execute runs: their ends are found in the database.
            config.redis_url.is_some(),
            metrics.clone(),
            shutdown.clone(),
            &webhook_tasks,
        );
        // Every node or run this process ends, and every cancellation, is reported.
        let runs = crate::webhooks::RunEvents::wrap(storage.runs.clone(), webhooks.clone());
        let (engagement, suggestions) = (storage.engagement, storage.suggestions);
        let (teams, audit, provider_keys, data_rights, jobs, support, fraud, queue) = (
            storage.teams,
            storage.audit,
            storage.provider_keys,
            storage.data_rights,
            storage.jobs,
            storage.support,
            storage.fraud,
            storage.queue,
        );
        let apps = storage.apps;
        // Scheduled agent jobs: stopped and awaited with the webhook tasks.
        crate::agent_schedules::start(
            jobs.clone(),
            std::time::Duration::from_millis(config.agents.schedule_tick_ms),
            shutdown.clone(),
            &webhook_tasks,
        );
        // One export per user per interval: an export reads everything they have.
        let export_limiter: Arc<UserLimiter> =
            rate::keyed_limiter_per(std::time::Duration::from_secs(config.http.export_interval_secs.max(1)));
        let auth = Arc::new(Auth::new(&config.auth, storage.accounts)?.with_activity(engagement.clone()));
        let store = storage.documents;
        let http_limiter: Arc<UserLimiter> =
            rate::keyed_limiter(config.http.http_rate_per_sec, config.http.http_burst);
        let ws_limiter: Arc<UserLimiter> =
            rate::keyed_limiter(config.http.ws_rate_per_sec, config.http.ws_burst);
        let public_limiter: Arc<ClientLimiter> =
            rate::keyed_limiter(config.http.public_rate_per_sec, config.http.public_burst);
        rate::forget_idle_users(
            vec![
                http_limiter.clone() as Arc<dyn rate::ForgetIdle>,
                export_limiter.clone(),
                ws_limiter.clone(),
                public_limiter.clone(),
            ],
            shutdown.clone(),
        );
        let limits = Arc::new(config.limits.clone());
        let settings = RoomSettings {
            queue: limits.room_queue,
            queue_bytes: limits.room_queue_bytes,
            max_awareness_clients_per_connection: limits.max_awareness_clients_per_connection,
            presence: crate::presence_limits::PresenceLimits::from(&*limits),
            unload_after: std::time::Duration::from_secs(config.rooms.unload_after_secs),
            hibernate_after: std::time::Duration::from_secs(config.rooms.hibernate_after_secs),
            compaction: CompactionPolicy {
                after_rows: config.rooms.compact_after_updates.max(1),
                after_bytes: config.rooms.compact_after_bytes.max(1),
                keep_versions: config.rooms.keep_versions.max(1),
            },
            max_batch_updates: config.rooms.max_batch_updates.max(1),
            max_document_bytes: limits.max_document_bytes,
        };
        let rooms = Arc::new(
            Rooms::new(
                limits.max_rooms,
                limits.max_rooms_per_user,
                settings,
                metrics.clone(),
                store,
                cluster,
                crate::compaction::CompactionSlots::new(config.rooms.compactions_at_once),
            )
            .with_webhooks(webhooks.clone()),
        );
        let outbound = OutboundBudget::new(limits.outbound_global_bytes);
        outbound.spawn_shedder(metrics.clone(), shutdown.clone());
        let user_connections = UserConnections::new(limits.max_connections_per_user);
        let executor_tasks = TaskTracker::new();
        let executor = crate::execution::Executor::start(
            &config.executor,
            crate::execution::ExecutorStores {
                runs,
                readers: crate::execution::room_readers(&auth),
                team_keys: dojo_executor::worker::TeamKeySource {
                    store: provider_keys.clone(),
                    keyring: config.keys.keyring(),
                },
            },
            rooms.clone(),
            config.redis_url.as_deref(),
            shutdown.clone(),
            &executor_tasks,
        )
        .await?;
        executor_tasks.spawn(crate::execution::queue_summaries::run(
            queue.clone(),
            executor.runs().clone(),
            rooms.clone(),
            i64::from(match config.plans.queue_slots {
                0 => u32::try_from(config.executor.run_workers).unwrap_or(u32::MAX),
                slots => slots,
            }),
            shutdown.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                rooms,
                executor,
                executor_tasks,
                connection_slots: Arc::new(Semaphore::new(limits.max_connections)),
                preauth: Preauth::new(
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
                edits: Arc::new(crate::edit_history::EditHistory::default()),
                webhooks,
                teams,
                audit,
                provider_keys,
                data_rights,
                jobs,
                support,
                fraud,
                engagement,
                suggestions,
                queue,
                apps,
                export_limiter,
                webhook_tasks,
            }),
        })
    }

    pub(crate) fn teams(&self) -> &Arc<dyn dojo_records::TeamStore> {
        &self.inner.teams
    }

    pub(crate) fn audit(&self) -> &Arc<dyn dojo_records::AuditLog> {
        &self.inner.audit
    }

    pub(crate) fn provider_keys(&self) -> &Arc<dyn dojo_records::ProviderKeyStore> {
        &self.inner.provider_keys
    }

    pub(crate) fn queue(&self) -> &Arc<dyn dojo_records::QueueStore> {
        &self.inner.queue
    }

    pub(crate) fn data_rights(&self) -> &Arc<dyn dojo_records::DataRightsStore> {
        &self.inner.data_rights
    }

    pub(crate) fn jobs(&self) -> &Arc<dyn dojo_records::JobStore> {
        &self.inner.jobs
    }

    /// Background tasks awaited at shutdown with the webhook delivery loop: the agents.
    pub(crate) fn background_tasks(&self) -> &TaskTracker {
        &self.inner.webhook_tasks
    }

    pub(crate) fn apps(&self) -> &Arc<dyn dojo_records::AppStore> {
        &self.inner.apps
    }

    pub(crate) fn support(&self) -> &Arc<dyn dojo_records::SupportStore> {
        &self.inner.support
    }

    pub(crate) fn fraud(&self) -> &Arc<dyn dojo_records::FraudStore> {
        &self.inner.fraud
    }

    pub(crate) fn engagement(&self) -> &Arc<dyn dojo_records::EngagementStore> {
        &self.inner.engagement
    }

    pub(crate) fn suggestions(&self) -> &Arc<dyn dojo_records::SuggestionStore> {
        &self.inner.suggestions
    }

    pub(crate) fn export_limiter(&self) -> &Arc<UserLimiter> {
        &self.inner.export_limiter
    }

    pub(crate) fn auth(&self) -> &Arc<Auth> {
        &self.inner.auth
    }

    pub(crate) fn edits(&self) -> &crate::edit_history::EditHistory {
        &self.inner.edits
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub(crate) fn http_limiter(&self) -> &Arc<UserLimiter> {
        &self.inner.http_limiter
    }

    pub(crate) fn public_limiter(&self) -> &Arc<ClientLimiter> {
        &self.inner.public_limiter
    }

    pub(crate) fn executor(&self) -> &Arc<crate::execution::Executor> {
        &self.inner.executor
    }

    pub(crate) fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.inner.webhooks
    }

    pub(crate) fn rooms(&self) -> &Arc<Rooms> {
        &self.inner.rooms
    }

    // What the WebSocket endpoints share (`crate::admission`).

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

    pub(crate) fn preauth(&self) -> &Preauth {
        &self.inner.preauth
    }

    pub(crate) fn outbound(&self) -> &Arc<OutboundBudget> {
        &self.inner.outbound
    }

    /// One of the caller's connection slots (`None`: anonymous callers are not counted).
    pub(crate) fn user_connection_slot(
        &self,
        caller: &Caller,
    ) -> Result<Option<UserConnectionSlot>, TooManyConnections> {
        match caller.user() {
            Some(user) => self.inner.user_connections.try_acquire(user.id.as_str()).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn connections(&self) -> &TaskTracker {
        &self.inner.connections
    }

    pub(crate) fn ws_limiter(&self) -> &Arc<UserLimiter> {
        &self.inner.ws_limiter
    }

    pub(crate) fn store(&self) -> &Arc<dyn DocumentStore> {
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
        // The webhook writer stores what was reported until now; the delivery loop stops (a
        // claim it held is retried after its lease).
        self.inner.webhook_tasks.close();
        if tokio::time::timeout(grace, self.inner.webhook_tasks.wait()).await.is_err() {
            tracing::warn!("webhook tasks did not stop within the shutdown grace period");
        }
    }
}
