//! The seam between the document statements, written once in `documents.rs`, and the two
//! databases.
//!
//! `documents.rs` is compiled twice, as a module of `postgres.rs` and of `sqlite.rs` (`#[path]`),
//! where `Store` names that backend's store: its statements use `$N` placeholders (sqlx's SQLite
//! driver accepts them) and SQL both databases speak. One generic body over `sqlx::Database`
//! would need the same executor and encode/decode bounds repeated on every function (Rust does
//! not imply them from a trait); sqlx's `Any` driver would need pools of its own, while the
//! records crate (`dojo-records`) shares these. What really differs is below, plus each backend's group-commit
//! writer (`UNNEST` arrays on PostgreSQL, multi-row `VALUES` on SQLite), which stays in its
//! backend's file.

use tokio::sync::OwnedMutexGuard;

use crate::StoreError;
use crate::batch::AppendQueue;

pub(crate) trait Dialect {
    type Db: sqlx::Database;

    /// Begins the read transaction `load` reads the snapshot and the later updates in, so that
    /// both see one state: a compaction committing between them could otherwise delete updates
    /// newer than the snapshot read.
    const BEGIN_READ: &'static str;

    /// The writer task appends go through.
    fn appends(&self) -> &AppendQueue;

    /// Applies the migrations of this database kind.
    async fn migrate_schema(&self) -> Result<(), StoreError>;

    /// A transaction in which to compact `room`, holding off any other compaction of it until
    /// it ends (appends are not held off on PostgreSQL).
    async fn begin_compaction(&self, room: &str) -> Result<WriteTx<Self::Db>, StoreError>;
}

/// An open write transaction and, on SQLite, the process write lock that must outlive it
/// (declared after `tx`, so dropped after it).
pub(crate) struct WriteTx<DB: sqlx::Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
    pub(crate) _lock: Option<OwnedMutexGuard<()>>,
}
