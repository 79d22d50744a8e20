//! Accounts and runs on PostgreSQL, shared by every server instance: the statements of `sql/`
//! compiled for `sqlx::Postgres` (see `dialect.rs`).
//!
//! Concurrency across instances rests on row locks held until commit: credit changes to a user
//! serialise on the user's row (its conditional UPDATE), and two uses of one idempotency key
//! meet at the ledger's unique index, where the later one waits for the earlier to commit and
//! then finds its row.

use sqlx::postgres::PgPool;
use tokio::sync::OwnedMutexGuard;

use crate::AccountError;
use crate::dialect::{Dialect, WriteTx};

/// An [`AccountStore`](crate::AccountStore) and [`RunStore`](crate::RunStore) on PostgreSQL.
/// Clones share the pool.
#[derive(Debug, Clone)]
pub struct PostgresAccounts {
    pool: PgPool,
}

impl PostgresAccounts {
    /// Accounts on `pool`, whose database must be migrated (`dojo_store::open_database` does).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl Dialect for PostgresAccounts {
    type Db = sqlx::Postgres;

    const LOCK_USER: &'static str = "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE";

    const LOCK_TEAM: &'static str = "SELECT 1 FROM teams WHERE id = $1 FOR UPDATE";

    // Any constant key: appends of every workflow take turns (they are few and short).
    const EVENT_APPEND_LOCK: &'static str = "SELECT pg_advisory_xact_lock(7206000006)";

    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    const CLAIM_DELIVERIES: &'static str =
        "UPDATE webhook_deliveries SET next_attempt_at = $2, updated_at = $1
         WHERE id IN (SELECT id FROM webhook_deliveries
                      WHERE status = 'pending' AND next_attempt_at <= $1
                      ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING id";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        None
    }

    /// Row locks taken inside the transaction are what serialise writers here, so no
    /// process-wide lock goes with it.
    async fn begin_write(&self) -> Result<WriteTx<sqlx::Postgres>, AccountError> {
        Ok(WriteTx { tx: self.pool.begin().await?, _lock: None })
    }
}

type Store = PostgresAccounts;
type Conn = sqlx::PgConnection;

// The statements, written once and compiled for each backend on purpose (see `dialect.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
