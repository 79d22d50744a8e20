//! The studio's agents that run inside the server (docs/agents.md): each is a loop that claims
//! jobs of its types from the agents' job queue, handles them, and completes or fails them,
//! like any external agent process would through the API.
//! A server stopping mid-job leaves the job's lease to run out; another server (or this one
//! after its restart) claims it again.

pub mod fraud;
pub mod reengagement;
pub mod sender;
pub mod support;
pub mod workflow_findings;
pub mod workflow_review;

use std::future::Future;
use std::time::Duration;

use dojo_records::{Job, JobOutcome, Schedule};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::AppState;

/// How long an in-process agent's claim lasts: longer than any draft takes (the model's
/// timeout is at most a few tens of seconds).
const LEASE_MS: i64 = 120_000;

/// Starts the agents `state`'s configuration names.
pub fn start(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    let settings = &state.config().agents;
    let poll = Duration::from_millis(settings.agent_poll_ms.max(50));
    if settings.runs("support") {
        let handler_state = state.clone();
        let handle = move |job: Job| {
            let state = handler_state.clone();
            async move { support::draft(&state, &job.payload).await }
        };
        spawn_loop(tasks, shutdown.clone(), poll, state.clone(), crate::services::support::DRAFT_JOB, handle);
    }
    if settings.runs("fraud") {
        let cron = settings.fraud_scan_cron.clone();
        seed_schedule(state, tasks, fraud::SCHEDULE, cron, crate::services::fraud::SCAN_JOB);
        let handler_state = state.clone();
        let handle = move |job: Job| {
            let state = handler_state.clone();
            async move { fraud::run_scan(&state, &job.payload).await }
        };
        spawn_loop(tasks, shutdown.clone(), poll, state.clone(), crate::services::fraud::SCAN_JOB, handle);
    }
    if settings.runs("workflow") {
        let cron = settings.workflow_review_cron.clone();
        seed_schedule(state, tasks, workflow_review::SCHEDULE, cron, workflow_review::JOB);
        let handler_state = state.clone();
        let handle = move |job: Job| {
            let state = handler_state.clone();
            async move { workflow_review::run(&state, &job.payload).await }
        };
        spawn_loop(tasks, shutdown.clone(), poll, state.clone(), workflow_review::JOB, handle);
    }
    if settings.runs("reengagement") {
        let cron = settings.reengage_cron.clone();
        seed_schedule(state, tasks, reengagement::SCHEDULE, cron, reengagement::JOB);
        let sender = sender::from_settings(settings);
        let handler_state = state.clone();
        let handle = move |job: Job| {
            let (state, sender) = (handler_state.clone(), sender.clone());
            async move { reengagement::run(&state, sender.as_deref(), &job.payload).await }
        };
        spawn_loop(tasks, shutdown.clone(), poll, state.clone(), reengagement::JOB, handle);
    }
}

/// Creates the schedule `name` (every slot of `cron` enqueues a `job_type` job with an empty
/// payload) unless one of that name exists, whatever an admin made of it: admins tune or
/// disable an agent's schedule through the API, and a server start never undoes that.
fn seed_schedule(
    state: &AppState,
    tasks: &TaskTracker,
    name: &'static str,
    cron: String,
    job_type: &'static str,
) {
    let state = state.clone();
    tasks.spawn(async move {
        let jobs = state.jobs();
        match jobs.schedules().await {
            Ok(schedules) if schedules.iter().any(|schedule| schedule.name == name) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, name, "agents: could not read the schedules");
                return;
            }
        }
        let now = crate::execution::now_millis();
        let next_at = match crate::agent_schedules::next_slot(&cron, now) {
            Ok(next_at) => next_at,
            Err(error) => {
                tracing::error!(%error, cron, name, "agents: the schedule's cron expression is wrong; it was not created");
                return;
            }
        };
        let schedule = Schedule {
            name: name.into(),
            cron,
            job_type: job_type.into(),
            payload: json!({}),
            priority: 0,
            enabled: true,
            next_at,
            updated_at: now,
        };
        if let Err(error) = jobs.put_schedule(schedule).await {
            tracing::warn!(%error, name, "agents: could not create a schedule");
        }
    });
}

/// Claims jobs of `job_type` until `shutdown`, handing each to `handle`.
fn spawn_loop<F, Fut>(
    tasks: &TaskTracker,
    shutdown: CancellationToken,
    poll: Duration,
    state: AppState,
    job_type: &'static str,
    handle: F,
) where
    F: Fn(Job) -> Fut + Send + 'static,
    Fut: Future<Output = JobOutcome> + Send,
{
    let worker = format!("agent-{job_type}-{}", std::process::id()).replace(['.', ':'], "-");
    tasks.spawn(async move {
        let types = [job_type.to_owned()];
        loop {
            let claimed = tokio::select! {
                () = shutdown.cancelled() => break,
                claimed = state.jobs().claim_job(&types, &worker, LEASE_MS) => claimed,
            };
            match claimed {
                Ok(Some(job)) => {
                    let id = job.id.clone();
                    let outcome = handle(job).await;
                    if let Err(error) = state.jobs().finish_job(&id, &worker, outcome).await {
                        tracing::warn!(%error, job = %id, "agents: could not record a job's end");
                    }
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, job_type, "agents: could not claim"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(poll) => {}
            }
        }
    });
}
