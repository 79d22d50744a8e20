//! Support tickets: a user's request for help (with the canvas's room attached), the support
//! agent's draft, and the answer staff approved or edited, which is all the user ever sees. The
//! statements are in `sql/support.rs`.

use dojo_ids::UserId;
use serde::Serialize;

use crate::AccountError;

/// Longest subject and body, in bytes.
pub const MAX_SUBJECT_LEN: usize = 200;
pub const MAX_BODY_LEN: usize = 5_000;
/// Longest draft or answer, in bytes.
pub const MAX_ANSWER_LEN: usize = 20_000;
/// Tickets one user may have waiting (open or drafted) at once.
pub const MAX_WAITING_TICKETS: u64 = 10;
/// Most tickets one list returns.
pub const MAX_TICKET_PAGE: u32 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    /// Waiting for the agent's draft.
    Open,
    /// A draft waits for staff.
    Drafted,
    /// Staff answered; the user sees the answer.
    Answered,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Drafted => "drafted",
            TicketStatus::Answered => "answered",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(TicketStatus::Open),
            "drafted" => Some(TicketStatus::Drafted),
            "answered" => Some(TicketStatus::Answered),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub user_id: UserId,
    pub room: Option<String>,
    pub subject: String,
    pub body: String,
    pub status: TicketStatus,
    pub draft: Option<String>,
    pub draft_source: Option<String>,
    pub answer: Option<String>,
    pub answered_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub answered_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub user_id: UserId,
    pub room: Option<String>,
    pub subject: String,
    pub body: String,
}

/// Support tickets. One implementation per database kind.
#[async_trait::async_trait]
pub trait SupportStore: Send + Sync + 'static {
    /// Opens a ticket; refused when the user has [`MAX_WAITING_TICKETS`] waiting.
    async fn open_ticket(&self, ticket: NewTicket) -> Result<Ticket, AccountError>;

    async fn ticket(&self, id: &str) -> Result<Option<Ticket>, AccountError>;

    /// The user's tickets, newest first.
    async fn tickets_of(&self, user: &UserId, limit: u32) -> Result<Vec<Ticket>, AccountError>;

    /// Tickets in `status` (all when `None`), oldest first: the staff's queue.
    async fn tickets(&self, status: Option<TicketStatus>, limit: u32) -> Result<Vec<Ticket>, AccountError>;

    /// Stores the agent's draft, while the ticket is not answered (a later draft replaces an
    /// earlier one). `None` when there is no such ticket or it is answered.
    async fn set_draft(&self, id: &str, draft: &str, source: &str) -> Result<Option<Ticket>, AccountError>;

    /// Answers the ticket (staff). `None` when there is no such ticket or it is answered.
    async fn answer_ticket(&self, id: &str, answer: &str, by: &str) -> Result<Option<Ticket>, AccountError>;
}

/// A subject and body as stored: trimmed, non-empty, bounded, no control characters but line
/// breaks and tabs in the body.
pub fn check_ticket(subject: &str, body: &str) -> Result<(String, String), AccountError> {
    let (subject, body) = (subject.trim(), body.trim());
    if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN || subject.chars().any(char::is_control) {
        return Err(AccountError::InvalidInput { field: "subject", reason: "1 to 200 bytes, one line" });
    }
    if body.is_empty()
        || body.len() > MAX_BODY_LEN
        || body.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(AccountError::InvalidInput { field: "body", reason: "1 to 5000 bytes of text" });
    }
    Ok((subject.to_owned(), body.to_owned()))
}

/// A draft or answer as stored.
pub fn check_answer(text: &str) -> Result<String, AccountError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_ANSWER_LEN {
        return Err(AccountError::InvalidInput { field: "answer", reason: "1 to 20000 bytes" });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_bounded_text() {
        assert!(check_ticket("Run fails", "The upscale node says 402.\nWhy?").is_ok());
        assert!(check_ticket("  ", "x").is_err());
        assert!(check_ticket("a\nb", "x").is_err());
        assert!(check_ticket("s", &"x".repeat(MAX_BODY_LEN + 1)).is_err());
        assert!(check_ticket("s", "bell \u{7}").is_err());
        assert_eq!(check_answer("  ok  ").ok().as_deref(), Some("ok"));
        assert!(check_answer("").is_err());
    }
}
