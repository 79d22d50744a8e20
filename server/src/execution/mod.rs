//! Runs of canvas graphs, as `dojo-server` takes part in them.
//!
//! Durable by construction: a run is a database row written with its credit hold and an
//! outbox row (`dojo-records`' `RunStore`). This process always relays outbox rows (and
//! orphaned runs) to the queue and sweeps expired holds. The queue is in memory without Redis
//! (the embedded default), or a Redis Stream shared with `dojo-worker` processes and other
//! instances when `REDIS_URL` is set. Unless `DOJO_RUN_WORKERS=0`, this process also executes
//! runs from that queue, with the same driver the workers use (`dojo_executor::worker`),
//! writing states into its rooms through the room actors.

pub mod queue_summaries;
pub mod room_writer;

use std::sync::Arc;
use std::time::Duration;

use dojo_executor::compose::llm::{LlmPlanner, LlmSettings};
use dojo_executor::worker::QueueError;
use dojo_executor::worker::{
    DriverSettings, MemoryQueue, Relay, RelaySettings, RoomReaders, RunDriver, RunQueue, StoreCache,
    StreamQueue, StreamSettings, UnclaimedRooms, worker_name,
};
use dojo_executor::{
    AssetError, CatalogError, Engine, EngineConfig, ExecutionPlan, LoadedCatalog, ObjectAssetStore,
    ProviderConfigError,
};
use dojo_ids::RunId;
use dojo_records::RunStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use dojo_executor::worker::{now_millis, write_summary};

use crate::config::ExecutorSettings;
use crate::room_registry::Rooms;
use room_writer::LocalRooms;

/// Runs waiting in memory for a worker; the rest wait in the database (outbox, orphans).
const QUEUE_CAPACITY: usize = 256;
/// How often the outbox is read without being woken.
const OUTBOX_EVERY: Duration = Duration::from_secs(2);
/// With Redis, how long a run may sit queued or abandoned before the relay pushes it again
/// (stalled entries are taken over by `XAUTOCLAIM` long before; this covers entries Redis
/// lost), and how often it looks.
const STREAM_ORPHAN_AFTER: Duration = Duration::from_secs(300);
const STREAM_ORPHAN_EVERY: Duration = Duration::from_secs(30);
/// How often expired credit holds are released and old cache entries pruned.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Slack added to the longest a run can take before its holds may be voided.
const HOLD_SLACK: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("assets directory: {0}")]
    Assets(#[source] AssetError),
    #[error("node catalog: {0}")]
    Catalog(#[source] &'static CatalogError),
    #[error("provider configuration: {0}")]
    Providers(#[source] ProviderConfigError),
    #[error("the run queue in Redis: {0}")]
    Queue(#[source] QueueError),
}

/// What the executor reads and writes besides rooms: runs, who may read which room (which
/// assets a run may read: those its user may, with rooms no workflow claims open in dev mode),
/// and teams' provider keys.
pub struct ExecutorStores {
    pub runs: Arc<dyn RunStore>,
    pub readers: RoomReaders,
    pub team_keys: dojo_executor::worker::TeamKeySource,
}

pub struct Executor {
    driver: Arc<RunDriver>,
    relay: Arc<Relay>,
    runs: Arc<dyn RunStore>,
    rooms: Arc<Rooms>,
    assets: Arc<ObjectAssetStore>,
    /// The natural-language builder's LLM planner: `Some` exactly when OpenAI has a key.
    composer: Option<Arc<LlmPlanner>>,
    /// The agents' text writer on the same OpenAI account and model (none without a key).
    writer: Option<Arc<dojo_executor::assistant::TextWriter>>,
    settings: ExecutorSettings,
}

impl Executor {
    /// Starts the relay, the hold sweeper and (unless `run_workers` is 0) the workers; they
    /// stop with `shutdown` (a run in flight stops at once and is resumed after the restart).
    /// With `redis_url`, the queue is the shared Redis Stream. `readers` decides which assets a
    /// run may read (those its user may read, with rooms no workflow claims open in dev mode).
    pub async fn start(
        settings: &ExecutorSettings,
        stores: ExecutorStores,
        rooms: Arc<Rooms>,
        redis_url: Option<&str>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Arc<Self>, StartError> {
        let ExecutorStores { runs, readers, team_keys } = stores;
        let assets = Arc::new(
            ObjectAssetStore::open(&settings.assets_dir, settings.assets_url.as_deref())
                .map_err(StartError::Assets)?,
        );
        let catalog = Arc::new(LoadedCatalog::builtin().map_err(StartError::Catalog)?.clone());
        let providers = match &settings.providers {
            Some(providers) => providers.clone(),
            None => dojo_executor::ProviderConfig::from_env().map_err(StartError::Providers)?,
        };
        let engine =
            Engine::new(catalog, assets.clone(), Arc::new(StoreCache::new(runs.clone()))).with_config(
                EngineConfig { max_concurrency: settings.node_concurrency.max(1), ..EngineConfig::default() },
            );
        let engine = dojo_executor::register_providers(engine, &providers);
        let composer = composer(settings, &providers);
        let writer = writer(settings, &providers);
        let worker = worker_name("dojo-server");
        let lease = Duration::from_secs(settings.lease_secs.max(1));
        let (queue, relay_settings): (Arc<dyn RunQueue>, RelaySettings) = match redis_url {
            Some(url) => {
                let visibility = Duration::from_secs(settings.visibility_secs.max(1));
                let queue = StreamQueue::connect(url, StreamSettings::new(worker.clone(), visibility))
                    .await
                    .map_err(StartError::Queue)?;
                let relay = RelaySettings {
                    outbox_every: OUTBOX_EVERY,
                    orphans_every: STREAM_ORPHAN_EVERY,
                    orphan_after: STREAM_ORPHAN_AFTER.max(lease + visibility),
                };
                (Arc::new(queue), relay)
            }
            None => {
                let relay = RelaySettings {
                    outbox_every: OUTBOX_EVERY,
                    orphans_every: OUTBOX_EVERY,
                    orphan_after: lease,
                };
                (Arc::new(MemoryQueue::new(QUEUE_CAPACITY)), relay)
            }
        };
        let driver = Arc::new(
            RunDriver::new(
                engine,
                runs.clone(),
                readers,
                Arc::new(LocalRooms { rooms: rooms.clone() }),
                worker,
                DriverSettings {
                    lease,
                    runs_per_user: u32::try_from(settings.runs_per_user).unwrap_or(u32::MAX),
                    ..DriverSettings::default()
                },
            )
            .with_team_keys(team_keys),
        );
        let relay = Relay::new(runs.clone(), queue.clone(), relay_settings);
        let executor = Arc::new(Self {
            driver,
            relay,
            runs,
            rooms,
            assets,
            composer,
            writer,
            settings: settings.clone(),
        });

        {
            let (relay, driver) = (executor.relay.clone(), executor.driver.clone());
            tasks.spawn(relay.run(move |run| driver.is_active(run), shutdown.clone()));
        }
        if settings.run_workers > 0 {
            // Stopping takes no more runs and stops those in flight at once: another worker
            // (or this process after its restart) resumes them.
            tasks.spawn(dojo_executor::worker::pool::work(
                queue,
                executor.driver.clone(),
                settings.run_workers,
                shutdown.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(executor.clone().sweep(shutdown));
        Ok(executor)
    }

    pub fn catalog(&self) -> &LoadedCatalog {
        self.driver.catalog()
    }

    /// The node types this server can run: built-ins, and providers with a key.
    pub fn availability(&self) -> dojo_executor::Availability {
        self.driver.availability()
    }

    /// What a run of a team's workflow can run: the server's providers plus those the team
    /// stored a key for (`team_providers`, the providers of its stored keys), where this
    /// process has a runner for them.
    pub fn availability_with(
        &self,
        team_providers: impl IntoIterator<Item = dojo_executor::ProviderName>,
    ) -> dojo_executor::Availability {
        let server = self.availability();
        let team = team_providers.into_iter().filter(|p| self.driver.runs_with_team_key(*p));
        dojo_executor::Availability::with_providers(
            dojo_executor::provider_env::ENV_VARIABLES
                .iter()
                .map(|(p, _, _)| *p)
                .filter(|p| server.has_provider(*p))
                .chain(team),
        )
        .for_team()
    }

    /// The LLM planner of the natural-language builder, when OpenAI is configured.
    pub fn composer(&self) -> Option<&LlmPlanner> {
        self.composer.as_deref()
    }

    /// The agents' text writer (the support agent's drafts), when OpenAI is configured.
    pub fn writer(&self) -> Option<&dojo_executor::assistant::TextWriter> {
        self.writer.as_deref()
    }

    pub fn assets(&self) -> &Arc<ObjectAssetStore> {
        &self.assets
    }

    pub fn runs(&self) -> &Arc<dyn RunStore> {
        &self.runs
    }

    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }

    /// A new run was accepted: relay the outbox now rather than at the next tick.
    pub fn wake(&self) {
        self.relay.wake();
    }

    /// Stops the run at once if this process executes it (other processes notice the request
    /// in the database within a second).
    pub fn cancel_local(&self, run_id: &RunId) {
        self.driver.cancel_local(run_id);
    }

    /// When a run's holds may be voided: after every planned node could have used its whole
    /// timeout one after the other, plus slack for queueing and retries.
    pub fn hold_expiry(&self, plan: &ExecutionPlan) -> i64 {
        let default = EngineConfig::default().default_timeout;
        let longest: Duration = plan
            .order()
            .map(|n| {
                self.catalog()
                    .get(&n.node_type)
                    .and_then(|t| t.timeout_secs)
                    .map_or(default, Duration::from_secs)
            })
            .sum();
        let lease = Duration::from_secs(self.settings.lease_secs.max(self.settings.visibility_secs));
        let total = longest.saturating_mul(2).saturating_add(lease).saturating_add(HOLD_SLACK);
        now_millis().saturating_add(i64::try_from(total.as_millis()).unwrap_or(i64::MAX))
    }

    async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let cache_age = Duration::from_secs(self.settings.cache_days.saturating_mul(86_400));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            match self.runs.expire_holds(now_millis()).await {
                Ok(0) => {}
                Ok(released) => tracing::warn!(released, "released expired credit holds"),
                Err(error) => tracing::warn!(%error, "could not sweep expired credit holds"),
            }
            let older_than =
                now_millis().saturating_sub(i64::try_from(cache_age.as_millis()).unwrap_or(i64::MAX));
            if let Err(error) = self.runs.prune_cache(older_than).await {
                tracing::warn!(%error, "could not prune the node cache");
            }
        }
    }
}

/// Who may read which room, for a run's asset reads: the workflow records, with rooms no
/// workflow claims open exactly when the server leaves them open (dev mode).
pub fn room_readers(auth: &crate::caller::Auth) -> RoomReaders {
    let unclaimed = if auth.dev_mode() { UnclaimedRooms::Open } else { UnclaimedRooms::Closed };
    RoomReaders { accounts: Arc::clone(auth.accounts()), unclaimed }
}

/// The agents' text writer on the OpenAI account, with the builder's model and timeout, or none
/// (no key, or a configuration that cannot work, which is logged: agents use their fallbacks).
fn writer(
    settings: &ExecutorSettings,
    providers: &dojo_executor::ProviderConfig,
) -> Option<Arc<dojo_executor::assistant::TextWriter>> {
    let model = match settings.compose_model.trim() {
        "" => dojo_executor::compose::llm::DEFAULT_MODEL,
        model => model,
    };
    let timeout = Duration::from_secs(settings.compose_timeout_secs.max(1));
    match dojo_executor::assistant::TextWriter::new(providers, model, timeout) {
        Ok(writer) => writer.map(Arc::new),
        Err(error) => {
            tracing::error!(%error, "agents: no language model; they use their deterministic fallbacks");
            None
        }
    }
}

/// The builder's LLM planner on the OpenAI account, or none (no key, or a configuration that
/// cannot work, which is logged: the parser plans either way).
fn composer(
    settings: &ExecutorSettings,
    providers: &dojo_executor::ProviderConfig,
) -> Option<Arc<LlmPlanner>> {
    let llm = LlmSettings {
        model: match settings.compose_model.trim() {
            "" => dojo_executor::compose::llm::DEFAULT_MODEL.to_owned(),
            model => model.to_owned(),
        },
        timeout: Duration::from_secs(settings.compose_timeout_secs.max(1)),
        ..LlmSettings::default()
    };
    match LlmPlanner::new(providers, llm) {
        Ok(Some(planner)) => {
            tracing::info!(model = planner.model(), "natural-language builder: LLM planner enabled");
            Some(Arc::new(planner))
        }
        Ok(None) => {
            tracing::debug!("natural-language builder: no OpenAI key; the parser plans");
            None
        }
        Err(error) => {
            tracing::error!(%error, "natural-language builder: LLM planner left out; the parser plans");
            None
        }
    }
}
