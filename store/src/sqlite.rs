//! The SQLite store: the zero-setup default, one server instance per database file.
//!
//! SQLite allows one writer at a time per file. Writes here take the write lock up front
//! (`BEGIN IMMEDIATE`), so a transaction never has to upgrade a read lock (which can fail with
//! SQLITE_BUSY however long it waits); within the process they also queue on a mutex, so that
//! waiting appenders are served in order instead of polling the file lock. Reads run in parallel
//! with the writer (WAL).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::QueryBuilder;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Mutex;

use crate::{
    CompactOutcome, DocumentStore, LoggedUpdate, NewSnapshot, Seq, Snapshot, StoreError, StoredDocument,
    VersionInfo, keep_limit, len_i64, now_millis, run_to_completion,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// SQLite's default limit on bound parameters in one statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_VARIABLES: usize = 32_766;
/// Parameters bound per row of `document_updates`.
const UPDATE_COLUMNS: usize = 4;
/// Rows in one multi-row INSERT; a bigger append is split, still in one transaction.
const ROWS_PER_INSERT: usize = MAX_VARIABLES / UPDATE_COLUMNS;

/// How long a write waits for another process holding the database's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of updates committed in one shared transaction at most (at least one append always
/// goes in, whatever its size).
const MAX_SHARED_COMMIT_BYTES: usize = 32 << 20;

/// An append waiting for the next shared commit.
struct PendingAppend {
    room: String,
    updates: Vec<Vec<u8>>,
    done: tokio::sync::oneshot::Sender<Result<Seq, StoreError>>,
}

impl std::fmt::Debug for PendingAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAppend")
            .field("room", &self.room)
            .field("updates", &self.updates.len())
            .finish()
    }
}

/// A [`DocumentStore`] in one SQLite file. Clones share the pool and the write lock.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serialises this process's write transactions (see the module comment).
    write: Arc<Mutex<()>>,
    /// Appends of every room waiting for the write lock: whoever gets it commits them all in
    /// one transaction, so many rooms share one fsync instead of queueing for one each.
    pending: Arc<std::sync::Mutex<Vec<PendingAppend>>>,
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database file at `path`. The
    /// path `:memory:` opens a private in-memory database, for tests. Does not migrate: call
    /// [`DocumentStore::migrate`] (or use [`crate::open`], which does).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if path == Path::new(":memory:") {
            return Self::open_in_memory().await;
        }
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL: readers do not block the writer nor it them, and a commit appends to one file.
            .journal_mode(SqliteJournalMode::Wal)
            // An acknowledged append must survive power loss, not only a killed process. In WAL
            // mode, NORMAL is already safe against a process crash (kill -9: the WAL is in the OS
            // page cache) but after power loss may roll back the last commits; FULL fsyncs the
            // WAL on every commit, which costs a sync per append (appends are batched upstream).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // A few connections so that loads proceed while a write is in progress; writes
        // serialise anyway. The first connection, opened now, switches the file to WAL, which
        // needs an exclusive lock that does not wait on busy_timeout, so no other connection
        // may race it; later ones find WAL already set.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Self { pool, write: Arc::new(Mutex::new(())), pending: Arc::default() })
    }

    /// A private in-memory database, for tests: gone when the store is dropped.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
        // Each connection to ":memory:" is its own database, so exactly one connection, which
        // must never be closed for idleness or age.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(Self { pool, write: Arc::new(Mutex::new(())), pending: Arc::default() })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The mutex this process's write transactions on this file queue on. Other crates writing
    /// to the same file (`dojo-accounts`) take it too, so that their writers and the store's are
    /// served in order rather than polling SQLite's file lock against each other.
    pub fn write_lock(&self) -> &Arc<Mutex<()>> {
        &self.write
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn last_seq(&self, room: &str) -> Result<Seq, StoreError> {
        let next: Option<i64> = sqlx::query_scalar("SELECT next_seq FROM documents WHERE room = ?1")
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(next.map_or(0, |next| next - 1))
    }

    // The bodies of the trait's transaction-holding methods, which run them through
    // `run_to_completion` (see there why).
    async fn load_now(&self, room: &str) -> Result<StoredDocument, StoreError> {
        // One read transaction, so both reads see the same state of the file: otherwise a
        // compaction committing between them could delete updates newer than the snapshot read.
        let mut tx = self.pool.begin().await?;
        let snapshot: Option<Snapshot> = sqlx::query_as(
            "SELECT id, covers_seq, data, created_at FROM document_snapshots
             WHERE room = ?1 ORDER BY covers_seq DESC LIMIT 1",
        )
        .bind(room)
        .fetch_optional(&mut *tx)
        .await?;
        let after = snapshot.as_ref().map_or(0, |s| s.covers_seq);
        let updates: Vec<LoggedUpdate> = sqlx::query_as(
            "SELECT seq, data FROM document_updates WHERE room = ?1 AND seq > ?2 ORDER BY seq",
        )
        .bind(room)
        .bind(after)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredDocument { snapshot, updates })
    }

    /// Group commit across rooms: the append joins the pending list, then either finds it was
    /// committed by whoever held the write lock meanwhile, or takes the lock and commits
    /// everything pending (its own included) in one transaction, each room's rows under a
    /// savepoint so that one failing append does not fail the others.
    async fn append_now(&self, room: &str, updates: &[&[u8]]) -> Result<Seq, StoreError> {
        if updates.is_empty() {
            return self.last_seq(room).await;
        }
        let (done, mut result) = tokio::sync::oneshot::channel();
        let request = PendingAppend {
            room: room.to_owned(),
            updates: updates.iter().map(|u| u.to_vec()).collect(),
            done,
        };
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(request);
        loop {
            let write = tokio::select! {
                biased;
                answer = &mut result => return answered(answer),
                write = self.write.lock() => write,
            };
            if let Ok(answer) = result.try_recv() {
                return answer;
            }
            let batch = self.take_pending();
            self.commit_shared(batch).await;
            drop(write);
        }
    }

    /// The oldest pending appends, up to [`MAX_SHARED_COMMIT_BYTES`].
    fn take_pending(&self) -> Vec<PendingAppend> {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut bytes = 0;
        let mut take = 0;
        for request in pending.iter() {
            let size: usize = request.updates.iter().map(Vec::len).sum();
            if take > 0 && bytes + size > MAX_SHARED_COMMIT_BYTES {
                break;
            }
            bytes += size;
            take += 1;
        }
        pending.drain(..take).collect()
    }

    /// Commits `batch` in one transaction (the caller holds the write lock) and answers each.
    async fn commit_shared(&self, batch: Vec<PendingAppend>) {
        if batch.is_empty() {
            return;
        }
        let now = now_millis();
        let outcome = async {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let mut results = Vec::with_capacity(batch.len());
            for request in &batch {
                sqlx::query("SAVEPOINT room_append").execute(&mut *tx).await?;
                let updates: Vec<&[u8]> = request.updates.iter().map(Vec::as_slice).collect();
                let result = insert_updates(&mut tx, &request.room, &updates, now).await;
                if result.is_err() {
                    sqlx::query("ROLLBACK TO SAVEPOINT room_append").execute(&mut *tx).await?;
                }
                sqlx::query("RELEASE SAVEPOINT room_append").execute(&mut *tx).await?;
                results.push(result);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(results)
        }
        .await;
        match outcome {
            Ok(results) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.done.send(result.map_err(StoreError::from));
                }
            }
            Err(error) => {
                // Nothing of the batch is stored; every append in it fails with the cause.
                let message = error.to_string();
                for request in batch {
                    let _ = request.done.send(Err(StoreError::SharedCommit(message.clone())));
                }
            }
        }
    }

    async fn compact_now(&self, room: &str, snapshot: NewSnapshot<'_>) -> Result<CompactOutcome, StoreError> {
        let now = now_millis();
        // The write lock serialises compactions (and appends) to every room, so no per-room
        // lock is needed as in PostgreSQL.
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The snapshot references the room's row; create it if the room was never appended to.
        sqlx::query(
            "INSERT INTO documents (room, created_at, updated_at, next_seq) VALUES (?1, ?2, ?2, 1)
             ON CONFLICT (room) DO NOTHING",
        )
        .bind(room)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Never hand out a sequence the snapshot claims to cover.
        sqlx::query(
            "UPDATE documents SET next_seq = ?2 + 1, updated_at = ?3 WHERE room = ?1 AND next_seq <= ?2",
        )
        .bind(room)
        .bind(snapshot.covers_seq)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Compacting the same state twice stores it once.
        sqlx::query(
            "INSERT INTO document_snapshots (room, covers_seq, data, state_vector, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (room, covers_seq) DO NOTHING",
        )
        .bind(room)
        .bind(snapshot.covers_seq)
        .bind(snapshot.data)
        .bind(snapshot.state_vector)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let deleted_updates = sqlx::query("DELETE FROM document_updates WHERE room = ?1 AND seq <= ?2")
            .bind(room)
            .bind(snapshot.covers_seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Keeps the newest by covers_seq, so the newest snapshot always survives and covers every
        // deleted update, even when an older compaction arrives late and ours is the one trimmed.
        let deleted_snapshots = sqlx::query(
            "DELETE FROM document_snapshots WHERE room = ?1 AND id NOT IN (
                 SELECT id FROM document_snapshots WHERE room = ?1 ORDER BY covers_seq DESC LIMIT ?2
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
impl DocumentStore for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let _write = self.write.lock().await;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn load(&self, room: &str) -> Result<StoredDocument, StoreError> {
        let (this, room) = (self.clone(), room.to_owned());
        run_to_completion(async move { this.load_now(&room).await }).await
    }

    async fn append(&self, room: &str, updates: &[&[u8]]) -> Result<Seq, StoreError> {
        let (this, room) = (self.clone(), room.to_owned());
        let updates: Vec<Vec<u8>> = updates.iter().map(|update| update.to_vec()).collect();
        run_to_completion(async move {
            let updates: Vec<&[u8]> = updates.iter().map(Vec::as_slice).collect();
            this.append_now(&room, &updates).await
        })
        .await
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
            "SELECT id, covers_seq, length(data) AS size_bytes, created_at FROM document_snapshots
             WHERE room = ?1 ORDER BY covers_seq DESC",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        Ok(versions)
    }

    async fn version(&self, room: &str, id: i64) -> Result<Option<Snapshot>, StoreError> {
        let snapshot: Option<Snapshot> = sqlx::query_as(
            "SELECT id, covers_seq, data, created_at FROM document_snapshots WHERE room = ?1 AND id = ?2",
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

fn answered(
    answer: Result<Result<Seq, StoreError>, tokio::sync::oneshot::error::RecvError>,
) -> Result<Seq, StoreError> {
    answer
        .unwrap_or_else(|_| Err(StoreError::Interrupted("the shared commit ended without an answer".into())))
}

/// One room's rows: advances its sequence (creating its row) and inserts the updates; returns
/// the sequence of the last one.
async fn insert_updates(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    room: &str,
    updates: &[&[u8]],
    now: i64,
) -> Result<Seq, sqlx::Error> {
    let count = len_i64(updates.len());
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO documents (room, created_at, updated_at, next_seq) VALUES (?1, ?2, ?2, 1 + ?3)
         ON CONFLICT (room) DO UPDATE
         SET next_seq = documents.next_seq + ?3, updated_at = excluded.updated_at
         RETURNING next_seq",
    )
    .bind(room)
    .bind(now)
    .bind(count)
    .fetch_one(&mut **tx)
    .await?;
    let mut seq = next - count;
    for chunk in updates.chunks(ROWS_PER_INSERT) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO document_updates (room, seq, data, created_at) ");
        insert.push_values(chunk, |mut row, data| {
            row.push_bind(room).push_bind(seq).push_bind(*data).push_bind(now);
            seq += 1;
        });
        // Not cached: the text differs with the row count, and big ones would crowd out the
        // statements worth keeping.
        insert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(next - 1)
}
