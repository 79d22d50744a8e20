//! Running a published app (docs/apps.md): the runner's values go into the app's snapshot,
//! the graph is validated exactly as a run of the canvas is, and an ordinary run is accepted,
//! billed to the runner (their credits, their plan's queue and limits; never the workflow's
//! team or its provider keys).
//!
//! Where it is recorded: the run's room is `app-runs/{app}/{runner}`
//! (`dojo_executor::worker::document::APP_RUNS_PREFIX`), a name no workflow may claim, into
//! whose document nothing is written. The owner's room never sees the runner's values or
//! results, and the runner never sees the owner's room; the runner reads states and the chosen
//! outputs from the run's records, through the app's routes only.

use std::collections::BTreeMap;

use std::sync::Arc;

use dojo_executor::asset_access::AssetAccess;
use dojo_executor::worker::document::APP_RUNS_PREFIX;
use dojo_executor::worker::{RunAssetAccess, UnclaimedRooms};
use dojo_executor::{ExecutionPlan, GraphLimits, validate_runnable};
use dojo_ids::{AssetId, RunId, UserId};
use dojo_records::{MAX_GRANTED_ASSETS, NewRun, NewRunNode, Run, RunNode, Submission};
use serde_json::Value;

use super::app_form::{FieldError, apply_values, input_error};
use super::apps::{AppError, AppService, LoadedApp};
use super::runs::SubmitError;
use super::signed_in;
use crate::caller::Caller;
use crate::state::AppState;

/// Longer ids name no run: refused before the database is asked.
const MAX_RUN_ID: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AppRunError {
    #[error(transparent)]
    App(#[from] AppError),
    /// A value the catalog refuses, or a key the form does not have; names the input.
    #[error("{0}")]
    Input(FieldError),
    /// The published graph itself does not validate (a step's provider is gone, say): nothing
    /// the runner sends would help. Its details stay hidden: they name the graph's nodes.
    #[error(
        "this app cannot run as published ({0} step(s) with errors); its owner must fix the workflow and publish it again"
    )]
    NotRunnable(usize),
    /// No such run of this app by this caller (which must read the same as a stranger's).
    #[error("no run {0:?} of this app")]
    RunNotFound(String),
    /// Refused like any run: credits, spending limit, queue full, quota.
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

/// Where `runner`'s runs of `app` are recorded.
pub fn run_room(app: &str, runner: &UserId) -> String {
    format!("{APP_RUNS_PREFIX}{app}/{}", runner.as_str())
}

pub struct AppRunService<'a> {
    state: &'a AppState,
}

impl<'a> AppRunService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    /// Runs the app with the caller's `values` (by input key), billed to the caller.
    pub async fn submit(
        &self,
        caller: &Caller,
        app_id: &str,
        values: &BTreeMap<String, Value>,
        idempotency_key: Option<String>,
    ) -> Result<(Run, LoadedApp), AppRunError> {
        let loaded = AppService::new(self.state, None).open(caller, app_id).await?;
        let user = signed_in(caller).map_err(AppError::from)?;
        let graph = apply_values(&loaded.graph, &loaded.form, values).map_err(AppRunError::Input)?;
        let executor = self.state.executor();
        super::credits::dev_welcome(self.state, &user.id).await;
        // Only what the outputs need runs (and is charged): the chosen outputs' nodes and their
        // ancestors, like a run of targets.
        let mut targets: Vec<String> = loaded.form.outputs.iter().map(|o| o.node.clone()).collect();
        targets.sort();
        targets.dedup();
        let target_refs: Vec<&str> = targets.iter().map(String::as_str).collect();
        // The server's providers only: the runner pays, so a team's keys are not theirs to use.
        let plan = match validate_runnable(
            executor.catalog(),
            &executor.availability(),
            &graph,
            Some(&target_refs),
            &GraphLimits::default(),
        ) {
            Ok(plan) => plan,
            Err(errors) => {
                return Err(match input_error(&loaded.form, &errors) {
                    Some(field) => AppRunError::Input(field),
                    None => AppRunError::NotRunnable(errors.node_errors.len().max(1)),
                });
            }
        };
        let nodes = plan
            .order()
            .map(|node| NewRunNode {
                node_id: node.id.clone(),
                node_type: node.node_type.clone(),
                cost: i64::try_from(executor.catalog().cost(&node.node_type).unwrap_or(0))
                    .unwrap_or(i64::MAX),
                params: serde_json::to_string(&node.params).unwrap_or_else(|_| "{}".into()),
            })
            .collect::<Vec<_>>();
        let room = run_room(&loaded.app.id, &user.id);
        let granted_assets = self.fixed_assets(&loaded, &plan).await;
        let new_run = NewRun {
            id: RunId::generate(),
            room: room.clone(),
            user_id: user.id.clone(),
            graph: serde_json::to_string(&graph).map_err(SubmitError::Encode)?,
            targets: serde_json::to_string(&targets).ok(),
            idempotency_key,
            nodes,
            hold_expires_at: executor.hold_expiry(&plan),
            max_unfinished: Some(self.state.config().limits.max_queued_runs_per_user).filter(|&max| max > 0),
            queue: super::plans::terms(self.state, &user.id, None).await.map_err(SubmitError::from)?,
            team_id: None,
            granted_assets,
        };
        let run = match executor.runs().create_run(new_run).await.map_err(SubmitError::from)? {
            Submission::Created(run) => run,
            // The same key again: that run, if it is a run of this app.
            Submission::Existing(run) if run.room == room => return Ok((run, loaded)),
            Submission::Existing(run) => return Err(AppRunError::RunNotFound(run.id.to_string())),
        };
        executor.wake();
        tracing::info!(run = %run.id, app = %loaded.app.id, estimate = run.estimate, "app run accepted");
        Ok((run, loaded))
    }

    /// The assets the publisher fixed in the app that this run reads (an `image-input`'s upload
    /// that is not one of the form's inputs), those the publisher may read now: the run may read
    /// them though its runner may not. A value the runner sends is never among them (its assets
    /// are read under the runner's own rights), and neither is an asset the publisher lost.
    async fn fixed_assets(&self, loaded: &LoadedApp, plan: &ExecutionPlan) -> Vec<AssetId> {
        let executor = self.state.executor();
        let catalog = executor.catalog();
        let is_input =
            |node: &str, param: &str| loaded.form.inputs.iter().any(|i| i.node == node && i.param == param);
        let (mut fixed, mut sent): (Vec<AssetId>, Vec<AssetId>) = (Vec::new(), Vec::new());
        for node in plan.order() {
            let Some(node_type) = catalog.get(&node.node_type) else { continue };
            for param in node_type.params.iter().filter(|p| p.asset) {
                let Some(id) = node.params.get(&param.name).and_then(Value::as_str) else { continue };
                let id = AssetId::from(id);
                if is_input(node.id.as_str(), &param.name) {
                    sent.push(id);
                } else if !fixed.contains(&id) && fixed.len() < MAX_GRANTED_ASSETS {
                    fixed.push(id);
                }
            }
        }
        // A runner who sends a fixed asset's id as their own value would read it through their
        // input: that run gets no grant for it (its fixed step then fails like a missing asset).
        fixed.retain(|id| !sent.contains(id));
        let auth = self.state.auth();
        let publisher = RunAssetAccess {
            runs: executor.runs().clone(),
            accounts: Arc::clone(auth.accounts()),
            user_id: loaded.app.published_by.clone(),
            room: loaded.workflow.room.as_str().to_owned(),
            unclaimed: if auth.dev_mode() { UnclaimedRooms::Open } else { UnclaimedRooms::Closed },
            granted: Vec::new(),
        };
        let mut granted = Vec::with_capacity(fixed.len());
        for id in fixed {
            match publisher.may_read(&id).await {
                Ok(true) => granted.push(id),
                Ok(false) => {}
                // Not granted: the step fails as for an asset the publisher lost.
                Err(error) => {
                    tracing::warn!(app = %loaded.app.id, asset = %id, %error, "could not check a fixed asset")
                }
            }
        }
        granted
    }

    /// The caller's run of the app, with its nodes. Only its runner sees it, and it stays
    /// readable after the app is unpublished (it is theirs).
    pub async fn get(
        &self,
        caller: &Caller,
        app_id: &str,
        run_id: &RunId,
    ) -> Result<(Run, Vec<RunNode>), AppRunError> {
        let user = signed_in(caller).map_err(AppError::from)?;
        let not_found = || AppRunError::RunNotFound(run_id.as_str().chars().take(MAX_RUN_ID).collect());
        if run_id.as_str().len() > MAX_RUN_ID || app_id.len() > MAX_RUN_ID {
            return Err(not_found());
        }
        let runs = self.state.executor().runs();
        let run = runs.run(run_id).await.map_err(SubmitError::from)?.ok_or_else(not_found)?;
        if run.user_id != user.id || run.room != run_room(app_id, &user.id) {
            return Err(not_found());
        }
        let nodes = runs.run_nodes(&run.id).await.map_err(SubmitError::from)?;
        Ok((run, nodes))
    }

    /// The form of the app this run belongs to, if the app is still published and open to the
    /// caller (its outputs' labels); `None` otherwise.
    pub async fn form_of(&self, caller: &Caller, app_id: &str) -> Option<LoadedApp> {
        AppService::new(self.state, None).open(caller, app_id).await.ok()
    }

    /// Stops the caller's run of the app, like cancelling any run.
    pub async fn cancel(&self, caller: &Caller, app_id: &str, run_id: &RunId) -> Result<Run, AppRunError> {
        let (run, _) = self.get(caller, app_id, run_id).await?;
        let executor = self.state.executor();
        let now = executor
            .runs()
            .request_cancel(&run.id)
            .await
            .map_err(SubmitError::from)?
            .ok_or_else(|| AppRunError::RunNotFound(run_id.to_string()))?;
        executor.cancel_local(&run.id);
        Ok(now)
    }
}
