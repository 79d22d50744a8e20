//! Batches: one request runs a room's graph over a list of parameter sets (a seed sweep, a
//! prompt list, a grid). Each member is an ordinary run (its own row, holds, outbox entry,
//! queue place, lease) that carries the batch's id, its place in the batch and its parameter
//! set; the batch row only groups them. The members are accepted together in one transaction,
//! so a batch is either wholly held and queued or not at all.

use dojo_ids::{BatchId, TeamId, UserId};
use serde::Serialize;

use crate::run_request::NewRun;

/// Most members one batch may have.
pub const MAX_BATCH_RUNS: usize = 100;
/// Longest parameter set stored with a member (JSON bytes).
pub const MAX_BATCH_PARAMS: usize = 16 * 1024;

/// One member of a new batch: the run as [`crate::RunStore::create_run`] takes it (without an
/// idempotency key) and its parameter set (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMember {
    pub run: NewRun,
    pub params: String,
}

/// What [`crate::RunStore::create_batch`] needs. Every member's room, user and team must be the
/// batch's.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBatch {
    /// `batch_…`, chosen by the caller.
    pub id: BatchId,
    pub room: String,
    pub user_id: UserId,
    pub team_id: Option<TeamId>,
    /// In batch order (1 to [`MAX_BATCH_RUNS`]).
    pub members: Vec<BatchMember>,
    /// The caller's key for this submission (validated by the caller, as a run's): a second
    /// submission of the user with the same key returns the first batch and accepts nothing.
    pub idempotency_key: Option<String>,
}

/// What [`crate::RunStore::create_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSubmission {
    /// Accepted now: every member held and queued.
    Created(Batch),
    /// The user's earlier batch with the same idempotency key; nothing was written.
    Existing(Batch),
}

impl BatchSubmission {
    pub fn batch(&self) -> &Batch {
        match self {
            BatchSubmission::Created(batch) | BatchSubmission::Existing(batch) => batch,
        }
    }
}

/// A batch as stored. Its progress is its members' statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    pub id: BatchId,
    pub room: String,
    pub user_id: UserId,
    pub team_id: Option<TeamId>,
    /// How many member runs it has.
    pub size: i64,
    /// The credits its members held together when accepted.
    pub estimate: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}
