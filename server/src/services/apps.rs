//! App mode (docs/apps.md): publishing a workflow as a form, unpublishing it, and who may open
//! a published app. Running one is `app_runs.rs`; the form's rules are `app_form.rs`.
//!
//! Publishing takes a snapshot of the room's graph, so canvas edits after it change nothing a
//! runner sees or runs until the owner publishes again. Who may publish follows the workflow's
//! record: its owner, or a team owner or admin of a team's workflow (`WorkflowService::owned`).

use std::net::IpAddr;

use dojo_ids::WorkflowId;
use dojo_records::{AccountError, App, AppVisibility, NewApp, Workflow};
use dojo_sync_protocol::canvas::{CanvasGraph, SchemaError, read_graph};
use serde_json::json;

use super::app_form::{AppForm, FieldError, FormRequest, check_form, check_text};
use super::workflows::{WorkflowError, WorkflowService};
use super::{SignInRequired, access, signed_in};
use crate::caller::{AuthError, Caller};
use crate::execution::room_writer::RoomWriter;
use crate::room_registry::OpenRefused;
use crate::state::AppState;

/// Longer ids name no app: refused before the database is asked.
const MAX_APP_ID: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    SignIn(#[from] SignInRequired),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// No such app, or the caller may not open it (which must read the same).
    #[error("no app {0:?}")]
    NotFound(String),
    /// The workflow has no app published.
    #[error("this workflow has no app published")]
    NotPublished,
    /// The publish request breaks a rule of the form; names the field.
    #[error("{0}")]
    Invalid(FieldError),
    #[error(transparent)]
    Open(#[from] OpenRefused),
    #[error("the room is not available: {0}")]
    RoomUnavailable(String),
    #[error("the canvas does not follow the document schema: {0}")]
    NotSchema(#[source] SchemaError),
    #[error("the published app is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Accounts(#[from] AccountError),
}

/// What the publisher sends.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    pub form: FormRequest,
    /// `None`: `link`.
    pub visibility: Option<String>,
}

/// A published app, read back: the record with its form and graph decoded.
#[derive(Debug, Clone)]
pub struct LoadedApp {
    pub app: App,
    pub form: AppForm,
    pub graph: CanvasGraph,
    pub workflow: Workflow,
}

pub struct AppService<'a> {
    state: &'a AppState,
    addr: Option<IpAddr>,
}

impl<'a> AppService<'a> {
    pub fn new(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    /// Publishes the workflow's app (or republishes it, keeping its id): the form checked
    /// against a snapshot of the room's graph taken now. Owner, or team owner or admin.
    pub async fn publish(
        &self,
        caller: &Caller,
        workflow: &WorkflowId,
        request: PublishRequest,
    ) -> Result<App, AppError> {
        let workflows = WorkflowService::from_addr(self.state, self.addr);
        let owned = workflows.owned(caller, workflow).await?;
        let user = signed_in(caller)?;
        let (title, description) = check_text(&request.form).map_err(AppError::Invalid)?;
        let visibility = match request.visibility.as_deref() {
            None => AppVisibility::Link,
            Some(text) => AppVisibility::parse(text).ok_or_else(|| {
                AppError::Invalid(FieldError {
                    field: "visibility".into(),
                    message: "one of `private`, `link`, `team`".into(),
                })
            })?,
        };
        if visibility == AppVisibility::Team && owned.workflow().team_id.is_none() {
            return Err(AppError::Invalid(FieldError {
                field: "visibility".into(),
                message: "`team` needs a team's workflow; this one is not in a team".into(),
            }));
        }
        let graph = self.snapshot(caller, owned.workflow()).await?;
        let form =
            check_form(self.state.executor().catalog(), &graph, &request.form).map_err(AppError::Invalid)?;
        let app = self
            .state
            .apps()
            .publish_app(NewApp {
                workflow_id: owned.workflow().id.clone(),
                published_by: user.id.clone(),
                title,
                description,
                visibility,
                form: serde_json::to_string(&form).map_err(|e| AppError::Corrupt(e.to_string()))?,
                graph: serde_json::to_string(&graph).map_err(|e| AppError::Corrupt(e.to_string()))?,
            })
            .await?;
        let detail = json!({
            "app": app.id, "visibility": visibility.as_str(),
            "inputs": form.inputs.len(), "outputs": form.outputs.len(),
        });
        workflows.audit(&owned, "app.published", detail).await;
        Ok(app)
    }

    /// Unpublishes the workflow's app: new runs are refused at once; runs already accepted go on.
    pub async fn unpublish(&self, caller: &Caller, workflow: &WorkflowId) -> Result<(), AppError> {
        let workflows = WorkflowService::from_addr(self.state, self.addr);
        let owned = workflows.owned(caller, workflow).await?;
        let app = self.state.apps().app_of_workflow(workflow).await?.ok_or(AppError::NotPublished)?;
        if !self.state.apps().unpublish_app(workflow).await? {
            return Err(AppError::NotPublished);
        }
        workflows.audit(&owned, "app.unpublished", json!({"app": app.id})).await;
        Ok(())
    }

    /// The workflow's app with its form, for those who may read the workflow.
    pub async fn of_workflow(&self, caller: &Caller, workflow: &WorkflowId) -> Result<LoadedApp, AppError> {
        let (workflow, _) = WorkflowService::new(self.state).visible(caller, workflow).await?;
        let app = self.state.apps().app_of_workflow(&workflow.id).await?.ok_or(AppError::NotPublished)?;
        loaded(app, workflow)
    }

    /// The app, if the caller may open it by its visibility; hidden (not found) otherwise, and
    /// when its workflow was deleted. Anonymous callers may not: a run needs their credits.
    pub async fn open(&self, caller: &Caller, id: &str) -> Result<LoadedApp, AppError> {
        let not_found = || AppError::NotFound(id.chars().take(MAX_APP_ID).collect());
        let user = signed_in(caller)?;
        if id.len() > MAX_APP_ID {
            return Err(not_found());
        }
        let app = self.state.apps().app(id).await?.ok_or_else(not_found)?;
        let workflow =
            self.state.auth().accounts().workflow(&app.workflow_id).await?.ok_or_else(not_found)?;
        let allowed = match app.visibility {
            AppVisibility::Link => true,
            AppVisibility::Private => {
                access::visible_permission(self.state, caller, &workflow.room).await?.is_some()
            }
            AppVisibility::Team => match &workflow.team_id {
                Some(team) => self.state.teams().role(team, &user.id).await?.is_some(),
                None => false,
            },
        };
        if !allowed {
            return Err(not_found());
        }
        loaded(app, workflow)
    }

    /// The room's graph now, read the way a run reads it.
    async fn snapshot(&self, caller: &Caller, workflow: &Workflow) -> Result<CanvasGraph, AppError> {
        let room = &workflow.room;
        access::open_room(self.state, caller, room)?;
        let writer = RoomWriter::open(self.state.executor().rooms().clone(), room.clone())
            .await
            .map_err(|e| AppError::RoomUnavailable(e.to_string()))?;
        writer.read(|txn| read_graph(txn)).await.map_err(AppError::NotSchema)
    }
}

fn loaded(app: App, workflow: Workflow) -> Result<LoadedApp, AppError> {
    let form: AppForm = serde_json::from_str(&app.form).map_err(|e| AppError::Corrupt(e.to_string()))?;
    let graph: CanvasGraph =
        serde_json::from_str(&app.graph).map_err(|e| AppError::Corrupt(e.to_string()))?;
    Ok(LoadedApp { app, form, graph, workflow })
}
