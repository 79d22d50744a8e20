//! The agents' job queue as the API offers it (issue 23): staff enqueue, claim, renew, finish
//! and list jobs; admins also set schedules. Everyone else is refused, whatever their token's
//! other rights: the queue carries support tickets and fraud flags about other people. Every
//! change is written to the audit log with who made it (a staff member, or a service identity
//! when an agent's token made it).

use std::net::IpAddr;

use dojo_records::jobs::{MIN_LEASE_MS, check_name};
use dojo_records::{
    AccountError, Enqueued, Job, JobOutcome, JobQuery, JobStatus, NewJob, Schedule, StaffRole,
};
use serde_json::json;

use super::audit::{Actor, Record, record};
use crate::agent_schedules::{CronError, next_slot};
use crate::caller::Caller;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("sign in first")]
    SignInRequired,
    /// Signed in, but not staff (or not admin, for schedules).
    #[error("the job queue is for {0} only")]
    NotStaff(&'static str),
    #[error("no schedule {0:?}")]
    ScheduleNotFound(String),
    #[error(transparent)]
    Cron(#[from] CronError),
    #[error(transparent)]
    Records(#[from] AccountError),
}

/// What a schedule does: at each slot of `cron` (UTC), a job of `job_type` with `payload`.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub cron: String,
    pub job_type: String,
    pub payload: serde_json::Value,
    pub priority: i32,
    pub enabled: bool,
}

/// The caller's staff role: `SignInRequired` without a user, `None` for everyone not staff.
pub async fn staff_role(state: &AppState, caller: &Caller) -> Result<Option<StaffRole>, JobError> {
    let user = caller.user().ok_or(JobError::SignInRequired)?;
    Ok(state.jobs().staff_role(&user.id).await?)
}

/// The caller's staff role, when it is at least `needed`; otherwise the refusal every staff
/// route gives.
pub async fn require_role(
    state: &AppState,
    caller: &Caller,
    needed: StaffRole,
) -> Result<StaffRole, JobError> {
    match staff_role(state, caller).await? {
        Some(role) if role >= needed => Ok(role),
        _ => Err(JobError::NotStaff(match needed {
            StaffRole::Staff => "staff and admins",
            StaffRole::Admin => "admins",
        })),
    }
}

pub struct JobService<'a> {
    state: &'a AppState,
    addr: Option<IpAddr>,
}

impl<'a> JobService<'a> {
    pub fn new(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    /// The caller's staff role, at least `needed`.
    async fn require(&self, caller: &Caller, needed: StaffRole) -> Result<StaffRole, JobError> {
        require_role(self.state, caller, needed).await
    }

    async fn audit(
        &self,
        caller: &Caller,
        action: &'static str,
        target_type: &'static str,
        id: &str,
        detail: serde_json::Value,
    ) {
        let actor = Actor::of(caller, self.addr);
        let entry = Record { action, target_type, target_id: id, team: None, detail };
        record(self.state.audit(), &actor, entry).await;
    }

    pub async fn enqueue(&self, caller: &Caller, mut job: NewJob) -> Result<Enqueued, JobError> {
        self.require(caller, StaffRole::Staff).await?;
        job.created_by = Actor::of(caller, None).id;
        let enqueued = self.state.jobs().enqueue_job(job).await?;
        if let Enqueued::Created(job) = &enqueued {
            let detail =
                json!({"type": job.job_type, "priority": job.priority, "maxAttempts": job.max_attempts});
            self.audit(caller, "job.enqueued", "job", &job.id, detail).await;
        }
        Ok(enqueued)
    }

    pub async fn job(&self, caller: &Caller, id: &str) -> Result<Job, JobError> {
        self.require(caller, StaffRole::Staff).await?;
        Ok(self.state.jobs().job(id).await?.ok_or_else(|| AccountError::JobNotFound(id.to_owned()))?)
    }

    pub async fn list(
        &self,
        caller: &Caller,
        query: &JobQuery,
    ) -> Result<(Vec<Job>, Vec<(JobStatus, i64)>), JobError> {
        self.require(caller, StaffRole::Staff).await?;
        let jobs = self.state.jobs().jobs(query).await?;
        let counts = self.state.jobs().job_counts().await?;
        Ok((jobs, counts))
    }

    pub async fn claim(
        &self,
        caller: &Caller,
        types: &[String],
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<Job>, JobError> {
        self.require(caller, StaffRole::Staff).await?;
        let claimed = self.state.jobs().claim_job(types, worker, lease_ms).await?;
        if let Some(job) = &claimed {
            let detail = json!({"type": job.job_type, "worker": worker, "attempt": job.attempts});
            self.audit(caller, "job.claimed", "job", &job.id, detail).await;
        }
        Ok(claimed)
    }

    pub async fn renew(
        &self,
        caller: &Caller,
        id: &str,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Job, JobError> {
        self.require(caller, StaffRole::Staff).await?;
        Ok(self.state.jobs().renew_job(id, worker, lease_ms.max(MIN_LEASE_MS)).await?)
    }

    pub async fn finish(
        &self,
        caller: &Caller,
        id: &str,
        worker: &str,
        outcome: JobOutcome,
    ) -> Result<Job, JobError> {
        self.require(caller, StaffRole::Staff).await?;
        let failed = matches!(outcome, JobOutcome::Failed { .. });
        let job = self.state.jobs().finish_job(id, worker, outcome).await?;
        let action = match (failed, job.status) {
            (false, _) => "job.succeeded",
            (true, JobStatus::Queued) => "job.retrying",
            (true, _) => "job.failed",
        };
        let detail = json!({"type": job.job_type, "worker": worker, "attempt": job.attempts});
        self.audit(caller, action, "job", &job.id, detail).await;
        Ok(job)
    }

    pub async fn schedules(&self, caller: &Caller) -> Result<Vec<Schedule>, JobError> {
        self.require(caller, StaffRole::Staff).await?;
        Ok(self.state.jobs().schedules().await?)
    }

    /// Creates or replaces the schedule `name`: its first slot is the cron expression's next
    /// one after now.
    pub async fn put_schedule(
        &self,
        caller: &Caller,
        name: &str,
        spec: ScheduleSpec,
    ) -> Result<Schedule, JobError> {
        self.require(caller, StaffRole::Admin).await?;
        check_name("name", name)?;
        let now = crate::execution::now_millis();
        let next_at = next_slot(&spec.cron, now)?;
        let schedule = Schedule {
            name: name.to_owned(),
            cron: spec.cron,
            job_type: spec.job_type,
            payload: spec.payload,
            priority: spec.priority,
            enabled: spec.enabled,
            next_at,
            updated_at: now,
        };
        self.state.jobs().put_schedule(schedule.clone()).await?;
        let detail = json!({"cron": schedule.cron, "type": schedule.job_type, "enabled": schedule.enabled});
        self.audit(caller, "schedule.set", "schedule", name, detail).await;
        Ok(schedule)
    }

    pub async fn delete_schedule(&self, caller: &Caller, name: &str) -> Result<(), JobError> {
        self.require(caller, StaffRole::Admin).await?;
        if !self.state.jobs().delete_schedule(name).await? {
            return Err(JobError::ScheduleNotFound(name.to_owned()));
        }
        self.audit(caller, "schedule.deleted", "schedule", name, json!({})).await;
        Ok(())
    }
}
