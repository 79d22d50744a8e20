//! Teams: creating one, its members and their roles, invitations, leaving, and its audit log.
//!
//! The rule of `services::access` holds here too: a team the caller is not a member of is
//! hidden (`NotFound`, the same words as for no team at all), and `Forbidden` only answers a
//! member whose role does not allow the operation. Every operation names the team it acts
//! in, checks the caller's role in *that* team, and passes the same team id to the store, so
//! nothing reaches another team's rows.

use std::net::IpAddr;

use dojo_ids::{InvitationId, TeamId, UserId};
use dojo_records::{
    AccountError, AuditEntry, AuditQuery, Invitation, Invitee, Membership, NewInvitation, Team, TeamMember,
    TeamRole,
};
use serde_json::json;

use super::audit::{Actor, Record, record};
use super::{SignInRequired, signed_in};
use crate::caller::Caller;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error(transparent)]
    SignIn(#[from] SignInRequired),
    /// No such team, or the caller is not a member (which must read the same).
    #[error("no team {:?}", .0.as_str())]
    NotFound(TeamId),
    /// The caller is a member whose role does not allow this.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Accounts(#[from] AccountError),
}

/// The person behind `caller`. A token with room grants is good for its rooms only (see
/// `docs/api.md`), so it does not act on teams, not even its user's.
fn person(caller: &Caller) -> Result<&dojo_records::User, TeamError> {
    let user = signed_in(caller)?;
    if caller.identity().is_some_and(|identity| identity.grants.is_some()) {
        return Err(TeamError::Forbidden("a token with room grants acts on its rooms only, not on teams"));
    }
    Ok(user)
}

/// A team the caller was checked to be a member of, with their role: made only by
/// [`TeamService::membership`].
#[derive(Debug, Clone)]
pub struct TeamAccess {
    team: TeamId,
    user: UserId,
    role: TeamRole,
}

impl TeamAccess {
    pub fn role(&self) -> TeamRole {
        self.role
    }

    pub fn team(&self) -> &TeamId {
        &self.team
    }

    pub(super) fn require(&self, allowed: bool, why: &'static str) -> Result<(), TeamError> {
        if allowed { Ok(()) } else { Err(TeamError::Forbidden(why)) }
    }

    /// Owners and admins.
    pub(crate) fn require_manager(&self) -> Result<(), TeamError> {
        self.require(self.role.manages_members(), "only the team's owners and admins may do this")
    }
}

/// Rooms whose connections are told to check their access again, per page, and pages at
/// most: a team holds at most `DOJO_MAX_WORKFLOWS_PER_TEAM` workflows, and this bound keeps
/// the walk finite even when that limit is switched off.
pub(super) const ROOMS_PAGE: u32 = 500;
pub(super) const MAX_ROOM_PAGES: usize = 100;

pub struct TeamService<'a> {
    pub(super) state: &'a AppState,
    addr: Option<IpAddr>,
}

impl<'a> TeamService<'a> {
    /// `addr`: the client's address, for the audit log.
    pub fn new(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    fn limits(&self) -> dojo_records::TeamLimits {
        self.state.config().teams.limits()
    }

    pub(super) async fn audit(&self, caller: &Caller, entry: Record<'_>) {
        record(self.state.audit(), &Actor::of(caller, self.addr), entry).await;
    }

    /// The caller's membership of `team`; hidden when there is none.
    pub async fn membership(&self, caller: &Caller, team: &TeamId) -> Result<TeamAccess, TeamError> {
        let user = person(caller)?;
        match self.state.teams().role(team, &user.id).await? {
            Some(role) => Ok(TeamAccess { team: team.clone(), user: user.id.clone(), role }),
            None => Err(TeamError::NotFound(team.clone())),
        }
    }

    /// Creates a team with the caller as its owner.
    pub async fn create(&self, caller: &Caller, name: &str) -> Result<Membership, TeamError> {
        let user = person(caller)?;
        let created = self.state.teams().create_team(&user.id, name, self.limits()).await?;
        let detail = json!({"name": created.team.name});
        let team = Some(&created.team.id);
        self.audit(
            caller,
            Record {
                action: "team.created",
                target_type: "team",
                target_id: created.team.id.as_str(),
                team,
                detail,
            },
        )
        .await;
        Ok(created)
    }

    /// The caller's teams, with their role in each.
    pub async fn mine(
        &self,
        caller: &Caller,
        after: Option<&TeamId>,
        limit: u32,
    ) -> Result<Vec<Membership>, TeamError> {
        let user = person(caller)?;
        Ok(self.state.teams().teams_of(&user.id, after, limit).await?)
    }

    pub async fn get(&self, caller: &Caller, team: &TeamId) -> Result<(Team, TeamRole), TeamError> {
        let access = self.membership(caller, team).await?;
        let found = self.state.teams().team(team).await?.ok_or_else(|| TeamError::NotFound(team.clone()))?;
        Ok((found, access.role))
    }

    pub async fn members(
        &self,
        caller: &Caller,
        team: &TeamId,
        after: Option<&UserId>,
        limit: u32,
    ) -> Result<Vec<TeamMember>, TeamError> {
        let access = self.membership(caller, team).await?;
        Ok(self.state.teams().members(access.team(), after, limit).await?)
    }

    /// Invites a user (by id) or whoever signs in with an email, with `role`: owners and
    /// admins, for any role below owner ([`TeamRole::may_assign`]).
    pub async fn invite(
        &self,
        caller: &Caller,
        team: &TeamId,
        invitee: Invitee,
        role: TeamRole,
    ) -> Result<Invitation, TeamError> {
        let access = self.membership(caller, team).await?;
        access.require_manager()?;
        access.require(access.role.may_assign(None, role), "only an owner may give that role")?;
        let ttl = self.state.config().teams.invitation_ttl();
        let expires_at = now_millis().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let new = NewInvitation {
            team_id: team.clone(),
            invitee,
            role,
            invited_by: access.user.clone(),
            expires_at,
        };
        let invitation = self.state.teams().invite(new, self.limits()).await?;
        let detail = json!({
            "role": role.as_str(),
            "inviteeUserId": invitation.invitee_user_id,
            "inviteeEmail": invitation.invitee_email,
            "expiresAt": invitation.expires_at,
        });
        self.audit(
            caller,
            Record {
                action: "invitation.created",
                target_type: "invitation",
                target_id: invitation.id.as_str(),
                team: Some(team),
                detail,
            },
        )
        .await;
        Ok(invitation)
    }

    /// The team's pending invitations (owners and admins).
    pub async fn invitations(
        &self,
        caller: &Caller,
        team: &TeamId,
        after: Option<&InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, TeamError> {
        let access = self.membership(caller, team).await?;
        access.require_manager()?;
        Ok(self.state.teams().team_invitations(team, after, limit).await?)
    }

    /// Revokes one of the team's pending invitations (owners and admins).
    pub async fn revoke(
        &self,
        caller: &Caller,
        team: &TeamId,
        id: &InvitationId,
    ) -> Result<Invitation, TeamError> {
        let access = self.membership(caller, team).await?;
        access.require_manager()?;
        let invitation = self.state.teams().revoke_invitation(team, id).await?;
        self.audit(
            caller,
            Record {
                action: "invitation.revoked",
                target_type: "invitation",
                target_id: id.as_str(),
                team: Some(team),
                detail: json!({}),
            },
        )
        .await;
        Ok(invitation)
    }

    /// Pending invitations addressed to the caller.
    pub async fn my_invitations(
        &self,
        caller: &Caller,
        after: Option<&InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, TeamError> {
        let user = person(caller)?;
        Ok(self.state.teams().invitations_for(&user.id, after, limit).await?)
    }

    /// Accepts or declines an invitation addressed to the caller.
    pub async fn respond(
        &self,
        caller: &Caller,
        id: &InvitationId,
        accept: bool,
    ) -> Result<Invitation, TeamError> {
        let user = person(caller)?;
        let invitation = self.state.teams().respond(id, &user.id, accept, self.limits()).await?;
        let action = if accept { "invitation.accepted" } else { "invitation.declined" };
        let detail = json!({"role": invitation.role.as_str()});
        let team = Some(&invitation.team_id);
        self.audit(
            caller,
            Record { action, target_type: "invitation", target_id: id.as_str(), team, detail },
        )
        .await;
        Ok(invitation)
    }

    /// Gives a member another role: owners and admins, within [`TeamRole::may_assign`].
    pub async fn set_role(
        &self,
        caller: &Caller,
        team: &TeamId,
        member: &UserId,
        role: TeamRole,
    ) -> Result<TeamRole, TeamError> {
        let access = self.membership(caller, team).await?;
        access.require_manager()?;
        let current = self.state.teams().role(team, member).await?.ok_or(AccountError::NotMember)?;
        access.require(
            access.role.may_assign(Some(current), role),
            "only an owner may change an owner's role or make one",
        )?;
        let previous = self.state.teams().set_role(team, member, role).await?;
        let detail = json!({"from": previous.as_str(), "to": role.as_str()});
        self.audit(
            caller,
            Record {
                action: "member.role_changed",
                target_type: "user",
                target_id: member.as_str(),
                team: Some(team),
                detail,
            },
        )
        .await;
        if role < previous {
            self.revalidate_rooms(team).await;
        }
        Ok(previous)
    }

    /// Removes a member (owners and admins, within [`TeamRole::may_remove`]); removing
    /// yourself is leaving.
    pub async fn remove(&self, caller: &Caller, team: &TeamId, member: &UserId) -> Result<(), TeamError> {
        let access = self.membership(caller, team).await?;
        if *member == access.user {
            return self.leave(caller, team).await;
        }
        access.require_manager()?;
        let current = self.state.teams().role(team, member).await?.ok_or(AccountError::NotMember)?;
        access.require(access.role.may_remove(current), "only an owner may remove an owner")?;
        let previous = self.state.teams().remove_member(team, member).await?;
        let detail = json!({"role": previous.as_str()});
        self.audit(
            caller,
            Record {
                action: "member.removed",
                target_type: "user",
                target_id: member.as_str(),
                team: Some(team),
                detail,
            },
        )
        .await;
        self.revalidate_rooms(team).await;
        Ok(())
    }

    /// The caller leaves the team (the last owner may not).
    pub async fn leave(&self, caller: &Caller, team: &TeamId) -> Result<(), TeamError> {
        let access = self.membership(caller, team).await?;
        let previous = self.state.teams().remove_member(team, &access.user).await?;
        let detail = json!({"role": previous.as_str()});
        self.audit(
            caller,
            Record {
                action: "member.left",
                target_type: "user",
                target_id: access.user.as_str(),
                team: Some(team),
                detail,
            },
        )
        .await;
        self.revalidate_rooms(team).await;
        Ok(())
    }

    /// The team's audit log, newest first (owners and admins).
    pub async fn audit_entries(
        &self,
        caller: &Caller,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, TeamError> {
        let access = self.membership(caller, &query.team_id).await?;
        access.require_manager()?;
        Ok(self.state.audit().entries(query).await?)
    }

    /// Connections open in the team's rooms were let in under the old roles: make them
    /// reconnect (on every instance), which checks their access again.
    async fn revalidate_rooms(&self, team: &TeamId) {
        let mut after = None;
        for _ in 0..MAX_ROOM_PAGES {
            let rooms = match self.state.teams().team_rooms(team, after.as_ref(), ROOMS_PAGE).await {
                Ok(rooms) => rooms,
                Err(error) => {
                    tracing::error!(%error, %team, "could not list the team's rooms to recheck their connections");
                    return;
                }
            };
            for (_, room) in &rooms {
                self.state.rooms().permissions_changed(room).await;
            }
            if rooms.len() < ROOMS_PAGE as usize {
                return;
            }
            after = rooms.last().map(|(id, _)| id.clone());
        }
        tracing::warn!(%team, "the team has more rooms than one role change rechecks; the rest recheck on reconnect");
    }
}

/// Milliseconds since the Unix epoch.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
