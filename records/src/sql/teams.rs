//! Teams' and members' statements. Writes that count members or owners lock the team row
//! first (`Dialect::LOCK_TEAM`), so two of them cannot both see room for one more, or both
//! demote "another" owner and leave none.

use dojo_ids::{RoomName, TeamId, UserId, WorkflowId};

use super::Store;
use crate::dialect::Dialect;
use crate::teams::{Membership, Team, TeamLimits, TeamMember, TeamRole, decode_role, page_size};
use crate::{AccountError, now_millis, quota_full};

#[derive(sqlx::FromRow)]
struct MembershipRow {
    #[sqlx(flatten)]
    team: Team,
    role: String,
    joined_at: i64,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = AccountError;

    fn try_from(row: MembershipRow) -> Result<Self, AccountError> {
        Ok(Membership { team: row.team, role: decode_role(&row.role)?, joined_at: row.joined_at })
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    team_id: TeamId,
    user_id: UserId,
    name: Option<String>,
    role: String,
    joined_at: i64,
}

impl TryFrom<MemberRow> for TeamMember {
    type Error = AccountError;

    fn try_from(row: MemberRow) -> Result<Self, AccountError> {
        Ok(TeamMember {
            team_id: row.team_id,
            user_id: row.user_id,
            name: row.name,
            role: decode_role(&row.role)?,
            joined_at: row.joined_at,
        })
    }
}

/// How many teams `user` belongs to, inside a transaction.
pub(super) async fn teams_counted(conn: &mut super::Conn, user: &UserId) -> Result<i64, AccountError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM team_members WHERE user_id = $1")
        .bind(user)
        .fetch_one(&mut *conn)
        .await?)
}

/// Creates the team and its first owner, within the creator's team limit. The name is
/// validated by the caller.
pub(super) async fn create(
    store: &Store,
    creator: &UserId,
    name: &str,
    limits: TeamLimits,
) -> Result<Membership, AccountError> {
    let id = TeamId::generate();
    let mut w = store.begin_write().await?;
    // The creator's row lock orders their concurrent creations and acceptances, so the count
    // below includes every one committed before.
    let found: Option<i32> =
        sqlx::query_scalar(Store::LOCK_USER).bind(creator).fetch_optional(&mut *w.tx).await?;
    if found.is_none() {
        w.tx.rollback().await?;
        return Err(AccountError::UserNotFound(creator.clone()));
    }
    let limit = limits.max_teams_per_user;
    if limit > 0 && quota_full(teams_counted(&mut w.tx, creator).await?, limit) {
        w.tx.rollback().await?;
        return Err(AccountError::QuotaExceeded { what: "teams", limit });
    }
    let now = now_millis();
    let team: Team = sqlx::query_as(
        "INSERT INTO teams (id, name, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
         RETURNING id, name, created_by, created_at, updated_at",
    )
    .bind(&id)
    .bind(name)
    .bind(creator)
    .bind(now)
    .fetch_one(&mut *w.tx)
    .await?;
    sqlx::query("INSERT INTO team_members (team_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)")
        .bind(&id)
        .bind(creator)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
    w.tx.commit().await?;
    Ok(Membership { team, role: TeamRole::Owner, joined_at: now })
}

pub(super) async fn by_id(store: &Store, id: &TeamId) -> Result<Option<Team>, AccountError> {
    Ok(sqlx::query_as("SELECT id, name, created_by, created_at, updated_at FROM teams WHERE id = $1")
        .bind(id)
        .fetch_optional(store.pool())
        .await?)
}

pub(super) async fn role(
    store: &Store,
    team: &TeamId,
    user: &UserId,
) -> Result<Option<TeamRole>, AccountError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .fetch_optional(store.pool())
            .await?;
    role.as_deref().map(decode_role).transpose()
}

pub(super) async fn teams_of(
    store: &Store,
    user: &UserId,
    after: Option<&TeamId>,
    limit: u32,
) -> Result<Vec<Membership>, AccountError> {
    let rows: Vec<MembershipRow> = sqlx::query_as(
        "SELECT t.id, t.name, t.created_by, t.created_at, t.updated_at, m.role, m.joined_at
         FROM team_members m JOIN teams t ON t.id = m.team_id
         WHERE m.user_id = $1 AND m.team_id > COALESCE($2, '')
         ORDER BY m.team_id LIMIT $3",
    )
    .bind(user)
    .bind(after)
    .bind(i64::from(page_size(limit)))
    .fetch_all(store.pool())
    .await?;
    rows.into_iter().map(Membership::try_from).collect()
}

pub(super) async fn members(
    store: &Store,
    team: &TeamId,
    after: Option<&UserId>,
    limit: u32,
) -> Result<Vec<TeamMember>, AccountError> {
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT m.team_id, m.user_id, u.name, m.role, m.joined_at
         FROM team_members m JOIN users u ON u.id = m.user_id
         WHERE m.team_id = $1 AND m.user_id > COALESCE($2, '')
         ORDER BY m.user_id LIMIT $3",
    )
    .bind(team)
    .bind(after)
    .bind(i64::from(page_size(limit)))
    .fetch_all(store.pool())
    .await?;
    rows.into_iter().map(TeamMember::try_from).collect()
}

/// Locks the team and reads `user`'s role in it: [`AccountError::TeamNotFound`] or
/// [`AccountError::NotMember`] otherwise.
async fn locked_role(conn: &mut super::Conn, team: &TeamId, user: &UserId) -> Result<TeamRole, AccountError> {
    let found: Option<i32> =
        sqlx::query_scalar(Store::LOCK_TEAM).bind(team).fetch_optional(&mut *conn).await?;
    if found.is_none() {
        return Err(AccountError::TeamNotFound(team.clone()));
    }
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    role.as_deref().map(decode_role).transpose()?.ok_or(AccountError::NotMember)
}

/// Refuses to take the owner role from `current` when no other owner would remain (under the
/// team's lock).
async fn keeps_an_owner(
    conn: &mut super::Conn,
    team: &TeamId,
    current: TeamRole,
) -> Result<(), AccountError> {
    if current != TeamRole::Owner {
        return Ok(());
    }
    let owners: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM team_members WHERE team_id = $1 AND role = 'owner'")
            .bind(team)
            .fetch_one(&mut *conn)
            .await?;
    if owners <= 1 { Err(AccountError::LastOwner) } else { Ok(()) }
}

pub(super) async fn set_role(
    store: &Store,
    team: &TeamId,
    user: &UserId,
    role: TeamRole,
) -> Result<TeamRole, AccountError> {
    let mut w = store.begin_write().await?;
    let outcome = async {
        let current = locked_role(&mut w.tx, team, user).await?;
        if role != TeamRole::Owner {
            keeps_an_owner(&mut w.tx, team, current).await?;
        }
        sqlx::query("UPDATE team_members SET role = $3 WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .bind(role.as_str())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("UPDATE teams SET updated_at = $2 WHERE id = $1")
            .bind(team)
            .bind(now_millis())
            .execute(&mut *w.tx)
            .await?;
        Ok::<_, AccountError>(current)
    }
    .await;
    finish(w, outcome).await
}

pub(super) async fn remove_member(
    store: &Store,
    team: &TeamId,
    user: &UserId,
) -> Result<TeamRole, AccountError> {
    let mut w = store.begin_write().await?;
    let outcome = async {
        let current = locked_role(&mut w.tx, team, user).await?;
        keeps_an_owner(&mut w.tx, team, current).await?;
        sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        Ok::<_, AccountError>(current)
    }
    .await;
    finish(w, outcome).await
}

/// Commits when `outcome` is a success, else rolls back and returns its error.
pub(super) async fn finish<T, DB: sqlx::Database>(
    w: crate::dialect::WriteTx<DB>,
    outcome: Result<T, AccountError>,
) -> Result<T, AccountError> {
    match outcome {
        Ok(value) => {
            w.tx.commit().await?;
            Ok(value)
        }
        Err(error) => {
            w.tx.rollback().await?;
            Err(error)
        }
    }
}

pub(super) async fn rooms(
    store: &Store,
    team: &TeamId,
    after: Option<&WorkflowId>,
    limit: u32,
) -> Result<Vec<(WorkflowId, RoomName)>, AccountError> {
    Ok(sqlx::query_as(
        "SELECT id, room FROM workflows
         WHERE team_id = $1 AND deleted_at IS NULL AND id > COALESCE($2, '')
         ORDER BY id LIMIT $3",
    )
    .bind(team)
    .bind(after)
    .bind(i64::from(limit.max(1)))
    .fetch_all(store.pool())
    .await?)
}
