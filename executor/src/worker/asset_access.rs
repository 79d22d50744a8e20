//! The worker's rule for which assets a run may read: those its user may read *now*.
//!
//! An asset is readable by a user who owns one of its links (they uploaded it, or one of their
//! runs produced it), or who may read one of the rooms it is linked to (uploaded for, or
//! produced in) according to the workflow records at the moment the node is about to use it.
//! So a collaborator removed from a room loses its assets at once, even with their ids in hand
//! and a run queued before the removal.
//!
//! Rooms no workflow claims have no records to ask. They count only where the server leaves
//! them open (dev mode), or for the run's own room: its user was let into that room when the
//! run was accepted (a token's grants are checked then and never stored).

use std::sync::Arc;

use async_trait::async_trait;
use dojo_ids::{AssetId, RoomName, UserId};
use dojo_records::{AccountStore, AssetLink, RoomAccess, RunStore};

use crate::asset_access::{AssetAccess, AssetAccessError};

/// Links read per check; the first ones are the oldest, the uploader's among them.
const MAX_LINKS_CHECKED: u32 = 64;

/// How rooms that no workflow claims are treated when deciding asset access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnclaimedRooms {
    /// Closed: only the run's own room counts (the server's auth mode).
    #[default]
    Closed,
    /// Open to everyone (the server's dev mode, where such rooms are open to anyone).
    Open,
}

/// What one link says about one user, before any room is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkVerdict<'a> {
    /// The user owns the link: readable.
    Owner,
    /// Readable if the user may read this room.
    Room(&'a str),
    /// Says nothing for this user.
    Nothing,
}

/// Pure part of the rule: what a link means for `user`.
pub fn link_verdict<'a>(link: &'a AssetLink, user: &UserId) -> LinkVerdict<'a> {
    if link.owner_id == *user {
        return LinkVerdict::Owner;
    }
    match link.room.as_deref() {
        Some(room) => LinkVerdict::Room(room),
        None => LinkVerdict::Nothing,
    }
}

/// Pure part of the rule: whether `access` to a linked room lets the user read the asset.
pub fn room_grants_read(access: RoomAccess, room: &str, run_room: &str, unclaimed: UnclaimedRooms) -> bool {
    match access {
        RoomAccess::Read | RoomAccess::Write | RoomAccess::Admin => true,
        RoomAccess::Denied => false,
        RoomAccess::NoWorkflow => unclaimed == UnclaimedRooms::Open || room == run_room,
    }
}

/// [`AssetAccess`] for one run: its user and room, decided from the database.
pub struct RunAssetAccess {
    pub runs: Arc<dyn RunStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub user_id: UserId,
    pub room: String,
    pub unclaimed: UnclaimedRooms,
    /// Readable by this run whatever its user may read: a published app's fixed assets, which
    /// the server checked its publisher may read when it accepted the run
    /// (`dojo_records::NewRun::granted_assets`).
    pub granted: Vec<AssetId>,
}

#[async_trait]
impl AssetAccess for RunAssetAccess {
    async fn may_read(&self, asset_id: &AssetId) -> Result<bool, AssetAccessError> {
        if self.granted.contains(asset_id) {
            return Ok(true);
        }
        let failed = |e: dojo_records::AccountError| AssetAccessError(Box::new(e));
        let links = self.runs.asset_links(asset_id, MAX_LINKS_CHECKED).await.map_err(failed)?;
        let mut rooms = Vec::new();
        for link in &links {
            match link_verdict(link, &self.user_id) {
                LinkVerdict::Owner => return Ok(true),
                LinkVerdict::Room(room) if !rooms.contains(&room) => rooms.push(room),
                LinkVerdict::Room(_) | LinkVerdict::Nothing => {}
            }
        }
        for room in rooms {
            // Links keep their room as text. A name the rule refuses is claimed by no workflow
            // (a workflow's room is a `RoomName`), which is what the store would answer.
            let access = match RoomName::parse(room) {
                Ok(name) => self.accounts.room_access(Some(&self.user_id), &name).await.map_err(failed)?,
                Err(_) => RoomAccess::NoWorkflow,
            };
            if room_grants_read(access, room, &self.room, self.unclaimed) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(owner: &str, room: Option<&str>) -> AssetLink {
        AssetLink { owner_id: owner.into(), room: room.map(Into::into), run_id: None, node_id: None }
    }

    #[test]
    fn the_owner_reads_and_a_room_link_defers_to_the_room() {
        let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
        assert_eq!(link_verdict(&link("alice", None), &alice), LinkVerdict::Owner);
        assert_eq!(link_verdict(&link("alice", Some("r")), &alice), LinkVerdict::Owner);
        assert_eq!(link_verdict(&link("alice", Some("r")), &bob), LinkVerdict::Room("r"));
        assert_eq!(link_verdict(&link("alice", None), &bob), LinkVerdict::Nothing);
    }

    #[test]
    fn readers_of_a_room_read_its_assets_and_removed_ones_do_not() {
        use UnclaimedRooms::{Closed, Open};
        for access in [RoomAccess::Read, RoomAccess::Write, RoomAccess::Admin] {
            assert!(room_grants_read(access, "alice-room", "bob-room", Closed));
        }
        assert!(!room_grants_read(RoomAccess::Denied, "alice-room", "bob-room", Open));
        assert!(!room_grants_read(RoomAccess::Denied, "alice-room", "alice-room", Closed));
    }

    #[test]
    fn an_unclaimed_room_counts_when_open_or_when_it_is_the_runs_own() {
        use UnclaimedRooms::{Closed, Open};
        assert!(room_grants_read(RoomAccess::NoWorkflow, "svc-1", "bob-room", Open));
        assert!(room_grants_read(RoomAccess::NoWorkflow, "svc-1", "svc-1", Closed));
        assert!(!room_grants_read(RoomAccess::NoWorkflow, "svc-1", "bob-room", Closed));
    }
}
