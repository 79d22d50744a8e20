//! The writer: turns each report into an event of its workflow, with the body every delivery
//! of it will send (built once, so retries and replays send the same signed bytes).
//!
//! The body: `{"id", "type", "createdAt", "workflowId", "room", "data"}`, camelCase, `data`
//! per type (docs/webhooks.md).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use dojo_ids::EventId;
use dojo_records::webhooks::{NewEvent, WebhookStore};
use dojo_records::{RunNode, Workflow};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Sources, Trigger, WebhookSettings};
use crate::metrics::Metrics;
use crate::room_name::RoomName;

/// How long one report may take to write (a database that hangs must not stall the writer
/// for good; the report is then lost and logged).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Writer {
    pub store: Arc<dyn WebhookStore>,
    pub sources: Sources,
    pub settings: WebhookSettings,
    pub metrics: Arc<Metrics>,
    /// Wakes the delivery loop when deliveries were queued.
    pub wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Records(#[from] dojo_records::AccountError),
    #[error("timed out")]
    Timeout,
}

impl Writer {
    pub(super) async fn run(self, mut reports: mpsc::Receiver<Trigger>, shutdown: CancellationToken) {
        loop {
            let trigger = tokio::select! {
                trigger = reports.recv() => match trigger {
                    Some(trigger) => trigger,
                    None => return,
                },
                () = shutdown.cancelled() => break,
            };
            self.write_logged(trigger).await;
        }
        // What was reported before shutdown is stored (the queue is bounded, and so is each write).
        reports.close();
        while let Ok(trigger) = reports.try_recv() {
            self.write_logged(trigger).await;
        }
    }

    async fn write_logged(&self, trigger: Trigger) {
        let kind = kind(&trigger);
        let written = tokio::time::timeout(WRITE_TIMEOUT, self.write(trigger))
            .await
            .unwrap_or(Err(WriteError::Timeout));
        if let Err(error) = written {
            tracing::warn!(event = kind, %error, "could not record a webhook event");
        }
    }

    async fn write(&self, trigger: Trigger) -> Result<(), WriteError> {
        let Some((workflow, data)) = self.complete(&trigger).await? else { return Ok(()) };
        let id = event_id(&trigger);
        let created_at = dojo_executor::worker::now_millis();
        let body = json!({
            "id": id,
            "type": kind(&trigger),
            "createdAt": created_at,
            "workflowId": workflow.id,
            "room": workflow.room.as_str(),
            "data": data,
        });
        let event = NewEvent {
            id,
            workflow_id: workflow.id,
            event_type: kind(&trigger).to_owned(),
            payload: body.to_string(),
            created_at,
        };
        let Some((_, queued)) = self.store.append_event(event, self.settings.webhook_keep_events).await?
        else {
            return Ok(()); // recorded already, by this process or another
        };
        self.metrics.webhooks.events.inc();
        if queued > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The report's workflow and its `data`; `None` when no workflow claims its room (no feed)
    /// or what it names is gone.
    async fn complete(&self, trigger: &Trigger) -> Result<Option<(Workflow, Value)>, WriteError> {
        let accounts = &self.sources.accounts;
        Ok(match trigger {
            Trigger::RoomUpdated { room, state_vector } => {
                let vector = base64::engine::general_purpose::STANDARD.encode(state_vector);
                self.by_room(room).await?.map(|w| (w, json!({ "stateVector": vector })))
            }
            Trigger::UserEntered { room, user, users } | Trigger::UserLeft { room, user, users } => {
                let name = accounts.user(user).await?.and_then(|u| u.name);
                let data = json!({ "userId": user, "name": name, "activeUsers": users });
                self.by_room(room).await?.map(|w| (w, data))
            }
            Trigger::WorkflowShared { workflow_id, user, permission, change } => {
                let data = json!({ "userId": user, "permission": permission, "change": change });
                accounts.workflow(workflow_id).await?.map(|w| (w, data))
            }
            Trigger::RunFinished { run_id } => {
                let Some(run) = self.sources.runs.run(run_id).await? else { return Ok(None) };
                let Some(workflow) = self.by_room_text(&run.room).await? else { return Ok(None) };
                let nodes = self.sources.runs.run_nodes(run_id).await?;
                let outputs: serde_json::Map<String, Value> = nodes
                    .iter()
                    .filter_map(|n| parsed(&n.outputs).map(|o| (n.node_id.to_string(), self.with_urls(o))))
                    .collect();
                let states: serde_json::Map<String, Value> = nodes
                    .iter()
                    .map(|n| (n.node_id.to_string(), json!({ "status": n.state, "error": n.error })))
                    .collect();
                let data = json!({
                    "runId": run.id,
                    "status": run.status,
                    "charged": run.charged,
                    "estimate": run.estimate,
                    "error": run.error,
                    "startedAt": run.started_at,
                    "finishedAt": run.finished_at,
                    "nodes": states,
                    "outputs": outputs,
                });
                Some((workflow, data))
            }
            Trigger::NodeFinished { run_id, node_id } => {
                let Some(run) = self.sources.runs.run(run_id).await? else { return Ok(None) };
                let Some(workflow) = self.by_room_text(&run.room).await? else { return Ok(None) };
                let nodes = self.sources.runs.run_nodes(run_id).await?;
                let Some(node) = nodes.iter().find(|n| n.node_id == *node_id) else { return Ok(None) };
                Some((workflow, self.node_data(node)))
            }
        })
    }

    fn node_data(&self, node: &RunNode) -> Value {
        json!({
            "runId": node.run_id,
            "nodeId": node.node_id,
            "nodeType": node.node_type,
            "status": node.state,
            "charged": node.charged,
            "outputs": parsed(&node.outputs).map(|o| self.with_urls(o)),
            "error": node.error,
            "startedAt": node.started_at,
            "finishedAt": node.finished_at,
        })
    }

    async fn by_room(&self, room: &RoomName) -> Result<Option<Workflow>, WriteError> {
        Ok(self.sources.accounts.workflow_by_room(room).await?)
    }

    async fn by_room_text(&self, room: &str) -> Result<Option<Workflow>, WriteError> {
        match RoomName::parse(room) {
            Ok(room) => self.by_room(&room).await,
            Err(_) => Ok(None),
        }
    }

    /// Outputs with a `url` beside every asset (`{"kind": "asset", "asset": {"id"…}}`).
    fn with_urls(&self, outputs: Value) -> Value {
        add_urls(outputs, self.settings.webhook_public_url.as_deref().unwrap_or("").trim_end_matches('/'), 0)
    }
}

/// A run's or a node's end has one id, derived from the run, so that every process that reports
/// it (the run store's wrapper where it ran, the sweep of every server) records it once; other
/// events are new each time.
fn event_id(trigger: &Trigger) -> EventId {
    match trigger {
        Trigger::RunFinished { run_id } => EventId::from(format!("evt_{run_id}_finished")),
        Trigger::NodeFinished { run_id, node_id } => {
            EventId::from(format!("evt_{run_id}_{node_id}_finished"))
        }
        _ => EventId::generate(),
    }
}

fn kind(trigger: &Trigger) -> &'static str {
    match trigger {
        Trigger::RoomUpdated { .. } => "room.updated",
        Trigger::UserEntered { .. } => "user.entered",
        Trigger::UserLeft { .. } => "user.left",
        Trigger::RunFinished { .. } => "run.finished",
        Trigger::NodeFinished { .. } => "node.finished",
        Trigger::WorkflowShared { .. } => "workflow.shared",
    }
}

fn parsed(outputs: &Option<String>) -> Option<Value> {
    outputs.as_deref().and_then(|text| serde_json::from_str(text).ok())
}

/// Outputs nest a few levels at most; deeper values are left as they are.
const MAX_DEPTH: usize = 8;

fn add_urls(value: Value, base: &str, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return value;
    }
    match value {
        Value::Object(mut map) => {
            let asset_id = (map.get("kind").and_then(Value::as_str) == Some("asset"))
                .then(|| {
                    map.get("asset").and_then(|a| a.get("id")).and_then(Value::as_str).map(str::to_owned)
                })
                .flatten();
            if let Some(id) = asset_id {
                map.insert("url".to_owned(), Value::String(format!("{base}/assets/{id}")));
                return Value::Object(map);
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, add_urls(v, base, depth + 1))).collect())
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| add_urls(v, base, depth + 1)).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_get_a_url_beside_them() {
        let outputs = json!({"image": {"kind": "asset", "asset": {"id": "abc", "contentType": "image/png"}},
                             "text": {"kind": "text", "text": "hi"}});
        let with = add_urls(outputs, "https://dojo.example.com", 0);
        assert_eq!(with["image"]["url"], "https://dojo.example.com/assets/abc");
        assert_eq!(with["text"].get("url"), None);
        assert_eq!(add_urls(json!({"kind": "asset", "asset": {"id": "x"}}), "", 0)["url"], "/assets/x");
    }
}
