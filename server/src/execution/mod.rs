//! Runs of canvas graphs inside `dojo-server` (the embedded default: no Redis, no separate
//! workers).
//!
//! Durable by construction: a run is a database row written with its credit hold and an
//! outbox row (`dojo-accounts`' `RunStore`). The dispatcher moves outbox rows into a bounded
//! in-memory queue; workers claim a run with a lease they keep renewing, execute it with the
//! executor's engine and report every node through [`observer::DocumentObserver`]. A run whose
//! worker stopped (a crash, a restart) is found again once its lease expired and resumed
//! without re-running or re-charging the nodes that had finished. A sweeper releases credit
//! holds nobody settled in time.

pub mod observer;
pub mod room_writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use dojo_accounts::{AccountError, Run, RunNode, RunStatus, RunStore};
use dojo_executor::{
    Engine, EngineConfig, ExecutionPlan, GraphLimits, LoadedCatalog, LocalAssetStore, MemoryCache,
    NodeOutcome, Outputs, validate,
};
use dojo_sync_protocol::canvas::{CanvasGraph, write_run_summary};
use serde_json::json;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ExecutorSettings;
use crate::room_name::RoomName;
use crate::rooms::Rooms;
use room_writer::RoomWriter;

/// Runs waiting in memory for a worker; the rest wait in the database (outbox, orphans).
const QUEUE_CAPACITY: usize = 256;
/// How often the dispatcher looks for outbox rows and orphaned runs without being woken.
const DISPATCH_EVERY: Duration = Duration::from_secs(2);
/// How often expired credit holds are released.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Slack added to the longest a run can take before its holds may be voided.
const HOLD_SLACK: Duration = Duration::from_secs(600);

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error("the stored run is unreadable: {0}")]
    BadRun(String),
    #[error(transparent)]
    Write(#[from] room_writer::WriteError),
}

pub struct Executor {
    engine: Engine,
    runs: Arc<dyn RunStore>,
    rooms: Arc<Rooms>,
    assets: Arc<LocalAssetStore>,
    settings: ExecutorSettings,
    queue: mpsc::Sender<String>,
    /// Cancellation of the runs this process executes, by run id.
    active: DashMap<String, CancellationToken>,
    /// Runs executing per user in this process.
    per_user: DashMap<String, usize>,
    wake: Notify,
    worker_id: String,
}

impl Executor {
    /// Starts the dispatcher, `settings.run_workers` workers and the hold sweeper; they stop
    /// with `shutdown` (a run in flight stops at once and is resumed after the restart).
    pub fn start(
        settings: &ExecutorSettings,
        runs: Arc<dyn RunStore>,
        rooms: Arc<Rooms>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> std::io::Result<Arc<Self>> {
        let assets = Arc::new(
            LocalAssetStore::new(&settings.assets_dir)
                .map_err(|e| std::io::Error::other(format!("assets directory: {e}")))?,
        );
        let catalog = Arc::new(
            LoadedCatalog::builtin()
                .map_err(|e| std::io::Error::other(format!("node catalog: {e}")))?
                .clone(),
        );
        let providers = dojo_executor::ProviderConfig::from_env()
            .map_err(|e| std::io::Error::other(format!("provider configuration: {e}")))?;
        let engine = Engine::new(catalog, assets.clone(), Arc::new(MemoryCache::default())).with_config(
            EngineConfig { max_concurrency: settings.node_concurrency.max(1), ..EngineConfig::default() },
        );
        let engine = dojo_executor::register_providers(engine, &providers);
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let executor = Arc::new(Self {
            engine,
            runs,
            rooms,
            assets,
            settings: settings.clone(),
            queue,
            active: DashMap::new(),
            per_user: DashMap::new(),
            wake: Notify::new(),
            worker_id: format!("dojo-server-{}", uuid_like()),
        });
        if settings.run_workers > 0 {
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..settings.run_workers {
                tasks.spawn(executor.clone().work(receiver.clone(), shutdown.clone()));
            }
            tasks.spawn(executor.clone().dispatch(shutdown.clone()));
        }
        tasks.spawn(executor.clone().sweep(shutdown));
        Ok(executor)
    }

    pub fn catalog(&self) -> &LoadedCatalog {
        self.engine.catalog()
    }

    pub fn assets(&self) -> &Arc<LocalAssetStore> {
        &self.assets
    }

    pub fn runs(&self) -> &Arc<dyn RunStore> {
        &self.runs
    }

    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }

    /// A new run was accepted: look at the outbox now rather than at the next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops the run if this process executes it (others notice `cancel_requested` when they
    /// renew their lease).
    pub fn cancel_local(&self, run_id: &str) {
        if let Some(token) = self.active.get(run_id) {
            token.cancel();
        }
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
        let lease = Duration::from_secs(self.settings.lease_secs);
        let total = longest.saturating_mul(2).saturating_add(lease).saturating_add(HOLD_SLACK);
        now_millis().saturating_add(i64::try_from(total.as_millis()).unwrap_or(i64::MAX))
    }

    async fn dispatch(self: Arc<Self>, shutdown: CancellationToken) {
        let lease_ms = self.lease_ms();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(DISPATCH_EVERY) => {}
            }
            match self.runs.outbox(64).await {
                Ok(entries) if !entries.is_empty() => {
                    let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
                    for entry in entries {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            sent = self.queue.send(entry.run_id) => if sent.is_err() { return },
                        }
                    }
                    if let Err(error) = self.runs.delete_outbox(&ids).await {
                        tracing::warn!(%error, "could not clear relayed outbox rows (they will be relayed again)");
                    }
                    // More may be waiting.
                    self.wake.notify_one();
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not read the run outbox"),
            }
            // Runs whose worker stopped renewing: hand them out again (claiming decides).
            match self.runs.orphaned_runs(now_millis().saturating_sub(lease_ms), 32).await {
                Ok(orphans) => {
                    for run in orphans {
                        if self.active.contains_key(&run.id) {
                            continue;
                        }
                        // A full queue has work enough; the orphan is found again next time.
                        if self.queue.try_send(run.id).is_err() {
                            break;
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not look for orphaned runs"),
            }
        }
    }

    async fn work(
        self: Arc<Self>,
        receiver: Arc<Mutex<mpsc::Receiver<String>>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = async { receiver.lock().await.recv().await } => next,
            };
            let Some(run_id) = next else { return };
            if let Err(error) = self.clone().execute(&run_id, &shutdown).await {
                tracing::error!(run = %run_id, %error, "run failed to execute");
            }
        }
    }

    async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
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
        }
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease_secs.max(1).saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    async fn execute(
        self: Arc<Self>,
        run_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), ExecutionError> {
        let Some(run) = self.runs.run(run_id).await? else { return Ok(()) };
        if run.status.is_final() {
            return Ok(());
        }
        // Per-user fairness: a user at their limit waits; the run goes back in line shortly.
        let limit = self.settings.runs_per_user.max(1);
        {
            let mut count = self.per_user.entry(run.user_id.clone()).or_insert(0);
            if *count >= limit {
                drop(count);
                let queue = self.queue.clone();
                let id = run_id.to_owned();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = queue.send(id).await;
                });
                return Ok(());
            }
            *count += 1;
        }
        let user = run.user_id.clone();
        let result = self.execute_claimed(run, shutdown).await;
        if let Some(mut count) = self.per_user.get_mut(&user) {
            *count = count.saturating_sub(1);
        }
        result
    }

    async fn execute_claimed(&self, run: Run, shutdown: &CancellationToken) -> Result<(), ExecutionError> {
        let lease_ms = self.lease_ms();
        let Some(run) = self.runs.claim_run(&run.id, &self.worker_id, lease_ms).await? else { return Ok(()) };
        let cancel = CancellationToken::new();
        self.active.insert(run.id.clone(), cancel.clone());
        let outcome = self.drive(&run, &cancel, shutdown).await;
        self.active.remove(&run.id);
        outcome
    }

    async fn drive(
        &self,
        run: &Run,
        cancel: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<(), ExecutionError> {
        if run.cancel_requested {
            cancel.cancel();
        }
        let room = RoomName::parse(&run.room).map_err(|e| ExecutionError::BadRun(e.to_string()))?;
        let writer = Arc::new(RoomWriter::open(self.rooms.clone(), room).await?);
        let graph: CanvasGraph =
            serde_json::from_str(&run.graph).map_err(|e| ExecutionError::BadRun(e.to_string()))?;
        let targets: Option<Vec<String>> = match &run.targets {
            None => None,
            Some(json) => {
                Some(serde_json::from_str(json).map_err(|e| ExecutionError::BadRun(e.to_string()))?)
            }
        };
        let target_refs: Option<Vec<&str>> = targets.as_ref().map(|t| t.iter().map(String::as_str).collect());
        let plan = match validate(self.catalog(), &graph, target_refs.as_deref(), &GraphLimits::default()) {
            Ok(plan) => plan,
            Err(errors) => {
                // The catalog changed since the run was accepted (a new server version).
                let message = format!(
                    "the graph is no longer valid: {}",
                    serde_json::to_string(&errors).unwrap_or_default()
                );
                let finished = self.runs.finish_run(&run.id, RunStatus::Failed, Some(&message)).await?;
                write_summary(&writer, &finished, &[]).await;
                return Ok(());
            }
        };
        let node_ids: Vec<String> = plan.order().map(|n| n.id.clone()).collect();
        let finished_before = earlier_outcomes(&self.runs.run_nodes(&run.id).await?);
        write_summary(&writer, &Run { status: RunStatus::Running, ..run.clone() }, &node_ids).await;

        let lost_lease = CancellationToken::new();
        let observer = observer::DocumentObserver {
            runs: self.runs.clone(),
            writer: writer.clone(),
            run_id: run.id.clone(),
            user_id: run.user_id.clone(),
            room: run.room.clone(),
            muted: lost_lease.clone(),
        };
        let keeper = tokio::spawn(keep_lease(
            self.runs.clone(),
            run.id.clone(),
            self.worker_id.clone(),
            self.lease_ms(),
            cancel.clone(),
            lost_lease.clone(),
        ));
        let stop_on_shutdown = {
            let (cancel, shutdown, lost) = (cancel.clone(), shutdown.clone(), lost_lease.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = shutdown.cancelled() => { lost.cancel(); cancel.cancel(); }
                    () = cancel.cancelled() => {}
                }
            })
        };
        let summary = self.engine.resume(&run.id, &plan, &finished_before, &observer, cancel).await;
        keeper.abort();
        stop_on_shutdown.abort();
        if lost_lease.is_cancelled() {
            // Another worker owns the run now (or this process is stopping): it finishes it.
            tracing::info!(run = %run.id, "stopped executing a run this worker no longer holds");
            return Ok(());
        }
        let requested = self.runs.run(&run.id).await?.is_some_and(|r| r.cancel_requested);
        let status = if cancel.is_cancelled() && requested {
            RunStatus::Cancelled
        } else if summary.succeeded() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let finished = self.runs.finish_run(&run.id, status, None).await?;
        write_summary(&writer, &finished, &node_ids).await;
        tracing::info!(run = %run.id, status = status.as_str(), charged = finished.charged, "run finished");
        Ok(())
    }
}

/// Renews the run's lease until aborted; cancels the run when the lease is lost (another
/// worker took over) or cancellation was requested through another process.
async fn keep_lease(
    runs: Arc<dyn RunStore>,
    run_id: String,
    worker: String,
    lease_ms: i64,
    cancel: CancellationToken,
    lost: CancellationToken,
) {
    let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1000).max(100));
    loop {
        tokio::time::sleep(every).await;
        match runs.renew_lease(&run_id, &worker, lease_ms).await {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                cancel.cancel();
                return;
            }
            Err(error) => tracing::warn!(run = %run_id, %error, "could not renew a run lease"),
        }
        if let Ok(Some(run)) = runs.run(&run_id).await
            && run.cancel_requested
        {
            cancel.cancel();
        }
    }
}

/// What an earlier attempt of the run finished, as the engine's outcomes.
fn earlier_outcomes(nodes: &[RunNode]) -> BTreeMap<String, NodeOutcome> {
    let mut out = BTreeMap::new();
    for node in nodes {
        let outputs = || -> Option<Outputs> { serde_json::from_str(node.outputs.as_deref()?).ok() };
        let outcome = match node.state.as_str() {
            "succeeded" => outputs().map(|outputs| NodeOutcome::Succeeded { outputs }),
            "cached" => outputs().map(|outputs| NodeOutcome::Cached { outputs }),
            "failed" => Some(NodeOutcome::Failed { error: node.error.clone().unwrap_or_default() }),
            _ => None,
        };
        if let Some(outcome) = outcome {
            out.insert(node.node_id.clone(), outcome);
        }
    }
    out
}

/// The run's summary as the document's `runs` map holds it.
pub fn run_summary_json(run: &Run, nodes: &[String]) -> serde_json::Value {
    json!({
        "id": run.id,
        "status": run.status.as_str(),
        "estimate": run.estimate,
        "charged": run.charged,
        "createdAt": run.created_at,
        "finishedAt": run.finished_at,
        "userId": run.user_id,
        "nodes": nodes,
    })
}

pub async fn write_summary(writer: &RoomWriter, run: &Run, nodes: &[String]) {
    let summary = run_summary_json(run, nodes);
    if let Err(error) = writer.write(|txn| write_run_summary(txn, &run.id, &summary)).await {
        tracing::warn!(run = %run.id, %error, "could not write a run summary into the room");
    }
}

/// A random hex id for this process's worker name.
fn uuid_like() -> String {
    use rand::Rng;
    let bytes: [u8; 8] = rand::rng().random();
    hex_string(&bytes)
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
