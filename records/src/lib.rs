//! The relational records kept beside the documents: who owns what, who may open which room,
//! who can pay for runs, and every run's own records. (Called `dojo-accounts` until the runs
//! moved in; named now for all it holds.)
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
//! The crate also holds what a run needs from the same database ([`RunStore`]): runs and their
//! credit holds, worker leases, the queue's outbox, assets and the node cache.
//!
//! Layout: the types and rules of each topic live in a module named after it (`users`,
//! `workflows`, `collaborators`, `ledger`, `runs`); the statements live once, in `sql/`, and
//! are compiled for each database by `postgres.rs` and `sqlite.rs` (see `dialect.rs` for why and
//! how). Both pass one conformance suite (`tests/`), and their tables come from the shared
//! `migrations/` folder that `dojo_store::open_database` applies. [`accounts`] builds the
//! implementation that matches an open [`dojo_store::Database`], on the same pool.

#[macro_use]
mod columns;

mod account_store;
pub mod apps;
pub mod audit;
pub mod batches;
mod collaborators;
pub mod data_rights;
mod dialect;
pub mod engagement;
mod error;
pub mod fraud;
pub mod jobs;
pub mod key_crypto;
mod ledger;
mod postgres;
pub mod provider_keys;
pub mod queue;
mod run_records;
mod run_request;
pub mod runs;
mod sqlite;
pub mod stripe;
pub mod stripe_payments;
pub mod suggestions;
pub mod support;
pub mod team_credits;
pub mod teams;
mod users;
pub mod webhooks;
mod workflow_invitations;
mod workflows;

use std::sync::Arc;

pub use account_store::AccountStore;
pub use apps::{App, AppStore, AppVisibility, NewApp};
pub use audit::{ActorKind, AuditEntry, AuditLog, AuditQuery, NewAuditEntry, StaffAuditQuery};
pub use batches::{Batch, BatchMember, BatchSubmission, NewBatch};
pub use collaborators::{Collaborator, CollaboratorPermission, RoomAccess};
pub use data_rights::{DataRightsStore, DeletedAccount, DeletionPlan, OwnedAsset};
pub use dojo_auth::Permission;
pub use engagement::{EngagementStore, InactiveUser, Message, MessageStatus, NewMessage};
pub use error::AccountError;
pub use fraud::{Flag, FlagQuery, FlagStatus, FraudRules, FraudStore, PaymentEvent, PaymentKind};
pub use jobs::{Enqueued, Job, JobOutcome, JobQuery, JobStatus, JobStore, NewJob, Schedule, StaffRole};
pub use ledger::{CreditOutcome, LedgerEntry};
pub use postgres::PostgresAccounts;
pub use provider_keys::{ProviderKeyStore, StoredProviderKey};
pub use queue::{QueueOwner, QueueStore, QueuedRun};
pub use runs::{
    AssetLink, AssetRecord, Claim, FinishedNode, HoldState, MAX_CACHED_OUTPUTS, MAX_GRANTED_ASSETS, NewRun,
    NewRunNode, NodeSettlement, OutboxEntry, QueueTerms, Run, RunGauges, RunNode, RunNodeState, RunStatus,
    RunStore, Submission,
};
pub use sqlite::SqliteAccounts;
pub use suggestions::{SuggestionStore, Suggestions};
pub use support::{NewTicket, SupportStore, Ticket, TicketStatus};
pub use team_credits::{MemberSpend, TeamCredits};
pub use teams::{
    Invitation, InvitationStatus, Invitee, Membership, NewInvitation, Team, TeamLimits, TeamMember, TeamRole,
    TeamStore,
};
pub use users::User;
pub use webhooks::WebhookStore;
pub use workflow_invitations::{
    EmailShare, MAX_PENDING_WORKFLOW_INVITATIONS, WORKFLOW_INVITATION_TTL_MS, WorkflowInvitation,
};
pub use workflows::{Workflow, WorkflowPatch, WorkflowSummary};

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

/// The run queue's positions, pauses and plans on the database `db` names, sharing its pool
/// (and, for SQLite, its write lock).
pub fn queue(db: &dojo_store::Database) -> Arc<dyn QueueStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// Webhook endpoints, the event log (change feed) and deliveries on the database `db` names,
/// sharing its pool (and, for SQLite, its write lock).
pub fn webhooks(db: &dojo_store::Database) -> Arc<dyn WebhookStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// Teams, members and invitations on the database `db` names, sharing its pool (and, for
/// SQLite, its write lock).
pub fn teams(db: &dojo_store::Database) -> Arc<dyn TeamStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// The audit log on the database `db` names, sharing its pool (and, for SQLite, its write
/// lock).
pub fn audit_log(db: &dojo_store::Database) -> Arc<dyn AuditLog> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// Team provider keys (sealed) on the database `db` names, sharing its pool (and, for SQLite,
/// its write lock).
pub fn provider_keys(db: &dojo_store::Database) -> Arc<dyn ProviderKeyStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// A person's data (export, analytics opt-out, account deletion) on the database `db` names,
/// sharing its pool (and, for SQLite, its write lock).
pub fn data_rights(db: &dojo_store::Database) -> Arc<dyn DataRightsStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// The agents' job queue, its schedules and staff roles on the database `db` names, sharing its
/// pool (and, for SQLite, its write lock).
pub fn jobs(db: &dojo_store::Database) -> Arc<dyn JobStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// Support tickets on the database `db` names, sharing its pool (and, for SQLite, its write
/// lock).
pub fn support(db: &dojo_store::Database) -> Arc<dyn SupportStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// Payments, the fraud rules' evidence and account flags on the database `db` names, sharing
/// its pool (and, for SQLite, its write lock).
pub fn fraud(db: &dojo_store::Database) -> Arc<dyn FraudStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// Activity, tips opt-outs and re-engagement messages on the database `db` names, sharing its
/// pool (and, for SQLite, its write lock).
pub fn engagement(db: &dojo_store::Database) -> Arc<dyn EngagementStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// The workflow agent's suggestions on the database `db` names, sharing its pool (and, for
/// SQLite, its write lock).
pub fn suggestions(db: &dojo_store::Database) -> Arc<dyn SuggestionStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

/// Published apps (App mode) on the database `db` names, sharing its pool (and, for SQLite, its
/// write lock).
pub fn apps(db: &dojo_store::Database) -> Arc<dyn AppStore> {
    match db {
        dojo_store::Database::Postgres(store) => Arc::new(PostgresAccounts::new(store.pool().clone())),
        dojo_store::Database::Sqlite(store) => Arc::new(SqliteAccounts::from_store(store)),
    }
}

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
