//! Running a validated plan.
//!
//! The engine walks an [`ExecutionPlan`] in dependency order, starting every node whose inputs
//! are ready (at most `max_concurrency` at once), so independent branches run side by side.
//! Each node goes through a [`NodeRunner`]: the built-in one for local tools, one per provider
//! for AI models (none yet). Every state change goes to a [`RunObserver`], which is how the
//! server will write `results` into the room document.
//!
//! Rules, from ComfyUI users' experience:
//! - A failed node skips its descendants only; independent branches keep running, so paid work
//!   elsewhere in the graph is not thrown away.
//! - A node whose cache key hits is `cached` with the earlier outputs and is not run.
//! - Cancellation is per run (a token), not a global interrupt.
//!
//! All node futures are polled by the task that calls [`Engine::run`]; runners therefore must
//! not block the thread (the built-ins move pixel work to `spawn_blocking`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dojo_ids::{NodeId, RunId};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::asset_access::{AnyAsset, AssetAccess, assets_read};
use crate::assets::{AssetError, AssetStore};
use crate::cache::{Cache, CacheKey, Upstream, node_key, outputs_hash};
use crate::catalog::{LoadedCatalog, NodeType, ProviderName};
use crate::preview::{MIN_PREVIEW_INTERVAL, Preview};
use crate::team_keys::{NoTeamKeys, TeamKeys};
use crate::validate::{ExecutionPlan, PlannedNode};
use crate::value::{OutputValue, Outputs};

pub use crate::events::{NodeState, RecordingObserver, RunEvent, RunObserver};
pub use crate::node::{NodeContext, NodeError, NodeRunner, ProgressSink};

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Nodes of one run executing at once (clamped to 1..=64).
    pub max_concurrency: usize,
    /// For nodes whose catalog entry sets no `timeout_secs`.
    pub default_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { max_concurrency: 4, default_timeout: Duration::from_secs(120) }
    }
}

/// How one node ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum NodeOutcome {
    Succeeded { outputs: Outputs },
    Cached { outputs: Outputs },
    Failed { error: String },
    Skipped { because: NodeId },
    Cancelled,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: RunId,
    pub nodes: BTreeMap<NodeId, NodeOutcome>,
    /// Credits the nodes that actually ran successfully cost (cached nodes are free): what the
    /// server captures from the run's hold.
    pub charged: u64,
}

impl RunSummary {
    pub fn succeeded(&self) -> bool {
        self.nodes.values().all(|o| matches!(o, NodeOutcome::Succeeded { .. } | NodeOutcome::Cached { .. }))
    }

    pub fn outputs(&self, node_id: &str) -> Option<&Outputs> {
        match self.nodes.get(node_id)? {
            NodeOutcome::Succeeded { outputs } | NodeOutcome::Cached { outputs } => Some(outputs),
            _ => None,
        }
    }
}

/// Who a run runs for, as the engine needs it.
#[derive(Clone, Copy)]
pub struct RunScope<'a> {
    /// Cache entries are looked up and stored here (see [`Cache`]); the server uses the run's
    /// user, so one user never gets another's results.
    pub cache: &'a str,
    /// Which assets the run may read (see [`crate::asset_access`]).
    pub assets: &'a dyn AssetAccess,
    /// The provider keys of the run's team, which win over the server's (see
    /// [`crate::team_keys`]).
    pub keys: &'a dyn TeamKeys,
}

impl RunScope<'static> {
    /// The empty cache scope, every asset readable, the server's keys: for runs with no user.
    pub fn unrestricted() -> Self {
        Self { cache: "", assets: &AnyAsset, keys: &NoTeamKeys }
    }
}

pub struct Engine {
    catalog: Arc<LoadedCatalog>,
    builtin: Arc<dyn NodeRunner>,
    providers: BTreeMap<ProviderName, Arc<dyn NodeRunner>>,
    /// Providers whose runner has no server key: their nodes run only with a team's key, and
    /// the server's [`availability`](Self::availability) leaves them out.
    team_key_only: BTreeSet<ProviderName>,
    assets: Arc<dyn AssetStore>,
    cache: Arc<dyn Cache>,
    config: EngineConfig,
}

/// What a node future reports back to the scheduler.
enum Finish {
    Ran(Outputs),
    Cached(Outputs),
    Failed(String),
    Cancelled,
    /// Finished in an earlier attempt of the run (see [`Engine::resume`]).
    Earlier(NodeOutcome),
}

struct NodeProgress<'a> {
    observer: &'a dyn RunObserver,
    run_id: &'a RunId,
    node_id: &'a NodeId,
    last: AtomicU8,
    /// When the last preview went out: the rate bound holds here whatever a runner does (with
    /// a little slack: the runner's own gate, which read the clock just before, is the exact
    /// one, and a preview it let through must not be lost to the microseconds in between).
    last_preview: std::sync::Mutex<Option<tokio::time::Instant>>,
}

#[async_trait]
impl ProgressSink for NodeProgress<'_> {
    async fn report(&self, percent: u8) {
        let percent = percent.min(100);
        if self.last.swap(percent, Ordering::Relaxed) != percent {
            self.observer
                .on_event(RunEvent {
                    run_id: self.run_id.clone(),
                    node_id: self.node_id.clone(),
                    state: NodeState::Running { progress: percent },
                })
                .await;
        }
    }

    async fn preview(&self, preview: Preview) {
        if preview.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        {
            let mut last = self.last_preview.lock().unwrap_or_else(|p| p.into_inner());
            let slack = MIN_PREVIEW_INTERVAL / 10;
            if last.is_some_and(|at| now.saturating_duration_since(at) + slack < MIN_PREVIEW_INTERVAL) {
                tracing::debug!(run = %self.run_id, node = %self.node_id, "preview too soon after the last; dropped");
                return;
            }
            *last = Some(now);
        }
        self.observer
            .on_event(RunEvent {
                run_id: self.run_id.clone(),
                node_id: self.node_id.clone(),
                state: NodeState::Preview { preview },
            })
            .await;
    }
}

impl Engine {
    /// An engine with the built-in runner and no providers.
    pub fn new(catalog: Arc<LoadedCatalog>, assets: Arc<dyn AssetStore>, cache: Arc<dyn Cache>) -> Self {
        Self {
            catalog,
            builtin: Arc::new(crate::builtins::BuiltinRunner),
            providers: BTreeMap::new(),
            team_key_only: BTreeSet::new(),
            assets,
            cache,
            config: EngineConfig::default(),
        }
    }

    pub fn with_config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers the runner for one provider's models.
    pub fn with_provider(mut self, provider: ProviderName, runner: Arc<dyn NodeRunner>) -> Self {
        self.team_key_only.remove(&provider);
        self.providers.insert(provider, runner);
        self
    }

    /// Registers the runner of a provider the server has no key for: it runs the nodes of
    /// runs whose team has a key for it, and nothing else.
    pub fn with_team_key_provider(mut self, provider: ProviderName, runner: Arc<dyn NodeRunner>) -> Self {
        self.team_key_only.insert(provider);
        self.providers.insert(provider, runner);
        self
    }

    /// Whether nodes of `provider` could run with a team's key (a runner exists for it).
    pub fn runs_with_team_key(&self, provider: ProviderName) -> bool {
        self.providers.contains_key(&provider)
    }

    pub fn catalog(&self) -> &LoadedCatalog {
        &self.catalog
    }

    /// The node types this engine can run: the built-ins, and those of providers with a runner.
    pub fn availability(&self) -> crate::availability::Availability {
        crate::availability::Availability::with_providers(
            self.providers.keys().copied().filter(|p| !self.team_key_only.contains(p)),
        )
    }

    /// Runs `plan` to the end (or until `cancel`), reporting to `observer`.
    pub async fn run(
        &self,
        run_id: &RunId,
        plan: &ExecutionPlan,
        observer: &dyn RunObserver,
        cancel: &CancellationToken,
    ) -> RunSummary {
        self.resume(run_id, RunScope::unrestricted(), plan, &BTreeMap::new(), observer, cancel).await
    }

    /// Like [`run`](Self::run), for a run an earlier attempt (a worker that died) already
    /// started: nodes that `finished` says succeeded, were cached or failed keep that outcome
    /// and are not run again (their outputs feed their dependents as before); they get no
    /// `queued` event, only their final state once more, so an observer that missed it
    /// catches up. Every other node runs as usual. Cache entries are looked up and stored in
    /// `scope.cache` (see [`Cache`]); [`run`](Self::run) uses the empty scope. Before a node
    /// runs or is served from the cache, every asset it would read must be readable under
    /// `scope.assets`, else it fails as if the asset did not exist (so do its dependents,
    /// which covers outputs an earlier attempt produced from an asset no longer readable).
    pub async fn resume(
        &self,
        run_id: &RunId,
        scope: RunScope<'_>,
        plan: &ExecutionPlan,
        finished: &BTreeMap<NodeId, NodeOutcome>,
        observer: &dyn RunObserver,
        cancel: &CancellationToken,
    ) -> RunSummary {
        let prior = |id: &NodeId| match finished.get(id) {
            Some(
                outcome @ (NodeOutcome::Succeeded { .. }
                | NodeOutcome::Cached { .. }
                | NodeOutcome::Failed { .. }),
            ) => Some(outcome.clone()),
            _ => None,
        };
        let order: Vec<&PlannedNode> = plan.order().collect();
        let mut dependents: BTreeMap<&NodeId, BTreeSet<&NodeId>> = BTreeMap::new();
        let mut unmet: BTreeMap<&NodeId, usize> = BTreeMap::new();
        for node in &order {
            let sources: BTreeSet<&NodeId> = node.inputs.values().map(|l| &l.source).collect();
            unmet.insert(&node.id, sources.len());
            for source in sources {
                dependents.entry(source).or_default().insert(&node.id);
            }
        }
        let emit = |node_id: &NodeId, state: NodeState| {
            observer.on_event(RunEvent { run_id: run_id.clone(), node_id: node_id.clone(), state })
        };
        for node in order.iter().filter(|n| prior(&n.id).is_none()) {
            emit(&node.id, NodeState::Queued).await;
        }

        let mut ready: VecDeque<&PlannedNode> = order.iter().copied().filter(|n| unmet[&n.id] == 0).collect();
        let mut outcomes: BTreeMap<NodeId, NodeOutcome> = BTreeMap::new();
        let mut identity: BTreeMap<&NodeId, Upstream> = BTreeMap::new();
        let mut keys: BTreeMap<&NodeId, CacheKey> = BTreeMap::new();
        let mut in_flight = FuturesUnordered::new();
        let max = self.config.max_concurrency.clamp(1, 64);

        loop {
            while !cancel.is_cancelled() && in_flight.len() < max {
                let Some(node) = ready.pop_front() else { break };
                let inputs = self.gather_inputs(node, &outcomes);
                let key = self.key_for(node, &identity);
                if let Some(key) = &key {
                    keys.insert(&node.id, key.clone());
                }
                let node_cancel = cancel.child_token();
                let earlier = prior(&node.id);
                in_flight.push(async move {
                    let finish = match (earlier, inputs) {
                        (Some(outcome), _) => Finish::Earlier(outcome),
                        // A runner that panics fails its node, not the whole run (and not the
                        // server task driving it).
                        (None, Ok(inputs)) => AssertUnwindSafe(self.execute(
                            run_id,
                            scope,
                            node,
                            &inputs,
                            key,
                            observer,
                            node_cancel,
                        ))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| {
                            Finish::Failed("internal error: the node's runner panicked".into())
                        }),
                        (None, Err(e)) => Finish::Failed(e.to_string()),
                    };
                    (node, finish)
                });
            }
            let Some((node, finish)) = in_flight.next().await else { break };
            let id = &node.id;
            let (outcome, state, done_outputs) = match finish {
                Finish::Ran(outputs) => (
                    NodeOutcome::Succeeded { outputs: outputs.clone() },
                    NodeState::Succeeded { outputs: outputs.clone() },
                    Some(outputs),
                ),
                Finish::Cached(outputs) => (
                    NodeOutcome::Cached { outputs: outputs.clone() },
                    NodeState::Cached { outputs: outputs.clone() },
                    Some(outputs),
                ),
                Finish::Failed(error) => {
                    (NodeOutcome::Failed { error: error.clone() }, NodeState::Failed { error }, None)
                }
                Finish::Cancelled => (NodeOutcome::Cancelled, NodeState::Cancelled, None),
                Finish::Earlier(outcome) => {
                    let (state, outputs) = match &outcome {
                        NodeOutcome::Succeeded { outputs } => {
                            (NodeState::Succeeded { outputs: outputs.clone() }, Some(outputs.clone()))
                        }
                        NodeOutcome::Cached { outputs } => {
                            (NodeState::Cached { outputs: outputs.clone() }, Some(outputs.clone()))
                        }
                        NodeOutcome::Failed { error } => (NodeState::Failed { error: error.clone() }, None),
                        NodeOutcome::Skipped { because } => {
                            (NodeState::Skipped { because: because.clone() }, None)
                        }
                        NodeOutcome::Cancelled => (NodeState::Cancelled, None),
                    };
                    (outcome, state, outputs)
                }
            };
            emit(id, state).await;
            let failed = matches!(outcome, NodeOutcome::Failed { .. });
            outcomes.insert(id.clone(), outcome);
            if let Some(outputs) = done_outputs {
                identity.insert(
                    id,
                    match keys.get(id) {
                        Some(key) => Upstream::Key(key.clone()),
                        None => Upstream::Produced(outputs_hash(&outputs)),
                    },
                );
                for &dependent in dependents.get(id).into_iter().flatten() {
                    if let Some(count) = unmet.get_mut(dependent) {
                        *count = count.saturating_sub(1);
                        if *count == 0
                            && !outcomes.contains_key(dependent)
                            && let Some(next) = plan.nodes.get(dependent)
                        {
                            ready.push_back(next);
                        }
                    }
                }
            } else if failed {
                // Everything downstream of the failure, in plan order; other branches go on.
                let mut stack = vec![id];
                let mut downstream = BTreeSet::new();
                while let Some(n) = stack.pop() {
                    for &d in dependents.get(n).into_iter().flatten() {
                        if downstream.insert(d) {
                            stack.push(d);
                        }
                    }
                }
                for node in order.iter().filter(|n| downstream.contains(&n.id)) {
                    if !outcomes.contains_key(&node.id) {
                        outcomes.insert(node.id.clone(), NodeOutcome::Skipped { because: id.clone() });
                        emit(&node.id, NodeState::Skipped { because: id.clone() }).await;
                    }
                }
            }
        }

        // Whatever did not finish was stopped by the cancellation (or, if the plan was not
        // closed under dependencies, could never start: reported the same way rather than
        // left hanging in `queued`).
        for node in &order {
            if !outcomes.contains_key(&node.id) {
                outcomes.insert(node.id.clone(), NodeOutcome::Cancelled);
                emit(&node.id, NodeState::Cancelled).await;
            }
        }
        let charged = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, NodeOutcome::Succeeded { .. }))
            .filter_map(|(id, _)| plan.nodes.get(id).and_then(|n| self.catalog.cost(&n.node_type)))
            .fold(0u64, u64::saturating_add);
        RunSummary { run_id: run_id.clone(), nodes: outcomes, charged }
    }

    fn gather_inputs(
        &self,
        node: &PlannedNode,
        outcomes: &BTreeMap<NodeId, NodeOutcome>,
    ) -> Result<BTreeMap<String, OutputValue>, NodeError> {
        let mut inputs = BTreeMap::new();
        for (name, link) in &node.inputs {
            let value = match outcomes.get(&link.source) {
                Some(NodeOutcome::Succeeded { outputs } | NodeOutcome::Cached { outputs }) => {
                    outputs.get(&link.output).cloned()
                }
                _ => None,
            };
            inputs.insert(name.clone(), value.ok_or_else(|| NodeError::MissingInput(name.clone()))?);
        }
        Ok(inputs)
    }

    /// The cache key of a deterministic node, from its type, parameters and what feeds it.
    fn key_for(&self, node: &PlannedNode, identity: &BTreeMap<&NodeId, Upstream>) -> Option<CacheKey> {
        let node_type = self.catalog.get(&node.node_type)?;
        if !node_type.deterministic {
            return None;
        }
        let mut inputs = BTreeMap::new();
        for (name, link) in &node.inputs {
            inputs.insert(name.clone(), (link.output.clone(), identity.get(&link.source)?.clone()));
        }
        Some(node_key(self.catalog.version(), node_type, &node.params, &inputs))
    }

    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    async fn execute(
        &self,
        run_id: &RunId,
        scope: RunScope<'_>,
        node: &PlannedNode,
        inputs: &BTreeMap<String, OutputValue>,
        key: Option<CacheKey>,
        observer: &dyn RunObserver,
        cancel: CancellationToken,
    ) -> Finish {
        let Some(node_type) = self.catalog.get(&node.node_type) else {
            return Finish::Failed(format!("node type {} is not in the catalog", node.node_type));
        };
        // Before the cache too: a cached output derived from an asset is that asset's content.
        if let Err(error) = authorize_assets(scope.assets, node_type, node, inputs).await {
            return Finish::Failed(error.to_string());
        }
        if let Some(key) = &key
            && let Some(outputs) = self.cache.get(scope.cache, key).await
            && check_outputs(node_type, &outputs).is_ok()
        {
            return Finish::Cached(outputs);
        }
        let runner = match &node_type.provider {
            None => &self.builtin,
            Some(p) => match self.providers.get(&p.name) {
                Some(runner) => runner,
                None => {
                    return Finish::Failed(format!("provider {} is not configured on this server", p.name));
                }
            },
        };
        // The team's key, decrypted now for this node only, and dropped (wiped) when it ends.
        let team_key = match &node_type.provider {
            None => None,
            Some(p) => match scope.keys.key(p.name).await {
                Ok(key) => key,
                Err(error) => return Finish::Failed(format!("{}: the team's key: {error}", p.name)),
            },
        };
        if let Some(p) = &node_type.provider
            && team_key.is_none()
            && self.team_key_only.contains(&p.name)
        {
            return Finish::Failed(format!(
                "provider {} has no key on this server, and the run's team has none either",
                p.name
            ));
        }
        let progress = NodeProgress {
            observer,
            run_id,
            node_id: &node.id,
            last: AtomicU8::new(0),
            last_preview: std::sync::Mutex::new(None),
        };
        observer
            .on_event(RunEvent {
                run_id: run_id.clone(),
                node_id: node.id.clone(),
                state: NodeState::Running { progress: 0 },
            })
            .await;
        let timeout = node_type.timeout_secs.map_or(self.config.default_timeout, Duration::from_secs);
        let ctx = NodeContext {
            run_id,
            node,
            node_type,
            inputs,
            assets: self.assets.as_ref(),
            progress: &progress,
            cancel: &cancel,
            api_key: team_key.as_ref(),
        };
        let result = tokio::select! {
            // Checked first, so a cancelled run does not report a success that raced it.
            biased;
            () = cancel.cancelled() => return Finish::Cancelled,
            result = tokio::time::timeout(timeout, runner.run(ctx)) => result,
        };
        match result {
            Err(_) => Finish::Failed(format!("timed out after {:.1} s", timeout.as_secs_f64())),
            Ok(Err(NodeError::Cancelled)) => Finish::Cancelled,
            Ok(Err(e)) => Finish::Failed(e.to_string()),
            Ok(Ok(outputs)) => match check_outputs(node_type, &outputs) {
                Err(e) => Finish::Failed(e),
                Ok(()) => {
                    if let Some(key) = &key {
                        self.cache.put(scope.cache, key, &outputs).await;
                    }
                    Finish::Ran(outputs)
                }
            },
        }
    }
}

/// Every asset the node would read must be readable by the run. A forbidden asset reads as a
/// missing one: the message is the asset store's own "asset … not found".
async fn authorize_assets(
    access: &dyn AssetAccess,
    node_type: &NodeType,
    node: &PlannedNode,
    inputs: &BTreeMap<String, OutputValue>,
) -> Result<(), NodeError> {
    for id in assets_read(node_type, &node.params, inputs) {
        match access.may_read(&id).await {
            Ok(true) => {}
            Ok(false) => return Err(NodeError::Asset(AssetError::NotFound(id))),
            Err(error) => {
                tracing::warn!(asset = %id, %error, "could not check access to an asset; refusing it");
                return Err(NodeError::Internal("could not check access to an asset".into()));
            }
        }
    }
    Ok(())
}

/// A runner must produce every declared output, each of its declared type, and nothing else:
/// downstream nodes and the document rely on it.
fn check_outputs(node_type: &NodeType, outputs: &Outputs) -> Result<(), String> {
    for port in &node_type.outputs {
        match outputs.get(&port.name) {
            None => return Err(format!("internal error: output {} was not produced", port.name)),
            Some(v) if !v.fits(port.port_type) => {
                return Err(format!(
                    "internal error: output {} is not of type {}",
                    port.name, port.port_type
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = outputs.keys().find(|k| node_type.output(k).is_none()) {
        return Err(format!("internal error: unexpected output {extra}"));
    }
    Ok(())
}
