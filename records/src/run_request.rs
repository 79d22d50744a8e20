//! What a new run is made of, as [`crate::RunStore::create_run`] and a batch's members take it:
//! its own module so that `runs` (the store) and `batches` (which carries new runs) both use it
//! without depending on each other.

use dojo_ids::{AssetId, NodeId, RunId, TeamId, UserId};

/// One planned node of a new run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRunNode {
    pub node_id: NodeId,
    pub node_type: String,
    /// The catalog cost: what is held for this node (0: nothing held).
    pub cost: i64,
    /// The node's resolved parameters as JSON (the generation history's prompt and settings).
    pub params: String,
}

/// What [`RunStore::create_run`](crate::RunStore::create_run) needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// `run_…`, chosen by the caller.
    pub id: RunId,
    pub room: String,
    pub user_id: UserId,
    /// The canvas graph as read at submission (JSON): a worker executes exactly this.
    pub graph: String,
    /// The target node ids asked for (JSON array), or `None` for the whole graph.
    pub targets: Option<String>,
    /// The client's `Idempotency-Key`: a second submission with the same key by the same user
    /// returns the first run and holds nothing more.
    pub idempotency_key: Option<String>,
    pub nodes: Vec<NewRunNode>,
    /// When the holds expire if nobody settles them (milliseconds since the epoch).
    pub hold_expires_at: i64,
    /// The user's quota of runs queued or running at once, this one included: beyond it the
    /// submission is [`AccountError::QuotaExceeded`](crate::AccountError::QuotaExceeded), with
    /// nothing written or held. `None`: no quota.
    pub max_unfinished: Option<u64>,
    /// The team whose workflow this is (`None`: a personal workflow): the worker runs its
    /// provider nodes with that team's keys, where the team has one.
    pub team_id: Option<TeamId>,
    /// Where the run stands in the queue and what its plan allows.
    pub queue: QueueTerms,
    /// Assets this run may read besides those its user may (at most [`MAX_GRANTED_ASSETS`]):
    /// for a run of a published app, those its publisher fixed in it, checked readable by the
    /// publisher when the run is accepted. Empty for every other run.
    pub granted_assets: Vec<AssetId>,
}

/// Most assets one run may be granted.
pub const MAX_GRANTED_ASSETS: usize = 64;

/// What a run's plan decides, fixed when it is accepted (see `migrations/…/0013_run_queue.sql`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueTerms {
    /// Higher is claimed first.
    pub priority: i64,
    /// Runs of this user executing at once (`None`: the worker's own limit).
    pub run_limit: Option<u32>,
    /// The longest the run may execute, in milliseconds (`None`: no limit).
    pub max_run_ms: Option<i64>,
    /// Runs of this user (or, for a team's run, of this team) queued at once, this one
    /// included: beyond it the submission is [`AccountError::QueueFull`](crate::AccountError::QueueFull). `None`: no limit.
    pub max_queued: Option<u64>,
}
