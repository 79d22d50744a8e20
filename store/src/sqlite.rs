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
use std::time::{Duration, Instant};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Mutex;

use crate::batch::{AppendQueue, BatchWrite, MAX_CHUNK_ROWS, RoomAppend, chunk_sizes};
use crate::dialect::{Dialect, WriteTx};
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

/// How long a write waits for another process holding the database's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL pages (4 KiB) past which a commit checkpoints in line: the backstop (see `open`).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;
/// How often the writer starts a background (passive) checkpoint while it is writing.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A [`DocumentStore`] in one SQLite file. Clones share the pool and the write lock.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serialises this process's write transactions (see the module comment).
    write: Arc<Mutex<()>>,
    /// The writer task every room's appends go through: what queues while it commits is
    /// committed together, so many rooms share one fsync instead of queueing for one each.
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
            // backstop should they fall behind.
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
        Ok(Self::with_pool(pool))
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
        Ok(Self::with_pool(pool))
    }

    fn with_pool(pool: SqlitePool) -> Self {
        let write = Arc::new(Mutex::new(()));
        let writer = SqliteWriter {
            pool: pool.clone(),
            write: write.clone(),
            checkpoint: Arc::new(std::sync::Mutex::new(Checkpoint { last: Instant::now(), running: false })),
        };
        let appends = AppendQueue::new(writer);
        Self { pool, write, appends }
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

    /// Closes the pool, waiting for connections in use to be returned.
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
    /// needed as on PostgreSQL.
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

/// Commits batches of appends for [`AppendQueue`].
struct SqliteWriter {
    pool: SqlitePool,
    write: Arc<Mutex<()>>,
    checkpoint: Arc<std::sync::Mutex<Checkpoint>>,
}

struct Checkpoint {
    last: Instant,
    running: bool,
}

impl SqliteWriter {
    /// Starts a passive checkpoint on another connection if none ran for [`CHECKPOINT_EVERY`]:
    /// it copies committed WAL pages into the database without blocking the writer, so commits
    /// never have to (an in-memory database has no WAL, and the pragma is a no-op there).
    fn checkpoint_soon(&self) {
        {
            let mut checkpoint = self.checkpoint.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if checkpoint.running || checkpoint.last.elapsed() < CHECKPOINT_EVERY {
                return;
            }
            checkpoint.running = true;
        }
        let (pool, checkpoint) = (self.pool.clone(), self.checkpoint.clone());
        tokio::spawn(async move {
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                tracing::warn!(%error, "background WAL checkpoint failed; commits will checkpoint");
            }
            let mut checkpoint = checkpoint.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *checkpoint = Checkpoint { last: Instant::now(), running: false };
        });
    }
}

/// `INSERT INTO documents … VALUES (…), (…) … RETURNING room, next_seq` for each chunk size:
/// the rooms' sequence counters, created or advanced by each room's update count.
static UPSERT_ROOMS: LazyLock<Vec<String>> = LazyLock::new(|| {
    statements_by_size(|rows| {
        format!(
            "INSERT INTO documents (room, created_at, updated_at, next_seq) VALUES {rows}
             ON CONFLICT (room) DO UPDATE
             SET next_seq = documents.next_seq + excluded.next_seq - 1, updated_at = excluded.updated_at
             RETURNING room, next_seq"
        )
    })
});

/// `INSERT INTO document_updates … VALUES (…), (…) …` for each chunk size.
static INSERT_ROWS: LazyLock<Vec<String>> = LazyLock::new(|| {
    statements_by_size(|rows| {
        format!("INSERT INTO document_updates (room, seq, data, created_at) VALUES {rows}")
    })
});

/// One statement per chunk size (1, 2, 4, … [`MAX_CHUNK_ROWS`]), indexed by the size's log2;
/// `build` gets the VALUES rows (four parameters each).
fn statements_by_size(build: impl Fn(&str) -> String) -> Vec<String> {
    let mut statements = Vec::new();
    let mut size = 1;
    while size <= MAX_CHUNK_ROWS {
        statements.push(build(&vec!["(?, ?, ?, ?)"; size].join(", ")));
        size *= 2;
    }
    statements
}

fn statement(statements: &'static [String], size: usize) -> Result<&'static str, StoreError> {
    statements
        .get(size.ilog2() as usize)
        .map(String::as_str)
        .ok_or_else(|| StoreError::Interrupted(format!("no statement for {size} rows")))
}

#[async_trait::async_trait]
impl BatchWrite for SqliteWriter {
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
        let mut last_seqs = Vec::with_capacity(rooms.len());
        let mut rows: Vec<(&str, Seq, &[u8])> = Vec::new();
        for append in rooms {
            let next = *next_seqs.get(append.room).ok_or_else(|| {
                StoreError::Interrupted(format!("no sequence came back for room {}", append.room))
            })?;
            let first = next - len_i64(append.updates.len());
            rows.extend(
                append.updates.iter().enumerate().map(|(i, data)| (append.room, first + len_i64(i), *data)),
            );
            last_seqs.push(next - 1);
        }
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
        self.checkpoint_soon();
        Ok(last_seqs)
    }
}
