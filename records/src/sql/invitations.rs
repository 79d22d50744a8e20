//! Invitations' statements: inviting within the team's limit, answering one addressed to you,
//! revoking, and the two lists (a team's pending ones, and yours).

use dojo_ids::{InvitationId, TeamId, UserId};

use super::teams::{finish, teams_counted};
use super::{Conn, Store};
use crate::dialect::Dialect;
use crate::teams::{
    Invitation, InvitationStatus, Invitee, NewInvitation, TeamLimits, decode_role, page_size,
};
use crate::{AccountError, now_millis, quota_full};

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: InvitationId,
    team_id: TeamId,
    team_name: String,
    invitee_user_id: Option<UserId>,
    invitee_email: Option<String>,
    role: String,
    invited_by: UserId,
    status: String,
    created_at: i64,
    expires_at: i64,
    responded_at: Option<i64>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = AccountError;

    fn try_from(row: InvitationRow) -> Result<Self, AccountError> {
        Ok(Invitation {
            id: row.id,
            team_id: row.team_id,
            team_name: row.team_name,
            invitee_user_id: row.invitee_user_id,
            invitee_email: row.invitee_email,
            role: decode_role(&row.role)?,
            invited_by: row.invited_by,
            status: InvitationStatus::decode(&row.status)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            responded_at: row.responded_at,
        })
    }
}

macro_rules! invitation_select {
    () => {
        "SELECT i.id, i.team_id, t.name AS team_name, i.invitee_user_id, i.invitee_email, i.role,
                i.invited_by, i.status, i.created_at, i.expires_at, i.responded_at
         FROM team_invitations i JOIN teams t ON t.id = i.team_id "
    };
}

async fn by_id_in(conn: &mut Conn, id: &InvitationId) -> Result<Option<Invitation>, AccountError> {
    let row: Option<InvitationRow> = sqlx::query_as(concat!(invitation_select!(), "WHERE i.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(Invitation::try_from).transpose()
}

pub(super) async fn by_id(store: &Store, id: &InvitationId) -> Result<Option<Invitation>, AccountError> {
    let mut conn = store.pool().acquire().await?;
    by_id_in(&mut conn, id).await
}

async fn member_count(conn: &mut Conn, team: &TeamId) -> Result<i64, AccountError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM team_members WHERE team_id = $1")
        .bind(team)
        .fetch_one(&mut *conn)
        .await?)
}

pub(super) async fn invite(
    store: &Store,
    new: NewInvitation,
    limits: TeamLimits,
) -> Result<Invitation, AccountError> {
    let id = InvitationId::generate();
    let (user, email) = match &new.invitee {
        Invitee::User(user) => (Some(user.clone()), None),
        Invitee::Email(email) => (None, Some(email.clone())),
    };
    let now = now_millis();
    let mut w = store.begin_write().await?;
    let outcome = async {
        let found: Option<i32> =
            sqlx::query_scalar(Store::LOCK_TEAM).bind(&new.team_id).fetch_optional(&mut *w.tx).await?;
        if found.is_none() {
            return Err(AccountError::TeamNotFound(new.team_id.clone()));
        }
        if let Some(user) = &user {
            let known: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1").bind(user).fetch_optional(&mut *w.tx).await?;
            if known.is_none() {
                return Err(AccountError::UserNotFound(user.clone()));
            }
            let member: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2")
                    .bind(&new.team_id)
                    .bind(user)
                    .fetch_optional(&mut *w.tx)
                    .await?;
            if member.is_some() {
                return Err(AccountError::AlreadyMember);
            }
        }
        let pending_for_them: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM team_invitations
             WHERE team_id = $1 AND status = 'pending' AND expires_at > $2
               AND (invitee_user_id = $3 OR invitee_email = $4)
             LIMIT 1",
        )
        .bind(&new.team_id)
        .bind(now)
        .bind(&user)
        .bind(&email)
        .fetch_optional(&mut *w.tx)
        .await?;
        if pending_for_them.is_some() {
            return Err(AccountError::AlreadyInvited);
        }
        let limit = limits.max_members_per_team;
        if limit > 0 {
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM team_invitations WHERE team_id = $1 AND status = 'pending' AND expires_at > $2",
            )
            .bind(&new.team_id)
            .bind(now)
            .fetch_one(&mut *w.tx)
            .await?;
            let members = member_count(&mut w.tx, &new.team_id).await?;
            if quota_full(members.saturating_add(pending), limit) {
                return Err(AccountError::TeamFull { limit });
            }
        }
        sqlx::query(
            "INSERT INTO team_invitations (id, team_id, invitee_user_id, invitee_email, role, invited_by,
                                           status, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        )
        .bind(&id)
        .bind(&new.team_id)
        .bind(&user)
        .bind(&email)
        .bind(new.role.as_str())
        .bind(&new.invited_by)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut *w.tx)
        .await?;
        by_id_in(&mut w.tx, &id).await?.ok_or_else(|| AccountError::InvitationNotFound(id.clone()))
    }
    .await;
    finish(w, outcome).await
}

/// Whether `invitation` is addressed to the user with this id and (stored) email.
fn addressed_to(invitation: &Invitation, user: &UserId, email: Option<&str>) -> bool {
    invitation.invitee_user_id.as_ref() == Some(user)
        || invitation
            .invitee_email
            .as_deref()
            .is_some_and(|invited| email.is_some_and(|e| e.to_lowercase() == invited))
}

pub(super) async fn respond(
    store: &Store,
    id: &InvitationId,
    user: &UserId,
    accept: bool,
    limits: TeamLimits,
) -> Result<Invitation, AccountError> {
    let now = now_millis();
    let mut w = store.begin_write().await?;
    let outcome = async {
        // The user first, then the team: the order every writer here takes them in.
        let found: Option<i32> =
            sqlx::query_scalar(Store::LOCK_USER).bind(user).fetch_optional(&mut *w.tx).await?;
        if found.is_none() {
            return Err(AccountError::UserNotFound(user.clone()));
        }
        let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
            .bind(user)
            .fetch_one(&mut *w.tx)
            .await?;
        let not_found = || AccountError::InvitationNotFound(id.clone());
        let invitation = by_id_in(&mut w.tx, id).await?.ok_or_else(not_found)?;
        if !addressed_to(&invitation, user, email.as_deref()) {
            return Err(not_found());
        }
        if invitation.status != InvitationStatus::Pending {
            return Err(AccountError::InvitationClosed(invitation.status.as_str()));
        }
        if invitation.expires_at <= now {
            return Err(AccountError::InvitationExpired);
        }
        let team = &invitation.team_id;
        if accept {
            sqlx::query_scalar::<_, i32>(Store::LOCK_TEAM).bind(team).fetch_optional(&mut *w.tx).await?;
            let member: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2")
                    .bind(team)
                    .bind(user)
                    .fetch_optional(&mut *w.tx)
                    .await?;
            if member.is_some() {
                return Err(AccountError::AlreadyMember);
            }
            let limit = limits.max_teams_per_user;
            if limit > 0 && quota_full(teams_counted(&mut w.tx, user).await?, limit) {
                return Err(AccountError::QuotaExceeded { what: "teams", limit });
            }
            // The invitation held a place while pending; accepting turns it into a member.
            let limit = limits.max_members_per_team;
            if limit > 0 && quota_full(member_count(&mut w.tx, team).await?, limit) {
                return Err(AccountError::TeamFull { limit });
            }
            sqlx::query(
                "INSERT INTO team_members (team_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(team)
            .bind(user)
            .bind(invitation.role.as_str())
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        }
        let status = if accept { InvitationStatus::Accepted } else { InvitationStatus::Declined };
        sqlx::query(
            "UPDATE team_invitations SET status = $2, responded_at = $3 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        Ok(Invitation { status, responded_at: Some(now), ..invitation })
    }
    .await;
    finish(w, outcome).await
}

pub(super) async fn revoke(
    store: &Store,
    team: &TeamId,
    id: &InvitationId,
) -> Result<Invitation, AccountError> {
    let now = now_millis();
    let mut w = store.begin_write().await?;
    let outcome = async {
        let invitation = by_id_in(&mut w.tx, id)
            .await?
            .filter(|invitation| invitation.team_id == *team)
            .ok_or_else(|| AccountError::InvitationNotFound(id.clone()))?;
        if invitation.status != InvitationStatus::Pending {
            return Err(AccountError::InvitationClosed(invitation.status.as_str()));
        }
        sqlx::query(
            "UPDATE team_invitations SET status = 'revoked', responded_at = $3
             WHERE id = $1 AND team_id = $2 AND status = 'pending'",
        )
        .bind(id)
        .bind(team)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        Ok(Invitation { status: InvitationStatus::Revoked, responded_at: Some(now), ..invitation })
    }
    .await;
    finish(w, outcome).await
}

pub(super) async fn of_team(
    store: &Store,
    team: &TeamId,
    after: Option<&InvitationId>,
    limit: u32,
) -> Result<Vec<Invitation>, AccountError> {
    let rows: Vec<InvitationRow> = sqlx::query_as(concat!(
        invitation_select!(),
        "WHERE i.team_id = $1 AND i.status = 'pending' AND i.expires_at > $2 AND i.id > COALESCE($3, '')
         ORDER BY i.id LIMIT $4"
    ))
    .bind(team)
    .bind(now_millis())
    .bind(after)
    .bind(i64::from(page_size(limit)))
    .fetch_all(store.pool())
    .await?;
    rows.into_iter().map(Invitation::try_from).collect()
}

pub(super) async fn for_user(
    store: &Store,
    user: &UserId,
    after: Option<&InvitationId>,
    limit: u32,
) -> Result<Vec<Invitation>, AccountError> {
    let rows: Vec<InvitationRow> = sqlx::query_as(concat!(
        invitation_select!(),
        "WHERE i.status = 'pending' AND i.expires_at > $2 AND i.id > COALESCE($3, '')
           AND (i.invitee_user_id = $1
                OR i.invitee_email = (SELECT lower(email) FROM users WHERE id = $1))
         ORDER BY i.id LIMIT $4"
    ))
    .bind(user)
    .bind(now_millis())
    .bind(after)
    .bind(i64::from(page_size(limit)))
    .fetch_all(store.pool())
    .await?;
    rows.into_iter().map(Invitation::try_from).collect()
}
