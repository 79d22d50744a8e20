//! Fraud review over HTTP, for staff and admins: the flags the fraud agent raised, and the
//! verdict (clear: the user may run again; confirm: they stay blocked until someone clears it).

use axum::Json;
use axum::extract::State;
use dojo_ids::UserId;
use dojo_records::fraud::MAX_FLAG_PAGE;
use dojo_records::{Flag, FlagQuery, FlagStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use super::responses::{BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::fraud::{FraudError, FraudService};
use crate::state::AppState;

/// Longest flag id or user id accepted in a path or filter.
const MAX_ID: usize = 64;

/// One flag.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagBody {
    pub id: String,
    pub user_id: String,
    /// `payment_trouble`, `shared_payment_source` or `spend_spike`.
    pub rule: String,
    /// The evidence: counts, amounts, the other accounts of a shared card (its fingerprint only).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// The newest event the evidence includes (milliseconds since the Unix epoch).
    pub evidence_at: i64,
    /// `open` (blocks paid runs), `confirmed` (still blocks) or `cleared`.
    pub status: String,
    pub created_at: i64,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub note: Option<String>,
}

impl From<Flag> for FlagBody {
    fn from(flag: Flag) -> Self {
        Self {
            id: flag.id,
            user_id: flag.user_id.into_string(),
            rule: flag.rule,
            detail: flag.detail,
            evidence_at: flag.evidence_at,
            status: flag.status.as_str().to_owned(),
            created_at: flag.created_at,
            reviewed_by: flag.reviewed_by,
            reviewed_at: flag.reviewed_at,
            note: flag.note,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagPage {
    /// Newest first.
    pub flags: Vec<FlagBody>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FlagParams {
    /// `open`, `confirmed` or `cleared`; all when absent.
    pub status: Option<String>,
    /// Only this user's flags.
    pub user: Option<String>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewFlag {
    /// `cleared` (nothing wrong: the flag stops blocking) or `confirmed` (keeps blocking).
    pub verdict: String,
    /// Why, for the next reviewer (at most 2,000 bytes).
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewedFlag {
    pub flag: FlagBody,
    /// Whether the user's paid runs are still blocked (by this flag or another).
    pub blocked: bool,
}

impl From<FraudError> for ApiError {
    fn from(error: FraudError) -> Self {
        match error {
            FraudError::Staff(error) => error.into(),
            FraudError::NotFound(_) => ApiError::NotFound(error.to_string()),
            FraudError::Conflict(..) => ApiError::Conflict(error.to_string()),
            FraudError::Records(error) => error.into(),
        }
    }
}

fn cursor_of(flag: &Flag) -> String {
    format!("{}.{}", flag.created_at, flag.id)
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let refused = || ApiError::BadRequest("`cursor` is not one this API gave".into());
    let (at, id) = cursor.split_once('.').ok_or_else(refused)?;
    if id.is_empty() || id.len() > MAX_ID {
        return Err(refused());
    }
    Ok((at.parse().map_err(|_| refused())?, id.to_owned()))
}

/// The fraud agent's flags, newest first (staff).
#[utoipa::path(get, path = "/api/fraud/flags", tag = "agents", operation_id = "listFraudFlags",
    params(FlagParams),
    responses((status = 200, description = "A page of flags", body = FlagPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(params): ApiQuery<FlagParams>,
) -> Result<Json<FlagPage>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(
            FlagStatus::parse(text)
                .ok_or_else(|| ApiError::BadRequest("`status` is one of open, confirmed, cleared".into()))?,
        ),
    };
    let user_id = match params.user {
        Some(user) if user.is_empty() || user.len() > MAX_ID => {
            return Err(ApiError::BadRequest("`user` is not a user id".into()));
        }
        user => user.map(UserId::from),
    };
    let after = params.cursor.as_deref().map(parse_cursor).transpose()?;
    let limit = params.limit.unwrap_or(50).clamp(1, MAX_FLAG_PAGE);
    let query = FlagQuery { status, user_id, after, limit };
    let flags = FraudService::new(&state, None).flags(&caller.0, &query).await?;
    let next_cursor = flags.last().filter(|_| flags.len() >= limit as usize).map(cursor_of);
    Ok(Json(FlagPage { flags: flags.into_iter().map(FlagBody::from).collect(), next_cursor }))
}

/// One flag (staff).
#[utoipa::path(get, path = "/api/fraud/flags/{id}", tag = "agents", operation_id = "getFraudFlag",
    params(("id" = String, Path, description = "Flag id")),
    responses((status = 200, description = "The flag", body = FlagBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<FlagBody>, ApiError> {
    let service = FraudService::new(&state, None);
    if id.len() > MAX_ID {
        // Staff first: a stranger learns nothing from the id's length either.
        service.flags(&caller.0, &FlagQuery { limit: 1, ..FlagQuery::default() }).await?;
        return Err(ApiError::NotFound("no such flag".into()));
    }
    Ok(Json(service.flag(&caller.0, &id).await?.into()))
}

/// Staff's verdict on a flag: `cleared` lifts its block, `confirmed` keeps it. Audited.
#[utoipa::path(post, path = "/api/fraud/flags/{id}/review", tag = "agents", operation_id = "reviewFraudFlag",
    request_body = ReviewFlag,
    params(("id" = String, Path, description = "Flag id")),
    responses((status = 200, description = "Reviewed; `blocked` says whether the user is still blocked", body = ReviewedFlag),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: the flag's state does not allow this verdict (it is cleared already, or confirming a cleared flag)", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn review(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReviewFlag>,
) -> Result<Json<ReviewedFlag>, ApiError> {
    let verdict = match body.verdict.as_str() {
        "cleared" => FlagStatus::Cleared,
        "confirmed" => FlagStatus::Confirmed,
        _ => return Err(ApiError::BadRequest("`verdict` is `cleared` or `confirmed`".into())),
    };
    let service = FraudService::new(&state, addr);
    if id.len() > MAX_ID {
        service.flags(&caller.0, &FlagQuery { limit: 1, ..FlagQuery::default() }).await?;
        return Err(ApiError::NotFound("no such flag".into()));
    }
    let (flag, blocked) = service.review(&caller.0, &id, verdict, body.note.as_deref()).await?;
    Ok(Json(ReviewedFlag { flag: flag.into(), blocked }))
}
