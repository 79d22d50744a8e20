//! Accounts and runs in the SQLite file the document store uses: the statements of `sql/`
//! compiled for `sqlx::Sqlite` (see `dialect.rs`).
//!
//! SQLite has one writer at a time. Every write here takes the in-process write lock the
//! document store's writes take (so the two queue in order instead of polling the file lock),
//! and multi-statement writes begin with `BEGIN IMMEDIATE`, which takes the file's write lock up
//! front: a deferred transaction that read first could fail to upgrade with SQLITE_BUSY, and
//! holding the lock from the start is also what serialises credit changes across processes.

use std::sync::Arc;

use dojo_store::SqliteStore;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::AccountError;
use crate::dialect::{Dialect, WriteTx};

/// An [`AccountStore`](crate::AccountStore) and [`RunStore`](crate::RunStore) on SQLite.
/// Clones share the pool and the write lock.
#[derive(Debug, Clone)]
pub struct SqliteAccounts {
    pool: SqlitePool,
    /// Serialises this process's writes to the file (see the module comment).
    write: Arc<Mutex<()>>,
}

impl SqliteAccounts {
    /// Accounts on `pool`, whose database must be migrated (`dojo_store::open_database` does).
    /// `write` should be the lock every other writer to the file in this process takes.
    pub fn new(pool: SqlitePool, write: Arc<Mutex<()>>) -> Self {
        Self { pool, write }
    }

    /// Accounts in the document store's file, sharing its pool and write lock.
    pub fn from_store(store: &SqliteStore) -> Self {
        Self::new(store.pool().clone(), Arc::clone(store.write_lock()))
    }
}

impl Dialect for SqliteAccounts {
    type Db = sqlx::Sqlite;

    const LOCK_USER: &'static str = "SELECT 1 FROM users WHERE id = $1";

    const LOCK_TEAM: &'static str = "SELECT 1 FROM teams WHERE id = $1";

    const EVENT_APPEND_LOCK: &'static str = "SELECT 1";

    // The write transaction already excludes every other claimer.
    const SKIP_LOCKED: &'static str = "";

    const CLAIM_DELIVERIES: &'static str =
        "UPDATE webhook_deliveries SET next_attempt_at = $2, updated_at = $1
         WHERE id IN (SELECT id FROM webhook_deliveries
                      WHERE status = 'pending' AND next_attempt_at <= $1
                      ORDER BY next_attempt_at, id LIMIT $3)
         RETURNING id";

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        Some(Arc::clone(&self.write).lock_owned().await)
    }

    /// This process's write lock, then `BEGIN IMMEDIATE`, for the reasons in the module comment.
    /// The lock is held until the transaction ends.
    async fn begin_write(&self) -> Result<WriteTx<sqlx::Sqlite>, AccountError> {
        let lock = Arc::clone(&self.write).lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _lock: Some(lock) })
    }
}

type Store = SqliteAccounts;
type Conn = sqlx::SqliteConnection;

// The statements, written once and compiled for each backend on purpose (see `dialect.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
