//! [`TeamStore`] for this backend: validation first, then the statements of `teams.rs` and
//! `invitations.rs`, every write on a task of its own (`run_to_completion`).

use dojo_ids::{InvitationId, RoomName, TeamId, UserId, WorkflowId};
use dojo_store::run_to_completion;

use super::{Store, invitations, team_credits, team_lifecycle, teams};
use crate::AccountError;
use crate::teams::{
    Invitation, Invitee, Membership, NewInvitation, Team, TeamLimits, TeamMember, TeamRole, TeamStore,
    validate_email, validate_team_name,
};

#[async_trait::async_trait]
impl TeamStore for Store {
    async fn create_team(
        &self,
        creator: &UserId,
        name: &str,
        limits: TeamLimits,
    ) -> Result<Membership, AccountError> {
        let name = validate_team_name(name)?;
        let (this, creator) = (self.clone(), creator.clone());
        run_to_completion(async move { teams::create(&this, &creator, &name, limits).await }).await
    }

    async fn team(&self, id: &TeamId) -> Result<Option<Team>, AccountError> {
        teams::by_id(self, id).await
    }

    async fn team_credits(&self, id: &TeamId) -> Result<Option<crate::TeamCredits>, AccountError> {
        team_credits::credits(self, id).await
    }

    async fn team_ledger(
        &self,
        id: &TeamId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<crate::LedgerEntry>, AccountError> {
        team_credits::ledger_page(self, id, before, limit).await
    }

    async fn apply_team_credits(
        &self,
        id: &TeamId,
        member: Option<&UserId>,
        amount: i64,
        reason: &str,
        key: &str,
    ) -> Result<crate::CreditOutcome, AccountError> {
        crate::ledger::validate_credit_request(reason, key)?;
        let (this, id, member) = (self.clone(), id.clone(), member.cloned());
        let (reason, key) = (reason.to_owned(), key.to_owned());
        run_to_completion(async move {
            team_credits::apply(&this, &id, member.as_ref(), amount, &reason, &key).await
        })
        .await
    }

    async fn set_spending_limit(
        &self,
        id: &TeamId,
        user: &UserId,
        limit: Option<i64>,
    ) -> Result<(), AccountError> {
        crate::team_credits::validate_limit(limit)?;
        let (this, id, user) = (self.clone(), id.clone(), user.clone());
        run_to_completion(async move { team_credits::set_limit(&this, &id, &user, limit).await }).await
    }

    async fn rename_team(&self, id: &TeamId, name: &str) -> Result<Team, AccountError> {
        let name = validate_team_name(name)?;
        let (this, id) = (self.clone(), id.clone());
        run_to_completion(async move { team_lifecycle::rename(&this, &id, &name).await }).await
    }

    async fn delete_team(&self, id: &TeamId) -> Result<u64, AccountError> {
        let (this, id) = (self.clone(), id.clone());
        run_to_completion(async move { team_lifecycle::delete(&this, &id).await }).await
    }

    async fn role(&self, team: &TeamId, user: &UserId) -> Result<Option<TeamRole>, AccountError> {
        teams::role(self, team, user).await
    }

    async fn teams_of(
        &self,
        user: &UserId,
        after: Option<&TeamId>,
        limit: u32,
    ) -> Result<Vec<Membership>, AccountError> {
        teams::teams_of(self, user, after, limit).await
    }

    async fn members(
        &self,
        team: &TeamId,
        after: Option<&UserId>,
        limit: u32,
    ) -> Result<Vec<TeamMember>, AccountError> {
        teams::members(self, team, after, limit).await
    }

    async fn invite(
        &self,
        mut invitation: NewInvitation,
        limits: TeamLimits,
    ) -> Result<Invitation, AccountError> {
        if invitation.role == TeamRole::Owner {
            return Err(AccountError::InvalidInput {
                field: "role",
                reason: "an invitation cannot make an owner",
            });
        }
        if let Invitee::Email(email) = &invitation.invitee {
            invitation.invitee = Invitee::Email(validate_email(email)?);
        }
        let this = self.clone();
        run_to_completion(async move { invitations::invite(&this, invitation, limits).await }).await
    }

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, AccountError> {
        invitations::by_id(self, id).await
    }

    async fn team_invitations(
        &self,
        team: &TeamId,
        after: Option<&InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, AccountError> {
        invitations::of_team(self, team, after, limit).await
    }

    async fn invitations_for(
        &self,
        user: &UserId,
        after: Option<&InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, AccountError> {
        invitations::for_user(self, user, after, limit).await
    }

    async fn respond(
        &self,
        id: &InvitationId,
        user: &UserId,
        accept: bool,
        limits: TeamLimits,
    ) -> Result<Invitation, AccountError> {
        let (this, id, user) = (self.clone(), id.clone(), user.clone());
        run_to_completion(async move { invitations::respond(&this, &id, &user, accept, limits).await }).await
    }

    async fn revoke_invitation(&self, team: &TeamId, id: &InvitationId) -> Result<Invitation, AccountError> {
        let (this, team, id) = (self.clone(), team.clone(), id.clone());
        run_to_completion(async move { invitations::revoke(&this, &team, &id).await }).await
    }

    async fn set_role(&self, team: &TeamId, user: &UserId, role: TeamRole) -> Result<TeamRole, AccountError> {
        let (this, team, user) = (self.clone(), team.clone(), user.clone());
        run_to_completion(async move { teams::set_role(&this, &team, &user, role).await }).await
    }

    async fn remove_member(&self, team: &TeamId, user: &UserId) -> Result<TeamRole, AccountError> {
        let (this, team, user) = (self.clone(), team.clone(), user.clone());
        run_to_completion(async move { teams::remove_member(&this, &team, &user).await }).await
    }

    async fn team_rooms(
        &self,
        team: &TeamId,
        after: Option<&WorkflowId>,
        limit: u32,
    ) -> Result<Vec<(WorkflowId, RoomName)>, AccountError> {
        teams::rooms(self, team, after, limit).await
    }
}
