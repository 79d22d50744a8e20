//! Who owns what, who may open which room, and who can pay for runs.
//!
//! A workflow *is* a room: creating one claims a room name for an owner, and from then on
//! [`AccountStore::room_access`] says who may join that room and how. Rooms with no workflow are
//! left to the caller's policy ([`RoomAccess::NoWorkflow`]), so that rooms created before
//! accounts existed keep working until the server decides otherwise.
//!
//! Credits are a balance on the user row plus an append-only ledger. Every change goes through
//! [`AccountStore::apply_credits`], which is idempotent per key, so a payment webhook delivered
//! twice or an executor retrying a hold after a crash changes the balance once. The database
//! itself refuses a negative balance (a CHECK constraint behind a conditional UPDATE), so
//! concurrent spends from any number of processes cannot overdraw an account.
//!
//! Like `dojo-store`, there are two implementations, PostgreSQL and SQLite, that pass one
//! conformance suite (`tests/conformance.rs`), and their tables come from the shared
//! `migrations/` folder that `dojo_store::open_database` applies. [`accounts`] builds the
//! implementation that matches an open [`dojo_store::Database`], on the same pool.

// Column lists both backends select, as macros so that `concat!` can build `&'static str`
// statements (sqlx takes only those without an explicit `AssertSqlSafe`).
macro_rules! user_columns {
    () => {
        "id, subject, name, email, credits, created_at, updated_at"
    };
}
macro_rules! workflow_columns {
    () => {
        "id, room, owner_id, title, public, created_at, updated_at"
    };
}
macro_rules! ledger_columns {
    () => {
        "id, user_id, amount, balance_after, reason, idempotency_key, created_at"
    };
}

mod postgres;
pub mod runs;
mod runs_sql;
mod sqlite;
pub mod stripe;

use std::sync::Arc;

use dojo_store::StoreError;
use serde::{Deserialize, Serialize};

pub use dojo_auth::Permission;
pub use postgres::PostgresAccounts;
pub use runs::{
    AssetLink, AssetRecord, Claim, HoldState, MAX_CACHED_OUTPUTS, NewRun, NewRunNode, NodeSettlement,
    OutboxEntry, Run, RunNode, RunStatus, RunStore, Submission,
};
pub use sqlite::SqliteAccounts;

/// The accounts on the database `db` names, sharing its pool (and, for SQLite, its write lock).
pub fn accounts(db: &dojo_store::Database) -> Arc<dyn AccountStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// The runs and assets on the database `db` names: the same pool (and, for SQLite, write lock)
/// as [`accounts`], so a run's credit hold and the balance it draws on change together.
pub fn runs(db: &dojo_store::Database) -> Arc<dyn RunStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// A person, as known from their identity provider's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Ours (`u_…`): tokens' subjects are the provider's and may change shape with the provider.
    pub id: String,
    /// The token's `sub`.
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The current balance, never negative.
    pub credits: i64,
    /// Milliseconds since the Unix epoch, like every timestamp here.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A canvas with an owner. Deleted workflows are never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// `wf_…`.
    pub id: String,
    /// The room the canvas lives in (`/rooms/{room}`).
    pub room: String,
    pub owner_id: String,
    pub title: String,
    /// Readable by every signed-in user.
    pub public: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A workflow as listed for one user, with what that user may do in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    #[serde(flatten)]
    pub workflow: Workflow,
    pub permission: Permission,
}

/// Changes to a workflow; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowPatch {
    pub title: Option<String>,
    pub public: Option<bool>,
}

/// What a collaborator may be given. Admin is the owner's alone, so it cannot be granted: one
/// owner per workflow keeps "who may delete it or share it" unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollaboratorPermission {
    Read,
    Write,
}

impl CollaboratorPermission {
    pub fn as_str(self) -> &'static str {
        match self {
            CollaboratorPermission::Read => "read",
            CollaboratorPermission::Write => "write",
        }
    }
}

impl From<CollaboratorPermission> for Permission {
    fn from(permission: CollaboratorPermission) -> Self {
        match permission {
            CollaboratorPermission::Read => Permission::Read,
            CollaboratorPermission::Write => Permission::Write,
        }
    }
}

impl std::str::FromStr for CollaboratorPermission {
    type Err = dojo_auth::UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(CollaboratorPermission::Read),
            "write" => Ok(CollaboratorPermission::Write),
            other => Err(dojo_auth::UnknownPermission(other.to_owned())),
        }
    }
}

// For `#[sqlx(try_from = "String")]`: the column is TEXT with a CHECK, decoded once here.
impl TryFrom<String> for CollaboratorPermission {
    type Error = dojo_auth::UnknownPermission;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// Someone a workflow is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Collaborator {
    pub workflow_id: String,
    pub user_id: String,
    #[sqlx(try_from = "String")]
    pub permission: CollaboratorPermission,
    pub added_at: i64,
}

/// What a user may do in a room, as the workflow records say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomAccess {
    /// No workflow claims this room: the caller's policy decides (open, or refused).
    NoWorkflow,
    /// A workflow claims the room and this user may not open it. A *deleted* workflow answers
    /// this to everyone, its owner included: its room name stays taken and its document stays
    /// stored, so treating it as "no workflow" would reopen the deleted canvas to whoever the
    /// no-workflow policy lets in.
    Denied,
    /// A read collaborator, or any signed-in user on a public workflow.
    Read,
    /// A write collaborator.
    Write,
    /// The owner.
    Admin,
}

impl RoomAccess {
    /// The permission granted, if any (`None` for [`Denied`](Self::Denied) and
    /// [`NoWorkflow`](Self::NoWorkflow)).
    pub fn permission(self) -> Option<Permission> {
        match self {
            RoomAccess::NoWorkflow | RoomAccess::Denied => None,
            RoomAccess::Read => Some(Permission::Read),
            RoomAccess::Write => Some(Permission::Write),
            RoomAccess::Admin => Some(Permission::Admin),
        }
    }
}

impl From<Permission> for RoomAccess {
    fn from(permission: Permission) -> Self {
        match permission {
            Permission::Read => RoomAccess::Read,
            Permission::Write => RoomAccess::Write,
            Permission::Admin => RoomAccess::Admin,
        }
    }
}

/// One change of a user's balance. Rows are never updated or deleted (the database refuses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Increasing in the order a user's entries were applied (the user row's lock orders them).
    pub id: i64,
    pub user_id: String,
    /// Positive for grants and purchases, negative for spends.
    pub amount: i64,
    /// The balance right after this entry: each entry's equals the previous one's plus its
    /// amount, so the ledger can be audited against the balance.
    pub balance_after: i64,
    pub reason: String,
    pub idempotency_key: String,
    pub created_at: i64,
}

/// The result of [`AccountStore::apply_credits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditOutcome {
    /// This call changed the balance.
    Applied(LedgerEntry),
    /// The key was applied before, by this call's earlier attempt or another process: nothing
    /// changed, and this is the entry that earlier application wrote.
    AlreadyApplied(LedgerEntry),
}

impl CreditOutcome {
    pub fn entry(&self) -> &LedgerEntry {
        match self {
            CreditOutcome::Applied(entry) | CreditOutcome::AlreadyApplied(entry) => entry,
        }
    }

    pub fn into_entry(self) -> LedgerEntry {
        match self {
            CreditOutcome::Applied(entry) | CreditOutcome::AlreadyApplied(entry) => entry,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no user {0:?}")]
    UserNotFound(String),
    /// Also for a deleted workflow: to its callers it no longer exists.
    #[error("no workflow {0:?}")]
    WorkflowNotFound(String),
    /// The room belongs to another workflow (deleted ones included: their documents remain).
    #[error("room {0:?} already belongs to a workflow")]
    RoomTaken(String),
    /// `find_user` got an email that several users share; ask again with an id.
    #[error("{0:?} is the email of several users")]
    AmbiguousUser(String),
    #[error("no run {0:?}")]
    RunNotFound(String),
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

/// Users, workflows and credits. One implementation per database kind; both pass
/// `tests/conformance.rs`.
///
/// Every write runs on a task of its own (`dojo_store::run_to_completion`): a caller that stops
/// waiting loses the answer, never a connection stuck inside a transaction.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// The user with this token subject, created on first sight. `Some` name or email replaces
    /// the stored one when it differs; `None` keeps it (a token without the claim says nothing
    /// about it). Blank values count as `None`. Writes only when something changes, so it can
    /// run on every authenticated request.
    async fn upsert_user(
        &self,
        subject: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, AccountError>;

    async fn user(&self, id: &str) -> Result<Option<User>, AccountError>;

    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>, AccountError>;

    /// For operators: the user whose id, subject or (case-insensitively) email is `query`, tried
    /// in that order. An email several users share is [`AccountError::AmbiguousUser`].
    async fn find_user(&self, query: &str) -> Result<Option<User>, AccountError>;

    /// The newest users first.
    async fn list_users(&self, limit: u32) -> Result<Vec<User>, AccountError>;

    /// Creates a private workflow in `room`, or in a room named after its id when `None`.
    /// [`AccountError::RoomTaken`] when a workflow, even a deleted one, has the room.
    async fn create_workflow(
        &self,
        owner_id: &str,
        title: &str,
        room: Option<&str>,
    ) -> Result<Workflow, AccountError> {
        self.create_workflow_within(owner_id, title, room, None).await
    }

    /// Like [`create_workflow`](Self::create_workflow), refused with
    /// [`AccountError::QuotaExceeded`] when the owner already owns `max_owned` workflows
    /// (deleted ones not counted). The count is taken under the owner's row lock (PostgreSQL)
    /// or the write lock (SQLite), so concurrent creations cannot overshoot it.
    async fn create_workflow_within(
        &self,
        owner_id: &str,
        title: &str,
        room: Option<&str>,
        max_owned: Option<u64>,
    ) -> Result<Workflow, AccountError>;

    async fn workflow(&self, id: &str) -> Result<Option<Workflow>, AccountError>;

    async fn workflow_by_room(&self, room: &str) -> Result<Option<Workflow>, AccountError>;

    /// The workflows the user owns or collaborates on, most recently updated first, with the
    /// user's permission in each. Public workflows of others are not listed: public means
    /// "readable by link", not "published".
    async fn list_workflows(&self, user_id: &str) -> Result<Vec<WorkflowSummary>, AccountError>;

    async fn update_workflow(&self, id: &str, patch: WorkflowPatch) -> Result<Workflow, AccountError>;

    /// Soft delete: the row stays, so the room name stays taken and access stays denied.
    async fn delete_workflow(&self, id: &str) -> Result<(), AccountError>;

    /// Shares the workflow, or changes the permission of someone it is shared with.
    async fn set_collaborator(
        &self,
        workflow_id: &str,
        user_id: &str,
        permission: CollaboratorPermission,
    ) -> Result<Collaborator, AccountError>;

    /// Whether the user was a collaborator.
    async fn remove_collaborator(&self, workflow_id: &str, user_id: &str) -> Result<bool, AccountError>;

    /// In the order they were added.
    async fn collaborators(&self, workflow_id: &str) -> Result<Vec<Collaborator>, AccountError>;

    /// What `user_id` (`None`: not signed in) may do in `room`. One query: it runs on every
    /// connection. Anonymous callers are denied every workflow room, public ones included.
    async fn room_access(&self, user_id: Option<&str>, room: &str) -> Result<RoomAccess, AccountError>;

    async fn balance(&self, user_id: &str) -> Result<i64, AccountError>;

    /// Adds `amount` (negative: spends) to the balance and appends a ledger entry, in one
    /// transaction, once per `idempotency_key`. A key already applied with the same user and
    /// amount changes nothing and returns the original entry, so callers retry freely; with a
    /// different user or amount it is [`AccountError::IdempotencyKeyReused`]. A spend beyond
    /// the balance is [`AccountError::InsufficientCredits`], with nothing written.
    ///
    /// Keys are the caller's namespace: `stripe:{event}`, `{run}:{node}:hold`, `grant:{…}`.
    async fn apply_credits(
        &self,
        user_id: &str,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<CreditOutcome, AccountError>;

    /// The user's newest entries first.
    async fn ledger(&self, user_id: &str, limit: u32) -> Result<Vec<LedgerEntry>, AccountError>;
}

// Rules both backends share, so that they cannot drift apart: validation, the access decision
// and what a replayed idempotency key means.

/// Longest subject, name, email, title and idempotency key accepted. Generous for real values;
/// the point is that a hostile token or request cannot store megabytes per row.
const MAX_SUBJECT_LEN: usize = 255;
const MAX_NAME_LEN: usize = 200;
const MAX_EMAIL_LEN: usize = 320;
const MAX_TITLE_CHARS: usize = 200;
const MAX_REASON_LEN: usize = 500;
const MAX_KEY_LEN: usize = 255;
/// The same limit as the server's room names (`server/src/room_name.rs`).
const MAX_ROOM_LEN: usize = 128;

/// Whether `count` rows already fill a quota of `limit` (a negative count, which a database
/// never returns, counts as empty).
pub(crate) fn quota_full(count: i64, limit: u64) -> bool {
    u64::try_from(count).unwrap_or(0) >= limit
}

/// Milliseconds since the Unix epoch, as stored in every `*_at` column.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh id: 64 random bits, so that ids reveal neither counts nor creation order, and two
/// instances never need to coordinate.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

pub(crate) fn validate_subject(subject: &str) -> Result<&str, AccountError> {
    if subject.is_empty() {
        return Err(AccountError::InvalidInput { field: "subject", reason: "empty" });
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(AccountError::InvalidInput { field: "subject", reason: "longer than 255 bytes" });
    }
    Ok(subject)
}

/// A profile field from a token: trimmed, blank treated as absent, bounded.
pub(crate) fn profile_field<'a>(
    field: &'static str,
    value: Option<&'a str>,
    max_len: usize,
) -> Result<Option<&'a str>, AccountError> {
    match value.map(str::trim).filter(|value| !value.is_empty()) {
        Some(value) if value.len() > max_len => Err(AccountError::InvalidInput { field, reason: "too long" }),
        value => Ok(value),
    }
}

pub(crate) fn profile(
    name: Option<&str>,
    email: Option<&str>,
) -> Result<(Option<String>, Option<String>), AccountError> {
    let name = profile_field("name", name, MAX_NAME_LEN)?;
    let email = profile_field("email", email, MAX_EMAIL_LEN)?;
    Ok((name.map(str::to_owned), email.map(str::to_owned)))
}

/// Whether an upsert with this profile would change the stored user.
pub(crate) fn profile_changes(user: &User, name: Option<&str>, email: Option<&str>) -> bool {
    name.is_some_and(|name| user.name.as_deref() != Some(name))
        || email.is_some_and(|email| user.email.as_deref() != Some(email))
}

pub(crate) fn validate_title(title: &str) -> Result<String, AccountError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(AccountError::InvalidInput { field: "title", reason: "empty" });
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(AccountError::InvalidInput { field: "title", reason: "longer than 200 characters" });
    }
    Ok(title.to_owned())
}

/// The server's room-name rule (`server/src/room_name.rs`): a workflow whose room the server
/// would refuse could never be opened.
pub(crate) fn validate_room(room: &str) -> Result<&str, AccountError> {
    let invalid = |reason| Err(AccountError::InvalidInput { field: "room", reason });
    if room.is_empty() {
        return invalid("empty");
    }
    if room.len() > MAX_ROOM_LEN {
        return invalid("longer than 128 characters");
    }
    if !room.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
        return invalid("only A-Z a-z 0-9 - _ . : are allowed");
    }
    if room.starts_with('.') {
        return invalid("may not start with '.'");
    }
    Ok(room)
}

pub(crate) fn validate_credit_request(reason: &str, key: &str) -> Result<(), AccountError> {
    if key.is_empty() {
        return Err(AccountError::InvalidInput { field: "idempotency_key", reason: "empty" });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(AccountError::InvalidInput { field: "idempotency_key", reason: "longer than 255 bytes" });
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(AccountError::InvalidInput { field: "reason", reason: "longer than 500 bytes" });
    }
    Ok(())
}

/// The range the current balance must lie in for `amount` to apply: at least the spend, and
/// low enough that a grant cannot overflow. The UPDATE checks it, under the row lock, so the
/// decision and the write are one atomic step; the CHECK (credits >= 0) backs it up.
pub(crate) fn balance_bounds(amount: i64) -> Result<(i64, i64), AccountError> {
    if amount < 0 {
        let spend = amount
            .checked_neg()
            .ok_or(AccountError::InvalidInput { field: "amount", reason: "out of range" })?;
        Ok((spend, i64::MAX))
    } else {
        Ok((0, i64::MAX - amount))
    }
}

/// Why an amount did not apply to a user whose balance is `balance`.
pub(crate) fn refusal(balance: i64, amount: i64) -> AccountError {
    if amount < 0 {
        AccountError::InsufficientCredits { balance, requested: amount.saturating_neg() }
    } else {
        AccountError::BalanceOverflow { balance, amount }
    }
}

/// What seeing `existing` under the key means for a request for `user_id` and `amount`.
pub(crate) fn replay(
    existing: LedgerEntry,
    user_id: &str,
    amount: i64,
) -> Result<CreditOutcome, AccountError> {
    if existing.user_id == user_id && existing.amount == amount {
        Ok(CreditOutcome::AlreadyApplied(existing))
    } else {
        Err(AccountError::IdempotencyKeyReused {
            key: existing.idempotency_key.clone(),
            existing: Box::new(existing),
        })
    }
}

/// A workflow room's record as [`AccountStore::room_access`] reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AccessFacts {
    pub owner_id: String,
    pub public: bool,
    pub deleted_at: Option<i64>,
    /// The asking user's collaborator permission, if any.
    pub permission: Option<String>,
}

pub(crate) fn decide_access(
    facts: Option<AccessFacts>,
    user_id: Option<&str>,
) -> Result<RoomAccess, AccountError> {
    let Some(facts) = facts else { return Ok(RoomAccess::NoWorkflow) };
    if facts.deleted_at.is_some() {
        return Ok(RoomAccess::Denied);
    }
    let Some(user_id) = user_id else { return Ok(RoomAccess::Denied) };
    if facts.owner_id == user_id {
        return Ok(RoomAccess::Admin);
    }
    let shared = facts.permission.map(CollaboratorPermission::try_from).transpose().map_err(decode_error)?;
    let shared = shared.map(Permission::from);
    let public = facts.public.then_some(Permission::Read);
    Ok(shared.max(public).map_or(RoomAccess::Denied, RoomAccess::from))
}

/// A row of `list_workflows` before its permission text is parsed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SummaryRow {
    #[sqlx(flatten)]
    pub workflow: Workflow,
    pub permission: String,
}

impl TryFrom<SummaryRow> for WorkflowSummary {
    type Error = AccountError;

    fn try_from(row: SummaryRow) -> Result<Self, Self::Error> {
        let permission = row.permission.parse::<Permission>().map_err(decode_error)?;
        Ok(WorkflowSummary { workflow: row.workflow, permission })
    }
}

/// A value in the database this code cannot read: reported like any other decode failure.
fn decode_error(error: dojo_auth::UnknownPermission) -> AccountError {
    AccountError::Database(sqlx::Error::Decode(Box::new(error)))
}

/// Picks `find_user`'s answer among the users whose email matched.
pub(crate) fn single_email_match(query: &str, mut users: Vec<User>) -> Result<Option<User>, AccountError> {
    match users.len() {
        0 | 1 => Ok(users.pop()),
        _ => Err(AccountError::AmbiguousUser(query.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_refuse_overdraft_and_overflow_up_front() {
        assert_eq!(balance_bounds(-5).ok(), Some((5, i64::MAX)));
        assert_eq!(balance_bounds(5).ok(), Some((0, i64::MAX - 5)));
        assert_eq!(balance_bounds(0).ok(), Some((0, i64::MAX)));
        assert!(matches!(balance_bounds(i64::MIN), Err(AccountError::InvalidInput { field: "amount", .. })));
        assert!(matches!(refusal(3, -5), AccountError::InsufficientCredits { balance: 3, requested: 5 }));
        assert!(matches!(refusal(i64::MAX, 1), AccountError::BalanceOverflow { .. }));
    }

    #[test]
    fn room_names_follow_the_server_rule() {
        for good in ["a", "my-canvas", "team:plan_1.v2", &"x".repeat(128)] {
            assert!(validate_room(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(validate_room(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profile_fields_are_trimmed_and_blank_is_absent() {
        assert_eq!(profile(Some("  Ada "), Some(" ")).ok(), Some((Some("Ada".to_owned()), None)));
        assert!(profile(Some(&"n".repeat(201)), None).is_err());
        assert!(validate_subject("").is_err());
        assert!(validate_title("  ").is_err());
        assert_eq!(validate_title(" Plan ").ok().as_deref(), Some("Plan"));
    }

    fn facts(owner: &str, public: bool, deleted: bool, permission: Option<&str>) -> Option<AccessFacts> {
        Some(AccessFacts {
            owner_id: owner.to_owned(),
            public,
            deleted_at: deleted.then_some(1),
            permission: permission.map(str::to_owned),
        })
    }

    #[test]
    fn access_takes_the_strongest_grant() {
        let decide = |facts, user| decide_access(facts, user).ok();
        assert_eq!(decide(None, Some("u")), Some(RoomAccess::NoWorkflow));
        assert_eq!(decide(facts("u", false, false, None), Some("u")), Some(RoomAccess::Admin));
        assert_eq!(decide(facts("o", true, false, Some("write")), Some("u")), Some(RoomAccess::Write));
        assert_eq!(decide(facts("o", true, false, None), Some("u")), Some(RoomAccess::Read));
        assert_eq!(decide(facts("o", true, false, None), None), Some(RoomAccess::Denied));
        assert_eq!(decide(facts("u", false, true, None), Some("u")), Some(RoomAccess::Denied));
        assert!(decide_access(facts("o", false, false, Some("owner")), Some("u")).is_err());
    }
}
