//! The run queue as users see and steer it: positions, pausing a user's or a team's queue,
//! moving a run to the front, and the plan each user and team is on.
//!
//! The database decides the order in which queued runs are claimed (see `claim_run` in
//! [`RunStore`](crate::RunStore)): higher `priority` first (the plan's, fixed when the run was
//! accepted), then lower `queue_rank` (0, or below every other queued run of its priority after
//! "move to front"), then older `created_at`, then id. A run's position counts the queued runs
//! ahead of it in that order whose owner's (and team's) queue is not paused.

use dojo_ids::{RunId, TeamId, UserId};

use crate::AccountError;
use crate::runs::Run;

/// Whose queue: a user's runs, or the runs of a team's workflows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOwner {
    User(UserId),
    Team(TeamId),
}

/// A queued or running run with its place in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRun {
    pub run: Run,
    /// 1-based among the runs that will be claimed before it; `None` unless queued.
    pub position: Option<i64>,
}

/// Most runs one queue listing returns.
pub const MAX_QUEUE_LISTING: u32 = 200;
/// Longest plan name stored.
pub const MAX_PLAN_NAME: usize = 64;

#[async_trait::async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// The run's position (1-based) while it is queued; `None` once claimed, final or unknown.
    async fn queue_position(&self, run: &RunId) -> Result<Option<i64>, AccountError>;

    /// The owner's queued and running runs (a user's own; a team's: those of its workflows),
    /// running first, then queued in claim order, at most `limit` (capped at
    /// [`MAX_QUEUE_LISTING`]), each with its position.
    async fn queue_of(&self, owner: &QueueOwner, limit: u32) -> Result<Vec<QueuedRun>, AccountError>;

    /// The first `limit` queued runs of the whole queue in claim order (capped at
    /// [`MAX_QUEUE_LISTING`]), each with its position: what the server writes into the rooms'
    /// run summaries.
    async fn head_of_queue(&self, limit: u32) -> Result<Vec<QueuedRun>, AccountError>;

    /// Puts a queued run before every other queued run of its priority. Returns the run as it
    /// now is; `None` when no such run; a run no longer queued is returned unchanged.
    async fn move_to_front(&self, run: &RunId) -> Result<Option<Run>, AccountError>;

    /// Pauses or resumes the owner's queue. `false`: no such user or team.
    async fn set_queue_paused(&self, owner: &QueueOwner, paused: bool) -> Result<bool, AccountError>;

    /// Whether the owner's queue is paused (`None`: no such user or team).
    async fn queue_paused(&self, owner: &QueueOwner) -> Result<Option<bool>, AccountError>;

    /// Sets the owner's plan (`None`: the default plan). `false`: no such user or team.
    /// A name longer than [`MAX_PLAN_NAME`] is `InvalidInput`.
    async fn set_plan(&self, owner: &QueueOwner, plan: Option<&str>) -> Result<bool, AccountError>;

    /// The owner's plan as stored (`None`: the default plan, or no such owner).
    async fn plan_of(&self, owner: &QueueOwner) -> Result<Option<String>, AccountError>;

    /// The average execution time (`finished_at - started_at`) of the last `sample` runs that
    /// succeeded, in milliseconds; `None` when none did.
    async fn average_run_ms(&self, sample: u32) -> Result<Option<i64>, AccountError>;

    /// When the runs executing now started (milliseconds since the epoch), earliest first, at
    /// most `limit` (clamped to 1,000).
    async fn running_started_at(&self, limit: u32) -> Result<Vec<i64>, AccountError>;
}
