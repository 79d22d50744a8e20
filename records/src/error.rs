//! What can go wrong in this crate.

use dojo_ids::{RoomName, RunId, UserId, WorkflowId};
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
    /// A grant that would take the balance past `i64::MAX`. Nothing was written.
    #[error("a grant of {amount} would overflow the balance of {balance}")]
    BalanceOverflow { balance: i64, amount: i64 },
    /// The key was already applied with another user or amount: a bug in the caller's key
    /// scheme, never a retry, so it is refused rather than answered as a replay.
    #[error("idempotency key {key:?} was already used for another credit operation")]
    IdempotencyKeyReused { key: String, existing: Box<LedgerEntry> },
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
