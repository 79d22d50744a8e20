//! Executing one run: claim it, run its plan with the engine, report every node through the
//! [`DocumentObserver`], finish it. The same code runs inside `dojo-server` (in-process queue)
//! and in `dojo-worker` processes (Redis Streams); only the [`RoomDocuments`] differ.
//!
//! Exactly-once where it matters: a run executes under a lease in the database, so two
//! workers never execute it at once; a resumed run (its worker died) keeps the outcome of
//! every node that had finished, so those are neither run nor charged again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use dojo_ids::{NodeId, RunId};
use dojo_records::{AccountError, AccountStore, Claim, Run, RunNode, RunNodeState, RunStatus, RunStore};
use dojo_sync_protocol::canvas::CanvasGraph;
use tokio_util::sync::CancellationToken;

use super::asset_access::{RunAssetAccess, UnclaimedRooms};
use super::document::{DocumentError, RoomDocuments, write_summary};
use super::observer::DocumentObserver;
use super::team_keys::TeamKeySource;
use crate::asset_access::assets_named_by_params;
use crate::catalog::LoadedCatalog;
use crate::engine::{Engine, NodeOutcome, RunScope};
use crate::validate::{GraphLimits, ValidationErrors, validate};
use crate::value::Outputs;

#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// Runs of one user executing at once, across every worker (0: no limit).
    pub runs_per_user: u32,
    /// How often a running run checks whether someone asked to cancel it.
    pub cancel_poll: Duration,
    /// Claims after which a run that keeps failing to start (its room never opens) is failed.
    pub max_attempts: i64,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            runs_per_user: 2,
            cancel_poll: Duration::from_secs(1),
            max_attempts: 10,
        }
    }
}

/// Who may read which room, as a run's asset reads are decided (see [`super::asset_access`]).
#[derive(Clone)]
pub struct RoomReaders {
    pub accounts: Arc<dyn AccountStore>,
    /// Whether rooms no workflow claims are open (the server's dev mode) or closed.
    pub unclaimed: UnclaimedRooms,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error(transparent)]
    Document(#[from] DocumentError),
}

/// Why a run's stored graph cannot be executed: the run fails with this message.
#[derive(Debug, thiserror::Error)]
enum Unplannable {
    #[error("the stored graph is unreadable: {0}")]
    Graph(#[source] serde_json::Error),
    #[error("the stored targets are unreadable: {0}")]
    Targets(#[source] serde_json::Error),
    /// Not valid against this worker's catalog (a new version); the message carries every
    /// error, as JSON.
    #[error("the graph is no longer valid: {}", serde_json::to_string(.0).unwrap_or_default())]
    Invalid(#[source] ValidationErrors),
}

/// What became of a run handed to [`RunDriver::execute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// This worker finished it.
    Finished(RunStatus),
    /// Final already, or unknown: nothing to do, ever.
    Gone,
    /// Another live worker holds it.
    Leased,
    /// Its user is at their limit: try again later.
    UserBusy,
    /// This worker stopped executing it (the process is stopping, or another worker took the
    /// lease over): whoever holds it next resumes it.
    Released,
}

impl Execution {
    /// Whether the queue entry that brought the run can go: nobody will need it again.
    pub fn is_settled(self) -> bool {
        matches!(self, Execution::Finished(_) | Execution::Gone)
    }
}

pub struct RunDriver {
    engine: Engine,
    runs: Arc<dyn RunStore>,
    /// Who may read which room: decides which assets a run may read.
    readers: RoomReaders,
    documents: Arc<dyn RoomDocuments>,
    worker_id: String,
    settings: DriverSettings,
    /// Cancellation of the runs this process executes, by run id.
    active: DashMap<RunId, CancellationToken>,
    /// Teams' provider keys; `None`: every run uses the server's keys.
    team_keys: Option<TeamKeySource>,
}

impl RunDriver {
    pub fn new(
        engine: Engine,
        runs: Arc<dyn RunStore>,
        readers: RoomReaders,
        documents: Arc<dyn RoomDocuments>,
        worker_id: String,
        settings: DriverSettings,
    ) -> Self {
        Self {
            engine,
            runs,
            readers,
            documents,
            worker_id,
            settings,
            active: DashMap::new(),
            team_keys: None,
        }
    }

    /// Runs of a team's workflow use that team's provider keys, opened with `source`.
    pub fn with_team_keys(mut self, source: TeamKeySource) -> Self {
        self.team_keys = Some(source);
        self
    }

    /// Whether nodes of `provider` can run with a team's key here (see
    /// [`Engine::runs_with_team_key`]): false when this process reads no team keys.
    pub fn runs_with_team_key(&self, provider: crate::catalog::ProviderName) -> bool {
        self.team_keys.is_some() && self.engine.runs_with_team_key(provider)
    }

    pub fn catalog(&self) -> &LoadedCatalog {
        self.engine.catalog()
    }

    /// The node types this process can run (see [`crate::availability`]).
    pub fn availability(&self) -> crate::availability::Availability {
        self.engine.availability()
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Gives up the lease of a run this worker stopped executing because it is shutting down,
    /// so that the next worker may claim it at once rather than after the lease. `false` when
    /// this worker no longer held it.
    pub async fn release(&self, run_id: &RunId) -> Result<bool, DriverError> {
        // A lease of one millisecond: expired by the time anyone else reads it.
        Ok(self.runs.renew_lease(run_id, &self.worker_id, 1).await?)
    }

    pub fn runs(&self) -> &Arc<dyn RunStore> {
        &self.runs
    }

    /// Whether this process executes the run right now.
    pub fn is_active(&self, run_id: &RunId) -> bool {
        self.active.contains_key(run_id)
    }

    /// Stops the run at once if this process executes it (others notice the request within
    /// [`DriverSettings::cancel_poll`]).
    pub fn cancel_local(&self, run_id: &RunId) {
        if let Some(token) = self.active.get(run_id) {
            token.cancel();
        }
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX).max(1)
    }

    /// Claims and executes the run. `shutdown` stops it at once (it is [`Execution::Released`]
    /// and resumed by the next worker).
    pub async fn execute(
        &self,
        run_id: &RunId,
        shutdown: &CancellationToken,
    ) -> Result<Execution, DriverError> {
        let limit = (self.settings.runs_per_user > 0).then_some(self.settings.runs_per_user);
        let run = match self.runs.claim_run_in_turn(run_id, &self.worker_id, self.lease_ms(), limit).await? {
            Claim::Claimed(run) => *run,
            Claim::Gone => return Ok(Execution::Gone),
            Claim::Leased => return Ok(Execution::Leased),
            Claim::UserBusy => return Ok(Execution::UserBusy),
        };
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
    ) -> Result<Execution, DriverError> {
        if run.cancel_requested {
            cancel.cancel();
        }
        let opened = if super::document::writes_no_document(&run.room) {
            Ok(Arc::new(super::document::NoDocument) as Arc<dyn super::document::RoomDocument>)
        } else {
            self.documents.open(&run.room).await
        };
        let document = match opened {
            Ok(document) => document,
            // The room's document cannot be read (quarantined, say): no later attempt will do
            // better, so the run fails now and its holds are released, instead of on every
            // resume until the attempts run out.
            Err(DocumentError::BadDocument(reason)) => {
                let message = format!("the room's document cannot be read: {reason}");
                self.runs.finish_run(&run.id, RunStatus::Failed, Some(&message)).await?;
                tracing::error!(run = %run.id, %reason, "failed a run whose room's document cannot be read");
                return Ok(Execution::Finished(RunStatus::Failed));
            }
            Err(error) if run.attempts >= self.settings.max_attempts => {
                let message = format!("gave up after {} attempts to open the room: {error}", run.attempts);
                self.runs.finish_run(&run.id, RunStatus::Failed, Some(&message)).await?;
                tracing::error!(run = %run.id, %error, "failed a run whose room never opened");
                return Ok(Execution::Finished(RunStatus::Failed));
            }
            // The lease runs out and another attempt (this worker or another) tries again.
            Err(error) => return Err(error.into()),
        };
        let plan = match self.plan(run) {
            Ok(plan) => plan,
            Err(error) => {
                // Unreadable, or no longer valid against this worker's catalog (a new version).
                let message = error.to_string();
                let finished = self.runs.finish_run(&run.id, RunStatus::Failed, Some(&message)).await?;
                write_summary(document.as_ref(), &finished, &[]).await;
                return Ok(Execution::Finished(RunStatus::Failed));
            }
        };
        let node_ids: Vec<NodeId> = plan.order().map(|n| n.id.clone()).collect();
        // A paid run queued before its user was flagged for fraud review does not start: the
        // flag holds every paid run until staff clear it (acceptance refuses new ones). Only a
        // first start is stopped; a run resumed after its worker died was already under way.
        if run.attempts <= 1
            && run.estimate > 0
            && !run.cancel_requested
            && self.runs.account_blocked(&run.user_id).await?
        {
            let finished = self.runs.finish_run(&run.id, RunStatus::Cancelled, Some(UNDER_REVIEW)).await?;
            write_summary(document.as_ref(), &finished, &node_ids).await;
            tracing::info!(run = %run.id, user = %run.user_id, "cancelled a queued run of an account under review");
            return Ok(Execution::Finished(RunStatus::Cancelled));
        }
        let finished_before = earlier_outcomes(&self.runs.run_nodes(&run.id).await?);
        write_summary(document.as_ref(), &Run { status: RunStatus::Running, ..run.clone() }, &node_ids).await;

        let lost_lease = CancellationToken::new();
        let observer = DocumentObserver {
            runs: self.runs.clone(),
            document: document.clone(),
            run_id: run.id.clone(),
            user_id: run.user_id.clone(),
            room: run.room.clone(),
            muted: lost_lease.clone(),
            read_by_params: plan
                .order()
                .filter_map(|node| {
                    let node_type = self.catalog().get(&node.node_type)?;
                    let ids = assets_named_by_params(node_type, &node.params);
                    (!ids.is_empty()).then(|| (node.id.clone(), ids))
                })
                .collect(),
            gallery: super::observer::GalleryTag::of(run),
            linked_previews: Default::default(),
        };
        let asset_access = RunAssetAccess {
            runs: self.runs.clone(),
            accounts: self.readers.accounts.clone(),
            user_id: run.user_id.clone(),
            room: run.room.clone(),
            unclaimed: self.readers.unclaimed,
            granted: run.granted_assets.clone(),
        };
        let keeper = tokio::spawn(keep_lease(
            self.runs.clone(),
            run.id.clone(),
            self.worker_id.clone(),
            self.settings.clone(),
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
        // The plan's longest run, counted from the run's first start (so a resumed run does not
        // get a fresh allowance): past it the run stops like a cancelled one, holds released.
        let timed_out = CancellationToken::new();
        let deadline = run.max_run_ms.map(|max| {
            let started = run.started_at.unwrap_or(run.created_at);
            let left = started.saturating_add(max).saturating_sub(super::now_millis());
            let (cancel, timed_out) = (cancel.clone(), timed_out.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap_or(0))).await;
                timed_out.cancel();
                cancel.cancel();
            })
        });
        let team_keys: Box<dyn crate::team_keys::TeamKeys> = match (&self.team_keys, &run.team_id) {
            (Some(source), Some(team)) => Box::new(source.for_team(team.clone())),
            _ => Box::new(crate::team_keys::NoTeamKeys),
        };
        let scope = RunScope { cache: run.user_id.as_str(), assets: &asset_access, keys: team_keys.as_ref() };
        let summary = self.engine.resume(&run.id, scope, &plan, &finished_before, &observer, cancel).await;
        keeper.abort();
        stop_on_shutdown.abort();
        if let Some(deadline) = deadline {
            deadline.abort();
        }
        if lost_lease.is_cancelled() {
            tracing::info!(run = %run.id, "stopped executing a run this worker no longer holds");
            return Ok(Execution::Released);
        }
        if timed_out.is_cancelled() {
            let max_secs = run.max_run_ms.unwrap_or(0) / 1000;
            let message = format!(
                "max_run_time_exceeded: the run went past its plan's maximum run time of {max_secs} s and was cancelled"
            );
            let finished = self.runs.finish_run(&run.id, RunStatus::Cancelled, Some(&message)).await?;
            write_summary(document.as_ref(), &finished, &node_ids).await;
            tracing::info!(run = %run.id, "cancelled a run past its plan's maximum run time");
            return Ok(Execution::Finished(RunStatus::Cancelled));
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
        write_summary(document.as_ref(), &finished, &node_ids).await;
        tracing::info!(run = %run.id, status = status.as_str(), charged = finished.charged, "run finished");
        Ok(Execution::Finished(status))
    }

    /// The run's plan, from the graph and targets stored when it was accepted.
    fn plan(&self, run: &Run) -> Result<crate::ExecutionPlan, Unplannable> {
        let graph: CanvasGraph = serde_json::from_str(&run.graph).map_err(Unplannable::Graph)?;
        let targets: Option<Vec<String>> = match &run.targets {
            None => None,
            Some(json) => Some(serde_json::from_str(json).map_err(Unplannable::Targets)?),
        };
        let target_refs: Option<Vec<&str>> = targets.as_ref().map(|t| t.iter().map(String::as_str).collect());
        validate(self.catalog(), &graph, target_refs.as_deref(), &GraphLimits::default())
            .map_err(Unplannable::Invalid)
    }
}

/// Why a queued paid run of a flagged account was cancelled (the error code first, as the
/// run API's other reasons).
const UNDER_REVIEW: &str = "account_under_review: a fraud flag holds this account's paid runs until staff \
     review it; the run was cancelled before it started and its credits were released";

/// Renews the run's lease until aborted; cancels the run when the lease is lost (another
/// worker took over) or cancellation was requested through another process.
async fn keep_lease(
    runs: Arc<dyn RunStore>,
    run_id: RunId,
    worker: String,
    settings: DriverSettings,
    cancel: CancellationToken,
    lost: CancellationToken,
) {
    let lease_ms = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX).max(1);
    let renew_every = (settings.lease / 3).max(Duration::from_millis(100));
    let poll = settings.cancel_poll.clamp(Duration::from_millis(50), renew_every);
    let mut next_renewal = tokio::time::Instant::now() + renew_every;
    loop {
        tokio::time::sleep(poll).await;
        if tokio::time::Instant::now() >= next_renewal {
            next_renewal += renew_every;
            match runs.renew_lease(&run_id, &worker, lease_ms).await {
                Ok(true) => {}
                Ok(false) => {
                    lost.cancel();
                    cancel.cancel();
                    return;
                }
                Err(error) => tracing::warn!(run = %run_id, %error, "could not renew a run lease"),
            }
        }
        if let Ok(Some(run)) = runs.run(&run_id).await
            && run.cancel_requested
        {
            cancel.cancel();
        }
    }
}

/// What an earlier attempt of the run finished, as the engine's outcomes.
fn earlier_outcomes(nodes: &[RunNode]) -> BTreeMap<NodeId, NodeOutcome> {
    let mut out = BTreeMap::new();
    for node in nodes {
        let outputs = || -> Option<Outputs> { serde_json::from_str(node.outputs.as_deref()?).ok() };
        let outcome = match node.state {
            RunNodeState::Succeeded => outputs().map(|outputs| NodeOutcome::Succeeded { outputs }),
            RunNodeState::Cached => outputs().map(|outputs| NodeOutcome::Cached { outputs }),
            RunNodeState::Failed => {
                Some(NodeOutcome::Failed { error: node.error.clone().unwrap_or_default() })
            }
            RunNodeState::Queued
            | RunNodeState::Running
            | RunNodeState::Cancelled
            | RunNodeState::Skipped => None,
        };
        if let Some(outcome) = outcome {
            out.insert(node.node_id.clone(), outcome);
        }
    }
    out
}
