//! Worker leases: a worker claims a run until its lease expires and renews it while it works;
//! a run whose lease expired (its worker died) can be claimed again.

use super::queue_order::{OrderKey, better_waiting, paused};
use super::{Store, runs, users};
use crate::dialect::Dialect;
use crate::run_records::{RunRow, decode_runs};
use crate::runs::{Claim, Run, RunStatus};
use crate::{AccountError, now_millis};

/// Claims the run for `worker` (validated by the caller) until `now + lease_ms`.
pub(super) async fn claim(
    store: &Store,
    id: &str,
    worker: &str,
    lease_ms: i64,
    per_user_limit: Option<u32>,
    in_turn: bool,
) -> Result<Claim, AccountError> {
    let now = now_millis();
    let mut w = store.begin_write().await?;
    // Lock order: the run row, then the user row (see `runs.rs`).
    let locked = runs::lock_run(&mut w.tx, id).await?;
    let Some((status, user, _)) = locked.filter(|(status, _, _)| !status.is_final()) else {
        w.tx.rollback().await?;
        return Ok(Claim::Gone);
    };
    let Some(current) = runs::by_id(&mut w.tx, id).await? else {
        w.tx.rollback().await?;
        return Ok(Claim::Gone);
    };
    // The plan's limit, fixed when the run was accepted; runs accepted before plans existed
    // (or on a plan without one) use the worker's.
    let limit = match current.run_limit {
        Some(limit) => u32::try_from(limit.max(0)).ok().filter(|&limit| limit > 0),
        None => per_user_limit,
    };
    if let Some(limit) = limit {
        // Serialises the claims of this user's runs, so the count stays true until this
        // transaction commits.
        users::add_credits(&mut w.tx, &user, 0).await?;
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs
             WHERE user_id = $1 AND status = 'running' AND id <> $2 AND lease_expires_at > $3",
        )
        .bind(&user)
        .bind(id)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await?;
        if running >= i64::from(limit) {
            w.tx.commit().await?;
            return Ok(Claim::UserBusy);
        }
    }
    // A run not yet started waits while its queue is paused, or while a run the database
    // orders before it could be claimed instead (its own queue entry brings it to a worker).
    // A run resumed after its worker died goes on regardless: it was already chosen.
    if in_turn
        && status == RunStatus::Queued
        && !current.cancel_requested
        && (paused(&mut w.tx, &current).await?
            || better_waiting(&mut w.tx, &OrderKey::of(&current), now, per_user_limit).await?)
    {
        w.tx.commit().await?;
        return Ok(Claim::UserBusy);
    }
    let row: Option<RunRow> = sqlx::query_as(concat!(
        "UPDATE runs SET status = 'running', lease_owner = $2, lease_expires_at = $3,
             attempts = attempts + 1, started_at = COALESCE(started_at, $4)
         WHERE id = $1 AND (status = 'queued'
             OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at <= $4)))
         RETURNING ",
        run_columns!()
    ))
    .bind(id)
    .bind(worker)
    .bind(now.saturating_add(lease_ms))
    .bind(now)
    .fetch_optional(&mut *w.tx)
    .await?;
    w.tx.commit().await?;
    match row {
        Some(row) => Ok(Claim::Claimed(Box::new(Run::try_from(row)?))),
        None => Ok(Claim::Leased),
    }
}

/// Extends the lease; `false` if `worker` no longer holds it.
pub(super) async fn renew(
    store: &Store,
    id: &str,
    worker: &str,
    lease_ms: i64,
) -> Result<bool, AccountError> {
    let mut w = store.begin_write().await?;
    let renewed = sqlx::query(
        "UPDATE runs SET lease_expires_at = $3
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(now_millis().saturating_add(lease_ms))
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    w.tx.commit().await?;
    Ok(renewed > 0)
}

/// Active runs whose lease expired before `older_than`, or still queued and created before
/// it, oldest first.
pub(super) async fn orphaned(store: &Store, older_than: i64, limit: u32) -> Result<Vec<Run>, AccountError> {
    let rows: Vec<RunRow> = sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs
         WHERE (status = 'queued' AND created_at < $1)
            OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < $1))
         ORDER BY created_at, id LIMIT $2"
    ))
    .bind(older_than)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    decode_runs(rows)
}
