//! Team credits over HTTP: the team's balance with each member's spend this month and limit
//! (any member), its ledger (owners and admins), and a member's monthly spending limit (owners
//! and admins set it). The operations are `crate::services::team_credits`'s. A team the caller
//! is not a member of answers 404, exactly as one that does not exist.

use axum::Json;
use axum::extract::State;
use dojo_ids::{TeamId, UserId};
use dojo_records::{LedgerEntry, TeamCredits};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use super::responses::{BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::team_credits::TeamCreditService;
use crate::services::teams::TeamService;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberSpendBody {
    pub user_id: String,
    pub name: Option<String>,
    /// Credits captured and still held for this member's runs in the team's workflows this
    /// calendar month (UTC).
    pub spent: i64,
    /// Credits per calendar month (UTC); absent: no limit.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamCreditsBody {
    pub team_id: String,
    /// The team's balance, never negative.
    pub balance: i64,
    /// Start of the month spend is counted from (milliseconds since the Unix epoch, UTC).
    pub month_start: i64,
    /// Every member, by user id.
    pub members: Vec<MemberSpendBody>,
}

impl From<TeamCredits> for TeamCreditsBody {
    fn from(credits: TeamCredits) -> Self {
        Self {
            team_id: credits.team_id.into_string(),
            balance: credits.balance,
            month_start: credits.month_start,
            members: credits
                .members
                .into_iter()
                .map(|m| MemberSpendBody {
                    user_id: m.user_id.into_string(),
                    name: m.name,
                    spent: m.spent,
                    limit: m.limit,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamLedgerEntryBody {
    /// The entry's cursor: newest (highest) first.
    pub id: i64,
    /// The member it was on behalf of: who started the run, who paid; for an operator's grant,
    /// the team's first owner.
    pub user_id: String,
    /// Positive for grants, purchases and releases, negative for holds.
    pub amount: i64,
    /// The team's balance right after this entry.
    pub balance_after: i64,
    pub reason: String,
    pub created_at: i64,
}

impl From<LedgerEntry> for TeamLedgerEntryBody {
    fn from(entry: LedgerEntry) -> Self {
        Self {
            id: entry.id,
            user_id: entry.user_id.into_string(),
            amount: entry.amount,
            balance_after: entry.balance_after,
            reason: entry.reason,
            created_at: entry.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamLedgerPage {
    /// Newest first.
    pub entries: Vec<TeamLedgerEntryBody>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// Entries older than this (the previous page's `nextCursor`).
    pub cursor: Option<i64>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSpendingLimit {
    /// Credits the member may spend from the team's balance per calendar month (UTC), 0 to
    /// 2^53; `null` removes the limit. Required: a body without it is refused rather than
    /// read as "no limit".
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, required = true)]
    pub limit: Option<Option<i64>>,
}

/// `Some(value)` when the field is in the body, even as `null`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpendingLimitBody {
    pub user_id: String,
    pub limit: Option<i64>,
}

/// The team's balance, and each member's spend this month with their limit (every member,
/// viewers included).
#[utoipa::path(get, path = "/api/teams/{team}/credits", tag = "teams", operation_id = "getTeamCredits",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "The balance and the members' spend", body = TeamCreditsBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn credits(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<Json<TeamCreditsBody>, ApiError> {
    let service = TeamCreditService::new(TeamService::new(&state, None));
    Ok(Json(service.credits(&caller.0, &team).await?.into()))
}

/// The team's ledger, newest first (owners and admins).
#[utoipa::path(get, path = "/api/teams/{team}/ledger", tag = "teams", operation_id = "listTeamLedger",
    params(("team" = String, Path, description = "Team id"), LedgerQuery),
    responses((status = 200, description = "A page of entries", body = TeamLedgerPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn ledger(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
    ApiQuery(query): ApiQuery<LedgerQuery>,
) -> Result<Json<TeamLedgerPage>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, dojo_records::teams::MAX_PAGE);
    let service = TeamCreditService::new(TeamService::new(&state, None));
    let entries = service.ledger(&caller.0, &team, query.cursor, limit).await?;
    let full = entries.len() >= limit as usize;
    let next_cursor = entries.last().filter(|_| full).map(|entry| entry.id);
    Ok(Json(TeamLedgerPage { entries: entries.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Sets or removes a member's monthly spending limit in the team (owners and admins).
#[utoipa::path(put, path = "/api/teams/{team}/members/{user}/spending-limit", tag = "teams",
    operation_id = "setTeamSpendingLimit",
    request_body = SetSpendingLimit,
    params(("team" = String, Path, description = "Team id"), ("user" = String, Path, description = "User id")),
    responses((status = 200, description = "The member's limit now", body = SpendingLimitBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn set_spending_limit(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((team, user)): ApiPath<(TeamId, UserId)>,
    ApiJson(body): ApiJson<SetSpendingLimit>,
) -> Result<Json<SpendingLimitBody>, ApiError> {
    let Some(limit) = body.limit else {
        return Err(ApiError::BadRequest(
            "`limit` is required (a number of credits, or null for none)".into(),
        ));
    };
    let service = TeamCreditService::new(TeamService::new(&state, addr));
    service.set_limit(&caller.0, &team, &user, limit).await?;
    Ok(Json(SpendingLimitBody { user_id: user.into_string(), limit }))
}
