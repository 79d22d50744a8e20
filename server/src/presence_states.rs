//! A room's presence (awareness) states: each client id's clock and JSON state, under the
//! y-protocols rules for applying an awareness update.
//!
//! In place of `yrs::sync::Awareness`, which keeps its states in a `DashMap`: that allocates
//! `4 × CPUs` lock-padded shards for every room up front (512 B on 2 cores, 16 KiB on 64), holds
//! a clone of the document, and takes a lock per lookup, none of which a room needs (one actor
//! owns it). This is a plain map, with the same outcome for every update as yrs 0.28's
//! `apply_update_summary` (a server holds no presence of its own, so yrs' rule that protects
//! the local client's state does not arise).

use std::collections::HashMap;
use std::sync::Arc;

use yrs::ClientID;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry, AwarenessUpdateSummary};

/// How a removed state is written on the wire.
const NULL_STATE: &str = "null";

#[derive(Debug, Default)]
pub struct PresenceStates {
    /// Removed states stay (with `data: None`) so that an older update cannot bring them back;
    /// `drop_removed` forgets them.
    states: HashMap<ClientID, ClientState>,
}

#[derive(Debug)]
struct ClientState {
    clock: u32,
    data: Option<Arc<str>>,
}

impl PresenceStates {
    /// The clock held for `id`, live or removed.
    pub fn clock(&self, id: ClientID) -> Option<u32> {
        self.states.get(&id).map(|state| state.clock)
    }

    /// Applies `update`: a state newer than the one held replaces it (`null` removes it); a
    /// removal at the held clock removes a live state. Returns what changed, if anything.
    pub fn apply(&mut self, update: AwarenessUpdate) -> Option<AwarenessUpdateSummary> {
        let (mut added, mut updated, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        for (id, entry) in update.clients {
            let new = (entry.json.as_ref() != NULL_STATE).then_some(entry.json);
            match self.states.get_mut(&id) {
                Some(state) => {
                    let removal_now = state.clock == entry.clock && new.is_none() && state.data.is_some();
                    if state.clock >= entry.clock && !removal_now {
                        continue;
                    }
                    if new.is_none() {
                        removed.push(id);
                    } else {
                        // As yrs: a removed state coming back counts as updated, not added.
                        updated.push(id);
                    }
                    state.data = new;
                    state.clock = entry.clock;
                }
                None => {
                    if new.is_some() {
                        added.push(id);
                    }
                    self.states.insert(id, ClientState { clock: entry.clock, data: new });
                }
            }
        }
        (!added.is_empty() || !updated.is_empty() || !removed.is_empty()).then_some(AwarenessUpdateSummary {
            added,
            updated,
            removed,
        })
    }

    /// The states of `ids` as an update (`null` for removed ones); `None` if one is unknown.
    pub fn update_with_clients(&self, ids: impl IntoIterator<Item = ClientID>) -> Option<AwarenessUpdate> {
        let mut clients = HashMap::new();
        for id in ids {
            let state = self.states.get(&id)?;
            let json = state.data.clone().unwrap_or_else(|| NULL_STATE.into());
            clients.insert(id, AwarenessUpdateEntry { clock: state.clock, json });
        }
        Some(AwarenessUpdate { clients })
    }

    /// Live states: each id with its JSON.
    pub fn live(&self) -> impl Iterator<Item = (ClientID, &str)> {
        self.states.iter().filter_map(|(id, state)| Some((*id, state.data.as_deref()?)))
    }

    /// Forgets removed states (their clocks), keeping the live ones.
    pub fn drop_removed(&mut self) {
        self.states.retain(|_, state| state.data.is_some());
        self.states.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use yrs::Doc;
    use yrs::sync::Awareness;

    use super::*;

    fn update(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
        let clients = entries
            .iter()
            .map(|(id, clock, json)| {
                (ClientID::new(*id), AwarenessUpdateEntry { clock: *clock, json: (*json).into() })
            })
            .collect();
        AwarenessUpdate { clients }
    }

    fn sorted(summary: Option<AwarenessUpdateSummary>) -> Option<[Vec<ClientID>; 3]> {
        summary.map(|s| {
            let mut lists = [s.added, s.updated, s.removed];
            lists.iter_mut().for_each(|list| list.sort());
            lists
        })
    }

    /// Every update of a sequence that exercises each rule (new, newer, older, equal, removal at
    /// and past the clock, a removed state coming back, a removal of an unknown id) changes
    /// these states exactly as it changes yrs' `Awareness`.
    #[test]
    fn applies_updates_as_yrs_does() {
        let steps: Vec<Vec<(u64, u32, &str)>> = vec![
            vec![(1, 1, "{\"a\":1}"), (2, 1, "{\"b\":1}")],
            vec![(1, 1, "{\"a\":2}")],
            vec![(1, 2, "{\"a\":2}"), (2, 0, "{\"b\":0}")],
            vec![(1, 2, "null")],
            vec![(1, 2, "null")],
            vec![(1, 3, "{\"a\":3}"), (3, 5, "null")],
            vec![(2, 4, "null"), (3, 6, "{\"c\":1}")],
            vec![(3, 6, "{\"c\":2}"), (4, 1, "{}")],
        ];
        let (mut ours, mut theirs) = (PresenceStates::default(), Awareness::new(Doc::new()));
        for (i, step) in steps.iter().enumerate() {
            let expected = theirs.apply_update_summary(update(step)).expect("yrs applies");
            assert_eq!(sorted(ours.apply(update(step))), sorted(expected), "step {i}");
            for id in 1..=4 {
                let id = ClientID::new(id);
                assert_eq!(
                    ours.clock(id),
                    theirs.meta(id).map(|(clock, _)| clock),
                    "step {i}, clock of {id}"
                );
                let (mine, yours) = (ours.update_with_clients([id]), theirs.update_with_clients([id]).ok());
                assert_eq!(mine, yours, "step {i}, state of {id}");
            }
        }
        let mut live: Vec<_> = ours.live().map(|(id, json)| (id, json.to_owned())).collect();
        live.sort();
        let expected = [(1, "{\"a\":3}"), (3, "{\"c\":1}"), (4, "{}")];
        assert_eq!(live, expected.map(|(id, json)| (ClientID::new(id), json.to_owned())));
    }

    #[test]
    fn dropping_removed_states_forgets_their_clocks_only() {
        let mut states = PresenceStates::default();
        states.apply(update(&[(1, 4, "{}"), (2, 4, "{}")]));
        states.apply(update(&[(2, 4, "null")]));
        states.drop_removed();
        assert_eq!((states.clock(ClientID::new(1)), states.clock(ClientID::new(2))), (Some(4), None));
        assert!(states.update_with_clients([ClientID::new(2)]).is_none(), "unknown now");
    }
}
