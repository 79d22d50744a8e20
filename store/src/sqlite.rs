//! The SQLite store: the zero-setup default, one server instance per database file.
//!
//! SQLite allows one writer at a time per file. Writes here take the write lock up front
//! (`BEGIN IMMEDIATE`), so a transaction never has to upgrade a read lock (which can fail with
//! SQLITE_BUSY however long it waits); within the process they also queue on a mutex, so that
//! waiting appenders are served in order instead of polling the file lock. Reads run in parallel
//! with the writer (WAL).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Mutex;

use crate::batch::{AppendQueue, BatchWrite, RoomAppend, chunk_sizes};
use crate::dialect::{Dialect, WriteTx};
use crate::sqlite_writer::{
    BUSY_TIMEOUT, COMMIT_SPACING, Checkpoints, FileWriter, INSERT_ROWS, UPSERT_ROOMS,
    WAL_AUTOCHECKPOINT_PAGES, numbered_rows, statement,
};
use crate::{Seq, StoreError, len_i64, now_millis};

/// Tolerates migrations newer than this binary's (`ignore_missing`): in a rolling upgrade the
/// new release migrates first while instances of the previous one keep running and restarting
/// on that schema. What makes that safe is the expand-then-contract rule for migrations
/// (docs/operations.md), which `scripts/check-migrations.py` enforces in CI.
pub(crate) static MIGRATOR: LazyLock<sqlx::migrate::Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("../migrations/sqlite");
    migrator.set_ignore_missing(true);
    migrator
});

/// A [`DocumentStore`] in one SQLite file. Clones share the pool and the write lock.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serialises this process's write transactions (see the module comment).
    write: Arc<Mutex<()>>,
    /// The writer every room's appends go through: what queues while it commits is committed
    /// together, so many rooms share one fsync instead of queueing for one each. A file's writer
    /// is a thread with its own connection (`sqlite_writer.rs`), which writes the compactions'
    /// snapshots too, in the same commits (`writer_thread.rs`); an in-memory database's, which
    /// exists only inside the pool's one connection, is a task on the pool.
    appends: AppendQueue,
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
            // SQLite copies the WAL back into the database when a commit finds it over this many
            // pages, inside that commit: with synchronous=FULL, a stall of hundreds of ms for
            // every room waiting on the writer (seen as p99 spikes in the benchmarks). Checkpoints
            // run in the background instead (`SqliteWriter::checkpoint_soon`); this is the
            // backstop should they fall behind. The writer thread's connection sets the same.
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
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
        let write = Arc::new(Mutex::new(()));
        let checkpoints = Checkpoints::new(pool.clone(), tokio::runtime::Handle::current());
        let writer = FileWriter::new(path.to_owned(), write.clone(), checkpoints);
        let appends = crate::writer_thread::spawn("dojo-sqlite-writer", COMMIT_SPACING, writer)?;
        Ok(Self { pool, write, appends })
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
        let write = Arc::new(Mutex::new(()));
        let appends = AppendQueue::new(PoolWriter { pool: pool.clone(), write: write.clone() });
        Ok(Self { pool, write, appends })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The mutex this process's write transactions on this file queue on. Other crates writing
    /// to the same file (`dojo-records`) take it too, so that their writers and the store's are
    /// served in order rather than polling SQLite's file lock against each other.
    pub fn write_lock(&self) -> &Arc<Mutex<()>> {
        &self.write
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Dialect for SqliteStore {
    type Db = sqlx::Sqlite;

    // A deferred read transaction: in WAL mode it reads one state of the file and never blocks
    // the writer.
    const BEGIN_READ: &'static str = "BEGIN";

    fn appends(&self) -> &AppendQueue {
        &self.appends
    }

    async fn migrate_schema(&self) -> Result<(), StoreError> {
        let _write = self.write.lock().await;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The write lock serialises compactions (and appends) to every room, so no per-room lock is
    /// needed as on PostgreSQL. Only the in-memory database's compactions come here: a file's go
    /// through its writer thread.
    async fn begin_compaction(&self, _room: &str) -> Result<WriteTx<sqlx::Sqlite>, StoreError> {
        let lock = Arc::clone(&self.write).lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _lock: Some(lock) })
    }
}

type Store = SqliteStore;

// Written once and compiled for each backend on purpose (see `dialect.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "documents.rs"]
mod documents;

/// Commits batches of appends through the pool: for the in-memory database, which lives inside
/// the pool's one connection (no WAL there, so no checkpoints either).
struct PoolWriter {
    pool: SqlitePool,
    write: Arc<Mutex<()>>,
}

#[async_trait::async_trait]
impl BatchWrite for PoolWriter {
    async fn write_batch(&self, rooms: &[RoomAppend<'_>]) -> Result<Vec<Seq>, StoreError> {
        let now = now_millis();
        let _write = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut next_seqs: HashMap<String, i64> = HashMap::with_capacity(rooms.len());
        let mut rest = rooms;
        for size in chunk_sizes(rooms.len()) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut upsert = sqlx::query_as::<_, (String, i64)>(statement(&UPSERT_ROOMS, size)?);
            for append in chunk {
                upsert = upsert.bind(append.room).bind(now).bind(now).bind(1 + len_i64(append.updates.len()));
            }
            next_seqs.extend(upsert.fetch_all(&mut *tx).await?);
        }
        let (rows, last_seqs) = numbered_rows(rooms, |room| next_seqs.get(room).copied())?;
        let mut rest = rows.as_slice();
        for size in chunk_sizes(rows.len()) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut insert = sqlx::query(statement(&INSERT_ROWS, size)?);
            for (room, seq, data) in chunk {
                insert = insert.bind(*room).bind(*seq).bind(*data).bind(now);
            }
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(last_seqs)
    }
}
