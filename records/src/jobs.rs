//! The agents' job queue (issue 23): durable jobs of a type with a JSON payload and a priority,
//! claimed by type under a lease (a claim whose worker died expires and the job is claimed
//! again, as runs are), completed or failed with a retry after a backoff, listed by status; and
//! schedules that enqueue a job at each slot of a cron expression, once per slot however many
//! servers tick. Staff roles say who may use it. The statements are in `sql/jobs.rs`; the rules
//! that need no database are here, to be tested alone.

use dojo_ids::UserId;
use serde::Serialize;

use crate::AccountError;

/// Largest payload or result, serialised JSON, in bytes.
pub const MAX_JOB_JSON_BYTES: usize = 64 * 1024;
/// Longest job type, worker name or schedule name, in bytes.
pub const MAX_JOB_NAME_LEN: usize = 64;
/// Longest error text kept from a failure, in bytes (longer ones are cut).
pub const MAX_JOB_ERROR_LEN: usize = 2000;
/// Most attempts a job may ask for.
pub const MAX_JOB_ATTEMPTS: u32 = 20;
/// Most jobs one list call returns.
pub const MAX_JOB_PAGE: u32 = 500;
/// Queued jobs at most, server-wide: enqueuing past it is refused.
pub const MAX_QUEUED_JOBS: u64 = 100_000;
/// Schedules at most.
pub const MAX_SCHEDULES: u64 = 200;
/// Longest and shortest lease a claim may ask for, in milliseconds.
pub const MAX_LEASE_MS: i64 = 3_600_000;
pub const MIN_LEASE_MS: i64 = 1_000;
/// The first retry waits this long; each later one twice as long, up to [`MAX_BACKOFF_MS`].
pub const BASE_BACKOFF_MS: i64 = 2_000;
pub const MAX_BACKOFF_MS: i64 = 3_600_000;

/// Who may use the job queue: staff enqueue, claim, complete and read jobs; admins also manage
/// schedules and grant nothing (grants are made at the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    Staff,
    Admin,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Staff => "staff",
            StaffRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "staff" => Some(StaffRole::Staff),
            "admin" => Some(StaffRole::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    /// Failed its last allowed attempt: it stays for staff to read, and is never retried.
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(JobStatus::Queued),
            "running" => Some(JobStatus::Running),
            "succeeded" => Some(JobStatus::Succeeded),
            "failed" => Some(JobStatus::Failed),
            _ => None,
        }
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub job_type: String,
    pub payload: serde_json::Value,
    pub priority: i32,
    pub status: JobStatus,
    /// Claims so far (a claim after a lease expired counts too).
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub job_type: String,
    pub payload: serde_json::Value,
    pub priority: i32,
    pub max_attempts: u32,
    /// Not before this time (milliseconds); `None`: now.
    pub run_after: Option<i64>,
    pub idempotency_key: Option<String>,
    /// A user id, `schedule:NAME` or an operator: who asked for it.
    pub created_by: String,
}

/// What [`JobStore::enqueue_job`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Created(Job),
    /// A job with the same idempotency key exists; nothing was written.
    Existing(Job),
}

impl Enqueued {
    pub fn job(&self) -> &Job {
        match self {
            Enqueued::Created(job) | Enqueued::Existing(job) => job,
        }
    }
}

/// How a leased job ends.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Succeeded(serde_json::Value),
    /// Retried after a backoff while attempts remain (`retry_in_ms` overrides the backoff),
    /// else failed for good.
    Failed {
        error: String,
        retry_in_ms: Option<i64>,
    },
}

/// One schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub job_type: String,
    pub payload: serde_json::Value,
    pub priority: i32,
    pub enabled: bool,
    /// The next slot it enqueues (milliseconds).
    pub next_at: i64,
    pub updated_at: i64,
}

/// Which jobs [`JobStore::jobs`] lists: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobQuery {
    pub status: Option<JobStatus>,
    pub job_type: Option<String>,
    /// Jobs created before this one (its `created_at`, then id): the cursor.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// The agents' job queue. One implementation per database kind.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// The user's staff role, if any.
    async fn staff_role(&self, user: &UserId) -> Result<Option<StaffRole>, AccountError>;

    /// Grants (or changes) a staff role; `None` removes it. Returns the previous role.
    async fn set_staff_role(
        &self,
        user: &UserId,
        role: Option<StaffRole>,
        granted_by: &str,
    ) -> Result<Option<StaffRole>, AccountError>;

    /// Adds a job (once per idempotency key). Refused when [`MAX_QUEUED_JOBS`] are queued.
    async fn enqueue_job(&self, job: NewJob) -> Result<Enqueued, AccountError>;

    async fn job(&self, id: &str) -> Result<Option<Job>, AccountError>;

    /// The best claimable job of one of `types` (highest priority, then earliest `run_after`,
    /// then oldest): queued and due, or running with an expired lease (its worker died). The
    /// claim counts an attempt and leases the job to `worker` for `lease_ms`.
    async fn claim_job(
        &self,
        types: &[String],
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<Job>, AccountError>;

    /// Extends `worker`'s lease; `LeaseLost` when the job is no longer theirs.
    async fn renew_job(&self, id: &str, worker: &str, lease_ms: i64) -> Result<Job, AccountError>;

    /// Ends `worker`'s attempt; `LeaseLost` when the job is no longer theirs (its lease expired
    /// and another worker claimed it, or it already ended).
    async fn finish_job(&self, id: &str, worker: &str, outcome: JobOutcome) -> Result<Job, AccountError>;

    async fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>, AccountError>;

    /// Jobs by status, for the list's summary and the metrics.
    async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>, AccountError>;

    /// Creates or replaces a schedule (its `next_at` computed by the caller).
    async fn put_schedule(&self, schedule: Schedule) -> Result<(), AccountError>;

    async fn schedules(&self) -> Result<Vec<Schedule>, AccountError>;

    /// Removes a schedule; `false` when there was none.
    async fn delete_schedule(&self, name: &str) -> Result<bool, AccountError>;

    /// Moves a due schedule from the slot `due` to `next`, if it still is at `due` (another
    /// server may have moved it first); `true` when this call moved it. The job for the slot
    /// is enqueued with the key `schedule:NAME:DUE`, so even two movers enqueue it once.
    async fn advance_schedule(&self, name: &str, due: i64, next: i64) -> Result<bool, AccountError>;
}

/// The wait before retry number `attempt` (1 for the first retry): doubling from
/// [`BASE_BACKOFF_MS`], at most [`MAX_BACKOFF_MS`].
pub fn backoff_ms(attempt: u32) -> i64 {
    let doublings = attempt.saturating_sub(1).min(30);
    BASE_BACKOFF_MS.saturating_mul(1_i64 << doublings).min(MAX_BACKOFF_MS)
}

/// A job type, worker or schedule name: 1–64 bytes of letters, digits, `.`, `-`, `_`, `:`.
pub fn check_name(field: &'static str, value: &str) -> Result<(), AccountError> {
    if value.is_empty() {
        return Err(AccountError::InvalidInput { field, reason: "empty" });
    }
    if value.len() > MAX_JOB_NAME_LEN {
        return Err(AccountError::InvalidInput { field, reason: "longer than 64 bytes" });
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')) {
        return Err(AccountError::InvalidInput {
            field,
            reason: "only letters, digits, '.', '-', '_' and ':'",
        });
    }
    Ok(())
}

/// A payload or result: at most [`MAX_JOB_JSON_BYTES`] serialised.
pub fn encode_json(field: &'static str, value: &serde_json::Value) -> Result<String, AccountError> {
    let text = serde_json::to_string(value)
        .map_err(|_| AccountError::InvalidInput { field, reason: "not serialisable" })?;
    if text.len() > MAX_JOB_JSON_BYTES {
        return Err(AccountError::InvalidInput { field, reason: "larger than 64 KiB" });
    }
    Ok(text)
}

/// An error text cut to [`MAX_JOB_ERROR_LEN`] bytes at a character boundary.
pub fn cut_error(error: &str) -> String {
    if error.len() <= MAX_JOB_ERROR_LEN {
        return error.to_owned();
    }
    let mut end = MAX_JOB_ERROR_LEN;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error[..end].to_owned()
}

/// Checks what an enqueue asks for.
pub fn check_new_job(job: &NewJob) -> Result<String, AccountError> {
    check_name("type", &job.job_type)?;
    if job.max_attempts == 0 || job.max_attempts > MAX_JOB_ATTEMPTS {
        return Err(AccountError::InvalidInput { field: "maxAttempts", reason: "between 1 and 20" });
    }
    if let Some(key) = &job.idempotency_key
        && (key.is_empty() || key.len() > crate::ledger::MAX_KEY_LEN)
    {
        return Err(AccountError::InvalidInput { field: "idempotencyKey", reason: "1 to 255 bytes" });
    }
    encode_json("payload", &job.payload)
}

/// A claim's lease, bounded.
pub fn check_lease(lease_ms: i64) -> Result<(), AccountError> {
    if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&lease_ms) {
        return Err(AccountError::InvalidInput { field: "leaseSecs", reason: "between 1 and 3600 seconds" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff_ms(0), BASE_BACKOFF_MS);
        assert_eq!(backoff_ms(1), BASE_BACKOFF_MS);
        assert_eq!(backoff_ms(2), 2 * BASE_BACKOFF_MS);
        assert_eq!(backoff_ms(3), 4 * BASE_BACKOFF_MS);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(u32::MAX), MAX_BACKOFF_MS);
    }

    #[test]
    fn names_are_bounded_and_plain() {
        assert!(check_name("type", "support.draft").is_ok());
        assert!(check_name("type", "").is_err());
        assert!(check_name("type", &"a".repeat(65)).is_err());
        assert!(check_name("type", "a b").is_err());
        assert!(check_name("type", "é").is_err());
    }

    #[test]
    fn payloads_and_errors_are_bounded() {
        let big = serde_json::Value::String("x".repeat(MAX_JOB_JSON_BYTES));
        assert!(encode_json("payload", &big).is_err());
        assert_eq!(encode_json("payload", &serde_json::json!({"a": 1})).ok().as_deref(), Some(r#"{"a":1}"#));
        let long = "é".repeat(MAX_JOB_ERROR_LEN);
        let cut = cut_error(&long);
        assert!(cut.len() <= MAX_JOB_ERROR_LEN && long.starts_with(&cut));
    }

    #[test]
    fn enqueue_and_lease_limits() {
        let job = NewJob {
            job_type: "fraud.scan".into(),
            payload: serde_json::json!({}),
            priority: 0,
            max_attempts: 0,
            run_after: None,
            idempotency_key: None,
            created_by: "u".into(),
        };
        assert!(check_new_job(&job).is_err());
        assert!(check_new_job(&NewJob { max_attempts: 3, ..job.clone() }).is_ok());
        assert!(check_new_job(&NewJob { max_attempts: 21, ..job }).is_err());
        assert!(check_lease(999).is_err());
        assert!(check_lease(1_000).is_ok());
        assert!(check_lease(MAX_LEASE_MS + 1).is_err());
    }
}
