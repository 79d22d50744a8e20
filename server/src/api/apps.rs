//! App mode (docs/apps.md): publishing a workflow as a form (`/api/workflows/{id}/app`) and
//! running it (`/api/apps/{app}`…). What each does is `crate::services::{apps, app_runs}`'s;
//! these handlers parse, call and map. A runner's answers carry the form and the chosen outputs
//! only: never the graph, a node id or a parameter that is not an input.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dojo_executor::Outputs;
use dojo_executor::worker::document_outputs;
use dojo_ids::{RunId, WorkflowId};
use dojo_records::{Run, RunNode, RunNodeState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ClientIp};
use super::responses::{
    ErrorBody, Forbidden, InsufficientCreditsBody, NotFound, TooManyRequests, Unauthorized,
};
use super::runs::{RunNodeStateName, RunStatusName, Submitted, idempotency_key, submit_refused};
use super::{ApiError, Authenticated};
use crate::error_code::ErrorCode;
use crate::services::app_form::{
    FieldError, FormRequest, InputField, OutputField, input_fields, output_fields,
};
use crate::services::app_runs::{AppRunError, AppRunService};
use crate::services::apps::{AppError, AppService, LoadedApp, PublishRequest};
use crate::services::queue::QueueService;
use crate::state::AppState;

/// An input of the form: a parameter of a node of the workflow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PublishInput {
    pub node: String,
    /// A catalog parameter of the node's type.
    pub param: String,
    /// 1–80 characters.
    pub label: String,
}

/// An output of the form: an output of a node of the workflow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PublishOutput {
    pub node: String,
    /// A catalog output of the node's type.
    pub output: String,
    /// 1–80 characters.
    pub label: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PublishApp {
    /// 1–120 characters, one line.
    pub title: String,
    /// At most 2,000 characters.
    #[serde(default)]
    pub description: String,
    /// At most 20.
    #[serde(default)]
    pub inputs: Vec<PublishInput>,
    /// 1 to 10.
    pub outputs: Vec<PublishOutput>,
    /// `private` (those who may read the workflow), `link` (any signed-in user with the link;
    /// the default) or `team` (the workflow's team's members).
    #[serde(default)]
    pub visibility: Option<String>,
}

/// A chosen input, as its publisher sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInputBody {
    pub key: String,
    pub node: String,
    pub param: String,
    pub label: String,
}

/// A chosen output, as its publisher sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppOutputBody {
    pub key: String,
    pub node: String,
    pub output: String,
    pub label: String,
}

/// A workflow's published app, for those who may read the workflow.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppBody {
    /// The form's address in the editor is `/app/{id}`.
    pub id: String,
    pub workflow_id: String,
    pub published_by: String,
    pub title: String,
    pub description: String,
    /// `private`, `link` or `team`.
    pub visibility: String,
    pub inputs: Vec<AppInputBody>,
    pub outputs: Vec<AppOutputBody>,
    /// Milliseconds since the Unix epoch; `updatedAt` is the last publish (the snapshot's time).
    pub created_at: i64,
    pub updated_at: i64,
}

/// An app as its runners see it: the form, and nothing of the graph.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppFormBody {
    pub id: String,
    pub title: String,
    pub description: String,
    pub inputs: Vec<InputField>,
    pub outputs: Vec<OutputField>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunApp {
    /// Input key → value (a string, number, boolean, or null for the published value). Keys
    /// left out keep the published value.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
}

/// One chosen output of a run of an app.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppRunOutput {
    pub key: String,
    pub label: String,
    /// The producing step's state.
    #[schema(value_type = RunNodeStateName)]
    pub state: RunNodeState,
    /// Once produced: `{"kind": "asset", "url", …}`, `{"kind": "text", "text"}` or
    /// `{"kind": "number", "value"}` (as in the document's `results`).
    #[schema(required = true)]
    pub value: Option<Value>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A run of an app, as its runner sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppRunBody {
    pub id: String,
    #[schema(value_type = RunStatusName)]
    pub status: String,
    pub estimate: i64,
    pub charged: i64,
    /// Steps finished, of `total`.
    pub done: usize,
    pub total: usize,
    #[schema(required = true)]
    pub error: Option<String>,
    pub created_at: i64,
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    /// While queued: 1-based (docs/queue.md).
    #[schema(required = true)]
    pub queue_position: Option<i64>,
    #[schema(required = true)]
    pub estimated_start_at: Option<i64>,
    /// The chosen outputs (empty once the app is unpublished or closed to the caller).
    pub outputs: Vec<AppRunOutput>,
}

/// Publishes the workflow as an app, or republishes it (same id): the form is checked against
/// a snapshot of the canvas taken now, which is what runners run until the next publish.
#[utoipa::path(put, path = "/api/workflows/{id}/app", tag = "apps", operation_id = "publishApp",
    request_body = PublishApp, params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Published", body = AppBody),
        (status = 400, description = "`invalid_app`: a bound or a name the workflow does not have; `field` says which", body = ErrorBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
    ApiJson(body): ApiJson<PublishApp>,
) -> Result<Response, ApiError> {
    let request = PublishRequest {
        form: FormRequest {
            title: body.title,
            description: body.description,
            inputs: body.inputs.into_iter().map(|i| (i.node, i.param, i.label)).collect(),
            outputs: body.outputs.into_iter().map(|o| (o.node, o.output, o.label)).collect(),
        },
        visibility: body.visibility,
    };
    match AppService::new(&state, addr).publish(&caller.0, &id, request).await {
        Ok(app) => {
            let loaded = AppService::new(&state, addr).of_workflow(&caller.0, &app.workflow_id).await?;
            Ok(Json(app_body(&loaded)).into_response())
        }
        Err(AppError::Invalid(field)) => Ok(field_refusal(ErrorCode::InvalidApp, &field)),
        Err(error) => Err(error.into()),
    }
}

#[utoipa::path(get, path = "/api/workflows/{id}/app", tag = "apps", operation_id = "getWorkflowApp",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow's app", body = AppBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such workflow, or no app published", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn of_workflow(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<Json<AppBody>, ApiError> {
    let loaded = AppService::new(&state, None).of_workflow(&caller.0, &id).await?;
    Ok(Json(app_body(&loaded)))
}

/// Unpublishes the app: new runs are refused at once; runs already accepted finish.
#[utoipa::path(delete, path = "/api/workflows/{id}/app", tag = "apps", operation_id = "unpublishApp",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "Unpublished"), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn unpublish(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<WorkflowId>,
) -> Result<StatusCode, ApiError> {
    AppService::new(&state, addr).unpublish(&caller.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's form, for those its visibility lets in (signed in; else `404`).
#[utoipa::path(get, path = "/api/apps/{app}", tag = "apps", operation_id = "getApp",
    params(("app" = String, Path, description = "App id")),
    responses((status = 200, description = "The form", body = AppFormBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn form(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(app): ApiPath<String>,
) -> Result<Json<AppFormBody>, ApiError> {
    let loaded = AppService::new(&state, None).open(&caller.0, &app).await?;
    let catalog = state.executor().catalog();
    Ok(Json(AppFormBody {
        id: loaded.app.id.clone(),
        title: loaded.app.title.clone(),
        description: loaded.app.description.clone(),
        inputs: input_fields(catalog, &loaded.graph, &loaded.form),
        outputs: output_fields(catalog, &loaded.graph, &loaded.form),
    }))
}

/// Runs the app with the caller's values, billed to the caller (credits held, queued, plan
/// limits), like a run of the canvas. Values are checked against the catalog as a run's are.
#[utoipa::path(post, path = "/api/apps/{app}/runs", tag = "apps", operation_id = "runApp",
    request_body = RunApp,
    params(("app" = String, Path, description = "App id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key returns the same run")),
    responses((status = 202, description = "Validated, credits held, queued", body = Submitted),
        (status = 400, description = "`invalid_app_input`: a value the catalog refuses or a key the form does not have; `field` says which (`inputs.in1`)", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 402, description = "`insufficient_credits` (the caller's balance) or `spending_limit_reached`", body = InsufficientCreditsBody),
        (status = 404, response = NotFound),
        (status = 422, description = "`app_not_runnable`: the published workflow itself does not validate", body = ErrorBody),
        (status = 429, description = "`queue_full`, `quota_exceeded` or `rate_limited`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(app): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RunApp>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    match AppRunService::new(&state).submit(&caller.0, &app, &body.inputs, key).await {
        Ok((run, _)) => {
            let body = Submitted {
                run_id: run.id.to_string(),
                status: run.status.as_str().to_owned(),
                estimate: run.estimate,
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(error) => app_run_refused(error),
    }
}

#[utoipa::path(get, path = "/api/apps/{app}/runs/{run}", tag = "apps", operation_id = "getAppRun",
    params(("app" = String, Path, description = "App id"), ("run" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run: its status and the chosen outputs", body = AppRunBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((app, run)): ApiPath<(String, RunId)>,
) -> Result<Response, ApiError> {
    let service = AppRunService::new(&state);
    let (run, nodes) = match service.get(&caller.0, &app, &run).await {
        Ok(found) => found,
        Err(error) => return app_run_refused(error),
    };
    let form = service.form_of(&caller.0, &app).await;
    Ok(Json(run_body(&state, run, &nodes, form.as_ref()).await?).into_response())
}

/// Stops the caller's run of the app; holds of steps that did not succeed are released.
#[utoipa::path(post, path = "/api/apps/{app}/runs/{run}/cancel", tag = "apps", operation_id = "cancelAppRun",
    params(("app" = String, Path, description = "App id"), ("run" = String, Path, description = "Run id")),
    responses((status = 202, description = "Cancelling: the run as it stands", body = AppRunBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn cancel_run(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath((app, run)): ApiPath<(String, RunId)>,
) -> Result<Response, ApiError> {
    let service = AppRunService::new(&state);
    let now = match service.cancel(&caller.0, &app, &run).await {
        Ok(run) => run,
        Err(error) => return app_run_refused(error),
    };
    let nodes = state.executor().runs().run_nodes(&now.id).await?;
    let form = service.form_of(&caller.0, &app).await;
    Ok((StatusCode::ACCEPTED, Json(run_body(&state, now, &nodes, form.as_ref()).await?)).into_response())
}

fn app_body(loaded: &LoadedApp) -> AppBody {
    let app = &loaded.app;
    AppBody {
        id: app.id.clone(),
        workflow_id: app.workflow_id.to_string(),
        published_by: app.published_by.to_string(),
        title: app.title.clone(),
        description: app.description.clone(),
        visibility: app.visibility.as_str().to_owned(),
        inputs: loaded
            .form
            .inputs
            .iter()
            .map(|i| AppInputBody {
                key: i.key.clone(),
                node: i.node.clone(),
                param: i.param.clone(),
                label: i.label.clone(),
            })
            .collect(),
        outputs: loaded
            .form
            .outputs
            .iter()
            .map(|o| AppOutputBody {
                key: o.key.clone(),
                node: o.node.clone(),
                output: o.output.clone(),
                label: o.label.clone(),
            })
            .collect(),
        created_at: app.created_at,
        updated_at: app.updated_at,
    }
}

async fn run_body(
    state: &AppState,
    run: Run,
    nodes: &[RunNode],
    form: Option<&LoadedApp>,
) -> Result<AppRunBody, ApiError> {
    let placed = QueueService::new(state, None).place(run).await?;
    let run = placed.run;
    let done = nodes.iter().filter(|n| n.state.is_final()).count();
    let outputs = form
        .map(|loaded| {
            loaded
                .form
                .outputs
                .iter()
                .filter_map(|output| {
                    let node = nodes.iter().find(|n| n.node_id.as_str() == output.node)?;
                    let value = node
                        .outputs
                        .as_deref()
                        .and_then(|stored| serde_json::from_str::<Outputs>(stored).ok())
                        .and_then(|outputs| json!(document_outputs(&outputs)).get(&output.output).cloned());
                    // Only the step's own failure is told: a skip names the step that failed.
                    let error = match node.state {
                        RunNodeState::Failed => node.error.clone(),
                        RunNodeState::Skipped => Some("skipped: an earlier step failed".into()),
                        _ => None,
                    };
                    Some(AppRunOutput {
                        key: output.key.clone(),
                        label: output.label.clone(),
                        state: node.state,
                        value,
                        error,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // The run's own error may quote the graph (a validation against a newer catalog): only the
    // plan's time limit is told as it is.
    let error = run.error.as_ref().map(|error| {
        if error.starts_with("max_run_time_exceeded") { error.clone() } else { "the run failed".into() }
    });
    Ok(AppRunBody {
        id: run.id.to_string(),
        status: run.status.as_str().to_owned(),
        estimate: run.estimate,
        charged: run.charged,
        done,
        total: nodes.len(),
        error,
        created_at: run.created_at,
        finished_at: run.finished_at,
        queue_position: placed.position,
        estimated_start_at: placed.estimated_start_at,
        outputs,
    })
}

/// `{"error", "code", "field"}`: a refusal about one field of the request.
fn field_refusal(code: ErrorCode, field: &FieldError) -> Response {
    let body = json!({"error": field.to_string(), "code": code.as_str(), "field": field.field});
    (code.status(), Json(body)).into_response()
}

fn app_run_refused(error: AppRunError) -> Result<Response, ApiError> {
    match error {
        AppRunError::Input(field) => Ok(field_refusal(ErrorCode::InvalidAppInput, &field)),
        AppRunError::NotRunnable(_) => {
            let code = ErrorCode::AppNotRunnable;
            Ok((code.status(), Json(json!({"error": error.to_string(), "code": code.as_str()})))
                .into_response())
        }
        AppRunError::RunNotFound(_) => Err(ApiError::NotFound(error.to_string())),
        AppRunError::App(error) => Err(error.into()),
        AppRunError::Submit(error) => submit_refused(error),
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::SignIn(error) => error.into(),
            AppError::Workflow(error) => error.into(),
            AppError::NotFound(_) | AppError::NotPublished => ApiError::NotFound(error.to_string()),
            AppError::Invalid(_) => ApiError::BadRequest(error.to_string()),
            AppError::Open(error) => error.into(),
            AppError::RoomUnavailable(_) => ApiError::Unavailable(error.to_string()),
            AppError::NotSchema(_) => ApiError::BadRequest(error.to_string()),
            AppError::Corrupt(_) => ApiError::Internal(error.to_string()),
            AppError::Auth(error) => error.into(),
            AppError::Accounts(error) => error.into(),
        }
    }
}
