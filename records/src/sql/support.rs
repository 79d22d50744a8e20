//! The statements of support tickets.

use dojo_ids::UserId;
use dojo_store::run_to_completion;

use super::Store;
use crate::dialect::Dialect;
use crate::support::{
    MAX_TICKET_PAGE, MAX_WAITING_TICKETS, NewTicket, SupportStore, Ticket, TicketStatus, check_answer,
    check_ticket,
};
use crate::{AccountError, now_millis, quota_full};

const COLUMNS: &str = "id, user_id, room, subject, body, status, draft, draft_source, answer, answered_by, \
     created_at, updated_at, answered_at";

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: String,
    user_id: UserId,
    room: Option<String>,
    subject: String,
    body: String,
    status: String,
    draft: Option<String>,
    draft_source: Option<String>,
    answer: Option<String>,
    answered_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    answered_at: Option<i64>,
}

impl TryFrom<TicketRow> for Ticket {
    type Error = AccountError;

    fn try_from(row: TicketRow) -> Result<Self, AccountError> {
        let status = TicketStatus::parse(&row.status).ok_or_else(|| {
            AccountError::Database(sqlx::Error::Decode("support_tickets: an unknown status".into()))
        })?;
        Ok(Ticket {
            id: row.id,
            user_id: row.user_id,
            room: row.room,
            subject: row.subject,
            body: row.body,
            status,
            draft: row.draft,
            draft_source: row.draft_source,
            answer: row.answer,
            answered_by: row.answered_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            answered_at: row.answered_at,
        })
    }
}

fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::rng().random();
    format!("tkt_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn page(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_TICKET_PAGE))
}

async fn by_id(conn: &mut super::Conn, id: &str) -> Result<Option<Ticket>, AccountError> {
    let row: Option<TicketRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM support_tickets WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(Ticket::try_from).transpose()
}

/// Runs one UPDATE that names the ticket as `$1` and, when it changed a row, returns the row.
async fn update(
    this: &Store,
    id: String,
    sql: &'static str,
    binds: [String; 2],
) -> Result<Option<Ticket>, AccountError> {
    let now = now_millis();
    let mut w = this.begin_write().await?;
    let [first, second] = binds;
    let changed = sqlx::query(sql)
        .bind(&id)
        .bind(first)
        .bind(second)
        .bind(now)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let ticket = if changed > 0 { by_id(&mut w.tx, &id).await? } else { None };
    w.tx.commit().await?;
    Ok(ticket)
}

#[async_trait::async_trait]
impl SupportStore for Store {
    async fn open_ticket(&self, ticket: NewTicket) -> Result<Ticket, AccountError> {
        let (subject, body) = check_ticket(&ticket.subject, &ticket.body)?;
        let this = self.clone();
        run_to_completion(async move {
            let now = now_millis();
            let mut w = this.begin_write().await?;
            // Under the user's row lock, so that concurrent opens count each other.
            let _locked: Option<i32> = sqlx::query_scalar(Store::LOCK_USER)
                .bind(&ticket.user_id)
                .fetch_optional(&mut *w.tx)
                .await?;
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM support_tickets WHERE user_id = $1 AND status IN ('open', 'drafted')",
            )
            .bind(&ticket.user_id)
            .fetch_one(&mut *w.tx)
            .await?;
            if quota_full(waiting, MAX_WAITING_TICKETS) {
                w.tx.rollback().await?;
                return Err(AccountError::QuotaExceeded {
                    what: "support tickets waiting for an answer",
                    limit: MAX_WAITING_TICKETS,
                });
            }
            let id = new_id();
            sqlx::query(
                "INSERT INTO support_tickets (id, user_id, room, subject, body, status, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'open', $6, $6)",
            )
            .bind(&id)
            .bind(&ticket.user_id)
            .bind(&ticket.room)
            .bind(subject)
            .bind(body)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
            let created = by_id(&mut w.tx, &id).await?.ok_or_else(|| {
                AccountError::Database(sqlx::Error::Decode("support_tickets: gone right after its insert".into()))
            })?;
            w.tx.commit().await?;
            Ok(created)
        })
        .await
    }

    async fn ticket(&self, id: &str) -> Result<Option<Ticket>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        by_id(&mut conn, id).await
    }

    async fn tickets_of(&self, user: &UserId, limit: u32) -> Result<Vec<Ticket>, AccountError> {
        let rows: Vec<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM support_tickets WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        )))
        .bind(user)
        .bind(page(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Ticket::try_from).collect()
    }

    async fn tickets(&self, status: Option<TicketStatus>, limit: u32) -> Result<Vec<Ticket>, AccountError> {
        let rows: Vec<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM support_tickets WHERE ($1 = '' OR status = $1) ORDER BY created_at, id LIMIT $2"
        )))
        .bind(status.map(TicketStatus::as_str).unwrap_or(""))
        .bind(page(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Ticket::try_from).collect()
    }

    async fn set_draft(&self, id: &str, draft: &str, source: &str) -> Result<Option<Ticket>, AccountError> {
        let draft = check_answer(draft)?;
        let (this, id, source) = (self.clone(), id.to_owned(), source.to_owned());
        run_to_completion(async move {
            let sql = "UPDATE support_tickets SET status = 'drafted', draft = $2, draft_source = $3, updated_at = $4
                       WHERE id = $1 AND status <> 'answered'";
            update(&this, id, sql, [draft, source]).await
        })
        .await
    }

    async fn answer_ticket(&self, id: &str, answer: &str, by: &str) -> Result<Option<Ticket>, AccountError> {
        let answer = check_answer(answer)?;
        let (this, id, by) = (self.clone(), id.to_owned(), by.to_owned());
        run_to_completion(async move {
            let sql = "UPDATE support_tickets SET status = 'answered', answer = $2, answered_by = $3,
                           answered_at = $4, updated_at = $4
                       WHERE id = $1 AND status <> 'answered'";
            update(&this, id, sql, [answer, by]).await
        })
        .await
    }
}
