//! The workflow agent's records (issue 23): which rooms ran recently, and the latest
//! suggestions for each workflow, which its owner sees on the canvas until dismissed. The
//! statements are in `sql/suggestions.rs`.

use dojo_ids::WorkflowId;
use serde_json::Value;

use crate::AccountError;

/// Most rooms one review reads.
pub const MAX_REVIEW_ROOMS: u32 = 500;

/// A workflow's suggestions.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestions {
    pub workflow_id: WorkflowId,
    /// A JSON array of `{kind, node, nodeType, message, …}`.
    pub items: Value,
    pub summary: String,
    /// `model` or `template`.
    pub source: String,
    pub created_at: i64,
    pub dismissed_at: Option<i64>,
}

/// Suggestions and the reads that find what to review. One implementation per database kind.
#[async_trait::async_trait]
pub trait SuggestionStore: Send + Sync + 'static {
    /// Rooms with runs created since `since`, most recently run first, at most `limit`.
    async fn recently_run_rooms(&self, since: i64, limit: u32) -> Result<Vec<String>, AccountError>;

    /// Replaces the workflow's suggestions (and clears a dismissal when they changed).
    async fn put_suggestions(&self, suggestions: &Suggestions) -> Result<(), AccountError>;

    async fn suggestions(&self, workflow: &WorkflowId) -> Result<Option<Suggestions>, AccountError>;

    /// Marks them dismissed; `false` when the workflow has none.
    async fn dismiss_suggestions(&self, workflow: &WorkflowId, now: i64) -> Result<bool, AccountError>;
}
