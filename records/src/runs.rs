//! Runs of a canvas graph and the credits they hold, capture and release.
//!
//! A run is accepted in one transaction: its row, one row per planned node, the credit hold
//! (one ledger entry per paid node, keyed `run:{run}:{node}:hold`) and an outbox row for the
//! queue. After that, money moves only per node and at most once: a node's pending hold is
//! either captured (`…:capture`, amount 0: the held credits become the charge) or released
//! (`…:release`, the held amount back). Both are conditional on the hold still being pending,
//! in the same transaction as their ledger entry, so a retried worker, a replay or the expiry
//! sweeper racing a worker can never charge or refund twice.
//!
//! The ledger alone explains every balance: hold entries subtract, release entries add back,
//! capture entries record the final charge without moving anything.

use dojo_ids::{AssetId, BatchId, NodeId, RunId, TeamId, UserId};
use serde::{Deserialize, Serialize};

use crate::AccountError;
use crate::batches::{Batch, BatchSubmission, NewBatch};
pub use crate::run_request::{MAX_GRANTED_ASSETS, NewRun, NewRunNode, QueueTerms};

/// A run's lifecycle. `Queued` and `Running` are active; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    /// Every planned node succeeded or was cached.
    Succeeded,
    /// At least one node failed or was skipped (independent branches may have succeeded).
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

/// Where a node's credit hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    /// The node is free: nothing was held.
    None,
    Pending,
    Captured,
    Released,
}

impl HoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::None => "none",
            HoldState::Pending => "pending",
            HoldState::Captured => "captured",
            HoldState::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => HoldState::None,
            "pending" => HoldState::Pending,
            "captured" => HoldState::Captured,
            "released" => HoldState::Released,
            _ => return None,
        })
    }
}

/// Where a node of a run stands. `Queued` and `Running` are active; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunNodeState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Reused from an earlier identical execution: no provider call, no charge.
    Cached,
    /// Not run because a node it depends on failed (or the run ended first).
    Skipped,
}

impl RunNodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunNodeState::Queued => "queued",
            RunNodeState::Running => "running",
            RunNodeState::Succeeded => "succeeded",
            RunNodeState::Failed => "failed",
            RunNodeState::Cancelled => "cancelled",
            RunNodeState::Cached => "cached",
            RunNodeState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunNodeState::Queued,
            "running" => RunNodeState::Running,
            "succeeded" => RunNodeState::Succeeded,
            "failed" => RunNodeState::Failed,
            "cancelled" => RunNodeState::Cancelled,
            "cached" => RunNodeState::Cached,
            "skipped" => RunNodeState::Skipped,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, RunNodeState::Queued | RunNodeState::Running)
    }
}

/// The outcome of [`RunStore::create_run`].
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    Created(Run),
    /// The same user already submitted with this idempotency key: that run.
    Existing(Run),
}

impl Submission {
    pub fn run(&self) -> &Run {
        match self {
            Submission::Created(run) | Submission::Existing(run) => run,
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: RunId,
    pub room: String,
    pub user_id: UserId,
    pub status: RunStatus,
    pub graph: String,
    pub targets: Option<String>,
    /// The sum of the planned nodes' costs: what was held.
    pub estimate: i64,
    /// What captured nodes cost so far.
    pub charged: i64,
    pub cancel_requested: bool,
    /// How many times a worker claimed it.
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The team whose workflow this was when the run was accepted (see [`NewRun::team_id`]).
    pub team_id: Option<TeamId>,
    /// The queue order (see [`QueueTerms`]): higher priority first, then lower rank.
    pub priority: i64,
    pub queue_rank: i64,
    /// The plan's runs executing at once for this user (`None`: the worker's own limit).
    pub run_limit: Option<i64>,
    /// The plan's longest run, in milliseconds from its start (`None`: no limit).
    pub max_run_ms: Option<i64>,
    /// The batch it was accepted in (`None`: a run of its own), see [`crate::batches`].
    pub batch_id: Option<BatchId>,
    /// Its place in the batch, 0-based.
    pub batch_index: Option<i64>,
    /// Its parameter set in the batch (JSON: node id → parameter → value).
    pub batch_params: Option<String>,
    /// See [`NewRun::granted_assets`]. Not serialized: for an app's run they are the
    /// publisher's asset ids, which the runner's data export must not carry.
    #[serde(skip)]
    pub granted_assets: Vec<AssetId>,
}

/// One node of a run: its state, and the generation history (parameters, outputs, cost,
/// duration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunNode {
    pub run_id: RunId,
    pub node_id: NodeId,
    pub node_type: String,
    pub state: RunNodeState,
    pub cost: i64,
    /// What was captured (0 unless the node succeeded at a cost).
    pub charged: i64,
    pub hold_state: HoldState,
    pub params: String,
    /// JSON outputs (succeeded / cached).
    pub outputs: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// How a node ended, for [`RunStore::settle_node`].
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettlement {
    /// A final state: `succeeded | failed | cancelled | cached | skipped`.
    pub state: RunNodeState,
    pub outputs: Option<String>,
    pub error: Option<String>,
    /// `true`: capture the node's pending hold (it ran and succeeded). `false`: release it.
    pub capture: bool,
}

/// [`RunStore::finished_nodes_since`]: a node that reached a final state, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedNode {
    pub run_id: RunId,
    pub node_id: NodeId,
    /// Milliseconds since the epoch.
    pub finished_at: i64,
}

/// [`RunStore::run_gauges`]: counts across the whole database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunGauges {
    pub queued: i64,
    pub running: i64,
    /// Running runs whose lease has expired: their worker stopped, another will resume them.
    pub lease_expired: i64,
    /// Credits held by pending holds (estimated costs not yet captured or released).
    pub credits_held: i64,
    /// Accepted runs not yet handed to the queue.
    pub outbox_pending: i64,
}

/// A queued run waiting to be handed to the queue (Redis), written with the hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub run_id: RunId,
}

/// Stored asset metadata (the bytes live in the asset store, by content hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetRecord {
    /// The asset store's id (hex SHA-256 of the bytes).
    pub id: AssetId,
    pub content_type: String,
    pub size: i64,
    pub created_at: i64,
}

/// Who an asset belongs to: the uploader, or the run node that produced it (its room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetLink {
    pub owner_id: UserId,
    pub room: Option<String>,
    pub run_id: Option<RunId>,
    pub node_id: Option<NodeId>,
}

#[async_trait::async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Accepts a run: run row, node rows (state `queued`, hold `pending` when cost > 0 else
    /// `none`), the hold's ledger entries (`run:{id}:{node}:hold`, −cost each, balance checked
    /// for the whole estimate at once) and an outbox row, in one transaction.
    /// `InsufficientCredits { balance, requested: estimate }` writes nothing. A submission whose
    /// idempotency key this user already used, concurrent ones included, is
    /// [`Submission::Existing`] and writes nothing either. An unknown user is `UserNotFound`;
    /// a run id already taken (without a matching key) is `InvalidInput`.
    async fn create_run(&self, run: NewRun) -> Result<Submission, AccountError>;

    async fn run(&self, id: &RunId) -> Result<Option<Run>, AccountError>;

    /// Nodes in node id order.
    async fn run_nodes(&self, id: &RunId) -> Result<Vec<RunNode>, AccountError>;

    /// Whether a fraud flag (open or confirmed) holds the user's paid runs (docs/agents.md).
    /// Acceptance refuses new paid runs of such a user; a worker asks this before it starts a
    /// paid run that was queued before the flag was raised.
    async fn account_blocked(&self, user: &UserId) -> Result<bool, AccountError>;

    /// A room's runs, newest first.
    async fn list_runs(&self, room: &str, limit: u32) -> Result<Vec<Run>, AccountError>;

    /// Accepts every member of a batch as [`create_run`](Self::create_run) accepts one run, and
    /// the batch row, in **one** transaction: all or nothing. A member refused (credits, queue
    /// full, quota) refuses the batch and writes nothing; credit refusals then carry the
    /// balance before the batch and the whole batch's cost. Members carry no idempotency key.
    async fn create_batch(&self, batch: NewBatch) -> Result<BatchSubmission, AccountError>;

    async fn batch(&self, id: &BatchId) -> Result<Option<Batch>, AccountError>;

    /// The batch's member runs in batch order (at most [`crate::batches::MAX_BATCH_RUNS`]).
    async fn batch_runs(&self, id: &BatchId) -> Result<Vec<Run>, AccountError>;

    /// A room's batches, newest first.
    async fn list_batches(&self, room: &str, limit: u32) -> Result<Vec<Batch>, AccountError>;

    /// Takes the run for `worker` until `now + lease_ms` if it is queued, or running under an
    /// expired lease (its worker died): status `running`, attempts + 1, `started_at` set once.
    /// [`Claim::Gone`] if it is final or unknown, [`Claim::Leased`] while a live worker holds it
    /// (a lease is live while `lease_expires_at > now`), [`Claim::UserBusy`] when
    /// `per_user_limit` is set and the run's user already has that many runs executing under
    /// live leases (counted under the user's row lock, so concurrent claims by several workers
    /// cannot exceed it). A claimed run may carry `cancel_requested`: the worker then finishes it
    /// as cancelled.
    async fn claim_run(
        &self,
        id: &RunId,
        worker: &str,
        lease_ms: i64,
        per_user_limit: Option<u32>,
    ) -> Result<Claim, AccountError>;

    /// [`claim_run`](Self::claim_run) in the queue's order (what workers call): a run not yet
    /// started is also [`Claim::UserBusy`] while its user's or team's queue is paused, or while
    /// a queued run the database orders before it could be claimed instead (see
    /// [`crate::queue`]). A run resumed after its worker died is claimed regardless of order.
    /// The default claims as `claim_run` does, for stores without a queue order.
    async fn claim_run_in_turn(
        &self,
        id: &RunId,
        worker: &str,
        lease_ms: i64,
        per_user_limit: Option<u32>,
    ) -> Result<Claim, AccountError> {
        self.claim_run(id, worker, lease_ms, per_user_limit).await
    }

    /// Extends the lease; `false` if `worker` no longer holds it (another worker took over).
    async fn renew_lease(&self, id: &RunId, worker: &str, lease_ms: i64) -> Result<bool, AccountError>;

    /// Active runs whose lease expired before `older_than`, or that are still queued and were
    /// created before it, oldest first: what a restarted in-process queue (or a sweeper) hands
    /// out again. Pass `now` minus a grace period, in milliseconds since the epoch.
    async fn orphaned_runs(&self, older_than: i64, limit: u32) -> Result<Vec<Run>, AccountError>;

    /// Records a non-final state (`running`, or `queued` again) of a node; sets `started_at`
    /// once, when it starts running. A final node, or an unknown one, is left as it is.
    async fn mark_node(
        &self,
        run_id: &RunId,
        node_id: &NodeId,
        state: RunNodeState,
    ) -> Result<(), AccountError>;

    /// Ends a node: state, outputs, error, `finished_at`, and its pending hold captured or
    /// released with its ledger entry, in one transaction. A node already final is left as
    /// it is (returns `false`), so replays change nothing; so is an unknown run or node. `state`
    /// must be a final node state (`InvalidInput` otherwise).
    async fn settle_node(
        &self,
        run_id: &RunId,
        node_id: &NodeId,
        settlement: NodeSettlement,
    ) -> Result<bool, AccountError>;

    /// Ends the run with `status` (and an error message): releases every hold still pending
    /// (`…:release`), marks nodes still `queued`/`running` as `cancelled` (when cancelled) or
    /// `skipped`, sets `charged` to the captured total and `finished_at`; clears the lease.
    /// A run already final is returned unchanged. `status` must be final (`InvalidInput`
    /// otherwise); an unknown run is `RunNotFound`.
    async fn finish_run(
        &self,
        id: &RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, AccountError>;

    /// Flags the run for cancellation; a queued run that no worker holds is finished as
    /// cancelled at once. Returns the run as it now is (`None`: no such run).
    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, AccountError>;

    /// The sweeper: releases pending holds whose `hold_expires_at` < now (and finishes their
    /// runs as failed with the error "credit hold expired": finishing releases every pending
    /// hold of the run, not only the expired ones). Returns how many holds were released.
    async fn expire_holds(&self, now: i64) -> Result<u64, AccountError>;

    /// What operators watch (`/metrics`): runs queued and running, running runs whose lease
    /// passed before `now` (their worker stopped; another resumes them), credits held by
    /// pending holds, outbox rows not yet relayed. Database-wide: every instance reports the same.
    async fn run_gauges(&self, now: i64) -> Result<RunGauges, AccountError>;

    /// Runs whose `finished_at` is at or after `since` (milliseconds since the epoch), in that
    /// order, at most `limit`: how a server learns that a run executed by any process (a
    /// `dojo-worker` elsewhere) has ended.
    async fn finished_runs_since(&self, since: i64, limit: u32) -> Result<Vec<Run>, AccountError>;

    /// Nodes whose `finished_at` is at or after `since`, in that order, at most `limit`.
    async fn finished_nodes_since(&self, since: i64, limit: u32) -> Result<Vec<FinishedNode>, AccountError>;

    /// Outbox rows not yet relayed, oldest first.
    async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, AccountError>;

    async fn delete_outbox(&self, ids: &[i64]) -> Result<(), AccountError>;

    /// Records an asset (idempotent per id) and links it to its owner / run node.
    async fn record_asset(&self, asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError>;

    /// Like [`record_asset`](Self::record_asset) for an upload, in one transaction with a check
    /// of the owner's quota: when the sizes of every asset `link.owner_id` owns, this one
    /// included (once, however often it was uploaded), pass `quota` bytes, nothing is written
    /// and the answer is `StorageQuotaExceeded`. Concurrent uploads of one owner queue on their user
    /// row, so together they cannot pass it either.
    async fn record_upload(
        &self,
        asset: &AssetRecord,
        link: &AssetLink,
        quota: i64,
    ) -> Result<(), AccountError>;

    /// The bytes of every asset `owner_id` owns (uploads and run outputs), each counted once.
    async fn storage_used(&self, owner_id: &UserId) -> Result<i64, AccountError>;

    async fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, AccountError>;

    /// Everyone and every room the asset is linked to (at most `limit` links): the server
    /// lets a caller download it when they own it or may read one of its rooms.
    async fn asset_links(&self, id: &AssetId, limit: u32) -> Result<Vec<AssetLink>, AccountError>;

    /// The node cache: outputs (JSON) stored under `key` in `scope`, if any.
    async fn cached_outputs(&self, scope: &str, key: &str) -> Result<Option<String>, AccountError>;

    /// Stores (or replaces) the outputs of `key` in `scope`. Outputs over
    /// [`MAX_CACHED_OUTPUTS`] bytes are refused with `InvalidInput`.
    async fn cache_outputs(&self, scope: &str, key: &str, outputs: &str) -> Result<(), AccountError>;

    /// Deletes cache entries stored before `older_than` (milliseconds since the epoch); returns
    /// how many.
    async fn prune_cache(&self, older_than: i64) -> Result<u64, AccountError>;
}

/// Largest cached outputs (they are references and short text, so this is generous).
pub const MAX_CACHED_OUTPUTS: usize = 256 * 1024;

/// The outcome of [`RunStore::claim_run`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This worker holds the run now.
    Claimed(Box<Run>),
    /// Final, or no such run: nothing to do, ever.
    Gone,
    /// A live worker holds it; it may need another worker later if that one dies.
    Leased,
    /// Not claimable now: its user is at their limit of runs executing at once, its queue
    /// (the user's or the team's) is paused, or a run the database orders before it could be
    /// claimed instead (see [`crate::queue`]). Try again later.
    UserBusy,
}

impl Claim {
    /// The claimed run, if this worker got it.
    pub fn run(self) -> Option<Run> {
        match self {
            Claim::Claimed(run) => Some(*run),
            _ => None,
        }
    }
}
