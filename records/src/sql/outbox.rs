//! The run outbox: a queued run's row, written in the transaction that accepts the run, until
//! the relay has handed it to the queue (Redis). Not the per-connection frame queue the server
//! also calls an outbox.

use dojo_ids::RunId;

use super::{Conn, Store};
use crate::AccountError;
use crate::dialect::Dialect;
use crate::runs::OutboxEntry;

/// Queues `run_id` for the relay, inside the caller's transaction.
pub(super) async fn enqueue(conn: &mut Conn, run_id: &str, now: i64) -> Result<(), AccountError> {
    sqlx::query("INSERT INTO run_outbox (run_id, created_at) VALUES ($1, $2)")
        .bind(run_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Rows not yet relayed, oldest first.
pub(super) async fn pending(store: &Store, limit: u32) -> Result<Vec<OutboxEntry>, AccountError> {
    let rows: Vec<(i64, RunId)> = sqlx::query_as("SELECT id, run_id FROM run_outbox ORDER BY id LIMIT $1")
        .bind(i64::from(limit))
        .fetch_all(store.pool())
        .await?;
    Ok(rows.into_iter().map(|(id, run_id)| OutboxEntry { id, run_id }).collect())
}

pub(super) async fn delete(store: &Store, ids: Vec<i64>) -> Result<(), AccountError> {
    let mut w = store.begin_write().await?;
    // One statement per id: the same text on both databases (no arrays in SQLite), and the
    // relay deletes a handful at a time.
    for id in ids {
        sqlx::query("DELETE FROM run_outbox WHERE id = $1").bind(id).execute(&mut *w.tx).await?;
    }
    w.tx.commit().await?;
    Ok(())
}
