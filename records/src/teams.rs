//! Teams: people who share workflows, each with a role; invitations to join one; and the rules
//! of who may change what. The statements are in `sql/teams.rs` and `sql/invitations.rs`.
//!
//! Every read and write here is scoped by a team id the caller names, and every answer the
//! server gives about a team it first checked the caller is a member of: the store does not
//! hide anything by itself (the service does), but no statement reaches a row of another team.

use dojo_ids::{InvitationId, RoomName, TeamId, UserId, WorkflowId};
use serde::Serialize;

use crate::{AccountError, Permission};

/// A member's role. The order is the order of power: `Viewer < Member < Admin < Owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl TeamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Owner => "owner",
            TeamRole::Admin => "admin",
            TeamRole::Member => "member",
            TeamRole::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "owner" => TeamRole::Owner,
            "admin" => TeamRole::Admin,
            "member" => TeamRole::Member,
            "viewer" => TeamRole::Viewer,
            _ => return None,
        })
    }

    /// What this role gives in every workflow of the team: owners and admins manage them as
    /// their owner would (rename, share, delete), members edit and run, viewers read.
    pub fn workflow_permission(self) -> Permission {
        match self {
            TeamRole::Owner | TeamRole::Admin => Permission::Admin,
            TeamRole::Member => Permission::Write,
            TeamRole::Viewer => Permission::Read,
        }
    }

    /// Owners and admins invite, change roles and remove members.
    pub fn manages_members(self) -> bool {
        self >= TeamRole::Admin
    }

    /// Owners, admins and members may create workflows in the team; viewers only read.
    pub fn creates_workflows(self) -> bool {
        self >= TeamRole::Member
    }

    /// Whether a member with this role may give `target` (now `current`, `None`: not a member
    /// yet) the role `new`. Only an owner touches owners or makes one; an admin manages
    /// everyone below owner.
    pub fn may_assign(self, current: Option<TeamRole>, new: TeamRole) -> bool {
        match self {
            TeamRole::Owner => true,
            TeamRole::Admin => current != Some(TeamRole::Owner) && new != TeamRole::Owner,
            TeamRole::Member | TeamRole::Viewer => false,
        }
    }

    /// Whether a member with this role may remove a member whose role is `target`.
    pub fn may_remove(self, target: TeamRole) -> bool {
        match self {
            TeamRole::Owner => true,
            TeamRole::Admin => target != TeamRole::Owner,
            TeamRole::Member | TeamRole::Viewer => false,
        }
    }
}

/// A role as stored, decoded once: the column has a CHECK, so another value is a bug.
pub(crate) fn decode_role(text: &str) -> Result<TeamRole, AccountError> {
    TeamRole::parse(text).ok_or_else(|| {
        AccountError::Database(sqlx::Error::Decode(format!("unknown team role {text:?}").into()))
    })
}

/// A team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub created_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A team as one of its members sees it: with their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub team: Team,
    pub role: TeamRole,
    pub joined_at: i64,
}

/// A member of a team, as the team's members see them (a name, never an email).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamMember {
    pub team_id: TeamId,
    pub user_id: UserId,
    pub name: Option<String>,
    pub role: TeamRole,
    pub joined_at: i64,
}

/// Who an invitation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invitee {
    User(UserId),
    /// Lower case (see [`validate_email`]). Whoever signs in with a token carrying this email
    /// may accept: the identity provider vouches for it.
    Email(String),
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Declined,
    Revoked,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Revoked => "revoked",
        }
    }

    pub(crate) fn decode(text: &str) -> Result<Self, AccountError> {
        Ok(match text {
            "pending" => InvitationStatus::Pending,
            "accepted" => InvitationStatus::Accepted,
            "declined" => InvitationStatus::Declined,
            "revoked" => InvitationStatus::Revoked,
            other => {
                return Err(AccountError::Database(sqlx::Error::Decode(
                    format!("unknown invitation status {other:?}").into(),
                )));
            }
        })
    }
}

/// An invitation to join a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: InvitationId,
    pub team_id: TeamId,
    /// So the invitee knows what they are asked to join.
    pub team_name: String,
    pub invitee_user_id: Option<UserId>,
    pub invitee_email: Option<String>,
    pub role: TeamRole,
    pub invited_by: UserId,
    pub status: InvitationStatus,
    pub created_at: i64,
    pub expires_at: i64,
    pub responded_at: Option<i64>,
}

/// A new invitation, as [`TeamStore::invite`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    pub team_id: TeamId,
    pub invitee: Invitee,
    /// Never [`TeamRole::Owner`]: ownership is given by an owner changing a member's role.
    pub role: TeamRole,
    pub invited_by: UserId,
    pub expires_at: i64,
}

/// The limits a team's writes are checked against, under the team's (or user's) lock, so
/// concurrent writes cannot overshoot them. 0: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamLimits {
    /// Teams one user may belong to (created or joined).
    pub max_teams_per_user: u64,
    /// Members plus pending invitations of one team.
    pub max_members_per_team: u64,
}

/// Longest team name, in characters.
pub const MAX_TEAM_NAME_CHARS: usize = 100;
/// Longest invitee email, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Most rows any list of this module returns at once.
pub const MAX_PAGE: u32 = 200;

pub(crate) fn validate_team_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AccountError::InvalidInput { field: "name", reason: "empty" });
    }
    if name.chars().count() > MAX_TEAM_NAME_CHARS {
        return Err(AccountError::InvalidInput { field: "name", reason: "longer than 100 characters" });
    }
    if !name.chars().all(RoomName::valid_char) {
        return Err(AccountError::InvalidInput {
            field: "name",
            reason: "control and invisible formatting characters are not allowed",
        });
    }
    Ok(name.to_owned())
}

/// An invitee's email: trimmed, lower case, one `@` with text on both sides, no spaces or
/// control characters, at most [`MAX_EMAIL_LEN`] bytes. Compared with users' emails in lower
/// case, as operators' lookups are.
pub fn validate_email(email: &str) -> Result<String, AccountError> {
    let email = email.trim().to_lowercase();
    let invalid = |reason| Err(AccountError::InvalidInput { field: "email", reason });
    if email.is_empty() {
        return invalid("empty");
    }
    if email.len() > MAX_EMAIL_LEN {
        return invalid("longer than 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || !RoomName::valid_char(c)) {
        return invalid("spaces, control and formatting characters are not allowed");
    }
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {
            Ok(email)
        }
        _ => invalid("not an email address"),
    }
}

/// A page size within `1..=MAX_PAGE`.
pub fn page_size(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

/// Teams, members and invitations. One implementation per database kind; both pass
/// `tests/teams.rs`. Writes run on a task of their own (`run_to_completion`).
#[async_trait::async_trait]
pub trait TeamStore: Send + Sync + 'static {
    /// Creates a team with `creator` as its owner, refused with
    /// [`AccountError::QuotaExceeded`] when they already belong to `limits.max_teams_per_user`.
    async fn create_team(
        &self,
        creator: &UserId,
        name: &str,
        limits: TeamLimits,
    ) -> Result<Membership, AccountError>;

    async fn team(&self, id: &TeamId) -> Result<Option<Team>, AccountError>;

    /// The team's balance, each member's spend this calendar month (UTC) and their limits;
    /// `None`: no such team.
    async fn team_credits(&self, id: &TeamId) -> Result<Option<crate::TeamCredits>, AccountError>;

    /// The team's ledger entries, newest first, with an id below `before`, at most `limit`.
    async fn team_ledger(
        &self,
        id: &TeamId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<crate::LedgerEntry>, AccountError>;

    /// Adds `amount` (negative: removes) to the team's balance once per key, on behalf of
    /// `member` (`None`: the team's first owner). The same guarantees as
    /// [`AccountStore::apply_credits`](crate::AccountStore::apply_credits).
    async fn apply_team_credits(
        &self,
        id: &TeamId,
        member: Option<&UserId>,
        amount: i64,
        reason: &str,
        key: &str,
    ) -> Result<crate::CreditOutcome, AccountError>;

    /// Sets the member's spending limit (credits per calendar month UTC; `None`: no limit).
    /// [`AccountError::NotMember`] when they are not a member.
    async fn set_spending_limit(
        &self,
        id: &TeamId,
        user: &UserId,
        limit: Option<i64>,
    ) -> Result<(), AccountError>;

    /// Renames the team (its name validated as at creation).
    async fn rename_team(&self, id: &TeamId, name: &str) -> Result<Team, AccountError>;

    /// Deletes the team with its members and invitations, and soft-deletes its live workflows
    /// (their rooms stay reserved and closed). Returns how many workflows it deleted.
    async fn delete_team(&self, id: &TeamId) -> Result<u64, AccountError>;

    /// The user's role in the team, `None` when they are not a member (or there is no team).
    async fn role(&self, team: &TeamId, user: &UserId) -> Result<Option<TeamRole>, AccountError>;

    /// The user's teams, by team id, after the cursor `after` (a team id), at most `limit`.
    async fn teams_of(
        &self,
        user: &UserId,
        after: Option<&TeamId>,
        limit: u32,
    ) -> Result<Vec<Membership>, AccountError>;

    /// The team's members, by user id, after the cursor `after` (a user id), at most `limit`.
    async fn members(
        &self,
        team: &TeamId,
        after: Option<&UserId>,
        limit: u32,
    ) -> Result<Vec<TeamMember>, AccountError>;

    /// Records an invitation. [`AccountError::AlreadyMember`] when the invitee (by user id) is
    /// a member, [`AccountError::AlreadyInvited`] when a pending, unexpired invitation for them
    /// exists, [`AccountError::TeamFull`] at the team's limit, [`AccountError::UserNotFound`]
    /// for an unknown user id.
    async fn invite(&self, invitation: NewInvitation, limits: TeamLimits)
    -> Result<Invitation, AccountError>;

    async fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, AccountError>;

    /// The team's pending, unexpired invitations, by id, after `after`, at most `limit`.
    async fn team_invitations(
        &self,
        team: &TeamId,
        after: Option<&InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, AccountError>;

    /// Pending, unexpired invitations addressed to the user: by id, or by the email stored on
    /// their user row. By id, after `after`, at most `limit`.
    async fn invitations_for(
        &self,
        user: &UserId,
        after: Option<&InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, AccountError>;

    /// Accepts (joining the team with the invitation's role) or declines an invitation
    /// addressed to `user`. [`AccountError::InvitationNotFound`] when it is not theirs,
    /// [`AccountError::InvitationExpired`], [`AccountError::InvitationClosed`], and on accepting
    /// [`AccountError::TeamFull`], [`AccountError::QuotaExceeded`] (their teams),
    /// [`AccountError::AlreadyMember`].
    async fn respond(
        &self,
        id: &InvitationId,
        user: &UserId,
        accept: bool,
        limits: TeamLimits,
    ) -> Result<Invitation, AccountError>;

    /// Revokes a pending invitation of `team`.
    async fn revoke_invitation(&self, team: &TeamId, id: &InvitationId) -> Result<Invitation, AccountError>;

    /// Gives a member another role; returns the role they had. [`AccountError::LastOwner`] when
    /// it would leave the team without an owner; [`AccountError::NotMember`].
    async fn set_role(&self, team: &TeamId, user: &UserId, role: TeamRole) -> Result<TeamRole, AccountError>;

    /// Removes a member (or lets one leave); returns the role they had.
    /// [`AccountError::LastOwner`], [`AccountError::NotMember`].
    async fn remove_member(&self, team: &TeamId, user: &UserId) -> Result<TeamRole, AccountError>;

    /// Rooms of the team's live workflows, by workflow id, after `after`, at most `limit`: to
    /// make their connections check their access again when a member's role changes.
    async fn team_rooms(
        &self,
        team: &TeamId,
        after: Option<&WorkflowId>,
        limit: u32,
    ) -> Result<Vec<(WorkflowId, RoomName)>, AccountError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_imply_workflow_permissions() {
        assert_eq!(TeamRole::Owner.workflow_permission(), Permission::Admin);
        assert_eq!(TeamRole::Admin.workflow_permission(), Permission::Admin);
        assert_eq!(TeamRole::Member.workflow_permission(), Permission::Write);
        assert_eq!(TeamRole::Viewer.workflow_permission(), Permission::Read);
    }

    #[test]
    fn only_owners_touch_owners() {
        use TeamRole::{Admin, Member, Owner, Viewer};
        assert!(Owner.may_assign(Some(Owner), Admin));
        assert!(Owner.may_assign(Some(Member), Owner));
        assert!(Admin.may_assign(Some(Member), Admin));
        assert!(!Admin.may_assign(Some(Owner), Member));
        assert!(!Admin.may_assign(Some(Member), Owner));
        assert!(!Member.may_assign(Some(Viewer), Member));
        assert!(!Viewer.may_assign(None, Viewer));
        assert!(Admin.may_remove(Admin) && !Admin.may_remove(Owner) && Owner.may_remove(Owner));
        assert!(!Member.may_remove(Viewer));
    }

    #[test]
    fn names_and_emails_are_bounded() {
        assert!(validate_team_name(" ").is_err());
        assert!(validate_team_name(&"x".repeat(101)).is_err());
        assert!(validate_team_name("a\u{202E}b").is_err());
        assert_eq!(validate_team_name(" Studio ").ok().as_deref(), Some("Studio"));
        assert_eq!(validate_email(" Ada@Example.COM ").ok().as_deref(), Some("ada@example.com"));
        for bad in ["", "ada", "@x", "a@", "a b@x", "a@b@c", &format!("{}@x", "a".repeat(260))] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
