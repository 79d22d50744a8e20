//! Collaborators, and what a user may do in a room as the workflow records say.

use dojo_ids::{UserId, WorkflowId};
use serde::{Deserialize, Serialize};

use crate::{AccountError, Permission};

/// What a collaborator may be given. Admin is the owner's alone, so it cannot be granted: one
/// owner per workflow keeps "who may delete it or share it" unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollaboratorPermission {
    Read,
    Write,
}

impl CollaboratorPermission {
    pub fn as_str(self) -> &'static str {
        match self {
            CollaboratorPermission::Read => "read",
            CollaboratorPermission::Write => "write",
        }
    }
}

impl From<CollaboratorPermission> for Permission {
    fn from(permission: CollaboratorPermission) -> Self {
        match permission {
            CollaboratorPermission::Read => Permission::Read,
            CollaboratorPermission::Write => Permission::Write,
        }
    }
}

impl std::str::FromStr for CollaboratorPermission {
    type Err = dojo_auth::UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(CollaboratorPermission::Read),
            "write" => Ok(CollaboratorPermission::Write),
            other => Err(dojo_auth::UnknownPermission(other.to_owned())),
        }
    }
}

// For `#[sqlx(try_from = "String")]`: the column is TEXT with a CHECK, decoded once here.
impl TryFrom<String> for CollaboratorPermission {
    type Error = dojo_auth::UnknownPermission;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// Someone a workflow is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Collaborator {
    pub workflow_id: WorkflowId,
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub permission: CollaboratorPermission,
    pub added_at: i64,
}

/// What a user may do in a room, as the workflow records say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomAccess {
    /// No workflow claims this room: the caller's policy decides (open, or refused).
    NoWorkflow,
    /// A workflow claims the room and this user may not open it. A *deleted* workflow answers
    /// this to everyone, its owner included: its room name stays taken and its document stays
    /// stored, so treating it as "no workflow" would reopen the deleted canvas to whoever the
    /// no-workflow policy lets in.
    Denied,
    /// A read collaborator, or any signed-in user on a public workflow.
    Read,
    /// A write collaborator.
    Write,
    /// The owner, or an owner or admin of the workflow's team.
    Admin,
}

impl RoomAccess {
    /// The permission granted, if any (`None` for [`Denied`](Self::Denied) and
    /// [`NoWorkflow`](Self::NoWorkflow)).
    pub fn permission(self) -> Option<Permission> {
        match self {
            RoomAccess::NoWorkflow | RoomAccess::Denied => None,
            RoomAccess::Read => Some(Permission::Read),
            RoomAccess::Write => Some(Permission::Write),
            RoomAccess::Admin => Some(Permission::Admin),
        }
    }
}

impl From<Permission> for RoomAccess {
    fn from(permission: Permission) -> Self {
        match permission {
            Permission::Read => RoomAccess::Read,
            Permission::Write => RoomAccess::Write,
            Permission::Admin => RoomAccess::Admin,
        }
    }
}

/// A workflow room's record as [`AccountStore::room_access`] reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AccessFacts {
    pub owner_id: UserId,
    pub public: bool,
    pub deleted_at: Option<i64>,
    /// The asking user's collaborator permission, if any.
    pub permission: Option<String>,
    /// The workflow's team, if it belongs to one.
    pub team_id: Option<dojo_ids::TeamId>,
    /// The asking user's role in that team, if any.
    pub team_role: Option<String>,
}

pub(crate) fn decide_access(
    facts: Option<AccessFacts>,
    user_id: Option<&UserId>,
) -> Result<RoomAccess, AccountError> {
    let Some(facts) = facts else { return Ok(RoomAccess::NoWorkflow) };
    if facts.deleted_at.is_some() {
        return Ok(RoomAccess::Denied);
    }
    let Some(user_id) = user_id else { return Ok(RoomAccess::Denied) };
    // A team's workflow is the team's: its creator's rights are their role's, so that leaving
    // the team (or being removed) takes them away.
    if facts.team_id.is_none() && facts.owner_id == *user_id {
        return Ok(RoomAccess::Admin);
    }
    let shared = facts.permission.map(CollaboratorPermission::try_from).transpose().map_err(decode_error)?;
    let shared = shared.map(Permission::from);
    let public = facts.public.then_some(Permission::Read);
    let team = match (&facts.team_id, facts.team_role.as_deref()) {
        (Some(_), Some(role)) => Some(crate::teams::decode_role(role)?.workflow_permission()),
        _ => None,
    };
    Ok(shared.max(public).max(team).map_or(RoomAccess::Denied, RoomAccess::from))
}

/// A value in the database this code cannot read: reported like any other decode failure.
pub(crate) fn decode_error(error: dojo_auth::UnknownPermission) -> AccountError {
    AccountError::Database(sqlx::Error::Decode(Box::new(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(owner: &str, public: bool, deleted: bool, permission: Option<&str>) -> Option<AccessFacts> {
        Some(AccessFacts {
            owner_id: UserId::from(owner),
            public,
            deleted_at: deleted.then_some(1),
            permission: permission.map(str::to_owned),
            team_id: None,
            team_role: None,
        })
    }

    fn team_facts(owner: &str, role: Option<&str>, shared: Option<&str>) -> Option<AccessFacts> {
        Some(AccessFacts {
            owner_id: UserId::from(owner),
            public: false,
            deleted_at: None,
            permission: shared.map(str::to_owned),
            team_id: Some(dojo_ids::TeamId::from("team_1")),
            team_role: role.map(str::to_owned),
        })
    }

    #[test]
    fn team_roles_grant_and_the_creator_holds_nothing_of_their_own() {
        let u = UserId::from("u");
        let decide = |facts| decide_access(facts, Some(&u)).ok();
        assert_eq!(decide(team_facts("o", Some("owner"), None)), Some(RoomAccess::Admin));
        assert_eq!(decide(team_facts("o", Some("admin"), None)), Some(RoomAccess::Admin));
        assert_eq!(decide(team_facts("o", Some("member"), None)), Some(RoomAccess::Write));
        assert_eq!(decide(team_facts("o", Some("viewer"), None)), Some(RoomAccess::Read));
        assert_eq!(decide(team_facts("o", Some("viewer"), Some("write"))), Some(RoomAccess::Write));
        assert_eq!(decide(team_facts("u", None, None)), Some(RoomAccess::Denied), "the creator who left");
        assert_eq!(decide(team_facts("o", None, None)), Some(RoomAccess::Denied));
    }

    #[test]
    fn access_takes_the_strongest_grant() {
        let u = UserId::from("u");
        let decide = |facts, user| decide_access(facts, user).ok();
        assert_eq!(decide(None, Some(&u)), Some(RoomAccess::NoWorkflow));
        assert_eq!(decide(facts("u", false, false, None), Some(&u)), Some(RoomAccess::Admin));
        assert_eq!(decide(facts("o", true, false, Some("write")), Some(&u)), Some(RoomAccess::Write));
        assert_eq!(decide(facts("o", true, false, None), Some(&u)), Some(RoomAccess::Read));
        assert_eq!(decide(facts("o", true, false, None), None), Some(RoomAccess::Denied));
        assert_eq!(decide(facts("u", false, true, None), Some(&u)), Some(RoomAccess::Denied));
        assert!(decide_access(facts("o", false, false, Some("owner")), Some(&u)).is_err());
    }
}
