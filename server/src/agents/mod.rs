//! The studio's agents that run inside the server (docs/agents.md): each is a loop that claims
//! jobs of its types from the agents' job queue, handles them, and completes or fails them,
//! like any external agent process would through the API. The support and fraud agents are built.
//! A server stopping mid-job leaves the job's lease to run out; another server (or this one
//! after its restart) claims it again.

pub mod fraud;
pub mod support;

use std::future::Future;
use std::time::Duration;

use dojo_records::{Job, JobOutcome};
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
        let seed_state = state.clone();
        tasks.spawn(async move { fraud::ensure_schedule(&seed_state).await });
        let handler_state = state.clone();
        let handle = move |job: Job| {
            let state = handler_state.clone();
            async move { fraud::run_scan(&state, &job.payload).await }
        };
        spawn_loop(tasks, shutdown.clone(), poll, state.clone(), crate::services::fraud::SCAN_JOB, handle);
    }
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
