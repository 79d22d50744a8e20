//! The recent graph edits made over HTTP (`services::edits`), each with what undoing it needs: bounded in entries and in
//! bytes, oldest dropped first, in this process's memory. An edit that was dropped (or made on
//! another instance, or before a restart) can no longer be undone over HTTP; the answer says
//! so (404) rather than guessing.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use dojo_ids::EditId;
use dojo_sync_protocol::canvas::edits::Inverse;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

use crate::room_name::RoomName;

/// Edits kept at most, over every room.
const MAX_ENTRIES: usize = 4096;
/// Bytes of before/after entries kept at most, over every room.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// An edit whose undo would hold more than this is applied but not kept.
const MAX_ENTRY_BYTES: usize = 8 * 1024 * 1024;
/// Room locks, shared by hashing: bounded however many rooms there are.
const LOCK_STRIPES: usize = 64;

pub struct EditHistory {
    log: Mutex<Log>,
    locks: [AsyncMutex<()>; LOCK_STRIPES],
}

impl Default for EditHistory {
    fn default() -> Self {
        Self { log: Mutex::default(), locks: std::array::from_fn(|_| AsyncMutex::new(())) }
    }
}

#[derive(Default)]
struct Log {
    entries: HashMap<EditId, Entry>,
    /// Oldest first; may name entries already taken (skipped when met).
    order: VecDeque<EditId>,
    bytes: usize,
}

struct Entry {
    room: RoomName,
    inverse: Arc<Inverse>,
    weight: usize,
}

impl EditHistory {
    /// Held while an edit or an undo of `room` reads, plans and applies, so that two HTTP edits
    /// of one room are checked one after the other (a WebSocket client can still edit at any
    /// moment: that is what the CRDT merges).
    pub async fn lock(&self, room: &RoomName) -> MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        room.as_str().hash(&mut hasher);
        let stripe = (hasher.finish() % LOCK_STRIPES as u64) as usize;
        self.locks[stripe].lock().await
    }

    /// Keeps `inverse` under `id`; false when it is too large to keep.
    pub fn record(&self, id: EditId, room: RoomName, inverse: Inverse) -> bool {
        let weight = inverse.weight() + id.as_str().len() + room.as_str().len();
        if weight > MAX_ENTRY_BYTES {
            tracing::info!(%room, edit = %id, weight, "edit applied but too large to keep for undo");
            return false;
        }
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.bytes += weight;
        log.order.push_back(id.clone());
        log.entries.insert(id, Entry { room, inverse: Arc::new(inverse), weight });
        while log.entries.len() > MAX_ENTRIES || log.bytes > MAX_BYTES {
            let Some(oldest) = log.order.pop_front() else { break };
            if let Some(entry) = log.entries.remove(&oldest) {
                log.bytes -= entry.weight;
            }
        }
        if log.order.len() > 2 * MAX_ENTRIES {
            let Log { entries, order, .. } = &mut *log;
            order.retain(|id| entries.contains_key(id));
        }
        true
    }

    /// The edit's inverse, if it is kept and was made in `room`.
    pub fn get(&self, room: &RoomName, id: &EditId) -> Option<Arc<Inverse>> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.entries.get(id).filter(|e| e.room == *room).map(|e| e.inverse.clone())
    }

    /// Forgets an edit (it was undone).
    pub fn take(&self, id: &EditId) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = log.entries.remove(id) {
            log.bytes -= entry.weight;
        }
    }
}

#[cfg(test)]
mod tests {
    use dojo_sync_protocol::canvas::CanvasGraph;
    use dojo_sync_protocol::canvas::edits::{Created, Planned};

    use super::*;

    fn empty_inverse() -> Inverse {
        let planned = Planned {
            steps: Vec::new(),
            created: Created::default(),
            touched_nodes: Default::default(),
            touched_edges: Default::default(),
        };
        Inverse::compute(&CanvasGraph::default(), &CanvasGraph::default(), &planned)
    }

    #[test]
    fn the_oldest_edits_go_first_and_rooms_do_not_mix() {
        let history = EditHistory::default();
        let room = RoomName::parse("r").expect("room");
        let other = RoomName::parse("s").expect("room");
        let ids: Vec<EditId> = (0..MAX_ENTRIES + 10).map(|_| EditId::generate()).collect();
        for id in &ids {
            assert!(history.record(id.clone(), room.clone(), empty_inverse()));
        }
        assert!(history.get(&room, &ids[0]).is_none(), "the oldest was dropped");
        assert!(history.get(&room, &ids[MAX_ENTRIES + 9]).is_some());
        assert!(history.get(&other, &ids[MAX_ENTRIES + 9]).is_none(), "another room's edit is not found");
        history.take(&ids[MAX_ENTRIES + 9]);
        assert!(history.get(&room, &ids[MAX_ENTRIES + 9]).is_none());
        assert!(history.log.lock().unwrap().order.len() <= 2 * MAX_ENTRIES + 1);
    }
}
