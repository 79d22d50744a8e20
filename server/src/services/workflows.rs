//! Workflows: a workflow is a room with an owner, a title, collaborators and a public flag.
//! Creating, renaming, sharing (collaborators, public or private) and deleting one.

use std::net::IpAddr;

use dojo_auth::Permission;
use dojo_ids::{TeamId, UserId, WorkflowId};
use dojo_records::{
    AccountError, Collaborator, CollaboratorPermission, Workflow, WorkflowPatch, WorkflowSummary,
};
use dojo_store::StoreError;

use serde_json::json;

use super::audit::{Actor, Record, record};
use super::{SignInRequired, access, claim, signed_in};
use crate::caller::{AuthError, Caller};
use crate::room_name::{RoomName, RoomNameError};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    SignIn(#[from] SignInRequired),
    #[error(transparent)]
    BadRoom(#[from] RoomNameError),
    /// The workflow does not exist, or the caller may not see it (which must read the same).
    #[error("no workflow {:?}", .0.as_str())]
    NotFound(WorkflowId),
    #[error("only the workflow's owner may do this")]
    NotOwner,
    /// No such team, or the caller is not a member of it (which must read the same).
    #[error("no team {:?}", .0.as_str())]
    TeamNotFound(TeamId),
    #[error("viewers of a team cannot create its workflows")]
    TeamViewer,
    #[error("{:?} is not a collaborator", .0.as_str())]
    NotCollaborator(UserId),
    #[error("that address has no pending invitation to this workflow")]
    NoInvitation,
    /// One answer for every reason a room cannot be claimed (a workflow has it, a service uses
    /// it, a deleted workflow keeps it), so the answer says no more than "not yours to take".
    #[error(
        "room {:?} is taken: choose another name, or claim it with a token that has a grant on it",
        .0.as_str()
    )]
    RoomTaken(RoomName),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Accounts(#[from] AccountError),
}

/// A workflow the caller was checked to own (or administer), and who they are for the audit
/// log: made only by [`WorkflowService::owned`].
#[derive(Debug, Clone)]
pub struct OwnedWorkflow(Workflow, Actor);

impl OwnedWorkflow {
    pub fn workflow(&self) -> &Workflow {
        &self.0
    }
}

/// A workflow as the caller sees it, with its collaborators when the caller owns it.
#[derive(Debug)]
pub struct WorkflowDetail {
    pub workflow: Workflow,
    pub permission: Permission,
    pub collaborators: Vec<Collaborator>,
}

pub struct WorkflowService<'a> {
    pub(super) state: &'a AppState,
    /// The client's address, for the audit log.
    addr: Option<IpAddr>,
}

impl<'a> WorkflowService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state, addr: None }
    }

    /// The same, for a request from `addr` (recorded with what it changes).
    pub fn from_addr(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    /// Records a change to `owned`'s sharing or existence.
    pub(super) async fn audit(&self, owned: &OwnedWorkflow, action: &'static str, detail: serde_json::Value) {
        let workflow = &owned.0;
        let entry = Record {
            action,
            target_type: "workflow",
            target_id: workflow.id.as_str(),
            team: workflow.team_id.as_ref(),
            detail,
        };
        record(self.state.audit(), &owned.1, entry).await;
    }

    /// The caller's workflows: owned and shared with them, most recently updated first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<WorkflowSummary>, WorkflowError> {
        let user = signed_in(caller)?;
        Ok(self.state.auth().accounts().list_workflows(&user.id).await?)
    }

    /// Creates a private workflow owned by the caller, in `room` when they name one they may
    /// claim, else in a room named after the workflow.
    /// With `team`, the workflow is the team's: the caller must be one of its members who may
    /// create (not a viewer), and it counts against the team's limit instead of theirs.
    pub async fn create(
        &self,
        caller: &Caller,
        title: &str,
        room: Option<&str>,
        team: Option<&TeamId>,
    ) -> Result<Workflow, WorkflowError> {
        let user = signed_in(caller)?;
        let room = room.map(RoomName::parse).transpose()?;
        if let Some(team) = team {
            match self.state.teams().role(team, &user.id).await? {
                None => return Err(WorkflowError::TeamNotFound(team.clone())),
                Some(role) if !role.creates_workflows() => return Err(WorkflowError::TeamViewer),
                Some(_) => {}
            }
        }
        if let Some(room) = &room
            && !claim::claimable(self.state, caller, room).await?
        {
            return Err(WorkflowError::RoomTaken(room.clone()));
        }
        let accounts = self.state.auth().accounts();
        let created = match team {
            Some(team) => {
                let max = self.state.config().teams.max_workflows_per_team;
                accounts.create_team_workflow(&user.id, team, title, room.as_ref(), max).await
            }
            None => {
                let quota = Some(self.state.config().limits.max_workflows_per_user).filter(|&max| max > 0);
                accounts.create_workflow_within(&user.id, title, room.as_ref(), quota).await
            }
        };
        created.map_err(|error| match (error, room) {
            (AccountError::RoomTaken(_), Some(room)) => WorkflowError::RoomTaken(room),
            (AccountError::TeamNotFound(team), _) => WorkflowError::TeamNotFound(team),
            (error, _) => error.into(),
        })
    }

    /// The workflow and what the caller may do with it; hidden from those who may not see it,
    /// so that a private workflow's existence does not leak.
    pub async fn visible(
        &self,
        caller: &Caller,
        id: &WorkflowId,
    ) -> Result<(Workflow, Permission), WorkflowError> {
        let not_found = || WorkflowError::NotFound(id.clone());
        let workflow = self.state.auth().accounts().workflow(id).await?.ok_or_else(not_found)?;
        let permission = access::visible_permission(self.state, caller, &workflow.room)
            .await
            .map_err(WorkflowError::Auth)?
            .ok_or_else(not_found)?;
        let permission = workflow_permission(caller, &workflow, permission);
        Ok((workflow, permission))
    }

    /// The workflow with its collaborators, listed for the owner only.
    pub async fn detail(&self, caller: &Caller, id: &WorkflowId) -> Result<WorkflowDetail, WorkflowError> {
        let (workflow, permission) = self.visible(caller, id).await?;
        let collaborators = if permission >= Permission::Admin {
            self.state.auth().accounts().collaborators(&workflow.id).await?
        } else {
            Vec::new()
        };
        Ok(WorkflowDetail { workflow, permission, collaborators })
    }

    /// The workflow, if the caller may change its record (rename, publish, share, delete).
    pub async fn owned(&self, caller: &Caller, id: &WorkflowId) -> Result<OwnedWorkflow, WorkflowError> {
        let (workflow, permission) = self.visible(caller, id).await?;
        if permission < Permission::Admin {
            return Err(WorkflowError::NotOwner);
        }
        Ok(OwnedWorkflow(workflow, Actor::of(caller, self.addr)))
    }

    /// Renames the workflow, or makes it public or private.
    pub async fn update(
        &self,
        owned: &OwnedWorkflow,
        patch: WorkflowPatch,
    ) -> Result<Workflow, WorkflowError> {
        let made_private = owned.0.public && patch.public == Some(false);
        let published = patch.public.filter(|&public| public != owned.0.public);
        let workflow = self.state.auth().accounts().update_workflow(&owned.0.id, patch).await?;
        if let Some(public) = published {
            self.audit(owned, "workflow.visibility_changed", json!({"public": public})).await;
        }
        if made_private {
            self.revalidate_connections(&workflow.room).await;
        }
        Ok(workflow)
    }

    /// Soft: the room stays reserved and closed to everyone.
    pub async fn delete(&self, owned: OwnedWorkflow) -> Result<(), WorkflowError> {
        self.state.auth().accounts().delete_workflow(&owned.0.id).await?;
        self.audit(&owned, "workflow.deleted", json!({"room": owned.0.room.as_str()})).await;
        self.revalidate_connections(&owned.0.room).await;
        Ok(())
    }

    /// Shares the workflow with `user`, or changes what they may do.
    pub async fn set_collaborator(
        &self,
        owned: &OwnedWorkflow,
        user: &UserId,
        permission: CollaboratorPermission,
    ) -> Result<Collaborator, WorkflowError> {
        let previous = self.permission_of(owned, user).await?;
        let collaborator =
            self.state.auth().accounts().set_collaborator(&owned.0.id, user, permission).await?;
        self.shared(owned, user, permission, previous).await;
        Ok(collaborator)
    }

    /// What `user` may do in `owned` as its collaborator now, if they are one.
    pub(super) async fn permission_of(
        &self,
        owned: &OwnedWorkflow,
        user: &UserId,
    ) -> Result<Option<CollaboratorPermission>, WorkflowError> {
        let before = self.state.auth().accounts().collaborators(&owned.0.id).await?;
        Ok(before.iter().find(|c| c.user_id == *user).map(|c| c.permission))
    }

    /// After `user` was given `permission` (they had `previous`): the audit entry, the
    /// webhook, and a downgrade's effect on live connections.
    pub(super) async fn shared(
        &self,
        owned: &OwnedWorkflow,
        user: &UserId,
        permission: CollaboratorPermission,
        previous: Option<CollaboratorPermission>,
    ) {
        if previous != Some(permission) {
            let change = if previous.is_some() { "changed" } else { "added" };
            let detail = json!({
                "user": user.as_str(),
                "permission": permission.as_str(),
                "previous": previous.map(CollaboratorPermission::as_str),
            });
            self.audit(owned, "workflow.shared", detail).await;
            self.state.webhooks().emit(crate::webhooks::Trigger::WorkflowShared {
                workflow_id: owned.0.id.clone(),
                user: user.clone(),
                permission: Some(permission.as_str()),
                change,
            });
        }
        if permission == CollaboratorPermission::Read {
            // Possibly a downgrade from write: a live write connection must not keep writing.
            self.revalidate_connections(&owned.0.room).await;
        }
    }

    /// Stops sharing the workflow with `user`.
    pub async fn remove_collaborator(
        &self,
        owned: &OwnedWorkflow,
        user: &UserId,
    ) -> Result<(), WorkflowError> {
        if !self.state.auth().accounts().remove_collaborator(&owned.0.id, user).await? {
            return Err(WorkflowError::NotCollaborator(user.clone()));
        }
        self.audit(owned, "workflow.unshared", json!({"user": user.as_str()})).await;
        self.state.webhooks().emit(crate::webhooks::Trigger::WorkflowShared {
            workflow_id: owned.0.id.clone(),
            user: user.clone(),
            permission: None,
            change: "removed",
        });
        self.revalidate_connections(&owned.0.room).await;
        Ok(())
    }

    /// Connections already open in the room (on any instance) were let in under the old rules:
    /// make them reconnect.
    async fn revalidate_connections(&self, room: &RoomName) {
        self.state.rooms().permissions_changed(room).await;
    }
}

/// What the caller may do with `workflow` (the record: rename, publish, share, delete), given
/// their `permission` in its room.
fn workflow_permission(caller: &Caller, workflow: &Workflow, permission: Permission) -> Permission {
    let (Some(user), Some(identity)) = (caller.user(), caller.identity()) else { return permission };
    cap_grant_admin(
        permission,
        workflow.owner_id == user.id,
        identity.grants.is_some(),
        identity.manage_workflows,
    )
}

/// An `admin` that comes from a token's grants administers the room's document; it reaches
/// the workflow record of another user only with the token's explicit `manage_workflows`.
/// Otherwise it counts as `write` there. (Without grants, admin comes from the workflow
/// records and means "owner"; anonymous callers exist in dev mode only, where everything is
/// open anyway.)
fn cap_grant_admin(
    permission: Permission,
    is_owner: bool,
    via_grants: bool,
    manage_workflows: bool,
) -> Permission {
    if permission == Permission::Admin && via_grants && !is_owner && !manage_workflows {
        Permission::Write
    } else {
        permission
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_admin_reaches_another_users_workflow_only_when_the_token_says_so() {
        use Permission::{Admin, Read, Write};
        // (permission, is owner, via grants, manage_workflows) → permission on the record.
        assert_eq!(cap_grant_admin(Admin, false, true, false), Write);
        assert_eq!(cap_grant_admin(Admin, false, true, true), Admin);
        assert_eq!(cap_grant_admin(Admin, true, true, false), Admin, "an owner's own token with grants");
        assert_eq!(cap_grant_admin(Admin, true, false, false), Admin, "the owner, from the records");
        assert_eq!(cap_grant_admin(Write, false, true, true), Write, "the flag raises nothing");
        assert_eq!(cap_grant_admin(Read, false, true, true), Read);
    }
}
