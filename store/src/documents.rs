//! [`DocumentStore`] for one backend, written once: `postgres.rs` and `sqlite.rs` each compile
//! this file with `Store` naming their store (see `dialect.rs`).

use super::Store;
use crate::compaction_sql::{ADVANCE_SEQ, CREATE_ROOM, DELETE_COVERED, INSERT_SNAPSHOT, TRIM_SNAPSHOTS};
use crate::dialect::Dialect;
use crate::{
    CompactOutcome, DocumentStore, LoggedUpdate, NewSnapshot, Seq, Snapshot, StoreError, StoredDocument,
    VersionInfo, keep_limit, now_millis, run_to_completion,
};

async fn last_seq(store: &Store, room: &str) -> Result<Seq, StoreError> {
    let next: Option<i64> = sqlx::query_scalar("SELECT next_seq FROM documents WHERE room = $1")
        .bind(room)
        .fetch_optional(store.pool())
        .await?;
    Ok(next.map_or(0, |next| next - 1))
}

// The bodies of the trait's transaction-holding methods, which run them through
// `run_to_completion` (see there why).

async fn load_now(store: &Store, room: &str) -> Result<StoredDocument, StoreError> {
    let mut tx = store.pool().begin_with(Store::BEGIN_READ).await?;
    let snapshot: Option<Snapshot> = sqlx::query_as(
        "SELECT id, covers_seq, data, created_at FROM document_snapshots
         WHERE room = $1 ORDER BY covers_seq DESC LIMIT 1",
    )
    .bind(room)
    .fetch_optional(&mut *tx)
    .await?;
    let after = snapshot.as_ref().map_or(0, |s| s.covers_seq);
    let updates: Vec<LoggedUpdate> =
        sqlx::query_as("SELECT seq, data FROM document_updates WHERE room = $1 AND seq > $2 ORDER BY seq")
            .bind(room)
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(StoredDocument { snapshot, updates })
}

async fn compact_now(
    store: &Store,
    room: &str,
    snapshot: NewSnapshot<'_>,
) -> Result<CompactOutcome, StoreError> {
    let now = now_millis();
    let mut w = store.begin_compaction(room).await?;
    sqlx::query(CREATE_ROOM).bind(room).bind(now).execute(&mut *w.tx).await?;
    sqlx::query(ADVANCE_SEQ).bind(room).bind(snapshot.covers_seq).bind(now).execute(&mut *w.tx).await?;
    sqlx::query(INSERT_SNAPSHOT)
        .bind(room)
        .bind(snapshot.covers_seq)
        .bind(snapshot.data)
        .bind(snapshot.state_vector)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
    let deleted_updates = sqlx::query(DELETE_COVERED)
        .bind(room)
        .bind(snapshot.covers_seq)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let deleted_snapshots = sqlx::query(TRIM_SNAPSHOTS)
        .bind(room)
        .bind(keep_limit(snapshot.keep))
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    w.tx.commit().await?;
    tracing::debug!(room, covers_seq = snapshot.covers_seq, deleted_updates, deleted_snapshots, "compacted");
    Ok(CompactOutcome { deleted_updates, deleted_snapshots })
}

#[async_trait::async_trait]
impl DocumentStore for Store {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_schema().await
    }

    async fn load(&self, room: &str) -> Result<StoredDocument, StoreError> {
        let (this, room) = (self.clone(), room.to_owned());
        run_to_completion(async move { load_now(&this, &room).await }).await
    }

    async fn append(&self, room: &str, updates: &[&[u8]]) -> Result<Seq, StoreError> {
        if updates.is_empty() {
            return last_seq(self, room).await;
        }
        self.appends().append(room, updates).await
    }

    async fn compact(&self, room: &str, snapshot: NewSnapshot<'_>) -> Result<CompactOutcome, StoreError> {
        // The SQLite file's writer thread writes snapshots in its own commits, between appends.
        if self.appends().writes_snapshots() {
            return self.appends().write_snapshot(room, snapshot).await;
        }
        let (this, room) = (self.clone(), room.to_owned());
        let (data, state_vector) = (snapshot.data.to_vec(), snapshot.state_vector.to_vec());
        let (covers_seq, keep) = (snapshot.covers_seq, snapshot.keep);
        run_to_completion(async move {
            let snapshot = NewSnapshot { data: &data, state_vector: &state_vector, covers_seq, keep };
            compact_now(&this, &room, snapshot).await
        })
        .await
    }

    async fn versions(&self, room: &str) -> Result<Vec<VersionInfo>, StoreError> {
        // `length` of a blob (SQLite) or bytea (PostgreSQL) is its size in bytes.
        Ok(sqlx::query_as(
            "SELECT id, covers_seq, CAST(length(data) AS BIGINT) AS size_bytes, created_at
             FROM document_snapshots WHERE room = $1 ORDER BY covers_seq DESC",
        )
        .bind(room)
        .fetch_all(self.pool())
        .await?)
    }

    async fn version(&self, room: &str, id: i64) -> Result<Option<Snapshot>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, covers_seq, data, created_at FROM document_snapshots WHERE room = $1 AND id = $2",
        )
        .bind(room)
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}
