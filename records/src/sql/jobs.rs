//! The statements of the agents' job queue and staff roles. Writes run on a task of their own
//! (`run_to_completion`), as every store's do, so a caller that goes away cannot leave a claim
//! half made.

use dojo_ids::UserId;
use dojo_store::run_to_completion;

use super::Store;
use crate::dialect::Dialect;
use crate::jobs::{
    Enqueued, Job, JobOutcome, JobQuery, JobStatus, JobStore, MAX_JOB_PAGE, MAX_QUEUED_JOBS, MAX_SCHEDULES,
    NewJob, Schedule, StaffRole, backoff_ms, check_lease, check_name, check_new_job, cut_error, encode_json,
};
use crate::{AccountError, now_millis, quota_full};

const COLUMNS: &str = "id, job_type, payload, priority, status, attempts, max_attempts, run_after, lease_owner, \
     lease_expires_at, last_error, result, idempotency_key, created_by, created_at, updated_at, finished_at";

/// Most job types one claim may name.
const MAX_CLAIM_TYPES: usize = 32;

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    job_type: String,
    payload: String,
    priority: i32,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_after: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    last_error: Option<String>,
    result: Option<String>,
    idempotency_key: Option<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

fn corrupt(what: &str) -> AccountError {
    AccountError::Database(sqlx::Error::Decode(format!("agent_jobs: {what}").into()))
}

impl TryFrom<JobRow> for Job {
    type Error = AccountError;

    fn try_from(row: JobRow) -> Result<Self, AccountError> {
        let json = |text: &str| serde_json::from_str(text).map_err(|_| corrupt("JSON that does not parse"));
        Ok(Job {
            status: JobStatus::parse(&row.status).ok_or_else(|| corrupt("an unknown status"))?,
            payload: json(&row.payload)?,
            result: row.result.as_deref().map(json).transpose()?,
            id: row.id,
            job_type: row.job_type,
            priority: row.priority,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            max_attempts: u32::try_from(row.max_attempts).unwrap_or(1),
            run_after: row.run_after,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            last_error: row.last_error,
            idempotency_key: row.idempotency_key,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    name: String,
    cron: String,
    job_type: String,
    payload: String,
    priority: i32,
    enabled: i64,
    next_at: i64,
    updated_at: i64,
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = AccountError;

    fn try_from(row: ScheduleRow) -> Result<Self, AccountError> {
        Ok(Schedule {
            payload: serde_json::from_str(&row.payload).map_err(|_| corrupt("a schedule payload"))?,
            name: row.name,
            cron: row.cron,
            job_type: row.job_type,
            priority: row.priority,
            enabled: row.enabled != 0,
            next_at: row.next_at,
            updated_at: row.updated_at,
        })
    }
}

async fn by_id(conn: &mut super::Conn, id: &str) -> Result<Option<Job>, AccountError> {
    let row: Option<JobRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agent_jobs WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(Job::try_from).transpose()
}

/// `$start, $start+1, …`: `count` placeholders for an IN list.
fn placeholders(start: usize, count: usize) -> String {
    (start..start + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn new_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let bytes: [u8; 12] = rng.random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("job_{hex}")
}

async fn enqueue(this: &Store, job: NewJob, payload: String) -> Result<Enqueued, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
    if let Some(key) = &job.idempotency_key {
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM agent_jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&mut *w.tx)
                .await?;
        if let Some(id) = existing {
            let found = by_id(&mut w.tx, &id).await?.ok_or_else(|| corrupt("a key without its job"))?;
            w.tx.rollback().await?;
            return Ok(Enqueued::Existing(found));
        }
    }
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_jobs WHERE status = 'queued'")
        .fetch_one(&mut *w.tx)
        .await?;
    if quota_full(queued, MAX_QUEUED_JOBS) {
        w.tx.rollback().await?;
        return Err(AccountError::QuotaExceeded {
            what: "queued agent jobs (server-wide)",
            limit: MAX_QUEUED_JOBS,
        });
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO agent_jobs (id, job_type, payload, priority, status, attempts, max_attempts, run_after,
             idempotency_key, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(&job.job_type)
    .bind(&payload)
    .bind(job.priority)
    .bind(i32::try_from(job.max_attempts).unwrap_or(1))
    .bind(job.run_after.unwrap_or(now))
    .bind(&job.idempotency_key)
    .bind(&job.created_by)
    .bind(now)
    .execute(&mut *w.tx)
    .await?;
    let created = by_id(&mut w.tx, &id).await?.ok_or_else(|| corrupt("a job gone right after its insert"))?;
    w.tx.commit().await?;
    Ok(Enqueued::Created(created))
}

async fn claim(
    this: &Store,
    types: Vec<String>,
    worker: String,
    lease_ms: i64,
) -> Result<Option<Job>, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
    // A running job whose lease expired on its last allowed attempt is not claimed again: its
    // worker died each time, so it fails for good (staff see it with the reason).
    let expire = format!(
        "UPDATE agent_jobs SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL,
             last_error = 'the worker''s lease expired on the last allowed attempt', finished_at = $1, updated_at = $1
         WHERE status = 'running' AND lease_expires_at <= $1 AND attempts >= max_attempts
             AND job_type IN ({})",
        placeholders(2, types.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(expire)).bind(now);
    for job_type in &types {
        query = query.bind(job_type);
    }
    query.execute(&mut *w.tx).await?;
    let statement = format!(
        "UPDATE agent_jobs SET status = 'running', lease_owner = $1, lease_expires_at = $2,
             attempts = attempts + 1, updated_at = $3
         WHERE id = (SELECT id FROM agent_jobs
                     WHERE job_type IN ({types})
                       AND ((status = 'queued' AND run_after <= $3)
                            OR (status = 'running' AND lease_expires_at <= $3))
                     ORDER BY priority DESC, run_after, created_at, id LIMIT 1{skip})
         RETURNING {COLUMNS}",
        types = placeholders(4, types.len()),
        skip = <Store as Dialect>::SKIP_LOCKED,
    );
    let mut query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(statement))
        .bind(&worker)
        .bind(now.saturating_add(lease_ms))
        .bind(now);
    for job_type in &types {
        query = query.bind(job_type);
    }
    let row = query.fetch_optional(&mut *w.tx).await?;
    w.tx.commit().await?;
    row.map(Job::try_from).transpose()
}

async fn renew(this: &Store, id: String, worker: String, lease_ms: i64) -> Result<Job, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE agent_jobs SET lease_expires_at = $3, updated_at = $4
         WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND lease_expires_at > $4
         RETURNING {COLUMNS}"
    )))
    .bind(&id)
    .bind(&worker)
    .bind(now.saturating_add(lease_ms))
    .bind(now)
    .fetch_optional(&mut *w.tx)
    .await?;
    let outcome = match row {
        Some(row) => Job::try_from(row),
        None => Err(lost(&mut w.tx, &id).await?),
    };
    w.tx.commit().await?;
    outcome
}

/// Why a lease-holder's call found no job of theirs.
async fn lost(conn: &mut super::Conn, id: &str) -> Result<AccountError, AccountError> {
    Ok(match by_id(conn, id).await? {
        None => AccountError::JobNotFound(id.to_owned()),
        Some(_) => AccountError::LeaseLost,
    })
}

async fn finish(this: &Store, id: String, worker: String, outcome: JobOutcome) -> Result<Job, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
    // Only the holder of a live lease ends an attempt: after expiry the job may be another
    // worker's, whose attempt must not be overwritten.
    let held: Option<(i32, i32)> = sqlx::query_as(
        "SELECT attempts, max_attempts FROM agent_jobs
         WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND lease_expires_at > $3",
    )
    .bind(&id)
    .bind(&worker)
    .bind(now)
    .fetch_optional(&mut *w.tx)
    .await?;
    let Some((attempts, max_attempts)) = held else {
        let error = lost(&mut w.tx, &id).await?;
        w.tx.rollback().await?;
        return Err(error);
    };
    match outcome {
        JobOutcome::Succeeded(result) => {
            let result = encode_json("result", &result)?;
            sqlx::query(
                "UPDATE agent_jobs SET status = 'succeeded', result = $2, lease_owner = NULL,
                     lease_expires_at = NULL, finished_at = $3, updated_at = $3 WHERE id = $1",
            )
            .bind(&id)
            .bind(result)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        }
        JobOutcome::Failed { error, retry_in_ms } if attempts < max_attempts => {
            let wait = retry_in_ms.unwrap_or_else(|| backoff_ms(u32::try_from(attempts).unwrap_or(1)));
            sqlx::query(
                "UPDATE agent_jobs SET status = 'queued', last_error = $2, run_after = $3, lease_owner = NULL,
                     lease_expires_at = NULL, updated_at = $4 WHERE id = $1",
            )
            .bind(&id)
            .bind(cut_error(&error))
            .bind(now.saturating_add(wait.max(0)))
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        }
        JobOutcome::Failed { error, .. } => {
            sqlx::query(
                "UPDATE agent_jobs SET status = 'failed', last_error = $2, lease_owner = NULL,
                     lease_expires_at = NULL, finished_at = $3, updated_at = $3 WHERE id = $1",
            )
            .bind(&id)
            .bind(cut_error(&error))
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        }
    }
    let job = by_id(&mut w.tx, &id).await?.ok_or_else(|| corrupt("a job gone while it was locked"))?;
    w.tx.commit().await?;
    Ok(job)
}

#[async_trait::async_trait]
impl JobStore for Store {
    async fn staff_role(&self, user: &UserId) -> Result<Option<StaffRole>, AccountError> {
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM staff_roles WHERE user_id = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await?;
        Ok(role.as_deref().and_then(StaffRole::parse))
    }

    async fn set_staff_role(
        &self,
        user: &UserId,
        role: Option<StaffRole>,
        granted_by: &str,
    ) -> Result<Option<StaffRole>, AccountError> {
        let (this, user, granted_by) = (self.clone(), user.clone(), granted_by.to_owned());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(&user)
                .fetch_optional(&mut *w.tx)
                .await?;
            if exists.is_none() {
                w.tx.rollback().await?;
                return Err(AccountError::UserNotFound(user));
            }
            let previous: Option<String> = sqlx::query_scalar("SELECT role FROM staff_roles WHERE user_id = $1")
                .bind(&user)
                .fetch_optional(&mut *w.tx)
                .await?;
            match role {
                Some(role) => {
                    sqlx::query(
                        "INSERT INTO staff_roles (user_id, role, granted_at, granted_by) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (user_id) DO UPDATE SET role = excluded.role,
                             granted_at = excluded.granted_at, granted_by = excluded.granted_by",
                    )
                    .bind(&user)
                    .bind(role.as_str())
                    .bind(now_millis())
                    .bind(&granted_by)
                    .execute(&mut *w.tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM staff_roles WHERE user_id = $1").bind(&user).execute(&mut *w.tx).await?;
                }
            }
            w.tx.commit().await?;
            Ok(previous.as_deref().and_then(StaffRole::parse))
        })
        .await
    }

    async fn enqueue_job(&self, job: NewJob) -> Result<Enqueued, AccountError> {
        let payload = check_new_job(&job)?;
        let this = self.clone();
        run_to_completion(async move { enqueue(&this, job, payload).await }).await
    }

    async fn job(&self, id: &str) -> Result<Option<Job>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        by_id(&mut conn, id).await
    }

    async fn claim_job(
        &self,
        types: &[String],
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<Job>, AccountError> {
        if types.is_empty() || types.len() > MAX_CLAIM_TYPES {
            return Err(AccountError::InvalidInput { field: "types", reason: "1 to 32 job types" });
        }
        for job_type in types {
            check_name("types", job_type)?;
        }
        check_name("worker", worker)?;
        check_lease(lease_ms)?;
        let (this, types, worker) = (self.clone(), types.to_vec(), worker.to_owned());
        run_to_completion(async move { claim(&this, types, worker, lease_ms).await }).await
    }

    async fn renew_job(&self, id: &str, worker: &str, lease_ms: i64) -> Result<Job, AccountError> {
        check_name("worker", worker)?;
        check_lease(lease_ms)?;
        let (this, id, worker) = (self.clone(), id.to_owned(), worker.to_owned());
        run_to_completion(async move { renew(&this, id, worker, lease_ms).await }).await
    }

    async fn finish_job(&self, id: &str, worker: &str, outcome: JobOutcome) -> Result<Job, AccountError> {
        check_name("worker", worker)?;
        let (this, id, worker) = (self.clone(), id.to_owned(), worker.to_owned());
        run_to_completion(async move { finish(&this, id, worker, outcome).await }).await
    }

    async fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>, AccountError> {
        let limit = i64::from(query.limit.clamp(1, MAX_JOB_PAGE));
        let (before_at, before_id) = query.before.clone().unwrap_or((i64::MAX, String::new()));
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agent_jobs
             WHERE ($1 = '' OR status = $1) AND ($2 = '' OR job_type = $2)
               AND (created_at < $3 OR (created_at = $3 AND ($4 = '' OR id < $4)))
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(query.status.map(JobStatus::as_str).unwrap_or(""))
        .bind(query.job_type.as_deref().unwrap_or(""))
        .bind(before_at)
        .bind(before_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>, AccountError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM agent_jobs GROUP BY status ORDER BY status")
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().filter_map(|(status, n)| JobStatus::parse(&status).map(|s| (s, n))).collect())
    }

    async fn put_schedule(&self, schedule: Schedule) -> Result<(), AccountError> {
        check_name("name", &schedule.name)?;
        check_name("type", &schedule.job_type)?;
        let payload = encode_json("payload", &schedule.payload)?;
        let this = self.clone();
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_schedules WHERE name <> $1")
                .bind(&schedule.name)
                .fetch_one(&mut *w.tx)
                .await?;
            if quota_full(count, MAX_SCHEDULES) {
                w.tx.rollback().await?;
                return Err(AccountError::QuotaExceeded { what: "schedules (server-wide)", limit: MAX_SCHEDULES });
            }
            sqlx::query(
                "INSERT INTO agent_schedules (name, cron, job_type, payload, priority, enabled, next_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, job_type = excluded.job_type,
                     payload = excluded.payload, priority = excluded.priority, enabled = excluded.enabled,
                     next_at = excluded.next_at, updated_at = excluded.updated_at",
            )
            .bind(&schedule.name)
            .bind(&schedule.cron)
            .bind(&schedule.job_type)
            .bind(payload)
            .bind(schedule.priority)
            .bind(i32::from(schedule.enabled))
            .bind(schedule.next_at)
            .bind(schedule.updated_at)
            .execute(&mut *w.tx)
            .await?;
            w.tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn schedules(&self) -> Result<Vec<Schedule>, AccountError> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(
            "SELECT name, cron, job_type, payload, priority, CAST(enabled AS BIGINT) AS enabled, next_at, updated_at
             FROM agent_schedules ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Schedule::try_from).collect()
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, AccountError> {
        let (this, name) = (self.clone(), name.to_owned());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let deleted = sqlx::query("DELETE FROM agent_schedules WHERE name = $1")
                .bind(&name)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
            w.tx.commit().await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn advance_schedule(&self, name: &str, due: i64, next: i64) -> Result<bool, AccountError> {
        let (this, name) = (self.clone(), name.to_owned());
        run_to_completion(async move {
            let mut w = this.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE agent_schedules SET next_at = $3, updated_at = $4 WHERE name = $1 AND next_at = $2",
            )
            .bind(&name)
            .bind(due)
            .bind(next)
            .bind(now_millis())
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            w.tx.commit().await?;
            Ok(moved > 0)
        })
        .await
    }
}
