//! The PostgreSQL store, for production: several server instances may share one database.
//!
//! Concurrency across instances rests on two locks, both held only until commit:
//! - appends to a room serialise on its `documents` row, whose `next_seq` they advance;
//! - compactions of a room serialise on a transaction-scoped advisory lock keyed on the room,
//!   which appenders do not take (compaction never blocks appends).

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::batch::{AppendQueue, BatchWrite, RoomAppend};
use crate::{
    CompactOutcome, DocumentStore, LoggedUpdate, NewSnapshot, Seq, Snapshot, StoreError, StoredDocument,
    VersionInfo, keep_limit, len_i64, now_millis, run_to_completion,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

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

    async fn last_seq(&self, room: &str) -> Result<Seq, StoreError> {
        let next: Option<i64> = sqlx::query_scalar("SELECT next_seq FROM documents WHERE room = $1")
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(next.map_or(0, |next| next - 1))
    }

    // The bodies of the trait's transaction-holding methods, which run them through
    // `run_to_completion` (see there why).
    async fn load_now(&self, room: &str) -> Result<StoredDocument, StoreError> {
        // One snapshot of the database for both reads: otherwise a compaction committing between
        // them could delete updates newer than the snapshot read first.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let snapshot: Option<Snapshot> = sqlx::query_as(
            "SELECT id, covers_seq, data, created_at FROM document_snapshots
             WHERE room = $1 ORDER BY covers_seq DESC LIMIT 1",
        )
        .bind(room)
        .fetch_optional(&mut *tx)
        .await?;
        let after = snapshot.as_ref().map_or(0, |s| s.covers_seq);
        let updates: Vec<LoggedUpdate> = sqlx::query_as(
            "SELECT seq, data FROM document_updates WHERE room = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(room)
        .bind(after)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredDocument { snapshot, updates })
    }

    async fn compact_now(&self, room: &str, snapshot: NewSnapshot<'_>) -> Result<CompactOutcome, StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(COMPACT_LOCK_CLASS)
            .bind(room)
            .execute(&mut *tx)
            .await?;
        // The snapshot references the room's row; create it if the room was never appended to.
        sqlx::query(
            "INSERT INTO documents (room, created_at, updated_at, next_seq) VALUES ($1, $2, $2, 1)
             ON CONFLICT (room) DO NOTHING",
        )
        .bind(room)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Never hand out a sequence the snapshot claims to cover. A no-op (and no row lock) in
        // the normal case, where the snapshot covers sequences already allocated.
        sqlx::query(
            "UPDATE documents SET next_seq = $2 + 1, updated_at = $3 WHERE room = $1 AND next_seq <= $2",
        )
        .bind(room)
        .bind(snapshot.covers_seq)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A racing compaction that stored the same covers_seq wins; its data is the same state.
        sqlx::query(
            "INSERT INTO document_snapshots (room, covers_seq, data, state_vector, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (room, covers_seq) DO NOTHING",
        )
        .bind(room)
        .bind(snapshot.covers_seq)
        .bind(snapshot.data)
        .bind(snapshot.state_vector)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Covered by the snapshot just stored (or an identical one), so safe to drop.
        let deleted_updates = sqlx::query("DELETE FROM document_updates WHERE room = $1 AND seq <= $2")
            .bind(room)
            .bind(snapshot.covers_seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Keeps the newest by covers_seq, so the newest snapshot always survives and covers every
        // deleted update, even when a newer compaction won the race and ours is the one trimmed.
        let deleted_snapshots = sqlx::query(
            "DELETE FROM document_snapshots WHERE room = $1 AND id NOT IN (
                 SELECT id FROM document_snapshots WHERE room = $1 ORDER BY covers_seq DESC LIMIT $2
             )",
        )
        .bind(room)
        .bind(keep_limit(snapshot.keep))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        tracing::debug!(
            room,
            covers_seq = snapshot.covers_seq,
            deleted_updates,
            deleted_snapshots,
            "compacted"
        );
        Ok(CompactOutcome { deleted_updates, deleted_snapshots })
    }
}

#[async_trait::async_trait]
impl DocumentStore for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // The migrator takes a session advisory lock, so instances starting together take turns.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn load(&self, room: &str) -> Result<StoredDocument, StoreError> {
        let (this, room) = (self.clone(), room.to_owned());
        run_to_completion(async move { this.load_now(&room).await }).await
    }

    async fn append(&self, room: &str, updates: &[&[u8]]) -> Result<Seq, StoreError> {
        if updates.is_empty() {
            return self.last_seq(room).await;
        }
        self.appends.append(room, updates).await
    }

    async fn compact(&self, room: &str, snapshot: NewSnapshot<'_>) -> Result<CompactOutcome, StoreError> {
        let (this, room) = (self.clone(), room.to_owned());
        let (data, state_vector) = (snapshot.data.to_vec(), snapshot.state_vector.to_vec());
        let (covers_seq, keep) = (snapshot.covers_seq, snapshot.keep);
        run_to_completion(async move {
            let snapshot = NewSnapshot { data: &data, state_vector: &state_vector, covers_seq, keep };
            this.compact_now(&room, snapshot).await
        })
        .await
    }

    async fn versions(&self, room: &str) -> Result<Vec<VersionInfo>, StoreError> {
        let versions: Vec<VersionInfo> = sqlx::query_as(
            "SELECT id, covers_seq, octet_length(data)::bigint AS size_bytes, created_at FROM document_snapshots
             WHERE room = $1 ORDER BY covers_seq DESC",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        Ok(versions)
    }

    async fn version(&self, room: &str, id: i64) -> Result<Option<Snapshot>, StoreError> {
        let snapshot: Option<Snapshot> = sqlx::query_as(
            "SELECT id, covers_seq, data, created_at FROM document_snapshots WHERE room = $1 AND id = $2",
        )
        .bind(room)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(snapshot)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

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
