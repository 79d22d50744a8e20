//! [`QueueStore`] for this backend, and the queue-order predicates the claim and the submission
//! share (see `crate::queue` for the order).

use dojo_ids::RunId;
use dojo_store::run_to_completion;

use super::Store;
use super::queue_order::{OrderKey, position};
use crate::dialect::Dialect;
use crate::queue::{MAX_PLAN_NAME, MAX_QUEUE_LISTING, QueueOwner, QueueStore, QueuedRun};
use crate::run_records::{RunRow, decode_runs, invalid};
use crate::runs::{Run, RunStatus};
use crate::{AccountError, now_millis};

fn owner_id(owner: &QueueOwner) -> &str {
    match owner {
        QueueOwner::User(user) => user.as_str(),
        QueueOwner::Team(team) => team.as_str(),
    }
}

/// The statement for the owner's table (queries are static strings).
fn per_owner(owner: &QueueOwner, users: &'static str, teams: &'static str) -> &'static str {
    match owner {
        QueueOwner::User(_) => users,
        QueueOwner::Team(_) => teams,
    }
}

#[async_trait::async_trait]
impl QueueStore for Store {
    async fn queue_position(&self, run: &RunId) -> Result<Option<i64>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        let Some(run) = super::runs::by_id(&mut conn, run.as_str()).await? else {
            return Ok(None);
        };
        if run.status != RunStatus::Queued {
            return Ok(None);
        }
        Ok(Some(position(&mut conn, &OrderKey::of(&run)).await?))
    }

    async fn queue_of(&self, owner: &QueueOwner, limit: u32) -> Result<Vec<QueuedRun>, AccountError> {
        // One statement per owner kind, written out: queries are static strings.
        let sql = match owner {
            QueueOwner::User(_) => concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE user_id = $1 AND status IN ('queued', 'running')
                 ORDER BY CASE WHEN status = 'running' THEN 0 ELSE 1 END, priority DESC, queue_rank,
                     created_at, id
                 LIMIT $2"
            ),
            QueueOwner::Team(_) => concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE team_id = $1 AND status IN ('queued', 'running')
                 ORDER BY CASE WHEN status = 'running' THEN 0 ELSE 1 END, priority DESC, queue_rank,
                     created_at, id
                 LIMIT $2"
            ),
        };
        let id = owner_id(owner);
        let limit = i64::from(limit.min(MAX_QUEUE_LISTING));
        let mut conn = self.pool().acquire().await?;
        let rows: Vec<RunRow> = sqlx::query_as(sql).bind(id).bind(limit).fetch_all(&mut *conn).await?;
        let mut out = Vec::new();
        for run in decode_runs(rows)? {
            let position = if run.status == RunStatus::Queued {
                Some(position(&mut conn, &OrderKey::of(&run)).await?)
            } else {
                None
            };
            out.push(QueuedRun { run, position });
        }
        Ok(out)
    }

    async fn head_of_queue(&self, limit: u32) -> Result<Vec<QueuedRun>, AccountError> {
        let sql = concat!(
            "SELECT ",
            run_columns!(),
            ", CASE WHEN ",
            not_paused!(),
            " THEN 0 ELSE 1 END AS held FROM runs q WHERE status = 'queued'
             ORDER BY priority DESC, queue_rank, created_at, id LIMIT $1"
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            run: RunRow,
            held: i32,
        }
        let rows: Vec<Row> =
            sqlx::query_as(sql).bind(i64::from(limit.min(MAX_QUEUE_LISTING))).fetch_all(self.pool()).await?;
        // The listing is the head of the claim order, so a run's position is 1 + the unpaused
        // runs listed before it.
        let mut ahead = 0i64;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let held = row.held != 0;
            let run = Run::try_from(row.run)?;
            out.push(QueuedRun { run, position: (!held).then_some(ahead + 1) });
            if !held {
                ahead += 1;
            }
        }
        Ok(out)
    }

    async fn move_to_front(&self, run: &RunId) -> Result<Option<Run>, AccountError> {
        let (this, id) = (self.clone(), run.to_string());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            // Every queued run of the same priority has a rank at or above the new one, so
            // this run goes first among them; concurrent moves serialise on the write.
            sqlx::query(
                "UPDATE runs SET queue_rank = (
                     SELECT COALESCE(MIN(q.queue_rank), 0) - 1 FROM runs q
                     WHERE q.status = 'queued' AND q.priority = runs.priority)
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(&id)
            .execute(&mut *w.tx)
            .await?;
            let run = super::runs::by_id(&mut w.tx, &id).await?;
            w.tx.commit().await?;
            Ok(run)
        })
        .await
    }

    async fn set_queue_paused(&self, owner: &QueueOwner, paused: bool) -> Result<bool, AccountError> {
        let id = owner_id(owner);
        let sql = per_owner(
            owner,
            "UPDATE users SET queue_paused = $2 WHERE id = $1",
            "UPDATE teams SET queue_paused = $2 WHERE id = $1",
        );
        let (this, id) = (self.clone(), id.to_owned());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let changed =
                sqlx::query(sql).bind(&id).bind(i32::from(paused)).execute(&mut *w.tx).await?.rows_affected();
            w.tx.commit().await?;
            Ok(changed > 0)
        })
        .await
    }

    async fn queue_paused(&self, owner: &QueueOwner) -> Result<Option<bool>, AccountError> {
        let id = owner_id(owner);
        let sql = per_owner(
            owner,
            "SELECT queue_paused FROM users WHERE id = $1",
            "SELECT queue_paused FROM teams WHERE id = $1",
        );
        let paused: Option<i32> = sqlx::query_scalar(sql).bind(id).fetch_optional(self.pool()).await?;
        Ok(paused.map(|paused| paused != 0))
    }

    async fn set_plan(&self, owner: &QueueOwner, plan: Option<&str>) -> Result<bool, AccountError> {
        if plan.is_some_and(|plan| plan.is_empty() || plan.len() > MAX_PLAN_NAME) {
            return Err(invalid("plan", "empty or too long"));
        }
        let id = owner_id(owner);
        let sql = per_owner(
            owner,
            "UPDATE users SET plan = $2 WHERE id = $1",
            "UPDATE teams SET plan = $2 WHERE id = $1",
        );
        let (this, id, plan) = (self.clone(), id.to_owned(), plan.map(str::to_owned));
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let changed = sqlx::query(sql).bind(&id).bind(&plan).execute(&mut *w.tx).await?.rows_affected();
            w.tx.commit().await?;
            Ok(changed > 0)
        })
        .await
    }

    async fn plan_of(&self, owner: &QueueOwner) -> Result<Option<String>, AccountError> {
        let id = owner_id(owner);
        let sql =
            per_owner(owner, "SELECT plan FROM users WHERE id = $1", "SELECT plan FROM teams WHERE id = $1");
        let plan: Option<Option<String>> =
            sqlx::query_scalar(sql).bind(id).fetch_optional(self.pool()).await?;
        Ok(plan.flatten())
    }

    async fn average_run_ms(&self, sample: u32) -> Result<Option<i64>, AccountError> {
        let durations: Vec<i64> = sqlx::query_scalar(
            "SELECT finished_at - started_at FROM runs
             WHERE status = 'succeeded' AND started_at IS NOT NULL AND finished_at >= $1
             ORDER BY finished_at DESC LIMIT $2",
        )
        .bind(now_millis().saturating_sub(7 * 24 * 3600 * 1000))
        .bind(i64::from(sample.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        if durations.is_empty() {
            return Ok(None);
        }
        let total: i64 = durations.iter().map(|d| (*d).max(0)).fold(0, i64::saturating_add);
        Ok(Some(total / i64::try_from(durations.len()).unwrap_or(1)))
    }

    async fn running_started_at(&self, limit: u32) -> Result<Vec<i64>, AccountError> {
        let started: Vec<i64> = sqlx::query_scalar(
            "SELECT started_at FROM runs WHERE status = 'running' AND started_at IS NOT NULL
             ORDER BY started_at LIMIT $1",
        )
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        Ok(started)
    }
}
