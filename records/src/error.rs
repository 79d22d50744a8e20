//! What can go wrong in this crate.

use dojo_ids::{InvitationId, RoomName, RunId, TeamId, UserId, WorkflowId};
use dojo_store::StoreError;

use crate::LedgerEntry;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    // The ids are quoted as their text (`{:?}` of the str), as they always were.
    #[error("no user {:?}", .0.as_str())]
    UserNotFound(UserId),
    /// Also for a deleted workflow: to its callers it no longer exists.
    #[error("no workflow {:?}", .0.as_str())]
    WorkflowNotFound(WorkflowId),
    /// The room belongs to another workflow (deleted ones included: their documents remain).
    #[error("room {:?} already belongs to a workflow", .0.as_str())]
    RoomTaken(RoomName),
    /// `find_user` got an email that several users share; ask again with an id.
    #[error("{0:?} is the email of several users")]
    AmbiguousUser(String),
    #[error("no run {:?}", .0.as_str())]
    RunNotFound(RunId),
    #[error("the owner of a workflow cannot also be one of its collaborators")]
    OwnerCannotCollaborate,
    /// A spend larger than the balance. Nothing was written. `requested` is the amount the
    /// spend asked for, as a positive number.
    #[error("insufficient credits: balance {balance}, requested {requested}")]
    InsufficientCredits { balance: i64, requested: i64 },
    /// A run of a team's workflow costs more than the team's balance. Nothing was written.
    #[error("insufficient team credits: team {:?} has {balance}, the run holds {requested}", .team.as_str())]
    InsufficientTeamCredits { team: TeamId, balance: i64, requested: i64 },
    /// A member's spend from the team's balance this calendar month (UTC), captured and held,
    /// plus this run's estimate would pass the limit an owner or admin set. Nothing was written.
    #[error("spending limit reached: {spent} of {limit} credits spent this month, the run holds {requested}")]
    SpendingLimitReached { limit: i64, spent: i64, requested: i64 },
    /// A grant that would take the balance past `i64::MAX`. Nothing was written.
    #[error("a grant of {amount} would overflow the balance of {balance}")]
    BalanceOverflow { balance: i64, amount: i64 },
    /// The key was already applied with another user or amount: a bug in the caller's key
    /// scheme, never a retry, so it is refused rather than answered as a replay.
    #[error("idempotency key {key:?} was already used for another credit operation")]
    IdempotencyKeyReused { key: String, existing: Box<LedgerEntry> },
    /// Also for a team the caller is not a member of: to them it does not exist.
    #[error("no team {:?}", .0.as_str())]
    TeamNotFound(TeamId),
    /// Also for an invitation addressed to someone else.
    #[error("no invitation {:?}", .0.as_str())]
    InvitationNotFound(InvitationId),
    #[error("the invitation expired; ask for a new one")]
    InvitationExpired,
    /// The invitation was accepted, declined or revoked already.
    #[error("the invitation is no longer pending (it is {0})")]
    InvitationClosed(&'static str),
    #[error("already a member of the team")]
    AlreadyMember,
    /// A pending invitation for the same person exists: revoke it first, or let it expire.
    #[error("this person already has a pending invitation to the team")]
    AlreadyInvited,
    #[error("not a member of the team")]
    NotMember,
    /// Removing or demoting the team's only owner would leave nobody who can manage it.
    #[error("a team must keep at least one owner: make someone else owner first")]
    LastOwner,
    /// Members and pending invitations together reached the team's limit. Nothing was written.
    #[error("the team is full: at most {limit} members and pending invitations")]
    TeamFull { limit: u64 },
    #[error("the workflow already has {limit} pending invitations: revoke some first")]
    WorkflowInvitationsFull { limit: u64 },
    /// An account deletion without a matching, unexpired confirmation token of that user.
    #[error(
        "the deletion is not confirmed: the token is wrong, expired or another account's; ask for a new one"
    )]
    DeletionNotConfirmed,
    /// The account has runs still queued or running; deleting would orphan their credit holds.
    #[error("{0} runs are still queued or running: cancel them or let them finish first")]
    RunsActive(i64),
    #[error("no job {0:?}")]
    JobNotFound(String),
    /// The job's lease expired (another worker may hold it now) or its attempt already ended:
    /// this worker's result is not recorded.
    #[error("the job is no longer leased to this worker: its lease expired or it already ended")]
    LeaseLost,
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: &'static str },
    /// A per-user quota (`what`: "workflows", "queued or running runs") is full. Nothing was
    /// written.
    #[error("quota exceeded: at most {limit} {what} per user")]
    QuotaExceeded { what: &'static str, limit: u64 },
    /// An upload that would take its owner's stored assets past their storage quota. Nothing was
    /// written. `used` is what the owner would store with it, in bytes.
    #[error("storing this would use {used} bytes of a {quota}-byte quota")]
    StorageQuotaExceeded { used: i64, quota: i64 },
    /// A submission while the user already has their plan's most runs queued. Nothing was
    /// written. `position` is where the run would have stood in the queue (1-based).
    #[error(
        "the queue is full: at most {limit} queued runs on this plan; this run would have been number {position}"
    )]
    QueueFull { limit: u64, position: i64 },
    /// A run that costs credits, by a user with a fraud flag waiting for staff or confirmed by
    /// them. Nothing was written.
    #[error("your account is under review: runs that cost credits are paused until staff have looked at it")]
    UnderReview,
    /// The database could not be reached or failed; the message is for logs, not for clients.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The task running the operation panicked or its runtime shut down.
    #[error("account operation did not finish: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Store(StoreError),
}

// For `dojo_store::run_to_completion`, whose only error of its own is `Interrupted`.
impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => AccountError::Database(error),
            StoreError::Interrupted(message) => AccountError::Interrupted(message),
            other => AccountError::Store(other),
        }
    }
}
