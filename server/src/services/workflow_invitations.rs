//! Sharing a workflow by email (owner only): the address's account becomes a collaborator at
//! once, or the address waits as an invitation until someone signs in with it (the claim
//! happens in `caller.rs`, where sign-ins are seen).

use dojo_records::{CollaboratorPermission, EmailShare, WorkflowInvitation};
use serde_json::json;

use super::signed_in;
use super::workflows::{OwnedWorkflow, WorkflowError, WorkflowService};
use crate::caller::Caller;

impl WorkflowService<'_> {
    /// Shares `owned` with whoever has `email`.
    pub async fn share_by_email(
        &self,
        caller: &Caller,
        owned: &OwnedWorkflow,
        email: &str,
        permission: CollaboratorPermission,
    ) -> Result<EmailShare, WorkflowError> {
        let inviter = signed_in(caller)?;
        let accounts = self.state.auth().accounts();
        let before = accounts.collaborators(&owned.workflow().id).await?;
        let outcome = accounts.share_by_email(&owned.workflow().id, email, permission, &inviter.id).await?;
        match &outcome {
            EmailShare::Shared(collaborator) => {
                let previous =
                    before.iter().find(|c| c.user_id == collaborator.user_id).map(|c| c.permission);
                self.shared(owned, &collaborator.user_id, permission, previous).await;
            }
            EmailShare::Pending(invitation) => {
                let detail = json!({"email": invitation.email, "permission": permission.as_str()});
                self.audit(owned, "workflow.invited", detail).await;
            }
        }
        Ok(outcome)
    }

    /// The invitations of `owned` that wait for their address to sign in.
    pub async fn invitations(&self, owned: &OwnedWorkflow) -> Result<Vec<WorkflowInvitation>, WorkflowError> {
        Ok(self.state.auth().accounts().workflow_invitations(&owned.workflow().id).await?)
    }

    /// Withdraws the invitation of `email`.
    pub async fn revoke_invitation(&self, owned: &OwnedWorkflow, email: &str) -> Result<(), WorkflowError> {
        let accounts = self.state.auth().accounts();
        if !accounts.revoke_workflow_invitation(&owned.workflow().id, email).await? {
            return Err(WorkflowError::NoInvitation);
        }
        self.audit(owned, "workflow.invitation_revoked", json!({"email": email.trim().to_lowercase()})).await;
        Ok(())
    }
}
