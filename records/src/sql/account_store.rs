//! [`AccountStore`] for this backend: validation first, then the topic's statements, every
//! write on a task of its own (`run_to_completion`) so that a caller who stops waiting cannot
//! leave a pooled connection inside a transaction.

use dojo_ids::{RoomName, TeamId, UserId, WorkflowId};
use dojo_store::run_to_completion;

use super::{Store, collaborators, ledger, users, workflow_invitations, workflows};
use crate::ledger::validate_credit_request;
use crate::teams::validate_email;
use crate::users::{profile, profile_changes, validate_subject};
use crate::workflows::validate_title;
use crate::{
    AccountError, AccountStore, Collaborator, CollaboratorPermission, CreditOutcome, EmailShare, LedgerEntry,
    RoomAccess, User, Workflow, WorkflowInvitation, WorkflowPatch, WorkflowSummary,
};

#[async_trait::async_trait]
impl AccountStore for Store {
    async fn upsert_user(
        &self,
        subject: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, AccountError> {
        let subject = validate_subject(subject)?;
        let (name, email) = profile(name, email)?;
        // The common case, a known user whose token says nothing new, is one indexed read.
        if let Some(user) = users::by_subject(self, subject).await?
            && !profile_changes(&user, name.as_deref(), email.as_deref())
        {
            return Ok(user);
        }
        let (this, subject) = (self.clone(), subject.to_owned());
        run_to_completion(
            async move { users::upsert(&this, &subject, name.as_deref(), email.as_deref()).await },
        )
        .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, AccountError> {
        users::by_id(self, id).await
    }

    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>, AccountError> {
        users::by_subject(self, subject).await
    }

    async fn find_user(&self, query: &str) -> Result<Option<User>, AccountError> {
        // The query is free text; it is tried as an id first.
        if let Some(user) = users::by_id(self, &UserId::from(query)).await? {
            return Ok(Some(user));
        }
        if let Some(user) = users::by_subject(self, query).await? {
            return Ok(Some(user));
        }
        users::by_email(self, query).await
    }

    async fn list_users(&self, limit: u32) -> Result<Vec<User>, AccountError> {
        users::list(self, limit).await
    }

    async fn create_workflow_within(
        &self,
        owner_id: &UserId,
        title: &str,
        room: Option<&RoomName>,
        max_owned: Option<u64>,
    ) -> Result<Workflow, AccountError> {
        let title = validate_title(title)?;
        let (this, owner_id, room) = (self.clone(), owner_id.clone(), room.cloned());
        run_to_completion(
            async move { workflows::create(&this, &owner_id, &title, room, max_owned, None).await },
        )
        .await
    }

    async fn create_team_workflow(
        &self,
        owner_id: &UserId,
        team: &TeamId,
        title: &str,
        room: Option<&RoomName>,
        max_in_team: u64,
    ) -> Result<Workflow, AccountError> {
        let title = validate_title(title)?;
        let (this, owner_id, team, room) = (self.clone(), owner_id.clone(), team.clone(), room.cloned());
        run_to_completion(async move {
            workflows::create(&this, &owner_id, &title, room, None, Some((&team, max_in_team))).await
        })
        .await
    }

    async fn workflow(&self, id: &WorkflowId) -> Result<Option<Workflow>, AccountError> {
        workflows::by_id(self, id).await
    }

    async fn workflow_by_room(&self, room: &RoomName) -> Result<Option<Workflow>, AccountError> {
        workflows::by_room(self, room).await
    }

    async fn list_workflows(&self, user_id: &UserId) -> Result<Vec<WorkflowSummary>, AccountError> {
        workflows::list(self, user_id).await
    }

    async fn update_workflow(&self, id: &WorkflowId, patch: WorkflowPatch) -> Result<Workflow, AccountError> {
        let title = patch.title.as_deref().map(validate_title).transpose()?;
        let (this, id) = (self.clone(), id.clone());
        run_to_completion(async move { workflows::update(&this, id, title, patch).await }).await
    }

    async fn delete_workflow(&self, id: &WorkflowId) -> Result<(), AccountError> {
        let (this, id) = (self.clone(), id.clone());
        run_to_completion(async move { workflows::delete(&this, id).await }).await
    }

    async fn set_collaborator(
        &self,
        workflow_id: &WorkflowId,
        user_id: &UserId,
        permission: CollaboratorPermission,
    ) -> Result<Collaborator, AccountError> {
        let (this, workflow_id, user_id) = (self.clone(), workflow_id.clone(), user_id.clone());
        run_to_completion(async move { collaborators::set(&this, &workflow_id, &user_id, permission).await })
            .await
    }

    async fn remove_collaborator(
        &self,
        workflow_id: &WorkflowId,
        user_id: &UserId,
    ) -> Result<bool, AccountError> {
        let (this, workflow_id, user_id) = (self.clone(), workflow_id.clone(), user_id.clone());
        run_to_completion(async move { collaborators::remove(&this, &workflow_id, &user_id).await }).await
    }

    async fn collaborators(&self, workflow_id: &WorkflowId) -> Result<Vec<Collaborator>, AccountError> {
        collaborators::list(self, workflow_id).await
    }

    async fn share_by_email(
        &self,
        workflow_id: &WorkflowId,
        email: &str,
        permission: CollaboratorPermission,
        invited_by: &UserId,
    ) -> Result<EmailShare, AccountError> {
        let email = validate_email(email)?;
        if let Some(user) = workflow_invitations::account_of(self, &email).await? {
            return Ok(EmailShare::Shared(self.set_collaborator(workflow_id, &user, permission).await?));
        }
        let (this, workflow, address, inviter) =
            (self.clone(), workflow_id.clone(), email.clone(), invited_by.clone());
        let invitation = run_to_completion(async move {
            workflow_invitations::invite(&this, &workflow, &address, permission, &inviter).await
        })
        .await?;
        // Someone may have signed in with the address between the lookup and the insert, and
        // found nothing to claim: claim for them now, so the invitation cannot be stranded.
        if let Some(user) = workflow_invitations::account_of(self, &email).await? {
            let claimed = self.claim_workflow_invitations(&user, &email).await?;
            if let Some(collaborator) = claimed.into_iter().find(|c| c.workflow_id == *workflow_id) {
                return Ok(EmailShare::Shared(collaborator));
            }
        }
        Ok(EmailShare::Pending(invitation))
    }

    async fn workflow_invitations(
        &self,
        workflow_id: &WorkflowId,
    ) -> Result<Vec<WorkflowInvitation>, AccountError> {
        workflow_invitations::of_workflow(self, workflow_id).await
    }

    async fn revoke_workflow_invitation(
        &self,
        workflow_id: &WorkflowId,
        email: &str,
    ) -> Result<bool, AccountError> {
        let email = validate_email(email)?;
        let (this, workflow) = (self.clone(), workflow_id.clone());
        run_to_completion(async move { workflow_invitations::revoke(&this, &workflow, &email).await }).await
    }

    async fn claim_workflow_invitations(
        &self,
        user: &UserId,
        email: &str,
    ) -> Result<Vec<Collaborator>, AccountError> {
        let (this, user, email) = (self.clone(), user.clone(), email.to_owned());
        run_to_completion(async move { workflow_invitations::claim(&this, &user, &email).await }).await
    }

    async fn room_access(
        &self,
        user_id: Option<&UserId>,
        room: &RoomName,
    ) -> Result<RoomAccess, AccountError> {
        collaborators::room_access(self, user_id, room).await
    }

    async fn balance(&self, user_id: &UserId) -> Result<i64, AccountError> {
        users::balance(self, user_id).await?.ok_or_else(|| AccountError::UserNotFound(user_id.clone()))
    }

    async fn apply_credits(
        &self,
        user_id: &UserId,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<CreditOutcome, AccountError> {
        validate_credit_request(reason, idempotency_key)?;
        let this = self.clone();
        let (user_id, reason, key) = (user_id.clone(), reason.to_owned(), idempotency_key.to_owned());
        run_to_completion(async move { ledger::apply_credits(&this, &user_id, amount, &reason, &key).await })
            .await
    }

    async fn ledger(&self, user_id: &UserId, limit: u32) -> Result<Vec<LedgerEntry>, AccountError> {
        let entries = ledger::list(self, user_id, limit).await?;
        if entries.is_empty() && !users::exists(self, user_id).await? {
            return Err(AccountError::UserNotFound(user_id.clone()));
        }
        Ok(entries)
    }
}
