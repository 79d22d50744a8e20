//! Workflows: a canvas with an owner, living in a room of its own, and the rules its title and
//! room name must pass.

use dojo_ids::{RoomName, RoomNameError};
use serde::Serialize;

use crate::collaborators::decode_error;
use crate::{AccountError, Permission};

/// A canvas with an owner. Deleted workflows are never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// `wf_…`.
    pub id: String,
    /// The room the canvas lives in (`/rooms/{room}`).
    pub room: String,
    pub owner_id: String,
    pub title: String,
    /// Readable by every signed-in user.
    pub public: bool,
    pub created_at: i64,
    pub updated_at: i64,
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

/// The server's room-name rule ([`RoomName`]): a workflow whose room the server would refuse
/// could never be opened.
pub(crate) fn validate_room(room: &str) -> Result<&str, AccountError> {
    let reason = match RoomName::check(room) {
        Ok(()) => return Ok(room),
        Err(RoomNameError::Empty) => "empty",
        Err(RoomNameError::TooLong) => "longer than 128 characters",
        Err(RoomNameError::BadCharacter(_)) => "only A-Z a-z 0-9 - _ . : are allowed",
        Err(RoomNameError::LeadingDot) => "may not start with '.'",
    };
    Err(AccountError::InvalidInput { field: "room", reason })
}

/// A row of `list_workflows` before its permission text is parsed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SummaryRow {
    #[sqlx(flatten)]
    pub workflow: Workflow,
    pub permission: String,
}

impl TryFrom<SummaryRow> for WorkflowSummary {
    type Error = AccountError;

    fn try_from(row: SummaryRow) -> Result<Self, Self::Error> {
        let permission = row.permission.parse::<Permission>().map_err(decode_error)?;
        Ok(WorkflowSummary { workflow: row.workflow, permission })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_server_rule() {
        for good in ["a", "my-canvas", "team:plan_1.v2", &"x".repeat(128)] {
            assert!(validate_room(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(validate_room(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn titles_are_trimmed_and_not_blank() {
        assert!(validate_title("  ").is_err());
        assert_eq!(validate_title(" Plan ").ok().as_deref(), Some("Plan"));
    }
}
