//! Bounds on presence (awareness): how big one client's state may be, how much presence one
//! connection may publish, and how the presence of a whole room is cut into frames.
//!
//! Presence is relayed to everyone in the room and sent whole to every client that joins, so an
//! unbounded state made a room unjoinable (its join frame outgrew what can be sent) and made
//! every slow reader hold copies of it. Pure logic: the room and the socket readers call it.

use yrs::ClientID;
use yrs::sync::AwarenessUpdate;

/// The JSON y-protocols uses for "this client's presence is gone".
const REMOVED: &str = "null";

/// Bytes an awareness entry costs on the wire besides its JSON: client id, clock and the
/// string's length, each a varUint of at most 10 bytes.
pub const ENTRY_OVERHEAD_BYTES: usize = 30;

/// What presence the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceLimits {
    /// Largest JSON state of one awareness client id.
    pub max_state_bytes: usize,
    /// Largest sum of the states of the awareness client ids one connection controls.
    pub max_connection_bytes: usize,
}

impl From<&crate::config::Limits> for PresenceLimits {
    fn from(limits: &crate::config::Limits) -> Self {
        Self {
            max_state_bytes: limits.max_awareness_state_bytes,
            max_connection_bytes: limits.max_awareness_connection_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    #[error("presence state of {size} bytes is over the limit of {limit} bytes")]
    StateTooLarge { size: usize, limit: usize },
    #[error("presence of one connection would total {total} bytes, over the limit of {limit} bytes")]
    ConnectionTooLarge { total: usize, limit: usize },
}

/// The size a state counts for: its JSON, or nothing when it removes the client.
pub fn state_bytes(json: &str) -> usize {
    if json == REMOVED { 0 } else { json.len() }
}

/// Checks each state of one update against `max_state_bytes`, before any room state is known.
/// Cheap enough for the socket reader, so an oversized state is refused before it waits in a
/// room's queue. Not the connection's total: stock clients send back every presence change
/// they apply, other clients' states included, and only the room can tell those echoes (which
/// it ignores) from states the connection claims.
pub fn check_states(update: &AwarenessUpdate, limits: &PresenceLimits) -> Result<(), PresenceError> {
    for entry in update.clients.values() {
        let size = state_bytes(&entry.json);
        if size > limits.max_state_bytes {
            return Err(PresenceError::StateTooLarge { size, limit: limits.max_state_bytes });
        }
    }
    Ok(())
}

/// Checks what one update may carry on its own once the room has dropped the states the
/// connection does not own: each state within `max_state_bytes`, and all of them together
/// within `max_connection_bytes` (one connection cannot hold more than that anyway).
pub fn check_update(update: &AwarenessUpdate, limits: &PresenceLimits) -> Result<(), PresenceError> {
    let mut total = 0usize;
    for entry in update.clients.values() {
        let size = state_bytes(&entry.json);
        if size > limits.max_state_bytes {
            return Err(PresenceError::StateTooLarge { size, limit: limits.max_state_bytes });
        }
        total = total.saturating_add(size);
    }
    if total > limits.max_connection_bytes {
        return Err(PresenceError::ConnectionTooLarge { total, limit: limits.max_connection_bytes });
    }
    Ok(())
}

/// What a connection's presence would total once `incoming` (id → new state size, 0 for a
/// removal) replaces what it holds (`held`: id → current state size).
pub fn connection_total_after(
    held: impl IntoIterator<Item = (ClientID, usize)>,
    incoming: &[(ClientID, usize)],
) -> usize {
    let replaced = |id: &ClientID| incoming.iter().any(|(new, _)| new == id);
    let kept: usize = held.into_iter().filter(|(id, _)| !replaced(id)).map(|(_, size)| size).sum();
    kept.saturating_add(incoming.iter().map(|(_, size)| size).sum())
}

/// Cuts presence into groups whose awareness message stays within `max_frame_bytes` (one state
/// always makes a group, whatever its size): the presence a joining client receives then goes
/// out as several frames, each bounded, however many clients a room holds. Stock clients apply
/// each awareness frame on its own, so nothing is lost by splitting.
pub fn group_for_frames(
    states: impl IntoIterator<Item = (ClientID, usize)>,
    max_frame_bytes: usize,
) -> Vec<Vec<ClientID>> {
    let mut groups = Vec::new();
    let mut group = Vec::new();
    // The message's type byte and entry count.
    let header: usize = 1 + 10;
    let mut size = header;
    for (id, state) in states {
        let entry = state.saturating_add(ENTRY_OVERHEAD_BYTES);
        if !group.is_empty() && size.saturating_add(entry) > max_frame_bytes {
            groups.push(std::mem::take(&mut group));
            size = header;
        }
        group.push(id);
        size = size.saturating_add(entry);
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use yrs::sync::awareness::AwarenessUpdateEntry;

    use super::*;

    const LIMITS: PresenceLimits = PresenceLimits { max_state_bytes: 100, max_connection_bytes: 250 };

    fn id(n: u64) -> ClientID {
        ClientID::new(n)
    }

    fn update(states: &[(u64, &str)]) -> AwarenessUpdate {
        let clients: HashMap<_, _> = states
            .iter()
            .map(|(n, json)| (id(*n), AwarenessUpdateEntry { clock: 1, json: (*json).into() }))
            .collect();
        AwarenessUpdate { clients }
    }

    #[test]
    fn a_state_over_the_limit_is_refused_and_removals_cost_nothing() {
        let big = "x".repeat(101);
        assert_eq!(
            check_update(&update(&[(1, &big)]), &LIMITS),
            Err(PresenceError::StateTooLarge { size: 101, limit: 100 })
        );
        assert_eq!(check_update(&update(&[(1, &"x".repeat(100)), (2, "null")]), &LIMITS), Ok(()));
        assert_eq!(state_bytes("null"), 0);
    }

    #[test]
    fn one_update_cannot_carry_more_than_a_connection_may_hold() {
        let state = "x".repeat(90);
        let three = update(&[(1, &state), (2, &state), (3, &state)]);
        assert_eq!(
            check_update(&three, &LIMITS),
            Err(PresenceError::ConnectionTooLarge { total: 270, limit: 250 })
        );
    }

    #[test]
    fn the_reader_checks_each_state_but_leaves_the_total_to_the_room() {
        // An echo of three other clients' states is over one connection's total, yet fine to
        // read: the room drops what the connection does not own before it adds anything up.
        let state = "x".repeat(90);
        assert_eq!(check_states(&update(&[(1, &state), (2, &state), (3, &state)]), &LIMITS), Ok(()));
        assert_eq!(
            check_states(&update(&[(1, &"x".repeat(101))]), &LIMITS),
            Err(PresenceError::StateTooLarge { size: 101, limit: 100 })
        );
    }

    #[test]
    fn a_connection_total_counts_replacements_once() {
        let held = [(id(1), 80), (id(2), 80)];
        // Renewing id 1 with a bigger state replaces its old size.
        assert_eq!(connection_total_after(held, &[(id(1), 90)]), 170);
        // A new id adds to it; a removal takes its size away.
        assert_eq!(connection_total_after(held, &[(id(3), 90)]), 250);
        assert_eq!(connection_total_after(held, &[(id(2), 0)]), 80);
    }

    #[test]
    fn presence_is_cut_into_frames_within_the_bound() {
        let states: Vec<_> = (1..=1000).map(|n| (id(n), 100)).collect();
        let groups = group_for_frames(states.clone(), 1024);
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 1000);
        for group in &groups {
            let bytes: usize = 11 + group.len() * (100 + ENTRY_OVERHEAD_BYTES);
            assert!(bytes <= 1024, "{bytes}");
        }
        // Every id once, in order.
        let flat: Vec<_> = groups.concat();
        assert_eq!(flat, states.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    }

    #[test]
    fn a_state_bigger_than_the_bound_still_goes_out_alone() {
        let groups = group_for_frames([(id(1), 10), (id(2), 5000), (id(3), 10)], 1024);
        assert_eq!(groups, vec![vec![id(1)], vec![id(2)], vec![id(3)]]);
        assert!(group_for_frames([], 1024).is_empty());
    }
}
