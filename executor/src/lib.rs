//! Running Dojo canvases: the executor's core library.
//!
//! The pieces, in the order a run uses them (see `docs/executor.md`):
//!
//! - [`catalog`]: every node type (handles, parameters, provider, cost), from
//!   `executor/catalog.json`, compiled in and checked at load.
//! - [`availability`]: which node types this process can run (built-ins always, a provider's
//!   only with its key).
//! - [`validate()`]: per-node errors (ComfyUI's `node_errors`) or an [`ExecutionPlan`] for the
//!   whole graph or for chosen targets and their ancestors. It builds on [`plan()`], the
//!   topological levels.
//! - [`estimate`]: the credits a plan may cost, for the server's hold.
//! - [`Engine`]: runs a plan with bounded concurrency, per-node timeouts, cancellation, the
//!   [`cache`], and a [`RunObserver`] that sees every state change.
//! - [`preview`]: live previews of running provider nodes (a log's tail, an intermediate
//!   image), bounded in size and rate.
//! - [`builtins`]: the local tools (image operations with the `image` crate, a procedural
//!   `dev` image generator); providers plug in through [`NodeRunner`].
//! - [`assets`]: where images go ([`ObjectAssetStore`], content-addressed).
//! - [`providers`]: the runners for OpenAI, Replicate, fal.ai and Stability AI models, configured
//!   from the server's environment ([`ProviderConfig::from_env`], [`register_providers`]).
//! - [`team_keys`]: a run's team's provider keys, decrypted in the worker for the node that
//!   needs one ([`TeamKeys`]); they win over the server's.
//! - [`compose`]: the natural-language builder's planners: a deterministic parser over the
//!   catalog's names and synonyms, and an OpenAI planner ([`compose::llm`]) in front of it when
//!   OpenAI has a key, whose plans are checked against the catalog and fall back to the parser.
//!
//! - [`worker`]: executing accepted runs: the queue (in-process, or Redis Streams shared by
//!   `dojo-worker` processes), leases, resume, per-node states into the room's document. The
//!   runs API and the credit holds themselves are the server's (`dojo-server`,
//!   `dojo-records`).

pub mod asset_access;
pub mod assets;
pub mod assistant;
pub mod availability;
pub mod builtins;
pub mod cache;
pub mod catalog;
pub mod compose;
pub mod edit_rules;
pub mod engine;
pub mod events;
pub mod imaging;
pub mod node;
pub mod plan;
pub mod preview;
pub mod provider_env;
pub mod providers;
pub mod team_keys;
pub mod upload_check;
pub mod validate;
pub mod value;
pub mod worker;

pub use asset_access::{AnyAsset, AssetAccess, AssetAccessError};
pub use assets::{Asset, AssetError, AssetStore, ObjectAssetStore};
pub use availability::Availability;
pub use cache::{Cache, CacheKey, MemoryCache};
pub use catalog::{Catalog, CatalogError, LoadedCatalog, NodeType, ProviderName};
pub use engine::{
    Engine, EngineConfig, NodeContext, NodeError, NodeOutcome, NodeRunner, NodeState, ProgressSink,
    RecordingObserver, RunEvent, RunObserver, RunScope, RunSummary,
};
pub use plan::{EdgeEnd, Plan, PlanError, plan};
pub use preview::Preview;
pub use providers::{
    ApiKey, ProviderConfig, ProviderConfigError, ProviderSettings, RetryPolicy, register_providers,
};
pub use team_keys::{NoTeamKeys, TeamKeyError, TeamKeys};
pub use validate::{ExecutionPlan, GraphLimits, ValidationErrors, validate, validate_runnable};
pub use value::{AssetRef, OutputValue, Outputs};

/// Whether `ip` is an ordinary public unicast address: the rule provider downloads follow,
/// shared with the server's webhook deliveries (loopback, private, link-local, unspecified,
/// multicast, documentation and embedded-IPv4 forms of them are not public).
pub fn is_public_address(ip: std::net::IpAddr) -> bool {
    providers::public_address::is_public(ip)
}

/// The most a plan can cost, in credits: every node's catalog cost, as if none were cached.
/// The server holds this much before the run starts and captures [`RunSummary::charged`] after.
pub fn estimate(catalog: &LoadedCatalog, plan: &ExecutionPlan) -> u64 {
    plan.nodes.values().filter_map(|n| catalog.cost(&n.node_type)).fold(0u64, u64::saturating_add)
}
