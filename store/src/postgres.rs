//! The PostgreSQL store, for production: several server instances may share one database.
//!
//! Concurrency across instances rests on two locks, both held only until commit:
//! - appends to a room serialise on its `documents` row, whose `next_seq` they advance;
//! - compactions of a room serialise on a transaction-scoped advisory lock keyed on the room,
//!   which appenders do not take (compaction never blocks appends).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::batch::{AppendQueue, BatchWrite, RoomAppend};
use crate::dialect::{Dialect, WriteTx};
use crate::{Seq, StoreError, len_i64, now_millis};

/// Tolerates migrations newer than this binary's (`ignore_missing`): in a rolling upgrade the
/// new release migrates first while instances of the previous one keep running and restarting
/// on that schema. What makes that safe is the expand-then-contract rule for migrations
/// (docs/operations.md), which `scripts/check-migrations.py` enforces in CI.
static MIGRATOR: LazyLock<sqlx::migrate::Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("../migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
});

/// First key of the two-key advisory lock compaction takes (the second is the room's hash), so
/// that it cannot collide with other users of advisory locks, sqlx's migration lock included.
/// The value is arbitrary ("dojo" in ASCII).
const COMPACT_LOCK_CLASS: i32 = 0x646f_6a6f;

/// Bytes of update data sent in one INSERT. Postgres rejects protocol messages over 1 GiB, and
/// smaller statements keep memory bounded; a bigger append is split, still in one transaction.
const MAX_INSERT_BYTES: usize = 64 << 20;

/// How to size and time out the pool. The defaults suit one server instance.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections this instance may hold (default 10).
    pub max_connections: u32,
    /// How long a query waits for a connection, including the first connect (default 5 s), so
    /// that an unreachable database is an error, not a hang.
    pub acquire_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// A [`DocumentStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The writer task every room's appends go through, committing what queued meanwhile in one
    /// transaction.
    appends: AppendQueue,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`) with default options,
    /// opening one connection now so that a bad URL or a dead database fails here. Does not
    /// migrate: call [`DocumentStore::migrate`] (or use [`crate::open`], which does).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url.parse()?, PostgresOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with explicit connection and pool options.
    pub async fn connect_with(
        connect: PgConnectOptions,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        let connect =
            if connect.get_application_name().is_none() { connect.application_name("dojo") } else { connect };
        // Connect once directly first, so that a bad URL or a dead database fails here with its
        // cause: the pool retries a refused connection until acquire_timeout and then reports
        // only "pool timed out while waiting for an open connection".
        match tokio::time::timeout(options.acquire_timeout, PgConnection::connect_with(&connect)).await {
            Ok(Ok(probe)) => {
                // Closing politely is best effort; the connection goes away either way.
                let _ = probe.close().await;
            }
            Ok(Err(err)) => return Err(err.into()),
            Err(_elapsed) => {
                let message =
                    format!("connecting to PostgreSQL timed out after {:?}", options.acquire_timeout);
                return Err(
                    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, message)).into()
                );
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool (for tests and tools that share one).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { appends: AppendQueue::new(PostgresWriter { pool: pool.clone() }), pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Dialect for PostgresStore {
    type Db = sqlx::Postgres;

    const BEGIN_READ: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

    fn appends(&self) -> &AppendQueue {
        &self.appends
    }

    async fn migrate_schema(&self) -> Result<(), StoreError> {
        // The migrator takes a session advisory lock, so instances starting together take turns.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// A transaction-scoped advisory lock keyed on the room, which appenders do not take:
    /// compaction never blocks appends.
    async fn begin_compaction(&self, room: &str) -> Result<WriteTx<sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(COMPACT_LOCK_CLASS)
            .bind(room)
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx { tx, _lock: None })
    }
}

type Store = PostgresStore;

// Written once and compiled for each backend on purpose (see `dialect.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "documents.rs"]
mod documents;

/// Commits batches of appends for [`AppendQueue`].
struct PostgresWriter {
    pool: PgPool,
}

#[async_trait::async_trait]
impl BatchWrite for PostgresWriter {
    async fn write_batch(&self, rooms: &[RoomAppend<'_>]) -> Result<Vec<Seq>, StoreError> {
        let now = now_millis();
        let names: Vec<&str> = rooms.iter().map(|append| append.room).collect();
        let counts: Vec<i64> = rooms.iter().map(|append| len_i64(append.updates.len())).collect();
        let mut tx = self.pool.begin().await?;
        // Creating a room's row or advancing its next_seq locks it until commit: concurrent
        // appenders to the room (from any instance) wait here, then see the advanced value. The
        // rows are locked in name order (the batch is sorted), so two batches cannot deadlock.
        let next: Vec<(String, i64)> = sqlx::query_as(
            "INSERT INTO documents (room, created_at, updated_at, next_seq)
             SELECT r.room, $1, $1, 1 + r.count FROM UNNEST($2::text[], $3::int8[]) AS r (room, count)
             ORDER BY r.room
             ON CONFLICT (room) DO UPDATE
             SET next_seq = documents.next_seq + EXCLUDED.next_seq - 1, updated_at = EXCLUDED.updated_at
             RETURNING room, next_seq",
        )
        .bind(now)
        .bind(&names)
        .bind(&counts)
        .fetch_all(&mut *tx)
        .await?;
        let next: HashMap<String, i64> = next.into_iter().collect();
        let mut last_seqs = Vec::with_capacity(rooms.len());
        let mut rows = Rows::default();
        for append in rooms {
            let next = *next.get(append.room).ok_or_else(|| {
                StoreError::Interrupted(format!("no sequence came back for room {}", append.room))
            })?;
            let first = next - len_i64(append.updates.len());
            for (i, data) in append.updates.iter().enumerate() {
                if rows.bytes > 0 && rows.bytes + data.len() > MAX_INSERT_BYTES {
                    std::mem::take(&mut rows).insert(&mut tx, now).await?;
                }
                rows.push(append.room, first + len_i64(i), data);
            }
            last_seqs.push(next - 1);
        }
        rows.insert(&mut tx, now).await?;
        tx.commit().await?;
        Ok(last_seqs)
    }

    /// Two: while one batch waits for its commit's flush, the next one is written.
    fn max_in_flight(&self) -> usize {
        2
    }
}

/// Update rows for one INSERT, as the columns' arrays: the statement text is constant (prepared
/// once) and the 65,535 bind-parameter limit does not apply.
#[derive(Default)]
struct Rows<'a> {
    rooms: Vec<&'a str>,
    seqs: Vec<i64>,
    data: Vec<&'a [u8]>,
    bytes: usize,
}

impl<'a> Rows<'a> {
    fn push(&mut self, room: &'a str, seq: Seq, data: &'a [u8]) {
        self.rooms.push(room);
        self.seqs.push(seq);
        self.data.push(data);
        self.bytes += data.len();
    }

    async fn insert(
        self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        now: i64,
    ) -> Result<(), StoreError> {
        if self.rooms.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO document_updates (room, seq, data, created_at)
             SELECT u.room, u.seq, u.data, $1 FROM UNNEST($2::text[], $3::int8[], $4::bytea[]) AS u (room, seq, data)",
        )
        .bind(now)
        .bind(&self.rooms)
        .bind(&self.seqs)
        .bind(&self.data)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
