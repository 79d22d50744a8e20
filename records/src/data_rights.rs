//! A person's rights over their data (issue 22): what is read for an export, the analytics
//! opt-out, and deleting an account.
//!
//! Deleting is confirmed in two steps: [`DataRightsStore::request_deletion`] stores the hash of a
//! short-lived token bound to the user, and [`DataRightsStore::delete_account`] runs only with
//! that token, in one write transaction. What is deleted, what is handed on and what is kept
//! anonymised is listed in `docs/data-rights.md`; the statements are in
//! `sql/account_deletion.rs`. The ledger and the audit log keep their rows (accounting law,
//! security), with the user's id replaced by a pseudonym, `deleted-…`: the only UPDATE their
//! append-only triggers accept (migration 0010).

use dojo_ids::UserId;
use serde::Serialize;

use crate::AccountError;
use crate::runs::Run;

/// The prefix of every deleted user's pseudonym; the ledger's and audit log's triggers accept
/// an UPDATE only towards a value that carries it.
pub const PSEUDONYM_PREFIX: &str = "deleted-";

/// An asset the user has a link to (an upload, or a run node's output), with that link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedAsset {
    pub id: String,
    pub content_type: String,
    pub size: i64,
    pub room: Option<String>,
    pub run_id: Option<String>,
    pub node_id: Option<String>,
    pub created_at: i64,
}

/// What deleting the account would do, as shown before it is confirmed (and what it did).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionPlan {
    /// Workflows they own outside any team that outlives them: deleted with their documents.
    pub workflows_deleted: i64,
    /// Workflows they own in a team that keeps other members: kept for the team, owned by the
    /// pseudonym.
    pub workflows_kept_for_teams: i64,
    /// Teams they are the only member of: deleted.
    pub teams_deleted: i64,
    /// Teams they are the only owner of, with other members: deletion is refused until they
    /// make someone else owner.
    pub teams_needing_an_owner: Vec<String>,
    pub team_memberships: i64,
    pub runs: i64,
    /// Runs still queued or running: deletion is refused until they finish or are cancelled.
    pub active_runs: i64,
    pub assets: i64,
    pub webhooks: i64,
    /// Kept, anonymised (accounting law).
    pub ledger_entries: i64,
    /// The balance that is given up: the ledger records it as a final entry.
    pub credits_forfeited: i64,
}

impl DeletionPlan {
    /// Why the account cannot be deleted yet, if it cannot.
    pub fn blocker(&self) -> Option<AccountError> {
        if !self.teams_needing_an_owner.is_empty() {
            return Some(AccountError::LastOwner);
        }
        if self.active_runs > 0 {
            return Some(AccountError::RunsActive(self.active_runs));
        }
        None
    }
}

/// What a deletion did, for the caller to finish outside the database: the asset bytes no
/// link needs any more, and the rooms whose connections must be checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedAccount {
    pub pseudonym: String,
    pub plan: DeletionPlan,
    /// Assets nobody has a link to any more: their bytes go from the asset store.
    pub orphaned_assets: Vec<String>,
    /// Every room the user could open: live connections there reconnect and are checked again.
    pub rooms: Vec<String>,
}

/// A user's data, as an export and a deletion read and change it.
#[async_trait::async_trait]
pub trait DataRightsStore: Send + Sync + 'static {
    async fn analytics_opt_out(&self, user: &UserId) -> Result<bool, AccountError>;

    async fn set_analytics_opt_out(&self, user: &UserId, opt_out: bool) -> Result<(), AccountError>;

    /// The runs the user started, newest first, at most `limit`.
    async fn runs_of(&self, user: &UserId, limit: u32) -> Result<Vec<Run>, AccountError>;

    /// The assets the user has links to, newest first, at most `limit`.
    async fn assets_of(&self, user: &UserId, limit: u32) -> Result<Vec<OwnedAsset>, AccountError>;

    /// What [`delete_account`](Self::delete_account) would do now.
    async fn deletion_plan(&self, user: &UserId) -> Result<DeletionPlan, AccountError>;

    /// Stores a confirmation (the token's hash), replacing an earlier one of the user.
    async fn request_deletion(
        &self,
        user: &UserId,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), AccountError>;

    /// Deletes the account if `token_hash` is the user's pending confirmation and has not
    /// expired ([`AccountError::DeletionNotConfirmed`] otherwise, and nothing changes), and no
    /// [`DeletionPlan::blocker`] stands in the way. `pseudonym` must start with
    /// [`PSEUDONYM_PREFIX`].
    async fn delete_account(
        &self,
        user: &UserId,
        token_hash: &str,
        pseudonym: &str,
    ) -> Result<DeletedAccount, AccountError>;
}
