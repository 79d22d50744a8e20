//! Turns the engine's per-node events into stored state, money and document changes.
//!
//! Order per final event: the database first (the node's state, outputs and its credit hold
//! captured or released, in one transaction), then the document. A crash between the two
//! leaves the document behind, never the money; a resumed run reports the node again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use dojo_ids::{AssetId, NodeId, RunId, UserId};
use dojo_records::{AssetLink, AssetRecord, NodeSettlement, RunNodeState, RunStore};
use dojo_sync_protocol::canvas::{
    NodeResult, NodeStatus, SchemaError, clear_node_preview, push_gallery_entry, write_node_preview,
    write_node_result,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::document::RoomDocument;
use super::now_millis;
use crate::events::{NodeState, RunEvent, RunObserver};
use crate::preview::Preview;
use crate::value::{AssetRef, OutputValue, Outputs};

/// Attempts for a database write of a final state before giving up (the hold then expires and
/// is released by the sweeper: the user is not charged for work whose end was not recorded).
const SETTLE_ATTEMPTS: u32 = 3;

pub struct DocumentObserver {
    pub runs: Arc<dyn RunStore>,
    pub document: Arc<dyn RoomDocument>,
    pub run_id: RunId,
    pub user_id: UserId,
    pub room: String,
    /// Cancelled when this worker no longer owns the run (lease lost, process stopping): what
    /// the engine reports afterwards (its nodes "cancelled") is not the run's truth, and
    /// another worker will resume it.
    pub muted: CancellationToken,
    /// Per node, the assets its parameters name (an `image-input`'s upload). A node that
    /// outputs one of them passes it on; it did not produce it, so the run's user and room
    /// get no link to it (a link would outlive their access to the asset's own rooms).
    pub read_by_params: BTreeMap<NodeId, BTreeSet<AssetId>>,
    /// For a member of a batch: what its gallery entries carry besides the outputs.
    pub gallery: Option<GalleryTag>,
    /// Preview images already linked to the run's user and room (a preview repeats its image
    /// until another replaces it; linking once is enough).
    pub linked_previews: std::sync::Mutex<BTreeSet<AssetId>>,
}

/// A batch member's identity in the node galleries (docs/document-schema.md).
#[derive(Debug, Clone)]
pub struct GalleryTag {
    pub batch_id: String,
    /// Its place in the batch, 0-based.
    pub index: i64,
    /// Its parameter set (node id → parameter → value), or `null` when it was too large to
    /// repeat in every entry.
    pub params: Value,
}

/// Largest parameter set (JSON bytes) copied into a gallery entry: fifty entries per node
/// must stay small in the document.
pub const MAX_GALLERY_PARAMS: usize = 2048;

impl GalleryTag {
    /// The tag of a run accepted in a batch; `None` for a run of its own.
    pub fn of(run: &dojo_records::Run) -> Option<Self> {
        let batch_id = run.batch_id.as_ref()?.to_string();
        let params = run
            .batch_params
            .as_deref()
            .filter(|p| p.len() <= MAX_GALLERY_PARAMS)
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        Some(Self { batch_id, index: run.batch_index.unwrap_or(0), params })
    }
}

#[async_trait]
impl RunObserver for DocumentObserver {
    async fn on_event(&self, event: RunEvent) {
        if self.muted.is_cancelled() {
            return;
        }
        let node = &event.node_id;
        let (status, progress, outputs, error, settlement) = match &event.state {
            NodeState::Queued => (NodeStatus::Queued, 0.0, None, None, None),
            NodeState::Running { progress } => {
                if *progress == 0
                    && let Err(error) = self.runs.mark_node(&self.run_id, node, RunNodeState::Running).await
                {
                    tracing::warn!(run = %self.run_id, %node, %error, "could not record a node start");
                }
                (NodeStatus::Running, f64::from(*progress), None, None, None)
            }
            NodeState::Preview { preview } => {
                self.show_preview(node, preview).await;
                return;
            }
            NodeState::Succeeded { outputs } => {
                self.record_assets(node, outputs).await;
                (NodeStatus::Succeeded, 100.0, Some(outputs), None, Some(true))
            }
            NodeState::Cached { outputs } => {
                // Possibly produced for another room of the same user: the people of this one
                // may download it now too.
                self.record_assets(node, outputs).await;
                (NodeStatus::Cached, 100.0, Some(outputs), None, Some(false))
            }
            NodeState::Failed { error } => (NodeStatus::Failed, 0.0, None, Some(error.clone()), Some(false)),
            NodeState::Cancelled => (NodeStatus::Cancelled, 0.0, None, None, Some(false)),
            NodeState::Skipped { because } => (
                NodeStatus::Skipped,
                0.0,
                None,
                Some(format!("not run: {because}, which it depends on, failed")),
                Some(false),
            ),
        };
        if let Some(capture) = settlement {
            self.settle(node, &event.state, outputs, error.clone(), capture).await;
        }
        let result = NodeResult {
            status,
            progress,
            outputs: outputs.map(document_outputs).unwrap_or_default(),
            error,
            errors: Vec::new(),
            run_id: Some(self.run_id.to_string()),
            updated_at: now_millis().max(0).unsigned_abs(),
        };
        // A preview lives only while the node runs: whatever state comes next removes it, in
        // the same update (`queued` too: a preview left by a worker that died goes when the
        // run is resumed).
        let running = status == NodeStatus::Running;
        let edit = |txn: &mut yrs::TransactionMut<'_>| -> Result<(), SchemaError> {
            write_node_result(txn, node.as_str(), &result)?;
            if !running {
                clear_node_preview(txn, node.as_str());
            }
            Ok(())
        };
        if let Err(error) = self.document.write(&edit).await {
            tracing::warn!(run = %self.run_id, %node, %error, "could not write a node state into the room");
        }
        // A batch member's new output also lands in the node's gallery. Cached outputs do not:
        // they are what the node produced before, unchanged by the member's parameter set.
        if let (Some(tag), NodeState::Succeeded { outputs }) = (&self.gallery, &event.state) {
            let entry = json!({
                "runId": self.run_id.to_string(),
                "batchId": tag.batch_id,
                "index": tag.index,
                "params": tag.params,
                "outputs": document_outputs(outputs),
                "at": result.updated_at,
            });
            if let Err(error) =
                self.document.write(&|txn| push_gallery_entry(txn, node.as_str(), &entry)).await
            {
                tracing::warn!(run = %self.run_id, %node, %error, "could not add an output to the node's gallery");
            }
        }
    }
}

impl DocumentObserver {
    async fn settle(
        &self,
        node: &NodeId,
        state: &NodeState,
        outputs: Option<&Outputs>,
        error: Option<String>,
        capture: bool,
    ) {
        let settlement = NodeSettlement {
            state: run_node_state(state),
            outputs: outputs.and_then(|o| serde_json::to_string(o).ok()),
            error,
            capture,
        };
        for attempt in 1..=SETTLE_ATTEMPTS {
            match self.runs.settle_node(&self.run_id, node, settlement.clone()).await {
                Ok(_) => return,
                Err(error) if attempt == SETTLE_ATTEMPTS => {
                    tracing::error!(run = %self.run_id, %node, %error, "could not record a node's end; its hold will expire");
                }
                Err(error) => {
                    tracing::warn!(run = %self.run_id, %node, %error, attempt, "recording a node's end failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    /// Writes a running node's preview into the document, its image linked first to this room
    /// and user (so that whoever sees it may download it). Only the preview: the node's
    /// outputs, settlement and cache never see its image.
    async fn show_preview(&self, node: &NodeId, preview: &Preview) {
        if let Some(image) = preview.image() {
            let new = self.linked_previews.lock().unwrap_or_else(|p| p.into_inner()).insert(image.id.clone());
            if new {
                self.link_asset(node, image).await;
            }
        }
        let value = preview_json(preview, now_millis());
        let edit =
            |txn: &mut yrs::TransactionMut<'_>| write_node_preview(txn, node.as_str(), &value).map(drop);
        if let Err(error) = self.document.write(&edit).await {
            tracing::debug!(run = %self.run_id, %node, %error, "could not write a preview into the room");
        }
    }

    /// Links the node's outputs to this room and user, so the people of the room may download
    /// them.
    async fn record_assets(&self, node: &NodeId, outputs: &Outputs) {
        let passed_on = self.read_by_params.get(node);
        for value in outputs.values() {
            let Some(asset) = value.as_asset() else { continue };
            if passed_on.is_some_and(|ids| ids.contains(&asset.id)) {
                continue;
            }
            self.link_asset(node, asset).await;
        }
    }

    /// Links an asset the node produced to this room and user.
    async fn link_asset(&self, node: &NodeId, asset: &AssetRef) {
        let record = AssetRecord {
            id: asset.id.clone(),
            content_type: asset.content_type.clone(),
            size: i64::try_from(asset.size).unwrap_or(i64::MAX),
            created_at: now_millis(),
        };
        let link = AssetLink {
            owner_id: self.user_id.clone(),
            room: Some(self.room.clone()),
            run_id: Some(self.run_id.clone()),
            node_id: Some(node.clone()),
        };
        if let Err(error) = self.runs.record_asset(&record, &link).await {
            tracing::warn!(run = %self.run_id, %node, %error, "could not record an asset");
        }
    }
}

/// A preview as the document holds it (`results[node].preview`): its text, its image shaped
/// like an asset output (our `/assets/…` URL, never the provider's), and when it was taken.
pub fn preview_json(preview: &Preview, at: i64) -> Value {
    let mut fields = serde_json::Map::new();
    if let Some(text) = preview.text() {
        fields.insert("text".into(), Value::String(text.to_owned()));
    }
    if let Some(image) = preview.image() {
        let image = OutputValue::Asset { asset: image.clone() };
        let outputs = Outputs::from([(String::new(), image)]);
        if let Some(value) = document_outputs(&outputs).remove("") {
            fields.insert("image".into(), value);
        }
    }
    fields.insert("at".into(), json!(at.max(0)));
    Value::Object(fields)
}

/// Outputs as the document holds them: each value as the executor describes it, assets with
/// the URL to fetch them from.
pub fn document_outputs(outputs: &Outputs) -> BTreeMap<String, Value> {
    outputs
        .iter()
        .map(|(name, value)| {
            let mut json = serde_json::to_value(value).unwrap_or(Value::Null);
            if let (OutputValue::Asset { asset }, Value::Object(map)) = (value, &mut json) {
                map.insert("url".into(), Value::String(format!("/assets/{}", asset.id)));
            }
            (name.clone(), json)
        })
        .collect()
}

/// The stored state of an engine state: the same names, without what each carries.
fn run_node_state(state: &NodeState) -> RunNodeState {
    match state {
        NodeState::Queued => RunNodeState::Queued,
        NodeState::Running { .. } | NodeState::Preview { .. } => RunNodeState::Running,
        NodeState::Succeeded { .. } => RunNodeState::Succeeded,
        NodeState::Failed { .. } => RunNodeState::Failed,
        NodeState::Cancelled => RunNodeState::Cancelled,
        NodeState::Cached { .. } => RunNodeState::Cached,
        NodeState::Skipped { .. } => RunNodeState::Skipped,
    }
}
