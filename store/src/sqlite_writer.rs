//! The SQLite file's writer: one thread with its own connection, which commits each batch of
//! appends (see `batch.rs`), and the compaction snapshot riding with it (`writer_thread.rs`), as
//! one transaction without leaving the thread.
//!
//! Why not the pool: sqlx runs every SQLite statement on a worker thread of its own and hands it
//! over a channel, so a batch (begin, upsert, insert, commit) was four round trips between
//! threads, each a pair of context switches; with the server on one core, those hand-offs were
//! where the profile in BENCHMARKS.md put the time. Here a batch is one hand-off to this thread
//! and one answer back. Reads and the accounts stay on sqlx; every writer in the process still
//! queues on the store's write lock, so they take turns in order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, named_params};
use sqlx::sqlite::SqlitePool;
use tokio::sync::Mutex;

use crate::batch::{MAX_CHUNK_ROWS, RoomAppend, chunk_sizes};
use crate::compaction_sql::{ADVANCE_SEQ, CREATE_ROOM, DELETE_COVERED, INSERT_SNAPSHOT, TRIM_SNAPSHOTS};
use crate::writer_thread::{BatchWritten, BlockingBatchWrite, RoomSnapshot};
use crate::{CompactOutcome, Seq, StoreError, keep_limit, len_i64, now_millis};

/// How long a write waits for another process holding the database's write lock.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL pages (4 KiB) past which a commit checkpoints in line: the backstop (see `sqlite.rs`).
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;
/// How often a background (passive) checkpoint starts while the writer is writing.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Commits start at least this far apart (see `writer_thread::serve`). Each commit costs the
/// writer a sync and two context switches whatever it holds; at 2,000 appends a second (500
/// rooms × 4 clients × 1 edit/s) spacing them 1 ms took 16–20 % off the server's CPU per
/// delivery for 1.3 ms on the median delivery and nothing on the p99, and 3 ms took a further
/// 24–62 % off for about 2–3 ms more on the median, with the p99 still under 12 ms
/// (BENCHMARKS.md). An append after a quiet spell is not delayed.
pub(crate) const COMMIT_SPACING: Duration = Duration::from_millis(3);
/// Prepared statements kept: two kinds × one per chunk size, the five of a compaction, and room
/// to spare.
const STATEMENT_CACHE: usize = 32;

/// Commits batches of appends to the SQLite file at `path`, on the writer thread.
pub(crate) struct FileWriter {
    path: PathBuf,
    /// Opened by the first batch (after the migrations, which the pool runs).
    connection: Option<Connection>,
    /// The store's write lock: the pool's writers (compaction, accounts) take it too.
    write: Arc<Mutex<()>>,
    checkpoints: Checkpoints,
}

impl FileWriter {
    pub(crate) fn new(path: PathBuf, write: Arc<Mutex<()>>, checkpoints: Checkpoints) -> Self {
        Self { path, connection: None, write, checkpoints }
    }

    fn connection(&mut self) -> Result<&mut Connection, StoreError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => open(&self.path)?,
        };
        Ok(self.connection.insert(connection))
    }
}

/// A connection with the pool's settings (WAL is a property of the file, set by the pool).
fn open(path: &std::path::Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // Every acknowledged append survives power loss: the WAL is synced on each commit.
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

impl BlockingBatchWrite for FileWriter {
    fn write_batch(
        &mut self,
        rooms: &[RoomAppend<'_>],
        snapshots: &[RoomSnapshot<'_>],
    ) -> Result<BatchWritten, StoreError> {
        let now = now_millis();
        // A plain thread, never a runtime's, so waiting on the async lock here blocks only it.
        let write = Arc::clone(&self.write);
        let _write = write.blocking_lock();
        let connection = self.connection()?;
        let mut tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last_seqs = append_rows(&tx, rooms, now)?;
        let snapshots = snapshots.iter().map(|write| store_snapshot(&mut tx, write, now)).collect();
        tx.commit()?;
        self.checkpoints.soon();
        Ok(BatchWritten { last_seqs, snapshots })
    }
}

/// Writes a compaction's snapshot (`compaction_sql.rs`) under a savepoint of `tx`: undone alone
/// if it fails, leaving the rest of the transaction to commit.
fn store_snapshot(
    tx: &mut Transaction<'_>,
    write: &RoomSnapshot<'_>,
    now: i64,
) -> Result<CompactOutcome, StoreError> {
    let savepoint = tx.savepoint()?;
    let (room, snapshot) = (write.room, &write.snapshot);
    // By name: SQLite numbers `$N` parameters in order of first appearance, not by N.
    savepoint.prepare_cached(CREATE_ROOM)?.execute(named_params! {"$1": room, "$2": now})?;
    savepoint
        .prepare_cached(ADVANCE_SEQ)?
        .execute(named_params! {"$1": room, "$2": snapshot.covers_seq, "$3": now})?;
    savepoint.prepare_cached(INSERT_SNAPSHOT)?.execute(named_params! {
        "$1": room,
        "$2": snapshot.covers_seq,
        "$3": snapshot.data,
        "$4": snapshot.state_vector,
        "$5": now,
    })?;
    let deleted_updates = savepoint
        .prepare_cached(DELETE_COVERED)?
        .execute(named_params! {"$1": room, "$2": snapshot.covers_seq})?;
    let deleted_snapshots = savepoint
        .prepare_cached(TRIM_SNAPSHOTS)?
        .execute(named_params! {"$1": room, "$2": keep_limit(snapshot.keep)})?;
    // Dropped without this, the savepoint rolls back.
    savepoint.commit()?;
    tracing::debug!(room, covers_seq = snapshot.covers_seq, deleted_updates, deleted_snapshots, "compacted");
    Ok(CompactOutcome {
        deleted_updates: deleted_updates as u64,
        deleted_snapshots: deleted_snapshots as u64,
    })
}

/// Inserts every room's updates, numbered from each room's counter; each room's last sequence.
fn append_rows(tx: &Transaction<'_>, rooms: &[RoomAppend<'_>], now: i64) -> Result<Vec<Seq>, StoreError> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let mut next_seqs: HashMap<String, i64> = HashMap::with_capacity(rooms.len());
    let mut rest = rooms;
    for size in chunk_sizes(rooms.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut upsert = tx.prepare_cached(statement(&UPSERT_ROOMS, size)?)?;
        for (row, append) in chunk.iter().enumerate() {
            let at = row * 4;
            upsert.raw_bind_parameter(at + 1, append.room)?;
            upsert.raw_bind_parameter(at + 2, now)?;
            upsert.raw_bind_parameter(at + 3, now)?;
            upsert.raw_bind_parameter(at + 4, 1 + len_i64(append.updates.len()))?;
        }
        let mut returned = upsert.raw_query();
        while let Some(row) = returned.next()? {
            next_seqs.insert(row.get(0)?, row.get(1)?);
        }
    }
    let (rows, last_seqs) = numbered_rows(rooms, |room| next_seqs.get(room).copied())?;
    let mut rest = rows.as_slice();
    for size in chunk_sizes(rows.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut insert = tx.prepare_cached(statement(&INSERT_ROWS, size)?)?;
        for (row, (room, seq, data)) in chunk.iter().enumerate() {
            let at = row * 4;
            insert.raw_bind_parameter(at + 1, *room)?;
            insert.raw_bind_parameter(at + 2, *seq)?;
            insert.raw_bind_parameter(at + 3, *data)?;
            insert.raw_bind_parameter(at + 4, now)?;
        }
        insert.raw_execute()?;
    }
    Ok(last_seqs)
}

/// One row to insert: room, sequence, update.
pub(crate) type NumberedRow<'a> = (&'a str, Seq, &'a [u8]);

/// Every update of the batch with its sequence, from each room's counter after the upsert
/// (`next_seq`: one past the room's last row), and each room's last sequence.
pub(crate) fn numbered_rows<'a>(
    rooms: &[RoomAppend<'a>],
    next_seq: impl Fn(&str) -> Option<i64>,
) -> Result<(Vec<NumberedRow<'a>>, Vec<Seq>), StoreError> {
    let mut last_seqs = Vec::with_capacity(rooms.len());
    let mut rows = Vec::new();
    for append in rooms {
        let next = next_seq(append.room).ok_or_else(|| {
            StoreError::Interrupted(format!("no sequence came back for room {}", append.room))
        })?;
        let first = next - len_i64(append.updates.len());
        rows.extend(
            append.updates.iter().enumerate().map(|(i, data)| (append.room, first + len_i64(i), *data)),
        );
        last_seqs.push(next - 1);
    }
    Ok((rows, last_seqs))
}

/// Starts a passive checkpoint on a pool connection at most every [`CHECKPOINT_EVERY`] while
/// appends are being committed: it copies committed WAL pages into the database without blocking
/// the writer, so that commits never have to.
#[derive(Clone)]
pub(crate) struct Checkpoints {
    pool: SqlitePool,
    runtime: tokio::runtime::Handle,
    state: Arc<std::sync::Mutex<Checkpoint>>,
}

struct Checkpoint {
    last: Instant,
    running: bool,
}

impl Checkpoints {
    /// Checkpoints run on `runtime` (the writer thread has none of its own).
    pub(crate) fn new(pool: SqlitePool, runtime: tokio::runtime::Handle) -> Self {
        Self {
            pool,
            runtime,
            state: Arc::new(std::sync::Mutex::new(Checkpoint { last: Instant::now(), running: false })),
        }
    }

    fn soon(&self) {
        {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.running || state.last.elapsed() < CHECKPOINT_EVERY {
                return;
            }
            state.running = true;
        }
        let (pool, state) = (self.pool.clone(), self.state.clone());
        // A runtime shutting down drops the task; the next commit past the backstop checkpoints.
        self.runtime.spawn(async move {
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                tracing::warn!(%error, "background WAL checkpoint failed; commits will checkpoint");
            }
            let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *state = Checkpoint { last: Instant::now(), running: false };
        });
    }
}

/// `INSERT INTO documents … VALUES (…), (…) … RETURNING room, next_seq` for each chunk size:
/// the rooms' sequence counters, created or advanced by each room's update count.
pub(crate) static UPSERT_ROOMS: LazyLock<Vec<String>> = LazyLock::new(|| {
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
pub(crate) static INSERT_ROWS: LazyLock<Vec<String>> = LazyLock::new(|| {
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

pub(crate) fn statement(statements: &'static [String], size: usize) -> Result<&'static str, StoreError> {
    statements
        .get(size.ilog2() as usize)
        .map(String::as_str)
        .ok_or_else(|| StoreError::Interrupted(format!("no statement for {size} rows")))
}
