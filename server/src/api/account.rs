//! The caller's own account, dev sign-in, and the payments webhook that buys credits.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use dojo_records::stripe::{self, SignatureError};
use dojo_records::{CreditOutcome, StaffRole};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiBytes, ApiJson};
use super::responses::{BadRequest, ErrorBody, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::credits::{CreditError, CreditService, dev_welcome};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeBody {
    pub id: String,
    /// The token's subject.
    pub subject: String,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(required = true)]
    pub email: Option<String>,
    /// Credit balance, never negative.
    pub credits: i64,
    /// True in dev mode without a token: no account exists.
    pub anonymous: bool,
    /// The caller opted out of optional analytics and usage collection (`PUT /api/me/privacy`).
    pub analytics_opt_out: bool,
    /// `staff` or `admin` for the studio's staff (granted with `dojo-server admin grant-staff`;
    /// the editor shows them its staff screen), `null` for everyone else.
    #[schema(required = true, value_type = Option<String>)]
    pub staff_role: Option<&'static str>,
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
    /// Set on an entry of a team's balance that you caused (a run of yours in the team's
    /// workflow, a checkout you paid for it): `balanceAfter` is then the team's balance.
    pub team_id: Option<String>,
}

/// The caller's profile and credit balance.
#[utoipa::path(get, path = "/api/me", tag = "account", operation_id = "getMe",
    responses((status = 200, description = "The caller", body = MeBody),
        (status = 401, response = Unauthorized), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, caller: Authenticated) -> Result<Json<MeBody>, ApiError> {
    let Some(user) = caller.0.user() else {
        return Ok(Json(MeBody {
            id: String::new(),
            subject: String::new(),
            name: None,
            email: None,
            credits: 0,
            anonymous: true,
            analytics_opt_out: false,
            staff_role: None,
        }));
    };
    dev_welcome(&state, &user.id).await;
    // Fresh, not the cached row: the balance moves.
    let credits = state.auth().accounts().balance(&user.id).await?;
    // Fresh too: it may have changed on another instance since the profile was cached.
    let analytics_opt_out = state.data_rights().analytics_opt_out(&user.id).await?;
    let staff_role = state.jobs().staff_role(&user.id).await?.map(StaffRole::as_str);
    Ok(Json(MeBody {
        id: user.id.to_string(),
        subject: user.subject.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        credits,
        anonymous: false,
        analytics_opt_out,
        staff_role,
    }))
}

/// The caller's newest credit ledger entries.
#[utoipa::path(get, path = "/api/me/ledger", tag = "account", operation_id = "getLedger",
    responses((status = 200, description = "Newest first, at most 100", body = Vec<LedgerEntryBody>),
        (status = 401, response = Unauthorized), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
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
                team_id: e.team_id.map(|team| team.into_string()),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevTokenRequest {
    /// Display name for the dev identity.
    pub name: String,
    /// An email for the identity, treated as verified (dev mode only): lets a dev identity
    /// receive team and workflow invitations sent to an address.
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevTokenBody {
    pub token: String,
}

/// A token for a dev identity: only in dev mode (no JWT key configured); 404 otherwise.
#[utoipa::path(post, path = "/api/dev/token", tag = "account", operation_id = "createDevToken",
    request_body = DevTokenRequest,
    responses((status = 200, description = "A token for the dev identity", body = DevTokenBody),
        (status = 400, response = BadRequest),
        (status = 404, description = "Not in dev mode (`not_found`)", body = ErrorBody)))]
pub async fn dev_token(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DevTokenRequest>,
) -> Result<Json<DevTokenBody>, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::BadRequest("name must be 1 to 64 characters".into()));
    }
    let email = match body.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(email) => Some(dojo_records::teams::validate_email(email)?),
        None => None,
    };
    let token = state
        .auth()
        .mint_dev_token(name, email.as_deref())
        .ok_or_else(|| ApiError::NotFound("not found".into()))?;
    Ok(Json(DevTokenBody { token }))
}

/// What the Stripe webhook answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StripeAck {
    pub received: bool,
    /// Credits added by this delivery (0 for other events and for a replay).
    pub credited: i64,
    /// Whether the event had already been applied; absent for events that credit nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

/// Stripe's webhook: a signed `checkout.session.completed` event credits its user once per
/// event id (`client_reference_id` = our user id, `metadata.credits` = the amount). Unsigned,
/// stale or tampered events are refused. `charge.succeeded`, `charge.refunded`, `charge.failed` and
/// `charge.dispute.created` are recorded for the fraud agent (docs/agents.md); other event types
/// are acknowledged and ignored.
#[utoipa::path(post, path = "/api/webhooks/stripe", tag = "payments", operation_id = "stripeWebhook",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature of the payload")),
    request_body(content = Object, description = "A Stripe event, signed in the Stripe-Signature header"),
    responses((status = 200, description = "Acknowledged (credited at most once per event)", body = StripeAck),
        (status = 400, description = "Bad signature or payload, or an unknown user (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No webhook secret configured (`not_found`)", body = ErrorBody)))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBytes(payload): ApiBytes,
) -> Result<Json<StripeAck>, ApiError> {
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
    record_payment_signals(&state, &payload).await?;
    let Some(credit) =
        stripe::parse_checkout_completed(&payload).map_err(|e| ApiError::BadRequest(e.to_string()))?
    else {
        return Ok(Json(StripeAck { received: true, credited: 0, duplicate: None }));
    };
    let credits = CreditService::new(state.auth().accounts())
        .audited(state.audit(), crate::services::audit::Actor::system("stripe"));
    let credited = match &credit.team_id {
        Some(team) => credits.credit_team_checkout(state.teams().as_ref(), team, &credit).await,
        None => credits.credit_checkout(&credit).await,
    };
    let outcome = match credited {
        Ok(outcome) => outcome,
        Err(error @ (CreditError::UnknownCheckoutTeam(_) | CreditError::PayerNotTeamManager { .. })) => {
            // As for an unknown user: Stripe retries and shows the refusal in its dashboard,
            // where the studio can refund or reassign the payment.
            tracing::error!(event = %credit.event_id, user = %credit.user_id, %error, "a paid team checkout was refused");
            return Err(error.into());
        }
        Err(error @ CreditError::UnknownCheckoutUser(_)) => {
            // Acknowledging would lose the payment silently; failing makes Stripe retry and
            // shows the event in its dashboard.
            tracing::error!(event = %credit.event_id, user = %credit.user_id, "a paid checkout names an unknown user");
            return Err(error.into());
        }
        Err(error) => return Err(error.into()),
    };
    let replay = matches!(outcome, CreditOutcome::AlreadyApplied(_));
    let team = credit.team_id.as_ref().map(|team| team.as_str());
    tracing::info!(event = %credit.event_id, user = %credit.user_id, ?team, credits = credit.credits, replay, "stripe checkout");
    Ok(Json(StripeAck {
        received: true,
        credited: if replay { 0 } else { credit.credits },
        duplicate: Some(replay),
    }))
}

/// What the fraud agent learns from a genuine Stripe event: which customer a checkout's user is,
/// and each charge paid, refunded, failed or disputed. A database failure fails the delivery, so
/// Stripe sends it again; an event recorded before records nothing.
async fn record_payment_signals(state: &AppState, payload: &[u8]) -> Result<(), ApiError> {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Ok(()); // The checkout parser below says why it is refused.
    };
    if let Some((customer, user)) = dojo_records::stripe_payments::checkout_customer(&event) {
        state.fraud().remember_customer(&customer, &user).await?;
    }
    if let Some(payment) = dojo_records::stripe_payments::parse_payment_event(&event) {
        let (event_id, kind) = (payment.event_id.clone(), payment.kind);
        let recorded = state.fraud().record_payment(payment).await?;
        tracing::info!(event = %event_id, kind = kind.as_str(), recorded, "stripe payment event");
    }
    Ok(())
}

/// Every node type the editor can place: inputs and outputs with their types, parameters with
/// defaults and ranges, provider and cost, and whether this server can run it: `available`
/// (built-ins always; a provider's nodes only when the provider has a key here) and, when not,
/// `unavailableReason`. Public: it describes the product, not anyone's data.
#[utoipa::path(get, path = "/api/catalog", tag = "account", operation_id = "getCatalog",
    responses((status = 200, description = "The node catalog: `{version, nodes: [...]}`; each node has `available` \
        and, when false, `unavailableReason`", body = Object),
        (status = 429, response = TooManyRequests)))]
pub async fn catalog(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match dojo_executor::LoadedCatalog::builtin() {
        Ok(catalog) => {
            let availability = state.executor().availability();
            Ok(Json(mark_availability(camel_case_catalog(catalog.to_json()), catalog, &availability)))
        }
        Err(error) => Err(ApiError::Internal(format!("the built-in catalog does not load: {error}"))),
    }
}

/// Adds `available` to every node of the served catalog, and `unavailableReason` when false.
pub(super) fn mark_availability(
    mut served: serde_json::Value,
    catalog: &dojo_executor::LoadedCatalog,
    availability: &dojo_executor::Availability,
) -> serde_json::Value {
    if let Some(nodes) = served.get_mut("nodes").and_then(serde_json::Value::as_array_mut) {
        for node in nodes {
            let reason = node
                .get("id")
                .and_then(serde_json::Value::as_str)
                .and_then(|id| catalog.get(id))
                .and_then(|entry| availability.unavailable_reason(entry));
            if let serde_json::Value::Object(map) = node {
                map.insert("available".into(), serde_json::Value::Bool(reason.is_none()));
                if let Some(reason) = reason {
                    map.insert("unavailableReason".into(), serde_json::Value::String(reason));
                }
            }
        }
    }
    served
}

/// The catalog as the API shows it: camelCase keys (`maxLength`, `timeoutSecs`), like every
/// other body. Only the answer is renamed: the catalog file keeps its snake_case, and the node
/// cache keys on the catalog's own serialisation, which must not change. Values (a parameter's
/// `default`, `allowed`) are left alone.
pub(super) fn camel_case_catalog(mut catalog: serde_json::Value) -> serde_json::Value {
    if let Some(nodes) = catalog.get_mut("nodes").and_then(serde_json::Value::as_array_mut) {
        for node in nodes {
            for list in ["params", "inputs", "outputs"] {
                if let Some(items) = node.get_mut(list).and_then(serde_json::Value::as_array_mut) {
                    items.iter_mut().for_each(camel_case_keys);
                }
            }
            camel_case_keys(node);
        }
    }
    catalog
}

fn camel_case_keys(object: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = object {
        *map = std::mem::take(map).into_iter().map(|(key, value)| (camel_case(&key), value)).collect();
    }
}

fn camel_case(key: &str) -> String {
    let mut words = key.split('_');
    let mut out = words.next().unwrap_or_default().to_owned();
    for word in words {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_catalog_has_camel_case_keys_only() {
        let catalog = dojo_executor::LoadedCatalog::builtin().expect("the built-in catalog");
        let served = camel_case_catalog(catalog.to_json());
        let mut keys = Vec::new();
        for node in served["nodes"].as_array().expect("nodes") {
            keys.extend(node.as_object().expect("a node").keys().cloned());
            for list in ["params", "inputs", "outputs"] {
                for item in node[list].as_array().into_iter().flatten() {
                    keys.extend(item.as_object().expect("an item").keys().cloned());
                }
            }
        }
        assert!(keys.iter().any(|k| k == "maxLength"), "the catalog has a text limit somewhere");
        assert!(keys.iter().any(|k| k == "timeoutSecs"), "and a timeout");
        let snake: Vec<_> = keys.iter().filter(|k| k.contains('_')).collect();
        assert!(snake.is_empty(), "snake_case keys served: {snake:?}");
        assert_eq!(camel_case("a_b_cd"), "aBCd");
    }
}
