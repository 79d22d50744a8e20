//! What a caller may do in a room.

use serde::{Deserialize, Serialize};

/// Access to one room, weakest first, so `a >= b` reads "a allows everything b does".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Receives the document and presence; every change it sends is refused.
    Read,
    /// Edits the document.
    Write,
    /// Edits, and manages the room: versions, restore, collaborators.
    Admin,
}

impl Permission {
    pub fn can_write(self) -> bool {
        self >= Permission::Write
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            "admin" => Ok(Permission::Admin),
            other => Err(UnknownPermission(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown permission {0:?}: expected read, write or admin")]
pub struct UnknownPermission(pub String);

/// Explicit room grants carried by a token, so a service can mint a token good for some rooms
/// only. A key is a room name, or a prefix ending in `*` (`team-a/*`, or `*` for every room).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Grants(pub std::collections::BTreeMap<String, Permission>);

impl Grants {
    /// The strongest permission any matching key gives, or `None` when no key matches: a token
    /// with grants is good for those rooms only.
    pub fn permission_for(&self, room: &str) -> Option<Permission> {
        self.0.iter().filter(|(pattern, _)| matches(pattern, room)).map(|(_, permission)| *permission).max()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn matches(pattern: &str, room: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => pattern == room,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(pairs: &[(&str, Permission)]) -> Grants {
        Grants(pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
    }

    #[test]
    fn exact_names_and_prefixes_match_and_the_strongest_wins() {
        let g = grants(&[("team-a/*", Permission::Read), ("team-a/plan", Permission::Write)]);
        assert_eq!(g.permission_for("team-a/plan"), Some(Permission::Write));
        assert_eq!(g.permission_for("team-a/other"), Some(Permission::Read));
        assert_eq!(g.permission_for("team-b/plan"), None);
        assert_eq!(g.permission_for("team-a"), None, "the prefix includes its slash");
        assert_eq!(grants(&[("*", Permission::Admin)]).permission_for("anything"), Some(Permission::Admin));
    }

    #[test]
    fn a_star_inside_a_name_is_literal() {
        let g = grants(&[("a*b", Permission::Write)]);
        assert_eq!(g.permission_for("a*b"), Some(Permission::Write));
        assert_eq!(g.permission_for("axb"), None);
    }

    #[test]
    fn permissions_order_and_parse() {
        assert!(Permission::Admin > Permission::Write && Permission::Write > Permission::Read);
        assert!(Permission::Write.can_write() && !Permission::Read.can_write());
        for p in [Permission::Read, Permission::Write, Permission::Admin] {
            assert_eq!(p.as_str().parse::<Permission>().ok(), Some(p));
        }
        assert!("owner".parse::<Permission>().is_err());
        let parsed: Grants = serde_json::from_str(r#"{"r": "write"}"#).expect("grants");
        assert_eq!(parsed.permission_for("r"), Some(Permission::Write));
        assert!(serde_json::from_str::<Grants>(r#"{"r": "owner"}"#).is_err());
    }
}
