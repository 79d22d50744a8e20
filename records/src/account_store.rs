//! The [`AccountStore`] trait: users, workflows, collaborators and credits.

use dojo_ids::{RoomName, TeamId, UserId, WorkflowId};

use crate::{
    AccountError, Collaborator, CollaboratorPermission, CreditOutcome, EmailShare, LedgerEntry, RoomAccess,
    User, Workflow, WorkflowInvitation, WorkflowPatch, WorkflowSummary,
};

/// Users, workflows and credits. One implementation per database kind; both pass
/// `tests/conformance.rs`.
///
/// Every write runs on a task of its own (`dojo_store::run_to_completion`): a caller that stops
/// waiting loses the answer, never a connection stuck inside a transaction.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// The user with this token subject, created on first sight. `Some` name or email replaces
    /// the stored one when it differs; `None` keeps it (a token without the claim says nothing
    /// about it). Blank values count as `None`. Writes only when something changes, so it can
    /// run on every authenticated request.
    async fn upsert_user(
        &self,
        subject: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, AccountError>;

    async fn user(&self, id: &UserId) -> Result<Option<User>, AccountError>;

    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>, AccountError>;

    /// For operators: the user whose id, subject or (case-insensitively) email is `query`, tried
    /// in that order (free text: whatever an operator typed). An email several users share is [`AccountError::AmbiguousUser`].
    async fn find_user(&self, query: &str) -> Result<Option<User>, AccountError>;

    /// The newest users first.
    async fn list_users(&self, limit: u32) -> Result<Vec<User>, AccountError>;

    /// Creates a private workflow in `room`, or in a room named after its id when `None`.
    /// [`AccountError::RoomTaken`] when a workflow, even a deleted one, has the room.
    async fn create_workflow(
        &self,
        owner_id: &UserId,
        title: &str,
        room: Option<&RoomName>,
    ) -> Result<Workflow, AccountError> {
        self.create_workflow_within(owner_id, title, room, None).await
    }

    /// Like [`create_workflow`](Self::create_workflow), refused with
    /// [`AccountError::QuotaExceeded`] when the owner already owns `max_owned` workflows
    /// (deleted ones not counted). The count is taken under the owner's row lock (PostgreSQL)
    /// or the write lock (SQLite), so concurrent creations cannot overshoot it.
    async fn create_workflow_within(
        &self,
        owner_id: &UserId,
        title: &str,
        room: Option<&RoomName>,
        max_owned: Option<u64>,
    ) -> Result<Workflow, AccountError>;

    /// Creates a private workflow of `team`, with `owner_id` as its creator, who must be a
    /// member allowed to create ([`TeamRole::creates_workflows`](crate::TeamRole)), else
    /// [`AccountError::TeamNotFound`]. Refused with [`AccountError::QuotaExceeded`] when the
    /// team already has `max_in_team` live workflows (0: no limit), counted under the team's
    /// lock.
    async fn create_team_workflow(
        &self,
        owner_id: &UserId,
        team: &TeamId,
        title: &str,
        room: Option<&RoomName>,
        max_in_team: u64,
    ) -> Result<Workflow, AccountError>;

    async fn workflow(&self, id: &WorkflowId) -> Result<Option<Workflow>, AccountError>;

    async fn workflow_by_room(&self, room: &RoomName) -> Result<Option<Workflow>, AccountError>;

    /// The workflows the user owns, collaborates on or reaches through a team, most recently
    /// updated first (at most 5,000), with the user's permission in each. Public workflows of others are not listed: public means
    /// "readable by link", not "published".
    async fn list_workflows(&self, user_id: &UserId) -> Result<Vec<WorkflowSummary>, AccountError>;

    async fn update_workflow(&self, id: &WorkflowId, patch: WorkflowPatch) -> Result<Workflow, AccountError>;

    /// Soft delete: the row stays, so the room name stays taken and access stays denied.
    async fn delete_workflow(&self, id: &WorkflowId) -> Result<(), AccountError>;

    /// Shares the workflow, or changes the permission of someone it is shared with.
    async fn set_collaborator(
        &self,
        workflow_id: &WorkflowId,
        user_id: &UserId,
        permission: CollaboratorPermission,
    ) -> Result<Collaborator, AccountError>;

    /// Whether the user was a collaborator.
    async fn remove_collaborator(
        &self,
        workflow_id: &WorkflowId,
        user_id: &UserId,
    ) -> Result<bool, AccountError>;

    /// In the order they were added.
    async fn collaborators(&self, workflow_id: &WorkflowId) -> Result<Vec<Collaborator>, AccountError>;

    /// Shares the workflow with whoever has `email`: the account that has it now, else whoever
    /// signs in with it within [`WORKFLOW_INVITATION_TTL_MS`](crate::WORKFLOW_INVITATION_TTL_MS)
    /// (inviting the address again renews it). At most
    /// [`MAX_PENDING_WORKFLOW_INVITATIONS`](crate::MAX_PENDING_WORKFLOW_INVITATIONS) wait at once.
    async fn share_by_email(
        &self,
        workflow_id: &WorkflowId,
        email: &str,
        permission: CollaboratorPermission,
        invited_by: &UserId,
    ) -> Result<EmailShare, AccountError>;

    /// The workflow's unexpired invitations, oldest first.
    async fn workflow_invitations(
        &self,
        workflow_id: &WorkflowId,
    ) -> Result<Vec<WorkflowInvitation>, AccountError>;

    /// Whether `email` had an invitation to the workflow.
    async fn revoke_workflow_invitation(
        &self,
        workflow_id: &WorkflowId,
        email: &str,
    ) -> Result<bool, AccountError>;

    /// Makes `user` a collaborator of every workflow that invited `email` (the verified email
    /// they signed in with), and forgets those invitations. Returns what they joined.
    async fn claim_workflow_invitations(
        &self,
        user: &UserId,
        email: &str,
    ) -> Result<Vec<Collaborator>, AccountError>;

    /// What `user_id` (`None`: not signed in) may do in `room`. One query: it runs on every
    /// connection. Anonymous callers are denied every workflow room, public ones included.
    async fn room_access(
        &self,
        user_id: Option<&UserId>,
        room: &RoomName,
    ) -> Result<RoomAccess, AccountError>;

    async fn balance(&self, user_id: &UserId) -> Result<i64, AccountError>;

    /// Adds `amount` (negative: spends) to the balance and appends a ledger entry, in one
    /// transaction, once per `idempotency_key`. A key already applied with the same user and
    /// amount changes nothing and returns the original entry, so callers retry freely; with a
    /// different user or amount it is [`AccountError::IdempotencyKeyReused`]. A spend beyond
    /// the balance is [`AccountError::InsufficientCredits`], with nothing written.
    ///
    /// Keys are the caller's namespace: `stripe:{event}`, `{run}:{node}:hold`, `grant:{…}`.
    async fn apply_credits(
        &self,
        user_id: &UserId,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<CreditOutcome, AccountError>;

    /// The user's newest entries first.
    async fn ledger(&self, user_id: &UserId, limit: u32) -> Result<Vec<LedgerEntry>, AccountError>;
}
