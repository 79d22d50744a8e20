//! The run queue as its users see and steer it: positions and start estimates, the caller's
//! and a team's queue, move to front, pause and resume; and the plan terms a submission takes
//! (docs/queue.md). The database decides the order (`dojo_records::queue`).

use std::net::IpAddr;

use dojo_ids::{RunId, TeamId};
use dojo_records::queue::QueueOwner;
use dojo_records::{AccountError, QueuedRun, Run, RunStatus};
use serde_json::json;

use super::audit::{Actor, Record, record};
use super::runs::{RunError, RunService};
use super::teams::{TeamError, TeamService};
use super::{SignInRequired, signed_in};
use crate::caller::Caller;
use crate::execution::now_millis;
use crate::queue_estimate::QueueClock;
use crate::state::AppState;
use dojo_auth::Permission;

/// Longer ids name no run (as `RunService`).
const MAX_RUN_ID: usize = 64;
/// Runs the average duration is taken over.
const DURATION_SAMPLE: u32 = 50;

/// A run with where it stands.
#[derive(Debug, Clone)]
pub struct Placed {
    pub run: Run,
    /// 1-based, while queued.
    pub position: Option<i64>,
    /// When it should start (milliseconds since the epoch), while queued and when known.
    pub estimated_start_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error(transparent)]
    SignIn(#[from] SignInRequired),
    #[error("only the run's user, the team's owners and admins, or a queue admin may move this run")]
    Forbidden,
    #[error("run {0:?} is not queued: only a queued run can move")]
    NotQueued(String),
    #[error(transparent)]
    Accounts(#[from] AccountError),
}

pub struct QueueService<'a> {
    state: &'a AppState,
    addr: Option<IpAddr>,
}

impl<'a> QueueService<'a> {
    /// `addr`: the client's address, for the audit log.
    pub fn new(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    /// Runs executing at once across every worker, as estimates count them.
    fn slots(&self) -> i64 {
        let config = self.state.config();
        let slots = match config.plans.queue_slots {
            0 => u32::try_from(config.executor.run_workers).unwrap_or(u32::MAX),
            slots => slots,
        };
        i64::from(slots)
    }

    /// What estimates are made from now: the slots, the recent average run (`None` when no
    /// run finished recently: then there is no estimate) and when the runs executing now
    /// started.
    async fn clock_inputs(&self) -> Result<Option<(i64, Vec<i64>)>, AccountError> {
        let queue = self.state.queue();
        let Some(average) = queue.average_run_ms(DURATION_SAMPLE).await? else { return Ok(None) };
        let slots = u32::try_from(self.slots().max(0)).unwrap_or(u32::MAX);
        Ok(Some((average, queue.running_started_at(slots).await?)))
    }

    /// The estimate (docs/queue.md, `queue_estimate`). `None` without slots or finished runs.
    fn placed(&self, queued: QueuedRun, inputs: Option<&(i64, Vec<i64>)>, now: i64) -> Placed {
        let estimated_start_at = inputs.and_then(|(average_ms, running_started)| {
            let clock = QueueClock { slots: self.slots(), average_ms: *average_ms, running_started, now };
            clock.start_of(queued.position?)
        });
        Placed { run: queued.run, position: queued.position, estimated_start_at }
    }

    /// Where a run stands (position and estimate while queued).
    pub async fn place(&self, run: Run) -> Result<Placed, AccountError> {
        if run.status != RunStatus::Queued {
            return Ok(Placed { run, position: None, estimated_start_at: None });
        }
        let position = self.state.queue().queue_position(&run.id).await?;
        let inputs = self.clock_inputs().await?;
        Ok(self.placed(QueuedRun { run, position }, inputs.as_ref(), now_millis()))
    }

    /// The caller's queued and running runs, or a team's (any member may read them).
    pub async fn list(
        &self,
        caller: &Caller,
        team: Option<&TeamId>,
        limit: u32,
    ) -> Result<(Vec<Placed>, bool), QueueError> {
        let owner = match team {
            Some(team) => {
                TeamService::new(self.state, self.addr).membership(caller, team).await?;
                QueueOwner::Team(team.clone())
            }
            None => QueueOwner::User(signed_in(caller)?.id.clone()),
        };
        let queue = self.state.queue();
        let runs = queue.queue_of(&owner, limit).await?;
        let paused = queue.queue_paused(&owner).await?.unwrap_or(false);
        let inputs = self.clock_inputs().await?;
        let now = now_millis();
        Ok((runs.into_iter().map(|queued| self.placed(queued, inputs.as_ref(), now)).collect(), paused))
    }

    /// Puts a queued run first among those of its priority: the run's own user, for a team's
    /// run the team's owners and admins, and queue admins (`DOJO_QUEUE_ADMINS`, audited) may.
    pub async fn move_to_front(&self, caller: &Caller, id: &RunId) -> Result<Placed, QueueError> {
        let user = signed_in(caller)?;
        let queue_admin = self.state.config().plans.is_queue_admin(user.id.as_str(), &user.subject);
        let run = match RunService::new(self.state).visible(caller, id, Permission::Read).await {
            Ok(run) => run,
            // A queue admin may move any run, rooms they cannot read included.
            Err(RunError::NotFound(_)) if queue_admin && id.as_str().len() <= MAX_RUN_ID => self
                .state
                .executor()
                .runs()
                .run(id)
                .await?
                .ok_or_else(|| RunError::NotFound(id.to_string()))?,
            Err(error) => return Err(error.into()),
        };
        let own = run.user_id == user.id;
        let manager = match &run.team_id {
            Some(team) if !own => TeamService::new(self.state, self.addr)
                .membership(caller, team)
                .await
                .is_ok_and(|access| access.role().manages_members()),
            _ => false,
        };
        let admin = !own && !manager && queue_admin;
        if !own && !manager && !admin {
            return Err(QueueError::Forbidden);
        }
        if run.status != RunStatus::Queued {
            return Err(QueueError::NotQueued(id.to_string()));
        }
        let moved = self
            .state
            .queue()
            .move_to_front(&run.id)
            .await?
            .ok_or_else(|| RunError::NotFound(id.to_string()))?;
        if moved.status != RunStatus::Queued {
            return Err(QueueError::NotQueued(id.to_string()));
        }
        if !own {
            let entry = Record {
                action: "queue.run_moved_to_front",
                target_type: "run",
                target_id: run.id.as_str(),
                team: run.team_id.as_ref(),
                detail: json!({"runUser": run.user_id, "as": if admin { "queue_admin" } else { "team_manager" }}),
            };
            record(self.state.audit(), &Actor::of(caller, self.addr), entry).await;
        }
        // Claims look at the order now; wake idle workers so the change shows at once.
        self.state.executor().wake();
        Ok(self.place(moved).await?)
    }

    /// Pauses or resumes the caller's own queue. Returns whether it is now paused.
    pub async fn set_mine_paused(&self, caller: &Caller, paused: bool) -> Result<bool, QueueError> {
        let user = signed_in(caller)?;
        self.state.queue().set_queue_paused(&QueueOwner::User(user.id.clone()), paused).await?;
        if !paused {
            self.state.executor().wake();
        }
        Ok(paused)
    }

    /// Pauses or resumes a team's queue: its owners and admins, audited.
    pub async fn set_team_paused(
        &self,
        caller: &Caller,
        team: &TeamId,
        paused: bool,
    ) -> Result<bool, QueueError> {
        let access = TeamService::new(self.state, self.addr).membership(caller, team).await?;
        access.require_manager()?;
        self.state.queue().set_queue_paused(&QueueOwner::Team(team.clone()), paused).await?;
        let entry = Record {
            action: if paused { "team.queue_paused" } else { "team.queue_resumed" },
            target_type: "team",
            target_id: team.as_str(),
            team: Some(team),
            detail: json!({}),
        };
        record(self.state.audit(), &Actor::of(caller, self.addr), entry).await;
        if !paused {
            self.state.executor().wake();
        }
        Ok(paused)
    }
}
