//! Support tickets (issue 23's support agent): a signed-in user asks for help, optionally with a
//! canvas they can read attached; the support agent drafts an answer (`crate::agents::support`);
//! staff approve or edit it, and only the approved answer reaches the user. The asker never sees
//! the draft, and nobody but the asker and staff sees a ticket.

use std::net::IpAddr;
use std::time::Duration;

use dojo_auth::Permission;
use dojo_records::{AccountError, Enqueued, NewJob, NewTicket, Ticket, TicketStatus};
use serde_json::json;

use super::access::{AccessError, room_for};
use super::audit::{Actor, Record, record};
use super::jobs::{JobError, staff_role};
use crate::caller::Caller;
use crate::state::AppState;

/// The job type of a ticket's draft.
pub const DRAFT_JOB: &str = "support.draft";
/// Attempts the draft job gets (the fallback cannot fail, so the first usually suffices).
const DRAFT_ATTEMPTS: u32 = 3;
/// How long the chat webhook may take.
const CHAT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error(transparent)]
    Staff(#[from] JobError),
    /// Also for a ticket of someone else: to the caller it does not exist.
    #[error("no ticket {0:?}")]
    NotFound(String),
    #[error("the ticket is answered already")]
    Answered,
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Records(#[from] AccountError),
}

/// A ticket as its reader may see it: staff see the draft, the asker does not.
#[derive(Debug, Clone)]
pub struct Visible {
    pub ticket: Ticket,
    pub staff: bool,
}

pub struct SupportService<'a> {
    state: &'a AppState,
    addr: Option<IpAddr>,
}

impl<'a> SupportService<'a> {
    pub fn new(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    async fn require_staff(&self, caller: &Caller) -> Result<(), SupportError> {
        match staff_role(self.state, caller).await? {
            Some(_) => Ok(()),
            None => Err(JobError::NotStaff("staff and admins").into()),
        }
    }

    /// Opens a ticket and asks the support agent for a draft.
    pub async fn open(
        &self,
        caller: &Caller,
        subject: &str,
        body: &str,
        room: Option<&str>,
    ) -> Result<Ticket, SupportError> {
        let user = caller.user().ok_or(JobError::SignInRequired)?;
        if let Some(room) = room {
            room_for(self.state, caller, room, Permission::Read).await?;
        }
        let ticket = self
            .state
            .support()
            .open_ticket(NewTicket {
                user_id: user.id.clone(),
                room: room.map(str::to_owned),
                subject: subject.to_owned(),
                body: body.to_owned(),
            })
            .await?;
        let job = NewJob {
            job_type: DRAFT_JOB.to_owned(),
            payload: json!({"ticketId": ticket.id}),
            priority: 0,
            max_attempts: DRAFT_ATTEMPTS,
            run_after: None,
            idempotency_key: Some(format!("support:{}", ticket.id)),
            created_by: user.id.to_string(),
        };
        // Without its job the ticket still reaches staff (the queue lists open tickets); a
        // failure here is logged, not the user's problem.
        match self.state.jobs().enqueue_job(job).await {
            Ok(Enqueued::Created(_) | Enqueued::Existing(_)) => {}
            Err(error) => tracing::error!(%error, ticket = %ticket.id, "support: could not ask for a draft"),
        }
        let detail = json!({"room": ticket.room});
        let actor = Actor::of(caller, self.addr);
        let entry = Record {
            action: "support.ticket_opened",
            target_type: "ticket",
            target_id: &ticket.id,
            team: None,
            detail,
        };
        record(self.state.audit(), &actor, entry).await;
        self.notify_chat(&ticket);
        Ok(ticket)
    }

    /// Tells the configured chat webhook of a new ticket, in the background and bounded; the
    /// message names the ticket and its subject, not the asker's text.
    fn notify_chat(&self, ticket: &Ticket) {
        let Some(url) = self.state.config().agents.support_chat_webhook.clone() else { return };
        let text = format!("New support ticket {}: {}", ticket.id, ticket.subject);
        tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(CHAT_TIMEOUT).build() {
                Ok(client) => client,
                Err(error) => {
                    tracing::warn!(%error, "support: no HTTP client for the chat webhook");
                    return;
                }
            };
            match client.post(&url).json(&json!({"text": text})).send().await {
                Ok(answer) if answer.status().is_success() => {}
                Ok(answer) => tracing::warn!(status = %answer.status(), "support: the chat webhook refused"),
                Err(error) => {
                    tracing::warn!(error = %error.without_url(), "support: the chat webhook failed")
                }
            }
        });
    }

    /// The caller's tickets, newest first.
    pub async fn mine(&self, caller: &Caller, limit: u32) -> Result<Vec<Ticket>, SupportError> {
        let user = caller.user().ok_or(JobError::SignInRequired)?;
        Ok(self.state.support().tickets_of(&user.id, limit).await?)
    }

    /// One ticket, to its asker or to staff.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Visible, SupportError> {
        let user = caller.user().ok_or(JobError::SignInRequired)?;
        let staff = staff_role(self.state, caller).await?.is_some();
        let ticket =
            self.state.support().ticket(id).await?.ok_or_else(|| SupportError::NotFound(id.to_owned()))?;
        if !staff && ticket.user_id != user.id {
            return Err(SupportError::NotFound(id.to_owned()));
        }
        Ok(Visible { ticket, staff })
    }

    /// The staff's queue: tickets in `status` (all when `None`), oldest first.
    pub async fn queue(
        &self,
        caller: &Caller,
        status: Option<TicketStatus>,
        limit: u32,
    ) -> Result<Vec<Ticket>, SupportError> {
        self.require_staff(caller).await?;
        Ok(self.state.support().tickets(status, limit).await?)
    }

    /// Answers a ticket (staff): the draft as it is, or edited.
    pub async fn answer(&self, caller: &Caller, id: &str, answer: &str) -> Result<Ticket, SupportError> {
        self.require_staff(caller).await?;
        let user = caller.user().ok_or(JobError::SignInRequired)?;
        let before =
            self.state.support().ticket(id).await?.ok_or_else(|| SupportError::NotFound(id.to_owned()))?;
        let answered = self
            .state
            .support()
            .answer_ticket(id, answer, user.id.as_str())
            .await?
            .ok_or(SupportError::Answered)?;
        let edited = before.draft.as_deref().map(str::trim) != answered.answer.as_deref();
        let detail = json!({"edited": edited, "draftSource": before.draft_source});
        let actor = Actor::of(caller, self.addr);
        let entry =
            Record { action: "support.answered", target_type: "ticket", target_id: id, team: None, detail };
        record(self.state.audit(), &actor, entry).await;
        Ok(answered)
    }
}
