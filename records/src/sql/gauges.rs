//! What operators watch on `/metrics` (`RunStore::run_gauges`): each a count over a partial
//! index (`runs_active`, `run_nodes_pending_holds`) or a small table (`run_outbox`), so a scrape
//! stays cheap however many finished runs the database keeps.

use super::Store;
use crate::AccountError;
use crate::dialect::Dialect;
use crate::runs::RunGauges;

pub(super) async fn read(store: &Store, now: i64) -> Result<RunGauges, AccountError> {
    let pool = store.pool();
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM runs WHERE status IN ('queued', 'running') GROUP BY status",
    )
    .fetch_all(pool)
    .await?;
    let count = |status: &str| by_status.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
    let lease_expired: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM runs WHERE status = 'running' \
         AND (lease_expires_at IS NULL OR lease_expires_at < $1)",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    // CAST: PostgreSQL sums BIGINT into NUMERIC.
    let credits_held: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT) FROM run_nodes WHERE hold_state = 'pending'",
    )
    .fetch_one(pool)
    .await?;
    let outbox_pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM run_outbox").fetch_one(pool).await?;
    Ok(RunGauges {
        queued: count("queued"),
        running: count("running"),
        lease_expired,
        credits_held,
        outbox_pending,
    })
}
