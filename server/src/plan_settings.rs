//! Plans and the run queue: part of the one typed configuration (`crate::config::Config`,
//! flattened). Every plan's limits are configured here and only here (docs/queue.md).

use std::collections::BTreeMap;

use serde::Deserialize;

/// Most plans one configuration may name, and the longest name.
const MAX_PLANS: usize = 32;
const MAX_PLAN_NAME: usize = dojo_records::queue::MAX_PLAN_NAME;
/// Most queue admins listed.
const MAX_QUEUE_ADMINS: usize = 64;

/// What a plan allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Plan {
    /// Higher is claimed first.
    pub priority: i64,
    /// Runs of one user executing at once, across every worker (0: no limit).
    pub concurrent_runs: u32,
    /// Runs of one user queued at once (0: no limit); beyond it a submission answers 429
    /// `queue_full`.
    pub max_queued: u64,
    /// Longest a run may execute, in seconds, from its first start (0: no limit).
    pub max_run_secs: u64,
}

/// The plans, by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct PlanTable(pub BTreeMap<String, Plan>);

fn parse_plans(value: &str) -> Result<PlanTable, String> {
    let table: PlanTable =
        serde_json::from_str(value).map_err(|error| format!("DOJO_PLANS is not a plan table: {error}"))?;
    if table.0.is_empty() || table.0.len() > MAX_PLANS {
        return Err(format!("DOJO_PLANS names 1 to {MAX_PLANS} plans"));
    }
    if let Some(name) = table.0.keys().find(|name| name.is_empty() || name.len() > MAX_PLAN_NAME) {
        return Err(format!("plan name {name:?} is empty or longer than {MAX_PLAN_NAME}"));
    }
    Ok(table)
}

/// Plans, the default plan, who may reorder anyone's runs, and how queue estimates count
/// workers.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanSettings {
    /// The plans as JSON: `{"NAME": {"priority": 0, "concurrentRuns": 2, "maxQueued": 20,
    /// "maxRunSecs": 3600}, …}`. Unset: the built-in `free`, `pro` and `studio` (docs/queue.md),
    /// where `free` runs `DOJO_RUNS_PER_USER` at once and queues `DOJO_MAX_QUEUED_RUNS_PER_USER`.
    #[arg(long, env = "DOJO_PLANS", value_parser = parse_plans)]
    pub plans: Option<PlanTable>,

    /// The plan of users and teams with none set (`dojo-server admin set-plan`), and of those
    /// whose stored plan is no longer configured. A name that is not a plan counts as the first
    /// plan by name.
    #[arg(long, env = "DOJO_DEFAULT_PLAN", default_value = "free")]
    pub default_plan: String,

    /// Users (ids or token subjects, comma-separated) who may move any run to the front of the
    /// queue. Empty: nobody beyond the run's own user (and, for a team's run, the team's owners
    /// and admins).
    #[arg(long, env = "DOJO_QUEUE_ADMINS", value_delimiter = ',')]
    pub queue_admins: Vec<String>,

    /// Runs executing at once across every worker, for queue estimates (0: this process's
    /// `DOJO_RUN_WORKERS`; with `dojo-worker`s, set it to their total).
    #[arg(long, env = "DOJO_QUEUE_SLOTS", default_value_t = 0)]
    pub queue_slots: u32,
}

impl PlanSettings {
    /// The plan table in force: the configured one, or the built-in plans where `free` takes
    /// the older per-user settings.
    pub fn table(&self, runs_per_user: usize, max_queued_per_user: u64) -> PlanTable {
        if let Some(table) = &self.plans {
            return table.clone();
        }
        let free = Plan {
            priority: 0,
            concurrent_runs: u32::try_from(runs_per_user).unwrap_or(u32::MAX),
            max_queued: max_queued_per_user,
            max_run_secs: 3600,
        };
        let pro = Plan { priority: 10, concurrent_runs: 4, max_queued: 100, max_run_secs: 4 * 3600 };
        let studio = Plan { priority: 20, concurrent_runs: 8, max_queued: 500, max_run_secs: 12 * 3600 };
        PlanTable(BTreeMap::from([("free".into(), free), ("pro".into(), pro), ("studio".into(), studio)]))
    }

    /// Whether `who` (a user's id or token subject) is a queue admin.
    pub fn is_queue_admin(&self, id: &str, subject: &str) -> bool {
        self.queue_admins.iter().take(MAX_QUEUE_ADMINS).any(|admin| {
            let admin = admin.trim();
            !admin.is_empty() && (admin == id || admin == subject)
        })
    }
}

impl PlanTable {
    /// The plan named `name`, else `default`, else the first plan (a configuration check at
    /// start-up makes the default exist).
    pub fn resolve(&self, name: Option<&str>, default: &str) -> (String, Plan) {
        for candidate in [name, Some(default)].into_iter().flatten() {
            if let Some(plan) = self.0.get(candidate) {
                return (candidate.to_owned(), *plan);
            }
        }
        match self.0.iter().next() {
            Some((name, plan)) => (name.clone(), *plan),
            None => {
                (default.to_owned(), Plan { priority: 0, concurrent_runs: 0, max_queued: 0, max_run_secs: 0 })
            }
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}
