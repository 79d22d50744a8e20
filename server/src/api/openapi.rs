//! The OpenAPI description of the HTTP API, served at `/api/openapi.json`. Generated from the
//! handlers' annotations; a test checks every documented operation is routed and every routed
//! API path is documented.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{account, assets, compose, documents, runs, webhooks, workflows};

#[derive(OpenApi)]
#[openapi(
    info(title = "Dojo", description = "Dojo's HTTP API: accounts, workflows, room documents, payments."),
    paths(
        account::catalog,
        account::me,
        account::ledger,
        account::dev_token,
        account::stripe_webhook,
        workflows::list,
        workflows::create,
        workflows::get,
        workflows::update,
        workflows::delete,
        workflows::set_collaborator,
        workflows::remove_collaborator,
        documents::graph,
        documents::state,
        documents::update,
        documents::list_versions,
        documents::restore_version,
        compose::compose_nodes,
        runs::submit,
        runs::get,
        runs::cancel,
        runs::list,
        assets::upload,
        assets::download,
        webhooks::create,
        webhooks::list,
        webhooks::delete,
        webhooks::deliveries,
        webhooks::replay,
        webhooks::events,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "account", description = "The caller's profile and credits"),
        (name = "workflows", description = "Workflows: rooms with owners and collaborators"),
        (name = "rooms", description = "A room's document over HTTP"),
        (name = "payments", description = "Payment provider webhooks"),
        (name = "runs", description = "Running a room's graph: validation, credits, queue, results"),
        (name = "assets", description = "Uploaded images and run outputs"),
        (name = "webhooks", description = "Signed webhooks of a workflow, their delivery log, and its change feed"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
