//! Sharing a workflow by email: an address that belongs to an account is shared with at once;
//! any other address waits as an invitation until someone signs in with it (a token whose
//! email is verified: unverified emails never reach the records).

use dojo_ids::{UserId, WorkflowId};
use serde::Serialize;

use crate::{Collaborator, CollaboratorPermission};

/// How long an invitation waits for its address to sign in.
pub const WORKFLOW_INVITATION_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Most unexpired invitations one workflow holds: each is a row anyone who owns a workflow can
/// create, so they are bounded like everything else a client can make the server store.
pub const MAX_PENDING_WORKFLOW_INVITATIONS: u64 = 50;

/// An address invited to a workflow that no account has (yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowInvitation {
    pub workflow_id: WorkflowId,
    /// Lower case.
    pub email: String,
    #[sqlx(try_from = "String")]
    pub permission: CollaboratorPermission,
    pub invited_by: UserId,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What sharing with an address did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailShare {
    /// The address is an account's: it is a collaborator now.
    Shared(Collaborator),
    /// No account has the address: it becomes a collaborator when it signs in.
    Pending(WorkflowInvitation),
}
