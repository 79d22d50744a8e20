//! Runs and nodes that ended since a moment: read by the servers' webhook sweep, which reports
//! ends that happened in other processes (`dojo-worker`s). Both use the partial indexes of
//! migration 0007, so a poll reads only the rows that ended since.

use super::Store;
use crate::AccountError;
use crate::dialect::Dialect;
use crate::run_records::{RunRow, decode_runs};
use crate::runs::{FinishedNode, Run};

pub(super) async fn runs_since(store: &Store, since: i64, limit: u32) -> Result<Vec<Run>, AccountError> {
    let rows: Vec<RunRow> = sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE finished_at >= $1 ORDER BY finished_at, id LIMIT $2"
    ))
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    decode_runs(rows)
}

pub(super) async fn nodes_since(
    store: &Store,
    since: i64,
    limit: u32,
) -> Result<Vec<FinishedNode>, AccountError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT run_id, node_id, finished_at FROM run_nodes
         WHERE finished_at >= $1 ORDER BY finished_at, run_id, node_id LIMIT $2",
    )
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(run_id, node_id, finished_at)| FinishedNode {
            run_id: run_id.into(),
            node_id: node_id.into(),
            finished_at,
        })
        .collect())
}
