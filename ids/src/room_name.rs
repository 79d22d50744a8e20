//! Room names: validated once, here, for the server, the worker, the load generator and the
//! accounts (a workflow claims a room name).

use std::fmt;
use std::sync::Arc;

pub const MAX_ROOM_NAME_LEN: usize = 128;

/// A room's name: 1 to 128 characters from `A–Z a–z 0–9 - _ . :`, not starting with `.`.
///
/// The set is what fits in a URL path segment without escaping (y-websocket puts the name in
/// the path verbatim) and in a Redis key or file name later, without ambiguity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoomNameError {
    #[error("room name is empty")]
    Empty,
    #[error("room name is longer than {MAX_ROOM_NAME_LEN} characters")]
    TooLong,
    #[error("room name may only contain A-Z a-z 0-9 - _ . : (found {0:?})")]
    BadCharacter(char),
    #[error("room name may not start with '.'")]
    LeadingDot,
}

impl RoomName {
    pub fn parse(name: &str) -> Result<Self, RoomNameError> {
        Self::check(name)?;
        Ok(Self(name.into()))
    }

    /// What [`parse`](Self::parse) checks, without keeping the name: for callers that only
    /// need to refuse a bad one.
    pub fn check(name: &str) -> Result<(), RoomNameError> {
        if name.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if name.len() > MAX_ROOM_NAME_LEN {
            return Err(RoomNameError::TooLong);
        }
        if let Some(c) = name.chars().find(|&c| !Self::valid_char(c)) {
            return Err(RoomNameError::BadCharacter(c));
        }
        if name.starts_with('.') {
            return Err(RoomNameError::LeadingDot);
        }
        Ok(())
    }

    /// Whether `c` may appear in a room name (a prefix of names is checked with it too).
    pub fn valid_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_character_set() {
        for ok in ["a", "workflow-42", "team:acme.canvas_1", &"x".repeat(128)] {
            assert_eq!(RoomName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(RoomName::parse(&"x".repeat(129)), Err(RoomNameError::TooLong));
        assert_eq!(RoomName::parse("a/b"), Err(RoomNameError::BadCharacter('/')));
        assert_eq!(RoomName::parse("a b"), Err(RoomNameError::BadCharacter(' ')));
        assert_eq!(RoomName::parse("é"), Err(RoomNameError::BadCharacter('é')));
        assert_eq!(RoomName::parse(".."), Err(RoomNameError::LeadingDot));
    }
}
