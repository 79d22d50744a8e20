//! Workflows: a canvas with an owner, living in a room of its own, and the rules its title and
//! room name must pass.

use dojo_ids::{RoomName, RoomNameError, TeamId, UserId, WorkflowId};
use serde::Serialize;

use crate::collaborators::{AccessFacts, decide_access};
use crate::{AccountError, Permission};

/// A canvas with an owner. Deleted workflows are never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// `wf_…`.
    pub id: WorkflowId,
    /// The room the canvas lives in (`/rooms/{room}`). Decoding a row checks the name.
    pub room: RoomName,
    pub owner_id: UserId,
    pub title: String,
    /// Readable by every signed-in user.
    pub public: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The team the workflow belongs to, whose members get the access their role implies;
    /// `None`: its owner's alone. In a team's workflow the creator (`owner_id`) has no rights
    /// of their own beyond their role: leaving the team leaves the workflow.
    pub team_id: Option<TeamId>,
}

/// A workflow as listed for one user, with what that user may do in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    #[serde(flatten)]
    pub workflow: Workflow,
    pub permission: Permission,
}

/// Changes to a workflow; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowPatch {
    pub title: Option<String>,
    pub public: Option<bool>,
}

/// Longest title accepted, in characters.
const MAX_TITLE_CHARS: usize = 200;

pub(crate) fn validate_title(title: &str) -> Result<String, AccountError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(AccountError::InvalidInput { field: "title", reason: "empty" });
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(AccountError::InvalidInput { field: "title", reason: "longer than 200 characters" });
    }
    Ok(title.to_owned())
}

/// The server's room-name rule ([`RoomName`]), for a room that still arrives as text (a run's
/// room): a run in a room the server would refuse could never reach its room.
pub(crate) fn validate_room(room: &str) -> Result<(), AccountError> {
    RoomName::check(room).map_err(room_input_error)
}

/// A [`RoomNameError`] as this crate's invalid input.
fn room_input_error(error: RoomNameError) -> AccountError {
    let reason = match error {
        RoomNameError::Empty => "empty",
        RoomNameError::TooLong => "longer than 128 bytes of UTF-8",
        RoomNameError::BadCharacter(_) => "control and invisible formatting characters are not allowed",
        RoomNameError::DotSegment => "may not be '.' or '..'",
    };
    AccountError::InvalidInput { field: "room", reason }
}

/// The room a workflow created without one lives in: the one named after its id. Ids minted
/// here always make a valid name; one that would not is refused as invalid input rather than
/// stored.
pub(crate) fn default_room(id: &WorkflowId) -> Result<RoomName, AccountError> {
    RoomName::parse(id.as_str()).map_err(room_input_error)
}

/// A row of `list_workflows`: the workflow and what decides the user's access to it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SummaryRow {
    #[sqlx(flatten)]
    pub workflow: Workflow,
    /// The user's collaborator permission, if any.
    pub shared: Option<String>,
    /// The user's role in the workflow's team, if any.
    pub team_role: Option<String>,
}

impl SummaryRow {
    /// The summary, or `None` when the rules give the user nothing (a team workflow its
    /// creator no longer reaches through the team).
    pub(crate) fn summary(self, user: &UserId) -> Result<Option<WorkflowSummary>, AccountError> {
        let facts = AccessFacts {
            owner_id: self.workflow.owner_id.clone(),
            public: false,
            deleted_at: None,
            permission: self.shared,
            team_id: self.workflow.team_id.clone(),
            team_role: self.team_role,
        };
        Ok(decide_access(Some(facts), Some(user))?
            .permission()
            .map(|permission| WorkflowSummary { workflow: self.workflow, permission }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_server_rule() {
        for good in ["a", "my-canvas", "team:plan_1.v2", "a/b", "a b", "é", ".hidden", &"x".repeat(128)] {
            assert!(validate_room(good).is_ok(), "{good}");
        }
        for bad in ["", "..", "a\nb", "a\u{202E}b", &"x".repeat(129)] {
            assert!(validate_room(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_minted_workflow_id_is_a_valid_room_name() {
        let id = WorkflowId::generate();
        assert_eq!(default_room(&id).ok().as_ref().map(RoomName::as_str), Some(id.as_str()));
        assert!(default_room(&WorkflowId::from("has\ttab")).is_err());
    }

    #[test]
    fn titles_are_trimmed_and_not_blank() {
        assert!(validate_title("  ").is_err());
        assert_eq!(validate_title(" Plan ").ok().as_deref(), Some("Plan"));
    }
}
