//! Batches' statements: accepting every member run and the batch row in one transaction, and
//! reading batches and their members.

use dojo_ids::{BatchId, TeamId, UserId};

use super::runs::{self, Accepted};
use super::{Conn, Store};
use crate::batches::{Batch, BatchSubmission, MAX_BATCH_PARAMS, MAX_BATCH_RUNS, NewBatch};
use crate::dialect::Dialect;
use crate::run_records::{RunRow, decode_runs, invalid, validate_new_run};
use crate::runs::Run;
use crate::{AccountError, now_millis};

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: BatchId,
    room: String,
    user_id: UserId,
    team_id: Option<TeamId>,
    size: i64,
    estimate: i64,
    created_at: i64,
}

impl From<BatchRow> for Batch {
    fn from(row: BatchRow) -> Self {
        Batch {
            id: row.id,
            room: row.room,
            user_id: row.user_id,
            team_id: row.team_id,
            size: row.size,
            estimate: row.estimate,
            created_at: row.created_at,
        }
    }
}

// A macro, not a const: statements are `&'static str` built with `concat!` (sqlx takes no
// formatted SQL).
macro_rules! batch_columns {
    () => {
        "id, room, user_id, team_id, size, estimate, created_at"
    };
}

/// Checks a new batch before any statement runs; returns each member's estimate.
pub(super) fn validate(batch: &NewBatch) -> Result<Vec<i64>, AccountError> {
    if batch.members.is_empty() || batch.members.len() > MAX_BATCH_RUNS {
        return Err(invalid("members", "a batch has 1 to 100 members"));
    }
    batch
        .members
        .iter()
        .map(|member| {
            let run = &member.run;
            if run.room != batch.room || run.user_id != batch.user_id || run.team_id != batch.team_id {
                return Err(invalid("members", "every member runs the batch's room for its user"));
            }
            if run.idempotency_key.is_some() {
                return Err(invalid("members", "members carry no idempotency key"));
            }
            if member.params.len() > MAX_BATCH_PARAMS {
                return Err(invalid("params", "a member's parameter set is too large"));
            }
            validate_new_run(run)
        })
        .collect()
}

pub(super) async fn create(
    this: &Store,
    batch: NewBatch,
    estimates: Vec<i64>,
) -> Result<BatchSubmission, AccountError> {
    let now = now_millis();
    let total = estimates
        .iter()
        .try_fold(0i64, |sum, e| sum.checked_add(*e))
        .ok_or(invalid("cost", "the total is out of range"))?;
    let size = i64::try_from(batch.members.len()).unwrap_or(i64::MAX);
    let mut w = this.begin_write().await?;
    // The batch row first: its unique key decides between concurrent submissions with one
    // idempotency key before any member holds credits (members reference it by id only).
    let row: Option<BatchRow> = sqlx::query_as(concat!(
        "INSERT INTO run_batches (",
        batch_columns!(),
        ", idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING ",
        batch_columns!()
    ))
    .bind(&batch.id)
    .bind(&batch.room)
    .bind(&batch.user_id)
    .bind(&batch.team_id)
    .bind(size)
    .bind(total)
    .bind(now)
    .bind(&batch.idempotency_key)
    .fetch_optional(&mut *w.tx)
    .await?;
    let Some(row) = row else {
        w.tx.rollback().await?;
        let mut conn = this.pool().acquire().await?;
        return match &batch.idempotency_key {
            Some(key) => by_key(&mut conn, &batch.user_id, key)
                .await?
                .map(BatchSubmission::Existing)
                .ok_or(invalid("id", "the batch id is taken")),
            None => Err(invalid("id", "the batch id is taken")),
        };
    };
    let mut held = 0i64;
    for (index, (member, estimate)) in batch.members.iter().zip(&estimates).enumerate() {
        // One millisecond apart, so the queue (which orders equal priorities by age) claims the
        // members in batch order.
        let created_at = now.saturating_add(i64::try_from(index).unwrap_or(0));
        match runs::accept(&mut w.tx, &member.run, *estimate, created_at).await {
            Ok(Accepted::Created(_)) => {}
            Ok(Accepted::Conflict) => {
                w.tx.rollback().await?;
                return Err(invalid("id", "a member's run id is taken, or the user is unknown"));
            }
            Err(refused) => {
                w.tx.rollback().await?;
                return Err(whole_batch(refused, held, total));
            }
        }
        sqlx::query("UPDATE runs SET batch_id = $2, batch_index = $3, batch_params = $4 WHERE id = $1")
            .bind(&member.run.id)
            .bind(&batch.id)
            .bind(i64::try_from(index).unwrap_or(i64::MAX))
            .bind(&member.params)
            .execute(&mut *w.tx)
            .await?;
        held += estimate;
    }
    w.tx.commit().await?;
    Ok(BatchSubmission::Created(row.into()))
}

/// The user's batch submitted with `key`, if any.
async fn by_key(conn: &mut Conn, user: &UserId, key: &str) -> Result<Option<Batch>, AccountError> {
    let row: Option<BatchRow> = sqlx::query_as(concat!(
        "SELECT ",
        batch_columns!(),
        " FROM run_batches WHERE user_id = $1 AND idempotency_key = $2"
    ))
    .bind(user)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Batch::from))
}

/// A member's refusal said for the whole batch: the balance before the batch's earlier members
/// held theirs, and what the whole batch costs.
fn whole_batch(refused: AccountError, held: i64, total: i64) -> AccountError {
    match refused {
        AccountError::InsufficientCredits { balance, .. } => {
            AccountError::InsufficientCredits { balance: balance.saturating_add(held), requested: total }
        }
        AccountError::InsufficientTeamCredits { team, balance, .. } => {
            AccountError::InsufficientTeamCredits {
                team,
                balance: balance.saturating_add(held),
                requested: total,
            }
        }
        AccountError::SpendingLimitReached { limit, spent, .. } => {
            AccountError::SpendingLimitReached { limit, spent: spent.saturating_sub(held), requested: total }
        }
        other => other,
    }
}

pub(super) async fn by_id(conn: &mut Conn, id: &str) -> Result<Option<Batch>, AccountError> {
    let row: Option<BatchRow> =
        sqlx::query_as(concat!("SELECT ", batch_columns!(), " FROM run_batches WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(Batch::from))
}

pub(super) async fn members(conn: &mut Conn, id: &str) -> Result<Vec<Run>, AccountError> {
    let rows: Vec<RunRow> = sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE batch_id = $1 ORDER BY batch_index, id LIMIT 100"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    decode_runs(rows)
}

pub(super) async fn list(conn: &mut Conn, room: &str, limit: u32) -> Result<Vec<Batch>, AccountError> {
    let rows: Vec<BatchRow> = sqlx::query_as(concat!(
        "SELECT ",
        batch_columns!(),
        " FROM run_batches WHERE room = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(room)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Batch::from).collect())
}
