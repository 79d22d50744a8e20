//! A team's provider keys over HTTP, for its owners and admins: store one per provider, list
//! them (last four characters only), remove one. No answer ever carries a key: the handlers
//! only see the sealed rows (`services::provider_keys`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dojo_ids::TeamId;
use dojo_records::StoredProviderKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ClientIp};
use super::responses::{ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::provider_keys::ProviderKeyService;
use crate::state::AppState;

/// Longest provider name in a path: longer names no provider.
const MAX_PROVIDER_LEN: usize = 64;

/// A team's key for one provider, as shown: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderKeyBody {
    /// `openai`, `replicate`, `fal` or `stability`.
    pub provider: String,
    /// The key's last four characters (empty for a key of eight characters or fewer).
    pub last_four: String,
    /// The user who set it.
    pub set_by: String,
    /// Milliseconds since the Unix epoch.
    pub set_at: i64,
    /// The key-encryption key it is sealed under (rotation moves it to the current one).
    pub kek_id: String,
}

impl From<StoredProviderKey> for ProviderKeyBody {
    fn from(key: StoredProviderKey) -> Self {
        Self {
            provider: key.provider,
            last_four: key.last_four,
            set_by: key.set_by.into_string(),
            set_at: key.set_at,
            kek_id: key.sealed.kek_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderKeyList {
    /// By provider.
    pub keys: Vec<ProviderKeyBody>,
}

/// The key to store. `Debug` never shows it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetProviderKey {
    /// The provider's API key: 1-1024 bytes, no control or whitespace characters (surrounding
    /// spaces are trimmed). Never shown again, only its last four characters.
    pub key: String,
}

impl std::fmt::Debug for SetProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetProviderKey { key: <redacted> }")
    }
}

fn provider_name(provider: &str) -> Result<&str, ApiError> {
    if provider.len() > MAX_PROVIDER_LEN {
        return Err(ApiError::UnknownProvider(
            "unknown provider: one of openai, replicate, fal, stability".into(),
        ));
    }
    Ok(provider)
}

/// Stores (or replaces) the team's key for a provider (owners and admins). Runs of the team's
/// workflows then use it instead of the server's.
#[utoipa::path(put, path = "/api/teams/{team}/provider-keys/{provider}", tag = "teams", operation_id = "setTeamProviderKey",
    request_body = SetProviderKey,
    params(("team" = String, Path, description = "Team id"),
        ("provider" = String, Path, description = "`openai`, `replicate`, `fal` or `stability`")),
    responses((status = 200, description = "The key as stored (its last four characters only)", body = ProviderKeyBody),
        (status = 400, description = "`unknown_provider`, `invalid_provider_key` or `bad_request`", body = ErrorBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests),
        (status = 503, description = "`key_encryption_not_configured`: the server has no key-encryption key; or `unavailable`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((team, provider)): ApiPath<(TeamId, String)>,
    ApiJson(body): ApiJson<SetProviderKey>,
) -> Result<Json<ProviderKeyBody>, ApiError> {
    let provider = provider_name(&provider)?;
    let stored = ProviderKeyService::new(&state, addr).set(&caller.0, &team, provider, &body.key).await?;
    Ok(Json(stored.into()))
}

/// The team's provider keys: provider, last four characters, who set it and when (owners and
/// admins).
#[utoipa::path(get, path = "/api/teams/{team}/provider-keys", tag = "teams", operation_id = "listTeamProviderKeys",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "The team's keys, by provider", body = ProviderKeyList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<Json<ProviderKeyList>, ApiError> {
    let keys = ProviderKeyService::new(&state, None).list(&caller.0, &team).await?;
    Ok(Json(ProviderKeyList { keys: keys.into_iter().map(ProviderKeyBody::from).collect() }))
}

/// The node catalog as the team's workflows see it (any member): like `GET /api/catalog`,
/// with `available` counting the team's provider keys besides the server's.
#[utoipa::path(get, path = "/api/teams/{team}/catalog", tag = "teams", operation_id = "getTeamCatalog",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "The node catalog: `{version, nodes: [...]}`; each node has `available` \
        and, when false, `unavailableReason`", body = Object),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn catalog(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let providers = ProviderKeyService::new(&state, None).member_view(&caller.0, &team).await?;
    let catalog = dojo_executor::LoadedCatalog::builtin()
        .map_err(|error| ApiError::Internal(format!("the built-in catalog does not load: {error}")))?;
    let availability = state.executor().availability_with(providers);
    let served = super::account::camel_case_catalog(catalog.to_json());
    Ok(Json(super::account::mark_availability(served, catalog, &availability)))
}

/// Removes the team's key for a provider (owners and admins): its runs use the server's again.
#[utoipa::path(delete, path = "/api/teams/{team}/provider-keys/{provider}", tag = "teams", operation_id = "deleteTeamProviderKey",
    params(("team" = String, Path, description = "Team id"),
        ("provider" = String, Path, description = "`openai`, `replicate`, `fal` or `stability`")),
    responses((status = 204, description = "Removed"),
        (status = 400, description = "`unknown_provider`", body = ErrorBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, description = "`not_found`: no such team visible to the caller, or it has no key for the provider", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((team, provider)): ApiPath<(TeamId, String)>,
) -> Result<StatusCode, ApiError> {
    let provider = provider_name(&provider)?;
    ProviderKeyService::new(&state, addr).delete(&caller.0, &team, provider).await?;
    Ok(StatusCode::NO_CONTENT)
}
