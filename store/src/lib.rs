//! Durable storage of room documents.
//!
//! A room's document is stored as an append-only log of Yjs updates plus snapshots (the merged
//! state up to some log sequence). Loading reads the newest snapshot and the updates after it.
//! Compaction writes a new snapshot and deletes the log rows it covers, in one transaction.
//!
//! Two implementations share one API and one conformance suite (`tests/conformance.rs`):
//! PostgreSQL for production and SQLite for the zero-setup default. Reads and compaction are
//! written once (`documents.rs`, compiled for each backend; see `dialect.rs`); each backend's
//! file keeps how it connects, locks and commits appends in groups. This crate stores opaque bytes: it knows nothing about
//! Yjs, which the server applies and validates before anything reaches here.

mod batch;
mod compaction_sql;
mod dialect;
mod postgres;
mod sqlite;
pub mod sqlite_backup;
mod sqlite_writer;
mod writer_thread;

use std::sync::Arc;

pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// Position in a room's update log. Starts at 1; 0 means "nothing yet".
pub type Seq = i64;

/// What a room's document is made of in storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDocument {
    /// The newest snapshot, if the room was ever compacted.
    pub snapshot: Option<Snapshot>,
    /// Updates after the snapshot (or all of them), in sequence order.
    pub updates: Vec<LoggedUpdate>,
}

impl StoredDocument {
    /// The last sequence this document reflects (0 for a room never written).
    pub fn last_seq(&self) -> Seq {
        self.updates.last().map(|u| u.seq).or(self.snapshot.as_ref().map(|s| s.covers_seq)).unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Snapshot {
    pub id: i64,
    /// Every update with `seq <= covers_seq` is merged into `data`.
    pub covers_seq: Seq,
    /// A v1 Yjs update holding the whole document at `covers_seq`.
    pub data: Vec<u8>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LoggedUpdate {
    pub seq: Seq,
    pub data: Vec<u8>,
}

/// A snapshot as listed for people choosing a version to restore (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionInfo {
    pub id: i64,
    pub covers_seq: Seq,
    pub size_bytes: i64,
    pub created_at: i64,
}

/// What to write when compacting.
#[derive(Debug, Clone)]
pub struct NewSnapshot<'a> {
    /// The merged document at `covers_seq`, as a v1 update.
    pub data: &'a [u8],
    /// Its state vector (v1), kept so later tools can diff without decoding `data`.
    pub state_vector: &'a [u8],
    pub covers_seq: Seq,
    /// Snapshots to keep as restorable versions, this one included (at least 1).
    pub keep: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Log rows deleted (0 when a racing compaction already covered them).
    pub deleted_updates: u64,
    /// Older snapshots deleted beyond `keep`.
    pub deleted_snapshots: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed; the message is for logs, not for clients.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The same, from the SQLite file's writer thread (`rusqlite`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: expected postgres://… or sqlite:…")]
    UnsupportedUrl(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    /// The task running the operation panicked or its runtime shut down.
    #[error("store operation did not finish: {0}")]
    Interrupted(String),
}

/// Runs an operation that holds a transaction on a task of its own, so that dropping the
/// caller's future (a client disconnecting, a timeout) cannot stop it between BEGIN and COMMIT.
/// sqlx hands a connection abandoned there back to the pool still inside the transaction, and
/// the next user of that connection fails ("SET TRANSACTION ISOLATION LEVEL must be called
/// before any query", seen in CI) or, worse, runs inside the stale transaction. An operation
/// once started therefore commits or rolls back by itself; callers that stop waiting only lose
/// the answer.
///
/// Public, and generic over the error, because every crate that writes to the shared pools
/// (`dojo-records`) needs the same guarantee: one bad connection poisons the pool for all.
pub async fn run_to_completion<T, E>(
    operation: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    tokio::spawn(operation).await.map_err(|error| E::from(StoreError::Interrupted(error.to_string())))?
}

/// The storage API every backend implements.
#[async_trait::async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// Creates or upgrades the schema. Idempotent; safe to run from several instances.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The newest snapshot plus the updates after it. An unknown room is an empty document.
    async fn load(&self, room: &str) -> Result<StoredDocument, StoreError>;

    /// Appends `updates` to the room's log in one transaction (one multi-row insert) and
    /// returns the sequence of the last one. All or nothing: on error none is stored.
    /// Appends to one room from several instances get distinct, increasing sequences.
    async fn append(&self, room: &str, updates: &[&[u8]]) -> Result<Seq, StoreError>;

    /// Stores a snapshot and deletes the log rows it covers and the snapshots beyond `keep`, in
    /// one transaction. Two compactions of one room racing do no harm: the loser's snapshot is
    /// either identical or covers less, and nothing not covered by a stored snapshot is deleted.
    async fn compact(&self, room: &str, snapshot: NewSnapshot<'_>) -> Result<CompactOutcome, StoreError>;

    /// The room's snapshots, newest first.
    async fn versions(&self, room: &str) -> Result<Vec<VersionInfo>, StoreError>;

    /// One snapshot of the room, with its bytes.
    async fn version(&self, room: &str, id: i64) -> Result<Option<Snapshot>, StoreError>;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// An open, migrated database: the one place every table lives (documents here, accounts in
/// `dojo-records`), so that a process holds one pool per database rather than one per crate.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres(PostgresStore),
    Sqlite(SqliteStore),
}

impl Database {
    /// The document store on this database (it shares the pool).
    pub fn documents(&self) -> Arc<dyn DocumentStore> {
        match self {
            Database::Postgres(store) => Arc::new(store.clone()),
            Database::Sqlite(store) => Arc::new(store.clone()),
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Database::Postgres(store) => store.close().await,
            Database::Sqlite(store) => store.close().await,
        }
    }
}

/// Opens the database a URL names: `postgres://…` / `postgresql://…` or `sqlite:PATH` /
/// `sqlite://PATH` (created if missing, with its parent directory; `sqlite::memory:` for a
/// private in-memory database), and applies every migration in `migrations/`, including those
/// of tables other crates own. A PostgreSQL database that cannot be reached fails here within
/// [`PostgresOptions::acquire_timeout`] (5 s).
pub async fn open_database(url: &str) -> Result<Database, StoreError> {
    let database = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Database::Postgres(PostgresStore::connect(url).await?)
    } else if let Some(path) = sqlite_path(url) {
        Database::Sqlite(SqliteStore::open(path).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    };
    database.documents().migrate().await?;
    Ok(database)
}

/// The file an `sqlite:PATH` / `sqlite://PATH` URL names (`:memory:` for a private in-memory
/// database); `None` for any other URL.
pub fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite:").map(|path| path.trim_start_matches("//"))
}

/// Opens the document store a URL names, migrated: [`open_database`] for callers that need
/// nothing but documents.
pub async fn open(url: &str) -> Result<Arc<dyn DocumentStore>, StoreError> {
    Ok(open_database(url).await?.documents())
}

/// Milliseconds since the Unix epoch, as stored in `created_at` columns.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A slice length as a sequence count. Lossless: slice lengths never exceed `isize::MAX`.
pub(crate) fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// `NewSnapshot::keep` as a SQL LIMIT: at least 1, so the snapshot just stored (or a newer one)
/// always survives.
pub(crate) fn keep_limit(keep: usize) -> i64 {
    len_i64(keep.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_is_at_least_one() {
        assert_eq!(keep_limit(0), 1);
        assert_eq!(keep_limit(5), 5);
    }
}
