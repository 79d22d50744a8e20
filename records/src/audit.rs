//! The audit log: an append-only record of who did what to what, when and from where. The
//! database refuses UPDATE and DELETE on it (triggers, as on `credit_ledger`), so an entry,
//! once written, stays as written. The statements are in `sql/audit.rs`.

use dojo_ids::TeamId;
use serde::Serialize;

use crate::AccountError;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person, by their user id.
    User,
    /// A service identity: a token with room grants, or the executor's; by its subject.
    Service,
    /// An operator at the admin command line, by the OS user that ran it.
    Operator,
    /// The server itself, acting on something it was told (a payment provider's webhook).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Service => "service",
            ActorKind::Operator => "operator",
            ActorKind::System => "system",
        }
    }

    fn decode(text: &str) -> Result<Self, AccountError> {
        Ok(match text {
            "user" => ActorKind::User,
            "service" => ActorKind::Service,
            "operator" => ActorKind::Operator,
            "system" => ActorKind::System,
            other => {
                return Err(AccountError::Database(sqlx::Error::Decode(
                    format!("unknown actor type {other:?}").into(),
                )));
            }
        })
    }
}

/// An entry to append. `detail` is a small JSON object and must never hold a secret (a token,
/// a key, a webhook secret): callers put ids, roles and amounts there.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor_kind: ActorKind,
    pub actor_id: String,
    /// `team.created`, `member.role_changed`, `workflow.shared`, … (docs/api.md lists them).
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    pub team_id: Option<TeamId>,
    /// The client's address as the server attributes it (`client_addr.rs`), when there is one.
    pub client_addr: Option<String>,
    pub detail: serde_json::Value,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Increases with every entry: the cursor of the audit API, newest first.
    pub seq: i64,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub team_id: Option<TeamId>,
    pub client_addr: Option<String>,
    pub detail: serde_json::Value,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// Which entries [`AuditLog::entries`] returns: one team's, newest first, filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub team_id: TeamId,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    /// Entries written at or after this time (milliseconds).
    pub since: Option<i64>,
    /// Entries written before this time (milliseconds).
    pub until: Option<i64>,
    /// Entries older than this cursor (a `seq`).
    pub before: Option<i64>,
    pub limit: u32,
}

/// Which entries [`AuditLog::all_entries`] returns, for staff: every team's and none, newest
/// first, filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffAuditQuery {
    pub team_id: Option<TeamId>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    /// Entries about this target (a user id, a flag, a ticket…), of any type.
    pub target_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// Largest `detail`, serialised, in bytes: the log records facts, not payloads.
pub const MAX_DETAIL_BYTES: usize = 4096;
/// Longest actor id, action, target type or id, or client address kept, in bytes.
pub const MAX_FIELD_LEN: usize = 255;
/// Most entries one call returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// Appends and reads the audit log. One implementation per database kind.
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends one entry; its `seq`. Fields are cut to [`MAX_FIELD_LEN`] and a `detail` over
    /// [`MAX_DETAIL_BYTES`] is replaced by a note saying so, rather than refused: an action that
    /// happened is recorded, whatever its caller passed.
    async fn append(&self, entry: NewAuditEntry) -> Result<i64, AccountError>;

    /// One team's entries, newest first, as `query` filters them (at most
    /// [`MAX_AUDIT_PAGE`]).
    async fn entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AccountError>;

    /// Entries of every team and of none (agents', staff's, operators'), newest first, as
    /// `query` filters them (at most [`MAX_AUDIT_PAGE`]). For staff only.
    async fn all_entries(&self, query: &StaffAuditQuery) -> Result<Vec<AuditEntry>, AccountError>;
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The detail as stored: its JSON text, or a note when it is too large.
pub(crate) fn detail_text(detail: &serde_json::Value) -> String {
    let text = detail.to_string();
    if text.len() <= MAX_DETAIL_BYTES {
        text
    } else {
        serde_json::json!({"truncated": true, "bytes": text.len()}).to_string()
    }
}

/// A row of `audit_log`, before its texts are decoded.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub actor_type: String,
    pub actor_id: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub team_id: Option<TeamId>,
    pub client_addr: Option<String>,
    pub detail: String,
    pub created_at: i64,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = AccountError;

    fn try_from(row: AuditRow) -> Result<Self, AccountError> {
        Ok(AuditEntry {
            seq: row.seq,
            actor_kind: ActorKind::decode(&row.actor_type)?,
            actor_id: row.actor_id,
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id,
            team_id: row.team_id,
            client_addr: row.client_addr,
            // Written by `append` from a JSON value; text that no longer parses is shown as is.
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::String(row.detail)),
            created_at: row.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_on_character_boundaries_and_large_details_noted() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
        let big = serde_json::json!({"x": "y".repeat(MAX_DETAIL_BYTES)});
        assert!(detail_text(&big).contains("truncated"));
        assert_eq!(detail_text(&serde_json::json!({"a": 1})), r#"{"a":1}"#);
    }
}
