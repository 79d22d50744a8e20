//! Room names: validated once, here, for the server, the worker, the load generator and the
//! accounts (a workflow claims a room name).
//!
//! A name reads and writes as a plain string everywhere it leaves the process, like the ids:
//! JSON (serialised as the string; deserialising validates) and both databases (a TEXT column;
//! decoding validates, so a row can only produce a name the server would accept).

use std::fmt;
use std::sync::Arc;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;

/// The longest name, in bytes of UTF-8 (a Hocuspocus client sends the name as a string in every
/// message; y-websocket puts it in the URL path, percent-encoded, three bytes per escaped byte).
pub const MAX_ROOM_NAME_LEN: usize = 128;

/// A room's name: any UTF-8 text of 1 to 128 bytes without control or invisible
/// direction-changing characters, other than `.` and `..`.
///
/// Names arrive from stock clients that let applications pick them freely (Hocuspocus document
/// names such as `Café board` or `org/design 1`), so the rule refuses only what is unsafe or
/// ambiguous: control characters (they could forge log lines, and NUL separates a Hocuspocus
/// session from its name), characters that reorder or hide text (a name must read as what it
/// is in the editor, the logs and the API), and the dot segments (`/rooms/..` resolves to
/// `/` in every URL parser). A name is a key only: no file or Redis pattern is built from it.
/// Names are compared byte for byte; no Unicode normalisation is applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct RoomName(Arc<str>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoomNameError {
    #[error("room name is empty")]
    Empty,
    #[error("room name is longer than {MAX_ROOM_NAME_LEN} bytes of UTF-8")]
    TooLong,
    #[error("room name may not contain control or invisible formatting characters (found {0:?})")]
    BadCharacter(char),
    #[error("room name may not be '.' or '..'")]
    DotSegment,
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
        if name == "." || name == ".." {
            return Err(RoomNameError::DotSegment);
        }
        Ok(())
    }

    /// Whether `c` may appear in a room name (a prefix of names is checked with it too).
    pub fn valid_char(c: char) -> bool {
        !c.is_control() && !is_invisible_format(c)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Zero-width characters and bidirectional controls: they make two different names look the
/// same, or a name display as something it is not (Unicode's "Trojan Source" characters).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' // soft hyphen
        | '\u{061C}' // Arabic letter mark
        | '\u{180E}' // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}' // zero-width space, joiners, LTR/RTL marks
        | '\u{2028}'..='\u{202E}' // line/paragraph separators, embeddings and overrides
        | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, isolates
        | '\u{FEFF}' // zero-width no-break space (byte order mark)
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
    )
}

/// The plain string; width and alignment apply as to a `str`.
impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// As the plain string, like the ids.
impl serde::Serialize for RoomName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for RoomName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for RoomName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl TryFrom<String> for RoomName {
    type Error = RoomNameError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::check(&name)?;
        Ok(Self(name.into()))
    }
}

impl TryFrom<&str> for RoomName {
    type Error = RoomNameError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::parse(name)
    }
}

impl From<RoomName> for String {
    fn from(name: RoomName) -> String {
        name.0.as_ref().to_owned()
    }
}

// A TEXT column on both databases, written as the plain string. Generic over the database so
// that one impl serves PostgreSQL and SQLite alike.
impl<DB: sqlx::Database> sqlx::Type<DB> for RoomName
where
    str: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for RoomName
where
    for<'a> &'a str: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut <DB as sqlx::Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
    }

    fn size_hint(&self) -> usize {
        self.0.len()
    }
}

/// Decoding validates: a stored name the rule refuses is a decode error, not a `RoomName`.
impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for RoomName
where
    String: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::try_from(<String as sqlx::Decode<'r, DB>>::decode(value)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_printable_utf8_within_the_byte_limit() {
        let long = "x".repeat(128);
        let long_accented = "é".repeat(64);
        for ok in [
            "a",
            "workflow-42",
            "team:acme.canvas_1",
            "Café board",
            "org/design 1",
            "日本語のキャンバス",
            "emoji 🎨",
            ".hidden",
            "...",
            " padded ",
            "50% off?#&",
            &long,
            &long_accented,
        ] {
            assert_eq!(RoomName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(RoomName::parse(&"x".repeat(129)), Err(RoomNameError::TooLong));
        // 65 two-byte letters are 130 bytes: the limit counts bytes, not characters.
        assert_eq!(RoomName::parse(&"é".repeat(65)), Err(RoomNameError::TooLong));
        assert_eq!(RoomName::parse("a\0b"), Err(RoomNameError::BadCharacter('\0')));
        assert_eq!(RoomName::parse("a\nb"), Err(RoomNameError::BadCharacter('\n')));
        assert_eq!(RoomName::parse("a\u{7f}"), Err(RoomNameError::BadCharacter('\u{7f}')));
        assert_eq!(RoomName::parse("a\u{85}"), Err(RoomNameError::BadCharacter('\u{85}')));
        assert_eq!(RoomName::parse("abc\u{202E}txt"), Err(RoomNameError::BadCharacter('\u{202E}')));
        assert_eq!(RoomName::parse("a\u{200B}b"), Err(RoomNameError::BadCharacter('\u{200B}')));
        assert_eq!(RoomName::parse("\u{FEFF}a"), Err(RoomNameError::BadCharacter('\u{FEFF}')));
        assert_eq!(RoomName::parse("."), Err(RoomNameError::DotSegment));
        assert_eq!(RoomName::parse(".."), Err(RoomNameError::DotSegment));
    }

    #[test]
    fn conversions_apply_the_same_rule() {
        assert_eq!(RoomName::try_from("ok".to_owned()).map(String::from).as_deref(), Ok("ok"));
        assert_eq!(RoomName::try_from("a\tb".to_owned()), Err(RoomNameError::BadCharacter('\t')));
        assert_eq!(RoomName::try_from(""), Err(RoomNameError::Empty));
        let name = RoomName::parse("canvas").unwrap();
        assert!(name == "canvas" && name == *"canvas" && name.as_ref() == "canvas");
    }

    #[test]
    fn json_is_the_plain_string_and_reading_it_validates() {
        let name = RoomName::parse("team:acme.canvas_1").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"team:acme.canvas_1\"");
        let back: RoomName = serde_json::from_str("\"team:acme.canvas_1\"").unwrap();
        assert_eq!(back, name);
        for bad in ["\"\"", "\"..\"", "\"a\\u0000b\"", "1", "null"] {
            assert!(serde_json::from_str::<RoomName>(bad).is_err(), "{bad}");
        }
        let error = serde_json::from_str::<RoomName>("\"a\\nb\"").unwrap_err().to_string();
        assert!(error.contains("control"), "{error}");
        let accented: RoomName = serde_json::from_str("\"Caf\\u00e9\"").unwrap();
        assert_eq!(accented, "Café");
    }

    #[test]
    fn a_field_of_a_struct_reads_and_writes_like_a_string() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Body {
            room: RoomName,
            other: Option<RoomName>,
        }
        let body = Body { room: RoomName::parse("r1").unwrap(), other: None };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(json, r#"{"room":"r1","other":null}"#);
        assert_eq!(serde_json::from_str::<Body>(&json).unwrap(), body);
        assert!(serde_json::from_str::<Body>(r#"{"room":"..","other":null}"#).is_err());
    }
}
