//! The caller's own account, dev sign-in, and the payments webhook that buys credits.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use dojo_records::CreditOutcome;
use dojo_records::stripe::{self, SignatureError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiBytes, ApiJson};
use super::{ApiError, Authenticated};
use crate::services::credits::{CreditError, CreditService, dev_welcome};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeBody {
    pub id: String,
    /// The token's subject.
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Credit balance, never negative.
    pub credits: i64,
    /// True in dev mode without a token: no account exists.
    pub anonymous: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryBody {
    pub id: i64,
    /// Positive for grants and purchases, negative for spends.
    pub amount: i64,
    pub balance_after: i64,
    pub reason: String,
    pub created_at: i64,
}

/// The caller's profile and credit balance.
#[utoipa::path(get, path = "/api/me", tag = "account",
    responses((status = 200, body = MeBody), (status = 401)), security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, caller: Authenticated) -> Result<Json<MeBody>, ApiError> {
    let Some(user) = caller.0.user() else {
        return Ok(Json(MeBody {
            id: String::new(),
            subject: String::new(),
            name: None,
            email: None,
            credits: 0,
            anonymous: true,
        }));
    };
    dev_welcome(&state, &user.id).await;
    // Fresh, not the cached row: the balance moves.
    let credits = state.auth().accounts().balance(&user.id).await?;
    Ok(Json(MeBody {
        id: user.id.to_string(),
        subject: user.subject.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        credits,
        anonymous: false,
    }))
}

/// The caller's newest credit ledger entries.
#[utoipa::path(get, path = "/api/me/ledger", tag = "account",
    responses((status = 200, body = Vec<LedgerEntryBody>), (status = 401)), security(("bearer" = [])))]
pub async fn ledger(
    State(state): State<AppState>,
    caller: Authenticated,
) -> Result<Json<Vec<LedgerEntryBody>>, ApiError> {
    let user = caller.user()?;
    let entries = state.auth().accounts().ledger(&user.id, 100).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| LedgerEntryBody {
                id: e.id,
                amount: e.amount,
                balance_after: e.balance_after,
                reason: e.reason,
                created_at: e.created_at,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DevTokenRequest {
    /// Display name for the dev identity.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DevTokenBody {
    pub token: String,
}

/// A token for a dev identity: only in dev mode (no JWT key configured); 404 otherwise.
#[utoipa::path(post, path = "/api/dev/token", tag = "account", request_body = DevTokenRequest,
    responses((status = 200, body = DevTokenBody), (status = 404, description = "Not in dev mode")))]
pub async fn dev_token(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DevTokenRequest>,
) -> Result<Json<DevTokenBody>, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::BadRequest("name must be 1 to 64 characters".into()));
    }
    let token = state.auth().mint_dev_token(name).ok_or_else(|| ApiError::NotFound("not found".into()))?;
    Ok(Json(DevTokenBody { token }))
}

/// Stripe's webhook: a signed `checkout.session.completed` event credits its user once per
/// event id (`client_reference_id` = our user id, `metadata.credits` = the amount). Unsigned,
/// stale or tampered events are refused; other event types are acknowledged and ignored.
#[utoipa::path(post, path = "/api/webhooks/stripe", tag = "payments",
    request_body(content = Object, description = "A Stripe event, signed in the Stripe-Signature header"),
    responses((status = 200, body = Object), (status = 400, description = "Bad signature or payload"),
        (status = 404, description = "No webhook secret configured")))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBytes(payload): ApiBytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let settings = &state.config().auth;
    let Some(secret) = &settings.stripe_webhook_secret else {
        return Err(ApiError::NotFound("not found".into()));
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest("missing Stripe-Signature header".into()))?;
    let now = i64::try_from(dojo_auth::unix_now()).unwrap_or(i64::MAX);
    stripe::verify_signature(signature, &payload, secret, now, settings.stripe_tolerance_secs).map_err(
        |error: SignatureError| {
            tracing::warn!(%error, "refused a Stripe webhook");
            ApiError::BadRequest(format!("signature refused: {error}"))
        },
    )?;
    let Some(credit) =
        stripe::parse_checkout_completed(&payload).map_err(|e| ApiError::BadRequest(e.to_string()))?
    else {
        return Ok(Json(serde_json::json!({ "received": true, "credited": 0 })));
    };
    let outcome = match CreditService::new(state.auth().accounts()).credit_checkout(&credit).await {
        Ok(outcome) => outcome,
        Err(error @ CreditError::UnknownCheckoutUser(_)) => {
            // Acknowledging would lose the payment silently; failing makes Stripe retry and
            // shows the event in its dashboard.
            tracing::error!(event = %credit.event_id, user = %credit.user_id, "a paid checkout names an unknown user");
            return Err(error.into());
        }
        Err(error) => return Err(error.into()),
    };
    let replay = matches!(outcome, CreditOutcome::AlreadyApplied(_));
    tracing::info!(event = %credit.event_id, user = %credit.user_id, credits = credit.credits, replay, "stripe checkout");
    Ok(Json(serde_json::json!({
        "received": true,
        "credited": if replay { 0 } else { credit.credits },
        "duplicate": replay,
    })))
}

/// Every node type the editor can place: inputs and outputs with their types, parameters with
/// defaults and ranges, provider and cost. Public: it describes the product, not anyone's data.
#[utoipa::path(get, path = "/api/catalog", tag = "account",
    responses((status = 200, description = "The node catalog", body = Object)))]
pub async fn catalog() -> Result<Json<serde_json::Value>, ApiError> {
    match dojo_executor::LoadedCatalog::builtin() {
        Ok(catalog) => Ok(Json(catalog.to_json())),
        Err(error) => Err(ApiError::Internal(format!("the built-in catalog does not load: {error}"))),
    }
}
