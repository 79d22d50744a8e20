//! The plan a run is accepted under, and the terms it takes from it (docs/queue.md).

use dojo_ids::{TeamId, UserId};
use dojo_records::queue::QueueOwner;
use dojo_records::{AccountError, QueueTerms};

use crate::state::AppState;

/// The terms of the plan a run is accepted under: the team's plan for a team's workflow, else
/// the user's (an unset or unknown plan is the default plan).
pub(crate) async fn terms(
    state: &AppState,
    user: &UserId,
    team: Option<&TeamId>,
) -> Result<QueueTerms, AccountError> {
    let owner = match team {
        Some(team) => QueueOwner::Team(team.clone()),
        None => QueueOwner::User(user.clone()),
    };
    let stored = state.queue().plan_of(&owner).await?;
    let config = state.config();
    let (_, plan) = config.plan_table().resolve(stored.as_deref(), &config.plans.default_plan);
    Ok(QueueTerms {
        priority: plan.priority,
        run_limit: (plan.concurrent_runs > 0).then_some(plan.concurrent_runs),
        max_run_ms: (plan.max_run_secs > 0)
            .then(|| i64::try_from(plan.max_run_secs.saturating_mul(1000)).unwrap_or(i64::MAX)),
        max_queued: (plan.max_queued > 0).then_some(plan.max_queued),
    })
}
