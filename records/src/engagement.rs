//! The re-engagement agent's records (issue 23): when each user was last active, their tips
//! opt-out, who has been away long enough to be sent tips, and every message drafted for them.
//! The statements are in `sql/engagement.rs`.

use dojo_ids::UserId;
use serde::Serialize;

use crate::AccountError;

/// A user's activity is written at most this often (per server process): the sign-in path
/// stays a read.
pub const ACTIVITY_RESOLUTION_MS: i64 = 3_600_000;
/// Most users one scan returns.
pub const MAX_INACTIVE_PAGE: u32 = 500;
/// Longest subject and body of a message, in bytes.
pub const MAX_SUBJECT_LEN: usize = 200;
pub const MAX_BODY_LEN: usize = 8_000;

/// A user who has been away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InactiveUser {
    pub id: UserId,
    pub name: Option<String>,
    pub email: String,
    /// Last seen (or, for users not seen since activity was recorded, their last profile
    /// change).
    pub last_active_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Written, the sender not answered yet (or the server stopped before it did).
    Pending,
    Sent,
    Failed,
    /// No sender is configured: kept for staff, sent to nobody.
    Recorded,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Recorded => "recorded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(MessageStatus::Pending),
            "sent" => Some(MessageStatus::Sent),
            "failed" => Some(MessageStatus::Failed),
            "recorded" => Some(MessageStatus::Recorded),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub user_id: UserId,
    pub subject: String,
    pub body: String,
    /// `model` or `template`.
    pub source: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub user_id: UserId,
    pub subject: String,
    pub body: String,
    pub source: String,
}

/// Cuts `text` to at most `max` bytes on a character boundary: a drafted message is kept
/// rather than refused for its length.
pub fn cut_to(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Activity, opt-outs and messages. One implementation per database kind.
#[async_trait::async_trait]
pub trait EngagementStore: Send + Sync + 'static {
    /// Records that `user` was active at `now`, unless it was recorded less than
    /// [`ACTIVITY_RESOLUTION_MS`] before.
    async fn mark_active(&self, user: &UserId, now: i64) -> Result<(), AccountError>;

    async fn tips_opt_out(&self, user: &UserId) -> Result<bool, AccountError>;

    async fn set_tips_opt_out(&self, user: &UserId, opt_out: bool) -> Result<(), AccountError>;

    /// Users with an email who have not opted out, last active before `inactive_before`, and
    /// sent no message since `quiet_since` (a failed send does not count); longest away first,
    /// at most `limit`.
    async fn inactive_users(
        &self,
        inactive_before: i64,
        quiet_since: i64,
        limit: u32,
    ) -> Result<Vec<InactiveUser>, AccountError>;

    /// Writes a message as `pending`, unless the user was sent one since `quiet_since` (another
    /// scan got there first): `None` then.
    async fn start_message(
        &self,
        message: NewMessage,
        quiet_since: i64,
    ) -> Result<Option<Message>, AccountError>;

    /// The sender's answer.
    async fn finish_message(
        &self,
        id: &str,
        status: MessageStatus,
        error: Option<&str>,
    ) -> Result<(), AccountError>;

    /// The user's messages, newest first.
    async fn messages_of(&self, user: &UserId, limit: u32) -> Result<Vec<Message>, AccountError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_whole_characters() {
        assert_eq!(cut_to("héllo", 2), "h");
        assert_eq!(cut_to("héllo", 3), "hé");
        assert_eq!(cut_to("short", 100), "short");
    }

    #[test]
    fn statuses_round_trip() {
        for status in
            [MessageStatus::Pending, MessageStatus::Sent, MessageStatus::Failed, MessageStatus::Recorded]
        {
            assert_eq!(MessageStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(MessageStatus::parse("lost"), None);
    }
}
