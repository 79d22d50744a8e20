//! App mode: a workflow published as a form (issue 23). A record holds what a runner may see
//! (title, description, the chosen inputs and outputs) beside what they may not (the graph's
//! snapshot, taken at publish time), so the server decides what leaves. The rules of the form
//! are the server's (`services/app_form.rs`); the statements are in `sql/apps.rs`.

use dojo_ids::{UserId, WorkflowId};
use serde::Serialize;

use crate::AccountError;

/// Who may open and run an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppVisibility {
    /// Those who may read the workflow itself.
    Private,
    /// Any signed-in user who has the link (the app's id).
    Link,
    /// Members of the workflow's team.
    Team,
}

impl AppVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            AppVisibility::Private => "private",
            AppVisibility::Link => "link",
            AppVisibility::Team => "team",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "private" => Some(AppVisibility::Private),
            "link" => Some(AppVisibility::Link),
            "team" => Some(AppVisibility::Team),
            _ => None,
        }
    }
}

/// A published app, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub id: String,
    pub workflow_id: WorkflowId,
    pub published_by: UserId,
    pub title: String,
    pub description: String,
    pub visibility: AppVisibility,
    /// The chosen inputs and outputs, JSON (the server's `AppForm`).
    pub form: String,
    /// The canvas graph as published, JSON.
    pub graph: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What publishing stores (checked by the server before it gets here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApp {
    pub workflow_id: WorkflowId,
    pub published_by: UserId,
    pub title: String,
    pub description: String,
    pub visibility: AppVisibility,
    pub form: String,
    pub graph: String,
}

/// Published apps. One implementation per database kind.
#[async_trait::async_trait]
pub trait AppStore: Send + Sync + 'static {
    /// Publishes the workflow's app, or replaces it (same id, so links keep working).
    async fn publish_app(&self, app: NewApp) -> Result<App, AccountError>;

    async fn app(&self, id: &str) -> Result<Option<App>, AccountError>;

    async fn app_of_workflow(&self, workflow: &WorkflowId) -> Result<Option<App>, AccountError>;

    /// Unpublishes the workflow's app; `false` when it had none.
    async fn unpublish_app(&self, workflow: &WorkflowId) -> Result<bool, AccountError>;

    /// The apps `user` published, newest first, at most `limit` (their data export).
    async fn apps_published_by(&self, user: &UserId, limit: u32) -> Result<Vec<App>, AccountError>;
}
