//! Presence across instances: the y-protocols clock rules a room follows for awareness ids of
//! clients on other instances. Pure; the room (`room.rs`) does the I/O.
//!
//! y-protocols applies a state only when its clock is greater than the one known, or equal with
//! a null state (a removal). Stock clients renew their state every 15 s (same content, next
//! clock) and drop a peer whose clock has not moved for 30 s; so presence holds across
//! instances only if every renewal reaches every client with the client's own clock, and
//! nothing else moves that clock.

use yrs::ClientID;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};

use crate::presence_states::PresenceStates;

const NULL_STATE: &str = "null";

/// Whether a connection may take the awareness id `id` (nobody in this room owns it) with
/// `entry`: only with a live state newer than what the room holds, and never while a client of
/// another instance (`held_elsewhere`) has it.
///
/// Stock y-websocket clients repeat to the server every awareness change they apply (the
/// provider's handler ignores where a change came from), so each of them sends back the
/// presence of everyone it heard of. Claiming such an echo would make the room refuse the real
/// owner's renewals from then on: everyone elsewhere would drop that client after 30 s.
pub fn may_claim(
    awareness: &PresenceStates,
    held_elsewhere: bool,
    id: ClientID,
    entry: &AwarenessUpdateEntry,
) -> bool {
    if held_elsewhere || entry.json.as_ref() == NULL_STATE {
        return false;
    }
    awareness.clock(id).is_none_or(|clock| entry.clock > clock)
}

/// Removes `ids` at the clocks the room holds them by, as y-protocols' timeout does, not one
/// past them (as yrs' `Awareness::remove_state` would): a removal the room decides on its own must not
/// outrun the client's clock, or its next renewal, one step newer than what the room last
/// heard, would be refused here and by every client the removal reached.
pub fn removal_at_known_clocks(awareness: &PresenceStates, ids: &[ClientID]) -> AwarenessUpdate {
    let clients = ids
        .iter()
        .filter_map(|id| {
            let clock = awareness.clock(*id)?;
            Some((*id, AwarenessUpdateEntry { clock, json: NULL_STATE.into() }))
        })
        .collect();
    AwarenessUpdate { clients }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use yrs::Doc;
    use yrs::sync::Awareness;

    fn entry(clock: u32, json: &str) -> AwarenessUpdateEntry {
        AwarenessUpdateEntry { clock, json: json.into() }
    }

    fn state(id: ClientID, clock: u32) -> AwarenessUpdate {
        AwarenessUpdate { clients: HashMap::from([(id, entry(clock, "{\"user\":\"x\"}"))]) }
    }

    /// The room's states, holding `id` at `clock`.
    fn holding(id: ClientID, clock: u32) -> PresenceStates {
        let mut states = PresenceStates::default();
        states.apply(state(id, clock));
        states
    }

    /// A stock client's awareness (yrs), holding `id` at `clock`.
    fn client_holding(id: ClientID, clock: u32) -> Awareness {
        let mut awareness = Awareness::new(Doc::new());
        awareness.apply_update(state(id, clock)).expect("apply");
        awareness
    }

    #[test]
    fn an_echo_of_a_known_state_cannot_be_claimed() {
        let id = ClientID::new(7);
        let awareness = holding(id, 3);
        assert!(!may_claim(&awareness, false, id, &entry(3, "{\"user\":\"x\"}")));
        assert!(!may_claim(&awareness, false, id, &entry(2, "{}")));
        assert!(may_claim(&awareness, false, id, &entry(4, "{}")), "a newer state is the client's own");
        assert!(may_claim(&awareness, false, ClientID::new(8), &entry(0, "{}")), "a new id");
    }

    #[test]
    fn an_id_held_on_another_instance_or_a_removal_cannot_be_claimed() {
        let id = ClientID::new(7);
        let awareness = holding(id, 3);
        assert!(!may_claim(&awareness, true, id, &entry(9, "{}")));
        assert!(!may_claim(&awareness, false, id, &entry(9, "null")));
        assert!(!may_claim(&PresenceStates::default(), false, id, &entry(1, "null")));
    }

    #[test]
    fn a_removal_keeps_the_clock_so_the_next_renewal_applies() {
        let id = ClientID::new(7);
        let mut awareness = holding(id, 3);
        let removal = removal_at_known_clocks(&awareness, &[id, ClientID::new(99)]);
        assert_eq!(removal.clients.len(), 1, "unknown ids are skipped");
        assert_eq!(removal.clients[&id].clock, 3);
        let summary = awareness.apply(removal).expect("a change");
        assert_eq!(summary.removed, vec![id]);
        assert_eq!(awareness.clock(id), Some(3));

        // A stock client that held the same state drops it on this removal too...
        let mut client = client_holding(id, 3);
        let relayed = awareness.update_with_clients([id]).expect("known");
        assert!(client.apply_update_summary(relayed).expect("apply").is_some_and(|s| s.removed == vec![id]));
        // ...and the owner's next renewal (clock 4) is accepted by both.
        let renewal = AwarenessUpdate { clients: HashMap::from([(id, entry(4, "{\"user\":\"x\"}"))]) };
        assert!(awareness.apply(renewal.clone()).is_some());
        assert!(client.apply_update_summary(renewal).expect("apply").is_some());
    }
}
