//! Typed identifiers, so that a run id cannot be passed where a node id is expected, and the
//! room-name rule ([`RoomName`]), kept in one place.
//!
//! Each id is a newtype over `String` that reads and writes as a plain string everywhere it
//! leaves the process: JSON (`serde(transparent)`), both databases (`sqlx(transparent)`), logs
//! (`Display`). Ids minted by Dojo carry a prefix (`u_`, `wf_`, `team_`, `run_`, `asset_`) and random
//! bits, so that they reveal neither counts nor creation order and two instances never need to
//! coordinate. Node ids are chosen by the editor and only name a node inside one graph.
//!
//! Construction does not validate: ids arrive from the database, from tokens and from URLs, and
//! whether one names something the caller may see is answered by the store, not by its shape.

use std::borrow::Borrow;
use std::fmt;

mod room_name;

pub use room_name::{MAX_ROOM_NAME_LEN, RoomName, RoomNameError};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[derive(serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// The plain string; width and alignment apply as to a `str` (`{:<20}`).
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

macro_rules! minted_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $digits:literal) => {
        string_id!($(#[$meta])* $name);

        impl $name {
            /// What every id of this kind that Dojo mints starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: the prefix and random bits, as this many hex digits.
            pub const DIGITS: usize = $digits;

            /// A fresh id: the prefix and `4 * DIGITS` random bits in hex.
            pub fn generate() -> Self {
                let bits = rand::random::<u128>() & (u128::MAX >> (128 - 4 * $digits));
                Self(format!("{}{:0width$x}", Self::PREFIX, bits, width = $digits))
            }
        }
    };
}

minted_id!(
    /// A person (`u_…`), ours rather than the identity provider's subject.
    UserId,
    "u_",
    16
);
minted_id!(
    /// A workflow (`wf_…`): a room with an owner.
    WorkflowId,
    "wf_",
    16
);
minted_id!(
    /// One execution of a graph (`run_…`, 96 bits as the server always minted them).
    RunId,
    "run_",
    24
);
minted_id!(
    /// A batch of runs of one graph over a list of parameter sets (`batch_…`).
    BatchId,
    "batch_",
    24
);
minted_id!(
    /// A stored file: an upload or a node's output (`asset_…`).
    AssetId,
    "asset_",
    16
);
minted_id!(
    /// A webhook endpoint of a workflow (`wh_…`).
    WebhookId,
    "wh_",
    16
);
minted_id!(
    /// One event of a workflow's change feed (`evt_…`): the `Dojo-Event-Id` of its deliveries.
    EventId,
    "evt_",
    24
);
minted_id!(
    /// A team (`team_…`): people who share workflows, with a role each.
    TeamId,
    "team_",
    16
);
minted_id!(
    /// An invitation to join a team (`inv_…`), by user id or by email.
    InvitationId,
    "inv_",
    24
);
string_id!(
    /// A node of a canvas graph, chosen by the editor; unique within one graph only.
    NodeId
);
minted_id!(
    /// One graph edit applied over HTTP (`edit_…`), kept for a while so it can be undone.
    EditId,
    "edit_",
    24
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_differ() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert!(a.as_str().starts_with("run_") && a.as_str().len() == 4 + 24, "{a}");
        let w = WorkflowId::generate();
        assert!(w.as_str().len() == 3 + 16 && w.as_str()[3..].bytes().all(|b| b.is_ascii_hexdigit()), "{w}");
        assert_ne!(a, b);
        assert!(WorkflowId::generate().as_str().starts_with("wf_"));
        assert!(UserId::generate().as_str().starts_with("u_"));
        assert!(AssetId::generate().as_str().starts_with("asset_"));
    }

    #[test]
    fn ids_read_and_write_as_plain_strings_in_json() {
        let id = NodeId::from("prompt-1");
        assert_eq!(serde_json::to_string(&id).ok().as_deref(), Some("\"prompt-1\""));
        let back: NodeId = serde_json::from_str("\"prompt-1\"").unwrap_or_else(|_| NodeId::from(""));
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "prompt-1");
        assert!(id == "prompt-1");
        assert_eq!(format!("[{:<10}]", UserId::from("u_1")), "[u_1       ]");
    }

    #[test]
    fn a_map_keyed_by_id_is_looked_up_by_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(NodeId::from("a"), 1);
        assert_eq!(map.get("a"), Some(&1));
    }
}
