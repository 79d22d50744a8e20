//! The contract between the engine and what executes nodes: a [`NodeRunner`] (the built-ins,
//! or one provider's models) gets a [`NodeContext`] and returns the node's outputs or a
//! [`NodeError`]. Both sides depend on this module, never on each other.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dojo_ids::RunId;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::assets::{AssetError, AssetStore};
use crate::catalog::{NodeType, ProviderName};
use crate::preview::Preview;
use crate::team_keys::ApiKey;
use crate::validate::PlannedNode;
use crate::value::{OutputValue, Outputs};

/// Why a node failed. The message is shown on the node, so it says what happened in words.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("input {0} has no value")]
    MissingInput(String),
    #[error("input {input}: {reason}")]
    BadInput { input: String, reason: String },
    #[error("parameter {param}: {reason}")]
    BadParam { param: String, reason: String },
    #[error(transparent)]
    Imaging(#[from] crate::imaging::ImagingError),
    #[error(transparent)]
    Asset(#[from] AssetError),
    #[error("node type {0} has no local implementation")]
    Unsupported(String),
    /// A provider's failure, worded for the user ("replicate: the prediction failed: …").
    #[error("{provider}: {message}")]
    Provider { provider: ProviderName, message: String },
    /// The runner saw the run's cancellation and stopped (after cancelling any remote job).
    #[error("cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
    /// A value the runner made could not be encoded (a bug, not the user's doing).
    #[error("internal error: {0}")]
    Encode(#[source] serde_json::Error),
}

/// How a runner reports progress.
#[async_trait]
pub trait ProgressSink: Send + Sync {
    /// `percent` is clamped to 0-100; repeated values are dropped.
    async fn report(&self, percent: u8);

    /// Shows `preview` on the running node (see [`crate::preview`]): what the provider shows
    /// of the work so far. Not a result: it goes when the node ends. Previews closer together
    /// than [`MIN_PREVIEW_INTERVAL`](crate::preview::MIN_PREVIEW_INTERVAL) may be dropped.
    /// The default drops them all, for sinks that show none.
    async fn preview(&self, preview: Preview) {
        let _ = preview;
    }
}

/// What a runner gets for one node.
pub struct NodeContext<'a> {
    pub run_id: &'a RunId,
    pub node: &'a PlannedNode,
    pub node_type: &'a NodeType,
    /// Wired inputs: input name → value produced upstream.
    pub inputs: &'a BTreeMap<String, OutputValue>,
    pub assets: &'a dyn AssetStore,
    pub progress: &'a dyn ProgressSink,
    /// Cancelled when the run is; a runner with remote work should cancel it then.
    pub cancel: &'a CancellationToken,
    /// The run's team's key for this node's provider, when it has one: a provider runner
    /// uses it instead of the server's (see [`crate::team_keys`]).
    pub api_key: Option<&'a ApiKey>,
}

impl NodeContext<'_> {
    fn param(&self, name: &str) -> Result<&Value, NodeError> {
        // Validation fills every catalog parameter; a miss means a runner asked for a name
        // its catalog entry does not declare.
        self.node
            .params
            .get(name)
            .ok_or_else(|| NodeError::BadParam { param: name.into(), reason: "not set".into() })
    }

    pub fn param_f64(&self, name: &str) -> Result<f64, NodeError> {
        self.param(name)?
            .as_f64()
            .ok_or_else(|| NodeError::BadParam { param: name.into(), reason: "not a number".into() })
    }

    pub fn param_i64(&self, name: &str) -> Result<i64, NodeError> {
        self.param(name)?
            .as_i64()
            .ok_or_else(|| NodeError::BadParam { param: name.into(), reason: "not an integer".into() })
    }

    pub fn param_u32(&self, name: &str) -> Result<u32, NodeError> {
        u32::try_from(self.param_i64(name)?)
            .map_err(|_| NodeError::BadParam { param: name.into(), reason: "out of range".into() })
    }

    pub fn param_str(&self, name: &str) -> Result<&str, NodeError> {
        self.param(name)?
            .as_str()
            .ok_or_else(|| NodeError::BadParam { param: name.into(), reason: "not a string".into() })
    }

    pub fn input(&self, name: &str) -> Option<&OutputValue> {
        self.inputs.get(name)
    }
}

/// Executes one kind of node: the built-ins, or one provider's models.
#[async_trait]
pub trait NodeRunner: Send + Sync {
    async fn run(&self, ctx: NodeContext<'_>) -> Result<Outputs, NodeError>;
}
