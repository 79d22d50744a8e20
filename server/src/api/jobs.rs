//! The agents' job queue over HTTP (issue 23), for staff and admins only (`dojo-server admin
//! grant-staff`): enqueue, list, claim by type under a lease, heartbeat, complete, fail with a
//! retry; and (admins) the schedules that enqueue periodic agents' jobs. An agent is any
//! process holding a staff account's token: it claims jobs of its types, works, and completes
//! or fails them; if it dies, its lease runs out and the job is claimed again.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dojo_records::jobs::MAX_JOB_PAGE;
use dojo_records::{Enqueued, Job, JobOutcome, JobQuery, JobStatus, NewJob, Schedule};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use super::responses::{BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::jobs::{JobService, ScheduleSpec};
use crate::state::AppState;

/// Longest id or name in a path, in bytes.
const MAX_PATH_ID: usize = 64;

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobBody {
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub payload: serde_json::Value,
    /// Higher is claimed first.
    pub priority: i32,
    /// `queued`, `running`, `succeeded` or `failed` (its last attempt failed).
    pub status: String,
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimed before this time (milliseconds): a delay, or the backoff after a failure.
    pub run_after: i64,
    /// The worker holding it, while running.
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    /// A staff member's user id, a service's subject, or `schedule:NAME`.
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl From<Job> for JobBody {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            job_type: job.job_type,
            payload: job.payload,
            priority: job.priority,
            status: job.status.as_str().to_owned(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            run_after: job.run_after,
            lease_owner: job.lease_owner,
            lease_expires_at: job.lease_expires_at,
            last_error: job.last_error,
            result: job.result,
            idempotency_key: job.idempotency_key,
            created_by: job.created_by,
            created_at: job.created_at,
            updated_at: job.updated_at,
            finished_at: job.finished_at,
        }
    }
}

fn default_attempts() -> u32 {
    5
}

/// A job to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnqueueJob {
    /// 1-64 letters, digits, `.`, `-`, `_`, `:` (e.g. `support.draft`).
    #[serde(rename = "type")]
    pub job_type: String,
    /// Any JSON, at most 64 KiB serialised.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Higher is claimed first (default 0).
    #[serde(default)]
    pub priority: i32,
    /// 1-20 (default 5): a failure is retried after a doubling backoff until then.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Not before this time (milliseconds since the Unix epoch).
    pub run_after: Option<i64>,
    /// Enqueuing again with the same key returns the first job (200) instead of adding one.
    pub idempotency_key: Option<String>,
}

/// Add a job (staff). 201 with the job, or 200 with the earlier job of the same idempotency key.
#[utoipa::path(post, path = "/api/agent-jobs", tag = "agents", operation_id = "enqueueAgentJob",
    request_body = EnqueueJob,
    responses((status = 201, description = "Added", body = JobBody),
        (status = 200, description = "A job with this idempotency key exists: it, unchanged", body = JobBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, description = "`quota_exceeded`: 100,000 jobs are queued; or `rate_limited`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn enqueue(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiJson(body): ApiJson<EnqueueJob>,
) -> Result<Response, ApiError> {
    let job = NewJob {
        job_type: body.job_type,
        payload: body.payload,
        priority: body.priority,
        max_attempts: body.max_attempts,
        run_after: body.run_after,
        idempotency_key: body.idempotency_key,
        created_by: String::new(),
    };
    Ok(match JobService::new(&state, addr).enqueue(&caller.0, job).await? {
        Enqueued::Created(job) => (StatusCode::CREATED, Json(JobBody::from(job))).into_response(),
        Enqueued::Existing(job) => (StatusCode::OK, Json(JobBody::from(job))).into_response(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub job_type: Option<String>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// At most this many (default 100, at most 500).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCount {
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<JobBody>,
    /// Jobs by status, all types.
    pub counts: Vec<JobCount>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<String>,
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::BadRequest("`cursor` is not a cursor this API gave".into());
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    if id.len() > MAX_PATH_ID {
        return Err(bad());
    }
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

/// List jobs, newest first (staff).
#[utoipa::path(get, path = "/api/agent-jobs", tag = "agents", operation_id = "listAgentJobs",
    params(JobParams),
    responses((status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(params): ApiQuery<JobParams>,
) -> Result<Json<JobPage>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            ApiError::BadRequest("`status` is one of queued, running, succeeded, failed".into())
        })?),
    };
    if params.job_type.as_ref().is_some_and(|t| t.len() > MAX_PATH_ID) {
        return Err(ApiError::BadRequest("`type` is longer than 64 bytes".into()));
    }
    let limit = params.limit.unwrap_or(100).clamp(1, MAX_JOB_PAGE);
    let query = JobQuery {
        status,
        job_type: params.job_type,
        before: params.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
    };
    let (jobs, counts) = JobService::new(&state, None).list(&caller.0, &query).await?;
    let full = u32::try_from(jobs.len()).unwrap_or(u32::MAX) >= limit;
    let next_cursor = jobs.last().filter(|_| full).map(|job| format!("{}:{}", job.created_at, job.id));
    Ok(Json(JobPage {
        jobs: jobs.into_iter().map(JobBody::from).collect(),
        counts: counts
            .into_iter()
            .map(|(status, count)| JobCount { status: status.as_str().to_owned(), count })
            .collect(),
        next_cursor,
    }))
}

fn path_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_PATH_ID {
        return Err(ApiError::NotFound(format!(
            "no {what} {:?}",
            id.chars().take(MAX_PATH_ID).collect::<String>()
        )));
    }
    Ok(())
}

/// One job (staff).
#[utoipa::path(get, path = "/api/agent-jobs/{id}", tag = "agents", operation_id = "getAgentJob",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobBody>, ApiError> {
    path_id("job", &id)?;
    Ok(Json(JobService::new(&state, None).job(&caller.0, &id).await?.into()))
}

fn default_lease_secs() -> u32 {
    60
}

/// What a worker asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimJob {
    /// The job types this worker handles (1-32).
    pub types: Vec<String>,
    /// The worker's name (1-64 letters, digits, `.`, `-`, `_`, `:`), named again to heartbeat,
    /// complete or fail.
    pub worker: String,
    /// How long the claim lasts without a heartbeat (1-3600 s, default 60).
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
}

/// Claim the best due job of some types (staff): highest priority, then earliest due, then
/// oldest; a running job whose lease ran out (its worker died) is claimed again. 204 when none.
#[utoipa::path(post, path = "/api/agent-jobs/claim", tag = "agents", operation_id = "claimAgentJob",
    request_body = ClaimJob,
    responses((status = 200, description = "Claimed: it is this worker's until the lease ends", body = JobBody),
        (status = 204, description = "Nothing to do"),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn claim(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiJson(body): ApiJson<ClaimJob>,
) -> Result<Response, ApiError> {
    let lease_ms = i64::from(body.lease_secs).saturating_mul(1000);
    let claimed = JobService::new(&state, addr).claim(&caller.0, &body.types, &body.worker, lease_ms).await?;
    Ok(match claimed {
        Some(job) => Json(JobBody::from(job)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// A worker's heartbeat.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    pub worker: String,
    /// The lease from now (1-3600 s, default 60).
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
}

/// Extend the lease of a claimed job (staff; the worker that holds it).
#[utoipa::path(post, path = "/api/agent-jobs/{id}/heartbeat", tag = "agents", operation_id = "heartbeatAgentJob",
    request_body = Heartbeat,
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The lease now", body = JobBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "`lease_lost`: the lease ran out or the job ended; stop working on it", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Heartbeat>,
) -> Result<Json<JobBody>, ApiError> {
    path_id("job", &id)?;
    let lease_ms = i64::from(body.lease_secs).saturating_mul(1000);
    Ok(Json(JobService::new(&state, None).renew(&caller.0, &id, &body.worker, lease_ms).await?.into()))
}

/// A job's successful end.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteJob {
    pub worker: String,
    /// Any JSON, at most 64 KiB serialised.
    #[serde(default)]
    pub result: serde_json::Value,
}

/// Complete a claimed job (staff; the worker that holds it).
#[utoipa::path(post, path = "/api/agent-jobs/{id}/complete", tag = "agents", operation_id = "completeAgentJob",
    request_body = CompleteJob,
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "Succeeded", body = JobBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "`lease_lost`: the lease ran out (another worker may hold the job) or it ended", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn complete(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CompleteJob>,
) -> Result<Json<JobBody>, ApiError> {
    path_id("job", &id)?;
    let outcome = JobOutcome::Succeeded(body.result);
    Ok(Json(JobService::new(&state, addr).finish(&caller.0, &id, &body.worker, outcome).await?.into()))
}

/// A failed attempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailJob {
    pub worker: String,
    /// Why (kept, cut to 2,000 bytes).
    pub error: String,
    /// Retry after this many seconds instead of the doubling backoff (2 s, 4 s, … up to 1 h).
    pub retry_in_secs: Option<u32>,
}

/// Fail a claimed job's attempt (staff; the worker that holds it): queued again after a backoff
/// while attempts remain, else `failed` for good.
#[utoipa::path(post, path = "/api/agent-jobs/{id}/fail", tag = "agents", operation_id = "failAgentJob",
    request_body = FailJob,
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "Queued for a retry, or failed", body = JobBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "`lease_lost`", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn fail(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FailJob>,
) -> Result<Json<JobBody>, ApiError> {
    path_id("job", &id)?;
    let retry_in_ms = body.retry_in_secs.map(|secs| i64::from(secs.min(86_400)) * 1000);
    let outcome = JobOutcome::Failed { error: body.error, retry_in_ms };
    Ok(Json(JobService::new(&state, addr).finish(&caller.0, &id, &body.worker, outcome).await?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleList {
    /// By name.
    #[schema(value_type = Vec<Object>)]
    pub schedules: Vec<Schedule>,
}

/// The schedules (staff).
#[utoipa::path(get, path = "/api/agent-schedules", tag = "agents", operation_id = "listAgentSchedules",
    responses((status = 200, description = "Every schedule: name, cron, jobType, payload, priority, enabled, nextAt", body = ScheduleList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn schedules(
    State(state): State<AppState>,
    caller: Authenticated,
) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(ScheduleList { schedules: JobService::new(&state, None).schedules(&caller.0).await? }))
}

fn enabled_by_default() -> bool {
    true
}

/// A schedule to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSchedule {
    /// Five fields (`0 3 * * *`: 03:00 UTC daily), or six with seconds first; UTC.
    pub cron: String,
    /// The type of the job each slot enqueues.
    #[serde(rename = "type")]
    pub job_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

/// Create or replace a schedule (admins): at each slot of `cron` one job of `type` is enqueued,
/// once, however many servers run.
#[utoipa::path(put, path = "/api/agent-schedules/{name}", tag = "agents", operation_id = "setAgentSchedule",
    request_body = SetSchedule,
    params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule, with its next slot", body = Object),
        (status = 400, description = "`bad_request`: an invalid cron expression, name or payload", body = ErrorBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn set_schedule(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SetSchedule>,
) -> Result<Json<Schedule>, ApiError> {
    let spec = ScheduleSpec {
        cron: body.cron,
        job_type: body.job_type,
        payload: body.payload,
        priority: body.priority,
        enabled: body.enabled,
    };
    let schedule = JobService::new(&state, addr).put_schedule(&caller.0, &name, spec).await?;
    Ok(Json(schedule))
}

/// Remove a schedule (admins). Jobs it enqueued stay.
#[utoipa::path(delete, path = "/api/agent-schedules/{name}", tag = "agents", operation_id = "deleteAgentSchedule",
    params(("name" = String, Path, description = "Schedule name")),
    responses((status = 204, description = "Removed"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    path_id("schedule", &name)?;
    JobService::new(&state, addr).delete_schedule(&caller.0, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
