//! The HTTP API: accounts, workflows, room documents and versions, payments.
//!
//! Every route takes its caller from `Authorization: Bearer …` (or `?token=`), through the
//! [`Authenticated`] extractor, which also applies the per-user rate limit. Errors leave as one
//! JSON shape, `{"error": message, "code": code}`, from [`ApiError`]; internal details go to the
//! log only. Bodies, paths and queries are read through `extract.rs`'s extractors (`ApiJson`,
//! `ApiPath`, `ApiQuery`, `ApiBytes`), which refuse in that shape too; `bare_errors.rs` wraps
//! what no handler sees (unknown routes, wrong methods). The codes: `docs/api-errors.md`.

pub(crate) mod account;
mod apps;
mod assets;
pub(crate) mod bare_errors;
mod batches;
mod compose;
mod data_rights;
pub(crate) mod documents;
mod edits;
pub(crate) mod extract;
mod fraud;
mod jobs;
pub mod openapi;
mod provider_keys;
mod queue;
mod responses;
mod runs;
mod service_errors;
mod staff_audit;
mod suggestions;
mod support;
mod team_audit;
mod team_credits;
mod team_lifecycle;
mod teams;
mod webhooks;
mod workflow_invitations;
mod workflows;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dojo_records::AccountError;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::caller::{AuthError, Caller};
use crate::error_code::ErrorCode;
use crate::metrics::ReasonLabel;
use crate::state::AppState;

/// Errors at the HTTP edge. Internal details go to the log, never to the client. Each variant
/// has one [`ErrorCode`] (and through it one status), listed in `docs/api-errors.md`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The room already has content or a workflow, and the caller holds no grant on it.
    #[error("{0}")]
    RoomTaken(String),
    /// A per-user quota is full: the request would be accepted once the user has less.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    PaymentRequired(String),
    /// A member's monthly spending limit in the team would be passed.
    #[error("{0}")]
    SpendingLimitReached(String),
    #[error("too many requests: retry in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("storage unavailable")]
    Storage(#[from] dojo_store::StoreError),
    /// Logged with its cause; the client sees only this.
    #[error("internal error")]
    Internal(String),
    /// The room's stored document is unsafe to load (see `quarantine.rs`).
    #[error("{0}")]
    Quarantined(String),
    /// The change would make the room's document larger than the server allows.
    #[error("{0}")]
    PayloadTooLarge(String),
    // What the extractors and the edge refuse before a handler runs (`extract.rs`,
    // `bare_errors.rs`).
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// JSON of the wrong shape; the message names the field.
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("{0}")]
    BodyUnreadable(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RouteNotFound(String),
    #[error("{0}")]
    InvalidRoomName(String),
    /// A room the caller may use, that nobody created: no workflow, nothing stored, not open.
    #[error("{0}")]
    RoomNotFound(String),
    // Runs and uploads.
    #[error("{0}")]
    EmptyGraph(String),
    #[error("{0}")]
    UnknownTarget(String),
    #[error("{0}")]
    InvalidImage(String),
    #[error("{0}")]
    ImageTooLarge(String),
    #[error("{0}")]
    StorageQuotaExceeded(String),
    #[error("{0}")]
    QueueFull(String),
    #[error("{0}")]
    NotQueued(String),
    #[error("{0}")]
    AccountUnderReview(String),
    // Teams.
    #[error("{0}")]
    LastOwner(String),
    #[error("{0}")]
    TeamFull(String),
    #[error("{0}")]
    AlreadyMember(String),
    #[error("{0}")]
    AlreadyInvited(String),
    #[error("{0}")]
    InvitationClosed(String),
    #[error("{0}")]
    InvitationExpired(String),
    // Team provider keys.
    #[error("{0}")]
    UnknownProvider(String),
    #[error("{0}")]
    InvalidProviderKey(String),
    #[error("{0}")]
    KeyEncryptionNotConfigured(String),
    // Data rights.
    #[error("{0}")]
    DeletionNotConfirmed(String),
    #[error("{0}")]
    RunsActive(String),
    #[error("{0}")]
    ExportTooLarge(String),
    // The agents' job queue.
    #[error("{0}")]
    LeaseLost(String),
}

impl ApiError {
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::RoomTaken(_) => ErrorCode::RoomTaken,
            ApiError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ApiError::PaymentRequired(_) => ErrorCode::InsufficientCredits,
            ApiError::SpendingLimitReached(_) => ErrorCode::SpendingLimitReached,
            ApiError::TooManyRequests { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable(_) | ApiError::Storage(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::Quarantined(_) => ErrorCode::RoomQuarantined,
            ApiError::PayloadTooLarge(_) => ErrorCode::DocumentTooLarge,
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::InvalidBody(_) => ErrorCode::InvalidBody,
            ApiError::InvalidPath(_) => ErrorCode::InvalidPath,
            ApiError::InvalidQuery(_) => ErrorCode::InvalidQuery,
            ApiError::BodyTooLarge(_) => ErrorCode::BodyTooLarge,
            ApiError::BodyUnreadable(_) => ErrorCode::BodyUnreadable,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::RouteNotFound(_) => ErrorCode::RouteNotFound,
            ApiError::InvalidRoomName(_) => ErrorCode::InvalidRoomName,
            ApiError::RoomNotFound(_) => ErrorCode::RoomNotFound,
            ApiError::EmptyGraph(_) => ErrorCode::EmptyGraph,
            ApiError::UnknownTarget(_) => ErrorCode::UnknownTarget,
            ApiError::InvalidImage(_) => ErrorCode::InvalidImage,
            ApiError::ImageTooLarge(_) => ErrorCode::ImageTooLarge,
            ApiError::StorageQuotaExceeded(_) => ErrorCode::StorageQuotaExceeded,
            ApiError::QueueFull(_) => ErrorCode::QueueFull,
            ApiError::NotQueued(_) => ErrorCode::NotQueued,
            ApiError::AccountUnderReview(_) => ErrorCode::AccountUnderReview,
            ApiError::LastOwner(_) => ErrorCode::LastOwner,
            ApiError::TeamFull(_) => ErrorCode::TeamFull,
            ApiError::AlreadyMember(_) => ErrorCode::AlreadyMember,
            ApiError::AlreadyInvited(_) => ErrorCode::AlreadyInvited,
            ApiError::InvitationClosed(_) => ErrorCode::InvitationClosed,
            ApiError::InvitationExpired(_) => ErrorCode::InvitationExpired,
            ApiError::UnknownProvider(_) => ErrorCode::UnknownProvider,
            ApiError::InvalidProviderKey(_) => ErrorCode::InvalidProviderKey,
            ApiError::KeyEncryptionNotConfigured(_) => ErrorCode::KeyEncryptionNotConfigured,
            ApiError::DeletionNotConfirmed(_) => ErrorCode::DeletionNotConfirmed,
            ApiError::RunsActive(_) => ErrorCode::RunsActive,
            ApiError::ExportTooLarge(_) => ErrorCode::ExportTooLarge,
            ApiError::LeaseLost(_) => ErrorCode::LeaseLost,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Storage(error) => tracing::error!(%error, "storage error in the HTTP API"),
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error in the HTTP API"),
            _ => {}
        }
        let mut response = crate::error_body::json_error(self.code(), self.to_string());
        if let ApiError::TooManyRequests { retry_after_s } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingToken | AuthError::InvalidToken(_) => ApiError::Unauthorized(error.to_string()),
            AuthError::Forbidden => ApiError::Forbidden(error.to_string()),
            AuthError::Accounts(error) => error.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::UserNotFound(_)
            | AccountError::WorkflowNotFound(_)
            | AccountError::TeamNotFound(_)
            | AccountError::InvitationNotFound(_)
            | AccountError::JobNotFound(_)
            | AccountError::NotMember => ApiError::NotFound(error.to_string()),
            AccountError::LeaseLost => ApiError::LeaseLost(error.to_string()),
            AccountError::LastOwner => ApiError::LastOwner(error.to_string()),
            AccountError::TeamFull { .. } => ApiError::TeamFull(error.to_string()),
            AccountError::AlreadyMember => ApiError::AlreadyMember(error.to_string()),
            AccountError::AlreadyInvited => ApiError::AlreadyInvited(error.to_string()),
            AccountError::InvitationClosed(_) => ApiError::InvitationClosed(error.to_string()),
            AccountError::InvitationExpired => ApiError::InvitationExpired(error.to_string()),
            AccountError::DeletionNotConfirmed => ApiError::DeletionNotConfirmed(error.to_string()),
            AccountError::RunsActive(_) => ApiError::RunsActive(error.to_string()),
            AccountError::RoomTaken(_) => ApiError::RoomTaken(error.to_string()),
            AccountError::QuotaExceeded { .. } | AccountError::WorkflowInvitationsFull { .. } => {
                ApiError::QuotaExceeded(error.to_string())
            }
            AccountError::OwnerCannotCollaborate | AccountError::AmbiguousUser(_) => {
                ApiError::Conflict(error.to_string())
            }
            AccountError::InvalidInput { .. } => ApiError::BadRequest(error.to_string()),
            AccountError::InsufficientCredits { .. } | AccountError::InsufficientTeamCredits { .. } => {
                ApiError::PaymentRequired(error.to_string())
            }
            AccountError::SpendingLimitReached { .. } => ApiError::SpendingLimitReached(error.to_string()),
            AccountError::IdempotencyKeyReused { .. } => ApiError::Conflict(error.to_string()),
            AccountError::QueueFull { .. } => ApiError::QueueFull(error.to_string()),
            AccountError::UnderReview => ApiError::AccountUnderReview(error.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The caller of a request, authenticated and within its rate limit.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = crate::caller::bearer_token(&parts.headers, parts.uri.query());
        let caller = state.auth().authenticate(token.as_deref()).await?;
        if let Some(user) = caller.user() {
            let limiter = state.http_limiter();
            if let Err(not_until) = limiter.check_key(&user.id) {
                state.metrics().rate_limited.get_or_create(&ReasonLabel { reason: "http" }).inc();
                return Err(ApiError::TooManyRequests {
                    retry_after_s: crate::rate::retry_after_secs(limiter, &not_until),
                });
            }
        }
        Ok(Authenticated(caller))
    }
}

impl Authenticated {
    /// The signed-in user; anonymous dev callers have no account to act on.
    pub fn user(&self) -> Result<&dojo_records::User, ApiError> {
        self.0.user().ok_or_else(|| ApiError::Unauthorized("sign in first: this needs a user token".into()))
    }
}

pub fn routes(state: &AppState) -> axum::Router<AppState> {
    let http = &state.config().http;
    // Routes that take no token: limited per client IP instead of per user.
    let public = axum::Router::new()
        .route("/api/catalog", get(account::catalog))
        .route("/api/dev/token", post(account::dev_token))
        .route("/api/webhooks/stripe", post(account::stripe_webhook))
        .route("/api/openapi.json", get(openapi::serve))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::public_rate::limit_by_ip));
    let api = public
        .route("/api/me", get(account::me).delete(data_rights::delete_me))
        .route("/api/me/ledger", get(account::ledger))
        .route("/api/me/export", get(data_rights::export))
        .route("/api/me/deletion", post(data_rights::request_deletion))
        .route("/api/me/privacy", get(data_rights::privacy).put(data_rights::set_privacy))
        .route("/api/me/invitations", get(teams::my_invitations))
        .route("/api/teams", get(teams::list).post(teams::create))
        .route(
            "/api/teams/{team}",
            get(teams::get).patch(team_lifecycle::rename).delete(team_lifecycle::delete),
        )
        .route("/api/teams/{team}/members", get(teams::members))
        .route(
            "/api/teams/{team}/members/{user}",
            axum::routing::put(teams::set_role).delete(teams::remove_member),
        )
        .route("/api/teams/{team}/leave", post(teams::leave))
        .route("/api/teams/{team}/invitations", get(teams::team_invitations).post(teams::invite))
        .route("/api/teams/{team}/invitations/{invitation}", axum::routing::delete(teams::revoke_invitation))
        .route("/api/teams/{team}/audit", get(team_audit::audit))
        .route("/api/teams/{team}/credits", get(team_credits::credits))
        .route("/api/teams/{team}/ledger", get(team_credits::ledger))
        .route(
            "/api/teams/{team}/members/{user}/spending-limit",
            axum::routing::put(team_credits::set_spending_limit),
        )
        .route("/api/teams/{team}/provider-keys", get(provider_keys::list))
        .route("/api/teams/{team}/catalog", get(provider_keys::catalog))
        .route(
            "/api/teams/{team}/provider-keys/{provider}",
            axum::routing::put(provider_keys::set).delete(provider_keys::delete),
        )
        .route("/api/agent-jobs", get(jobs::list).post(jobs::enqueue))
        .route("/api/agent-jobs/claim", post(jobs::claim))
        .route("/api/agent-jobs/{id}", get(jobs::get))
        .route("/api/agent-jobs/{id}/heartbeat", post(jobs::heartbeat))
        .route("/api/agent-jobs/{id}/complete", post(jobs::complete))
        .route("/api/agent-jobs/{id}/fail", post(jobs::fail))
        .route("/api/support/tickets", get(support::mine).post(support::open))
        .route("/api/support/tickets/{id}", get(support::get))
        .route("/api/support/tickets/{id}/answer", post(support::answer))
        .route("/api/support/queue", get(support::queue))
        .route("/api/agent-schedules", get(jobs::schedules))
        .route("/api/fraud/flags", get(fraud::list))
        .route("/api/fraud/flags/{id}", get(fraud::get))
        .route("/api/fraud/flags/{id}/review", post(fraud::review))
        .route("/api/audit", get(staff_audit::audit))
        .route("/api/workflows/{id}/suggestions", get(suggestions::get))
        .route("/api/workflows/{id}/suggestions/dismiss", post(suggestions::dismiss))
        .route(
            "/api/agent-schedules/{name}",
            axum::routing::put(jobs::set_schedule).delete(jobs::delete_schedule),
        )
        .route("/api/invitations/{invitation}/accept", post(teams::accept))
        .route("/api/invitations/{invitation}/decline", post(teams::decline))
        .route("/api/workflows", get(workflows::list).post(workflows::create))
        .route("/api/workflows/{id}", get(workflows::get).patch(workflows::update).delete(workflows::delete))
        .route(
            "/api/workflows/{id}/collaborators/{user}",
            axum::routing::put(workflows::set_collaborator).delete(workflows::remove_collaborator),
        )
        .route(
            "/api/workflows/{id}/invitations",
            get(workflow_invitations::list).post(workflow_invitations::share),
        )
        .route("/api/workflows/{id}/invitations/{email}", axum::routing::delete(workflow_invitations::revoke))
        .route("/api/workflows/{id}/app", get(apps::of_workflow).put(apps::publish).delete(apps::unpublish))
        .route("/api/apps/{app}", get(apps::form))
        .route("/api/apps/{app}/runs", post(apps::run))
        .route("/api/apps/{app}/runs/{run}", get(apps::get_run))
        .route("/api/apps/{app}/runs/{run}/cancel", post(apps::cancel_run))
        .route("/api/workflows/{id}/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/api/workflows/{id}/webhooks/{hookId}", axum::routing::delete(webhooks::delete))
        .route("/api/workflows/{id}/webhooks/{hookId}/deliveries", get(webhooks::deliveries))
        .route("/api/workflows/{id}/webhooks/{hookId}/deliveries/{deliveryId}/replay", post(webhooks::replay))
        .route("/api/workflows/{id}/events", get(webhooks::events))
        .route("/api/rooms/{room}/graph", get(documents::graph))
        .route("/api/rooms/{room}/state", get(documents::state))
        .route("/api/rooms/{room}/update", post(documents::update))
        .route("/api/rooms/{room}/versions", get(documents::list_versions))
        .route("/api/rooms/{room}/versions/{id}", get(documents::get_version))
        .route("/api/rooms/{room}/versions/{id}/restore", post(documents::restore_version))
        .route("/api/rooms/{room}/runs", get(runs::list).post(runs::submit))
        .route("/api/rooms/{room}/compose", post(compose::compose_nodes))
        .route("/api/rooms/{room}/edits", post(edits::apply))
        .route("/api/rooms/{room}/edits/{id}/undo", post(edits::undo))
        .route("/api/rooms/{room}/batches", get(batches::list).post(batches::submit))
        .route("/api/batches/{id}", get(batches::get))
        .route("/api/batches/{id}/cancel", post(batches::cancel))
        .route("/api/runs/{id}", get(runs::get))
        .route("/api/runs/{id}/cancel", post(runs::cancel))
        .route("/api/runs/{id}/move-to-front", post(queue::move_to_front))
        .route("/api/queue", get(queue::list))
        .route("/api/queue/pause", post(queue::pause))
        .route("/api/queue/resume", post(queue::resume))
        .route("/api/teams/{team}/queue/pause", post(queue::pause_team))
        .route("/api/teams/{team}/queue/resume", post(queue::resume_team))
        .route("/assets/{id}", get(assets::download))
        .layer(axum::extract::DefaultBodyLimit::max(http.max_body_bytes));
    // Uploads have their own, larger limit.
    let uploads = axum::Router::new().route(
        "/api/assets",
        post(assets::upload)
            .layer(axum::extract::DefaultBodyLimit::max(state.config().executor.max_upload_bytes)),
    );
    api.merge(uploads).layer(cors(state))
}

/// Browsers may call the API only from the configured origins. In dev mode, with none
/// configured, local origins may (the dev editor may run on another port; see `crate::origin`).
fn cors(state: &AppState) -> CorsLayer {
    let origins = &state.config().http.cors_origins;
    let dev = state.auth().dev_mode();
    let allow = if dev {
        let policy = crate::origin::OriginPolicy::new(origins, dev);
        AllowOrigin::predicate(move |origin, _| origin.to_str().is_ok_and(|origin| policy.allows(origin)))
    } else if origins.iter().any(|o| o == "*") {
        tracing::warn!("DOJO_CORS_ORIGINS=* is ignored outside dev mode; list the editor's origins");
        AllowOrigin::list([])
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}
