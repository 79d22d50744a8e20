//! Teams over HTTP: create and list teams, their members and roles, invitations, leaving. The
//! operations are `crate::services::teams`'s; these handlers parse, call and map. A team the
//! caller is not a member of answers 404 on every route, exactly as one that does not exist.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dojo_ids::{InvitationId, TeamId, UserId};
use dojo_records::{Invitation, Invitee, Membership, TeamMember, TeamRole};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use super::responses::{BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::services::teams::TeamService;
use crate::state::AppState;

/// Longest cursor accepted: every cursor is an id, far shorter.
const MAX_CURSOR_LEN: usize = 128;

/// A team role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a description only: bodies carry the role as text
pub enum TeamRoleName {
    Owner,
    Admin,
    Member,
    Viewer,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamBody {
    pub id: String,
    pub name: String,
    pub created_by: String,
    /// The caller's role in the team.
    #[schema(value_type = TeamRoleName)]
    pub role: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Membership> for TeamBody {
    fn from(membership: Membership) -> Self {
        let team = membership.team;
        Self {
            id: team.id.into_string(),
            name: team.name,
            created_by: team.created_by.into_string(),
            role: membership.role.as_str().to_owned(),
            created_at: team.created_at,
            updated_at: team.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamPage {
    /// By team id.
    pub teams: Vec<TeamBody>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberBody {
    pub user_id: String,
    /// The member's name, as their token says (emails are not shown to other members).
    pub name: Option<String>,
    #[schema(value_type = TeamRoleName)]
    pub role: String,
    pub joined_at: i64,
}

impl From<TeamMember> for MemberBody {
    fn from(member: TeamMember) -> Self {
        Self {
            user_id: member.user_id.into_string(),
            name: member.name,
            role: member.role.as_str().to_owned(),
            joined_at: member.joined_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleChange {
    pub user_id: String,
    #[schema(value_type = TeamRoleName)]
    pub role: String,
    #[schema(value_type = TeamRoleName)]
    pub previous_role: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberPage {
    /// By user id.
    pub members: Vec<MemberBody>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationBody {
    pub id: String,
    pub team_id: String,
    pub team_name: String,
    /// Set when the invitation names a user…
    pub invitee_user_id: Option<String>,
    /// …or this email (lower case), when it names an email.
    pub invitee_email: Option<String>,
    /// The role accepting gives (never `owner`).
    #[schema(value_type = TeamRoleName)]
    pub role: String,
    pub invited_by: String,
    /// `pending`, `accepted`, `declined` or `revoked`.
    pub status: String,
    pub created_at: i64,
    /// After this (milliseconds since the Unix epoch) it can no longer be answered.
    pub expires_at: i64,
    pub responded_at: Option<i64>,
}

impl From<Invitation> for InvitationBody {
    fn from(invitation: Invitation) -> Self {
        Self {
            id: invitation.id.into_string(),
            team_id: invitation.team_id.into_string(),
            team_name: invitation.team_name,
            invitee_user_id: invitation.invitee_user_id.map(UserId::into_string),
            invitee_email: invitation.invitee_email,
            role: invitation.role.as_str().to_owned(),
            invited_by: invitation.invited_by.into_string(),
            status: invitation.status.as_str().to_owned(),
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
            responded_at: invitation.responded_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationPage {
    /// By invitation id.
    pub invitations: Vec<InvitationBody>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTeam {
    /// 1–100 characters (trimmed), no control or invisible formatting characters.
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvitation {
    /// Invite this user… (exactly one of `userId` and `email`)
    #[serde(default)]
    pub user_id: Option<String>,
    /// …or whoever signs in with a token carrying this email (at most 254 bytes).
    #[serde(default)]
    pub email: Option<String>,
    /// `admin`, `member` or `viewer`.
    #[schema(value_type = TeamRoleName)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRole {
    #[schema(value_type = TeamRoleName)]
    pub role: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<u32>,
}

impl PageQuery {
    fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, dojo_records::teams::MAX_PAGE)
    }

    /// The cursor as an id, refused when it is longer than any id.
    fn cursor<T: From<String>>(&self) -> Result<Option<T>, ApiError> {
        match &self.cursor {
            Some(cursor) if cursor.len() > MAX_CURSOR_LEN => {
                Err(ApiError::BadRequest("`cursor` is longer than any cursor this API gives".into()))
            }
            cursor => Ok(cursor.clone().map(T::from)),
        }
    }
}

/// The next page's cursor: the last row's, when the page is full.
fn next_cursor<T>(rows: &[T], limit: u32, id: impl Fn(&T) -> String) -> Option<String> {
    (rows.len() >= limit as usize).then(|| rows.last().map(id)).flatten()
}

fn parse_role(text: &str) -> Result<TeamRole, ApiError> {
    TeamRole::parse(text).ok_or_else(|| {
        ApiError::BadRequest("`role` must be one of `owner`, `admin`, `member`, `viewer`".into())
    })
}

/// Creates a team; the caller is its first owner.
#[utoipa::path(post, path = "/api/teams", tag = "teams", operation_id = "createTeam", request_body = CreateTeam,
    responses((status = 201, description = "The team, with the caller's role (`owner`)", body = TeamBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 429, description = "`quota_exceeded`: the caller belongs to the most teams one user may; or `rate_limited`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiJson(body): ApiJson<CreateTeam>,
) -> Result<(StatusCode, Json<TeamBody>), ApiError> {
    let created = TeamService::new(&state, addr).create(&caller.0, &body.name).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// The caller's teams, with their role in each.
#[utoipa::path(get, path = "/api/teams", tag = "teams", operation_id = "listTeams", params(PageQuery),
    responses((status = 200, description = "A page of the caller's teams", body = TeamPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<TeamPage>, ApiError> {
    let limit = query.limit();
    let teams =
        TeamService::new(&state, None).mine(&caller.0, query.cursor::<TeamId>()?.as_ref(), limit).await?;
    let next_cursor = next_cursor(&teams, limit, |m| m.team.id.to_string());
    Ok(Json(TeamPage { teams: teams.into_iter().map(TeamBody::from).collect(), next_cursor }))
}

/// A team the caller is a member of, with their role.
#[utoipa::path(get, path = "/api/teams/{team}", tag = "teams", operation_id = "getTeam",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 200, description = "The team", body = TeamBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<Json<TeamBody>, ApiError> {
    let (team, role) = TeamService::new(&state, None).get(&caller.0, &team).await?;
    // `joinedAt` is not part of a team's body.
    Ok(Json(Membership { team, role, joined_at: 0 }.into()))
}

/// The team's members and their roles (any member).
#[utoipa::path(get, path = "/api/teams/{team}/members", tag = "teams", operation_id = "listTeamMembers",
    params(("team" = String, Path, description = "Team id"), PageQuery),
    responses((status = 200, description = "A page of members", body = MemberPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound), (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn members(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let limit = query.limit();
    let service = TeamService::new(&state, None);
    let members = service.members(&caller.0, &team, query.cursor::<UserId>()?.as_ref(), limit).await?;
    let next_cursor = next_cursor(&members, limit, |m| m.user_id.to_string());
    Ok(Json(MemberPage { members: members.into_iter().map(MemberBody::from).collect(), next_cursor }))
}

/// Gives a member another role (owners and admins; only an owner touches owners or makes one;
/// the last owner keeps the role).
#[utoipa::path(put, path = "/api/teams/{team}/members/{user}", tag = "teams", operation_id = "setTeamMemberRole",
    request_body = SetRole,
    params(("team" = String, Path, description = "Team id"), ("user" = String, Path, description = "User id")),
    responses((status = 200, description = "The member's new and previous role", body = RoleChange),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "`last_owner`: the team would be left without an owner", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn set_role(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((team, user)): ApiPath<(TeamId, UserId)>,
    ApiJson(body): ApiJson<SetRole>,
) -> Result<Json<RoleChange>, ApiError> {
    let role = parse_role(&body.role)?;
    let previous = TeamService::new(&state, addr).set_role(&caller.0, &team, &user, role).await?;
    Ok(Json(RoleChange {
        user_id: user.into_string(),
        role: role.as_str().to_owned(),
        previous_role: previous.as_str().to_owned(),
    }))
}

/// Removes a member (owners and admins; only an owner removes an owner). Removing yourself is
/// leaving.
#[utoipa::path(delete, path = "/api/teams/{team}/members/{user}", tag = "teams", operation_id = "removeTeamMember",
    params(("team" = String, Path, description = "Team id"), ("user" = String, Path, description = "User id")),
    responses((status = 204, description = "Removed"), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, description = "`last_owner`: the team would be left without an owner", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((team, user)): ApiPath<(TeamId, UserId)>,
) -> Result<StatusCode, ApiError> {
    TeamService::new(&state, addr).remove(&caller.0, &team, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leaves the team (its last owner may not).
#[utoipa::path(post, path = "/api/teams/{team}/leave", tag = "teams", operation_id = "leaveTeam",
    params(("team" = String, Path, description = "Team id")),
    responses((status = 204, description = "Left"), (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "`last_owner`: the team would be left without an owner", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn leave(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
) -> Result<StatusCode, ApiError> {
    TeamService::new(&state, addr).leave(&caller.0, &team).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invites a user, by id or by email, with a role below owner (owners and admins).
#[utoipa::path(post, path = "/api/teams/{team}/invitations", tag = "teams", operation_id = "inviteToTeam",
    request_body = CreateInvitation, params(("team" = String, Path, description = "Team id")),
    responses((status = 201, description = "The invitation", body = InvitationBody),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "`not_found`: no such team visible to the caller, or no such user", body = ErrorBody),
        (status = 409, description = "`already_member`, `already_invited` or `team_full`", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<InvitationBody>), ApiError> {
    let invitee = match (body.user_id, body.email) {
        (Some(user), None) if user.len() <= MAX_CURSOR_LEN => Invitee::User(UserId::from(user)),
        (Some(_), None) => return Err(ApiError::BadRequest("`userId` is longer than any user id".into())),
        (None, Some(email)) => Invitee::Email(email),
        _ => return Err(ApiError::BadRequest("give exactly one of `userId` and `email`".into())),
    };
    let role = parse_role(&body.role)?;
    let invitation = TeamService::new(&state, addr).invite(&caller.0, &team, invitee, role).await?;
    Ok((StatusCode::CREATED, Json(invitation.into())))
}

/// The team's pending invitations (owners and admins).
#[utoipa::path(get, path = "/api/teams/{team}/invitations", tag = "teams", operation_id = "listTeamInvitations",
    params(("team" = String, Path, description = "Team id"), PageQuery),
    responses((status = 200, description = "A page of pending invitations", body = InvitationPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn team_invitations(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(team): ApiPath<TeamId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<InvitationPage>, ApiError> {
    let limit = query.limit();
    let service = TeamService::new(&state, None);
    let found =
        service.invitations(&caller.0, &team, query.cursor::<InvitationId>()?.as_ref(), limit).await?;
    Ok(Json(invitation_page(found, limit)))
}

/// Revokes a pending invitation of the team (owners and admins).
#[utoipa::path(delete, path = "/api/teams/{team}/invitations/{invitation}", tag = "teams", operation_id = "revokeTeamInvitation",
    params(("team" = String, Path, description = "Team id"), ("invitation" = String, Path, description = "Invitation id")),
    responses((status = 200, description = "The invitation, revoked", body = InvitationBody),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "`invitation_closed`: answered or revoked already", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath((team, invitation)): ApiPath<(TeamId, InvitationId)>,
) -> Result<Json<InvitationBody>, ApiError> {
    let revoked = TeamService::new(&state, addr).revoke(&caller.0, &team, &invitation).await?;
    Ok(Json(revoked.into()))
}

/// Pending invitations addressed to the caller: by their user id, or by the email their token
/// carries.
#[utoipa::path(get, path = "/api/me/invitations", tag = "teams", operation_id = "listMyInvitations", params(PageQuery),
    responses((status = 200, description = "A page of invitations", body = InvitationPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn my_invitations(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<InvitationPage>, ApiError> {
    let limit = query.limit();
    let service = TeamService::new(&state, None);
    let found = service.my_invitations(&caller.0, query.cursor::<InvitationId>()?.as_ref(), limit).await?;
    Ok(Json(invitation_page(found, limit)))
}

fn invitation_page(found: Vec<Invitation>, limit: u32) -> InvitationPage {
    let next_cursor = next_cursor(&found, limit, |i| i.id.to_string());
    InvitationPage { invitations: found.into_iter().map(InvitationBody::from).collect(), next_cursor }
}

/// Accepts an invitation addressed to the caller: they join the team with its role.
#[utoipa::path(post, path = "/api/invitations/{invitation}/accept", tag = "teams", operation_id = "acceptInvitation",
    params(("invitation" = String, Path, description = "Invitation id")),
    responses((status = 200, description = "The invitation, accepted", body = InvitationBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 409, description = "`invitation_closed`, `already_member` or `team_full`", body = ErrorBody),
        (status = 410, description = "`invitation_expired`", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the caller belongs to the most teams one user may; or `rate_limited`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn accept(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(invitation): ApiPath<InvitationId>,
) -> Result<Json<InvitationBody>, ApiError> {
    Ok(Json(TeamService::new(&state, addr).respond(&caller.0, &invitation, true).await?.into()))
}

/// Declines an invitation addressed to the caller.
#[utoipa::path(post, path = "/api/invitations/{invitation}/decline", tag = "teams", operation_id = "declineInvitation",
    params(("invitation" = String, Path, description = "Invitation id")),
    responses((status = 200, description = "The invitation, declined", body = InvitationBody),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 409, description = "`invitation_closed`", body = ErrorBody),
        (status = 410, description = "`invitation_expired`", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn decline(
    State(state): State<AppState>,
    ClientIp(addr): ClientIp,
    caller: Authenticated,
    ApiPath(invitation): ApiPath<InvitationId>,
) -> Result<Json<InvitationBody>, ApiError> {
    Ok(Json(TeamService::new(&state, addr).respond(&caller.0, &invitation, false).await?.into()))
}
