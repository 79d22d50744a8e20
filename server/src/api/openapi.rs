//! The OpenAPI 3.1 description of the HTTP API, served at `/api/openapi.json` and printed by
//! `dojo-server openapi`. Generated from the handlers' annotations; a test checks every
//! documented operation is routed and every routed API path is documented, and CI checks the
//! document with a standard validator (`scripts/check-openapi.sh`) and that the web editor's
//! generated client matches it.
//!
//! Conventions the annotations follow, so that generated clients read well:
//! - every operation has a camelCase `operation_id` (the client's method name);
//! - every response has a description; errors answer with [`ErrorBody`], through the shared
//!   responses of [`super::responses`] where the meaning is the usual one;
//! - JSON bodies are camelCase (query parameters are single words).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::responses::{
    BadRequest, ErrorBody, Forbidden, InsufficientCreditsBody, InvalidGraphBody, NotFound, TooManyRequests,
    Unauthorized, Unavailable,
};
use super::{
    account, apps, assets, compose, data_rights, documents, fraud, jobs, provider_keys, runs, staff_audit,
    suggestions, support, team_audit, team_credits, team_lifecycle, teams, webhooks, workflow_invitations,
    workflows,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dojo",
        description = "Dojo's HTTP API: accounts, teams, workflows, room documents, runs, assets, payments. \
            Errors answer `{\"error\": message, \"code\": code}`; JSON bodies are camelCase."
    ),
    paths(
        account::catalog,
        account::me,
        account::ledger,
        account::dev_token,
        account::stripe_webhook,
        data_rights::export,
        data_rights::request_deletion,
        data_rights::delete_me,
        data_rights::privacy,
        data_rights::set_privacy,
        workflows::list,
        workflows::create,
        workflows::get,
        workflows::update,
        workflows::delete,
        workflows::set_collaborator,
        workflows::remove_collaborator,
        workflow_invitations::share,
        workflow_invitations::list,
        workflow_invitations::revoke,
        documents::graph,
        documents::state,
        documents::update,
        documents::list_versions,
        documents::get_version,
        documents::restore_version,
        compose::compose_nodes,
        super::edits::apply,
        super::edits::undo,
        runs::submit,
        runs::get,
        runs::cancel,
        runs::list,
        super::batches::submit,
        super::batches::get,
        super::batches::cancel,
        super::batches::list,
        super::queue::list,
        super::queue::move_to_front,
        super::queue::pause,
        super::queue::resume,
        super::queue::pause_team,
        super::queue::resume_team,
        assets::upload,
        assets::download,
        webhooks::create,
        webhooks::list,
        webhooks::delete,
        webhooks::deliveries,
        webhooks::replay,
        webhooks::events,
        teams::create,
        teams::list,
        teams::get,
        team_lifecycle::rename,
        team_lifecycle::delete,
        teams::members,
        teams::set_role,
        teams::remove_member,
        teams::leave,
        teams::invite,
        teams::team_invitations,
        teams::revoke_invitation,
        teams::my_invitations,
        teams::accept,
        teams::decline,
        team_audit::audit,
        team_credits::credits,
        team_credits::ledger,
        team_credits::set_spending_limit,
        provider_keys::set,
        provider_keys::list,
        provider_keys::delete,
        provider_keys::catalog,
        jobs::enqueue,
        jobs::list,
        jobs::get,
        jobs::claim,
        jobs::heartbeat,
        jobs::complete,
        jobs::fail,
        jobs::schedules,
        jobs::set_schedule,
        jobs::delete_schedule,
        support::open,
        support::mine,
        support::get,
        support::queue,
        support::answer,
        fraud::list,
        fraud::get,
        fraud::review,
        staff_audit::audit,
        suggestions::get,
        suggestions::dismiss,
        apps::publish,
        apps::of_workflow,
        apps::unpublish,
        apps::form,
        apps::run,
        apps::get_run,
        apps::cancel_run,
    ),
    components(
        schemas(ErrorBody, InsufficientCreditsBody, InvalidGraphBody),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, TooManyRequests, Unavailable),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "account", description = "The caller's profile and credits; the node catalog"),
        (name = "data-rights", description = "The caller's data: export, account deletion, analytics opt-out (docs/data-rights.md)"),
        (name = "workflows", description = "Workflows: rooms with owners and collaborators"),
        (name = "rooms", description = "A room's document over HTTP"),
        (name = "payments", description = "Payment provider webhooks"),
        (name = "runs", description = "Running a room's graph: validation, credits, queue, results"),
        (name = "queue", description = "The run queue: positions, estimates, move to front, pause and resume"),
        (name = "assets", description = "Uploaded images and run outputs"),
        (name = "webhooks", description = "Signed webhooks of a workflow, their delivery log, and its change feed"),
        (name = "teams", description = "Teams: members and roles, invitations, the audit log, provider keys"),
        (name = "agents", description = "The agents' job queue and schedules, fraud review and the whole audit log, for staff (docs/agents.md)"),
        (name = "support", description = "Support tickets: users ask, the support agent drafts, staff answer (docs/agents.md)"),
        (name = "apps", description = "App mode: a workflow published as a form that others run with their own credits (docs/apps.md)"),
    )
)]
pub struct ApiDoc;

/// The name operations use in `security(("bearer" = []))`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT in `Authorization: Bearer …` (or `?token=` where a browser cannot set \
                         headers). In dev mode (no key configured) routes also work without one.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON, for `dojo-server openapi` (no server, no database needed).
pub fn document() -> String {
    // Serialising a tree of plain structs and maps cannot fail; an empty answer would fail the
    // validator loudly rather than panic here.
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
