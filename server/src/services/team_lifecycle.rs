//! Renaming a team (owners and admins) and deleting one (owners): the team's workflows are
//! deleted with it, so whoever is in their rooms is disconnected and refused from then on.

use dojo_ids::{RoomName, TeamId};
use dojo_records::{Team, TeamRole};
use serde_json::json;

use super::audit::Record;
use super::teams::{MAX_ROOM_PAGES, ROOMS_PAGE, TeamError, TeamService};
use crate::caller::Caller;

impl TeamService<'_> {
    pub async fn rename(&self, caller: &Caller, team: &TeamId, name: &str) -> Result<Team, TeamError> {
        let access = self.membership(caller, team).await?;
        access.require_manager()?;
        let before = self.state.teams().team(team).await?.map(|t| t.name);
        let renamed = self.state.teams().rename_team(team, name).await?;
        let detail = json!({"from": before, "to": renamed.name});
        let entry = Record {
            action: "team.renamed",
            target_type: "team",
            target_id: team.as_str(),
            team: Some(team),
            detail,
        };
        self.audit(caller, entry).await;
        Ok(renamed)
    }

    /// Deletes the team, its memberships and invitations, and its workflows.
    pub async fn delete(&self, caller: &Caller, team: &TeamId) -> Result<u64, TeamError> {
        let access = self.membership(caller, team).await?;
        access.require(access.role() == TeamRole::Owner, "only the team's owners may delete it")?;
        // Listed before: once deleted, the workflows no longer name the team.
        let rooms = self.rooms(team).await?;
        let closed = self.state.teams().delete_team(team).await?;
        let detail = json!({"workflowsDeleted": closed});
        let entry = Record {
            action: "team.deleted",
            target_type: "team",
            target_id: team.as_str(),
            team: Some(team),
            detail,
        };
        self.audit(caller, entry).await;
        for room in &rooms {
            self.state.rooms().permissions_changed(room).await;
        }
        Ok(closed)
    }

    /// The rooms of the team's live workflows (bounded like every walk of them).
    async fn rooms(&self, team: &TeamId) -> Result<Vec<RoomName>, TeamError> {
        let (mut rooms, mut after) = (Vec::new(), None);
        for _ in 0..MAX_ROOM_PAGES {
            let page = self.state.teams().team_rooms(team, after.as_ref(), ROOMS_PAGE).await?;
            let full = page.len() >= ROOMS_PAGE as usize;
            after = page.last().map(|(id, _)| id.clone());
            rooms.extend(page.into_iter().map(|(_, room)| room));
            if !full {
                break;
            }
        }
        Ok(rooms)
    }
}
