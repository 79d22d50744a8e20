//! What a run reports while it runs: every node's state changes, in order per node, to a
//! [`RunObserver`] (the worker's writes them into the database and the room's document).

use async_trait::async_trait;
use dojo_ids::{NodeId, RunId};
use serde::Serialize;

use crate::preview::Preview;
use crate::value::Outputs;

/// A node's state, as the observer receives it. Names follow the issue (`succeeded`, not the
/// document schema's older `done`); the server maps them when writing `results`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum NodeState {
    Queued,
    /// `progress` is 0-100.
    Running {
        progress: u8,
    },
    /// Still running, with something to show of the work so far (not a state change: the
    /// node stays `running`, and the preview goes when it ends).
    Preview {
        preview: Preview,
    },
    Succeeded {
        outputs: Outputs,
    },
    Failed {
        error: String,
    },
    Cancelled,
    Cached {
        outputs: Outputs,
    },
    /// Not run because `because`, an ancestor, failed.
    Skipped {
        because: NodeId,
    },
}

impl NodeState {
    pub fn name(&self) -> &'static str {
        match self {
            NodeState::Queued => "queued",
            NodeState::Running { .. } => "running",
            NodeState::Preview { .. } => "preview",
            NodeState::Succeeded { .. } => "succeeded",
            NodeState::Failed { .. } => "failed",
            NodeState::Cancelled => "cancelled",
            NodeState::Cached { .. } => "cached",
            NodeState::Skipped { .. } => "skipped",
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(self, NodeState::Queued | NodeState::Running { .. } | NodeState::Preview { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    pub run_id: RunId,
    pub node_id: NodeId,
    #[serde(flatten)]
    pub state: NodeState,
}

/// Receives every state change of a run, in order per node.
#[async_trait]
pub trait RunObserver: Send + Sync {
    async fn on_event(&self, event: RunEvent);
}

/// An observer that keeps every event, in the order received.
#[derive(Debug, Default)]
pub struct RecordingObserver {
    events: std::sync::Mutex<Vec<RunEvent>>,
}

impl RecordingObserver {
    pub fn events(&self) -> Vec<RunEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The state names one node went through.
    pub fn states_of(&self, node_id: &str) -> Vec<&'static str> {
        self.events().iter().filter(|e| e.node_id == node_id).map(|e| e.state.name()).collect()
    }
}

#[async_trait]
impl RunObserver for RecordingObserver {
    async fn on_event(&self, event: RunEvent) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}
