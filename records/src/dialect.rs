//! The seam between the statements, written once in `sql/`, and the two databases.
//!
//! Every statement is written once, with `$N` placeholders (sqlx's SQLite driver accepts them as
//! well as `?N`) and in SQL both databases speak: `ON CONFLICT … DO NOTHING / DO UPDATE`,
//! `RETURNING`, `FALSE`, `COALESCE`, `CAST(… AS BIGINT)`. `postgres.rs` and `sqlite.rs` each
//! compile the `sql/` directory as a module of their own (`#[path = "sql/mod.rs"] mod sql;`),
//! where `Store` and `Conn` name that backend's store and connection type; the code reads like any other module and rustfmt,
//! clippy and the compiler's type checks see both copies.
//!
//! Why not one generic body over `sqlx::Database`: every function would need the same dozen
//! `for<'q> T: Encode<'q, DB> + Type<DB>` and executor bounds repeated (Rust does not imply
//! them from a trait), and the async methods behind `async_trait` then fight higher-ranked
//! lifetime errors. Why not sqlx's `Any` driver: its pools are its own, while these stores must
//! share the document store's `PgPool` / `SqlitePool` (and SQLite's write lock), and it decodes
//! fewer types. Compiling the same files twice costs what the former `macro_rules!` expansion
//! did, without hiding the code inside a macro.
//!
//! What really differs is this trait, implemented by each backend's store: how a writer waits
//! for its turn and opens a write transaction (PostgreSQL: row locks taken inside it; SQLite:
//! one writer at a time, so this process's write lock plus `BEGIN IMMEDIATE`), and the one
//! statement whose locking clause SQLite has no spelling for.

use tokio::sync::OwnedMutexGuard;

use crate::AccountError;

/// What a backend's store provides to the statements in `sql/`.
pub(crate) trait Dialect {
    type Db: sqlx::Database;

    /// Reads a user row (`$1`: its id), locking it until commit where the database has row
    /// locks (PostgreSQL, `FOR NO KEY UPDATE`: rows that merely reference the user are not held
    /// up by it). On SQLite a plain read: the write transaction already excludes every other
    /// writer.
    const LOCK_USER: &'static str;

    /// Reads a team row (`$1`: its id), locking it until commit where the database has row
    /// locks, so that writes counting a team's members or owners (limits, the last-owner rule)
    /// take turns. On SQLite a plain read, for the reason given for [`LOCK_USER`](Self::LOCK_USER).
    const LOCK_TEAM: &'static str;

    /// Run first in a transaction that appends to `workflow_events`, holding until commit:
    /// PostgreSQL draws a sequence value before its transaction commits, so without it a later
    /// cursor could become visible before an earlier one and a change-feed reader polling
    /// `after=` would skip the earlier for good. SQLite's single writer already orders them.
    const EVENT_APPEND_LOCK: &'static str;

    /// Claims due webhook deliveries (`$1` now, `$2` when they are due again if the claimer
    /// dies, `$3` how many), returning their ids. PostgreSQL skips rows another instance is
    /// claiming (`FOR UPDATE SKIP LOCKED`) instead of waiting for them or claiming them twice.
    const CLAIM_DELIVERIES: &'static str;

    /// Appended to a `SELECT … LIMIT 1` inside a claiming UPDATE: PostgreSQL skips a row another
    /// transaction is claiming (` FOR UPDATE SKIP LOCKED`) rather than waiting for it and then
    /// finding it taken; SQLite has one writer, so nothing.
    const SKIP_LOCKED: &'static str;

    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// Waits for this process's turn to write, for a write that is one statement outside any
    /// transaction: SQLite's write lock (held until the guard drops), so that writers queue in
    /// order instead of polling the file lock. `None` on PostgreSQL, whose row locks suffice.
    async fn write_turn(&self) -> Option<OwnedMutexGuard<()>>;

    /// A write transaction, after [`write_turn`](Self::write_turn); on SQLite it begins with
    /// `BEGIN IMMEDIATE`, taking the file's write lock up front: a deferred transaction that
    /// read first could fail to upgrade with SQLITE_BUSY, and holding it from the start is also
    /// what serialises writers across processes.
    async fn begin_write(&self) -> Result<WriteTx<Self::Db>, AccountError>;
}

/// An open write transaction and, on SQLite, the process write lock that must outlive it
/// (declared after `tx`, so dropped after it).
pub(crate) struct WriteTx<DB: sqlx::Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
    pub(crate) _lock: Option<OwnedMutexGuard<()>>,
}
