//! Accounts on PostgreSQL, shared by every server instance.
//!
//! Concurrency across instances rests on row locks held until commit: credit changes to a user
//! serialise on the user's row (its conditional UPDATE), and two uses of one idempotency key
//! meet at the ledger's unique index, where the later one waits for the earlier to commit and
//! then finds its row.

use dojo_store::run_to_completion;
use sqlx::postgres::PgPool;

use crate::runs_sql::WriteTx;
use crate::{
    AccessFacts, AccountError, AccountStore, Collaborator, CollaboratorPermission, CreditOutcome,
    LedgerEntry, RoomAccess, SummaryRow, User, Workflow, WorkflowPatch, WorkflowSummary, balance_bounds,
    decide_access, new_id, now_millis, profile, profile_changes, quota_full, refusal, replay,
    single_email_match, validate_credit_request, validate_room, validate_subject, validate_title,
};

/// An [`AccountStore`] on PostgreSQL. Clones share the pool.
#[derive(Debug, Clone)]
pub struct PostgresAccounts {
    pool: PgPool,
}

impl PostgresAccounts {
    /// Accounts on `pool`, whose database must be migrated (`dojo_store::open_database` does).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction for the run store (`runs_sql.rs`). Row locks taken inside it are
    /// what serialise writers here, so no process-wide lock goes with it.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<sqlx::Postgres>, AccountError> {
        Ok(WriteTx { tx: self.pool.begin().await?, _lock: None })
    }

    async fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, AccountError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM credit_ledger WHERE idempotency_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn workflow_owner(&self, id: &str) -> Result<Option<String>, AccountError> {
        Ok(sqlx::query_scalar("SELECT owner_id FROM workflows WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn user_exists(&self, id: &str) -> Result<bool, AccountError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    // The bodies of the trait's writes, which run them through `run_to_completion`.

    async fn upsert_user_now(
        &self,
        subject: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, AccountError> {
        // Two first requests of a new user racing both reach the INSERT; ON CONFLICT turns the
        // second into an update of the first one's row, so both get the same user.
        Ok(sqlx::query_as(concat!(
            "INSERT INTO users (id, subject, name, email, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (subject) DO UPDATE
             SET name = COALESCE(EXCLUDED.name, users.name),
                 email = COALESCE(EXCLUDED.email, users.email),
                 updated_at = EXCLUDED.updated_at
             RETURNING ",
            user_columns!()
        ))
        .bind(new_id("u_"))
        .bind(subject)
        .bind(name)
        .bind(email)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn create_workflow_now(
        &self,
        owner_id: &str,
        title: &str,
        room: Option<&str>,
        max_owned: Option<u64>,
    ) -> Result<Workflow, AccountError> {
        let id = new_id("wf_");
        let room = room.unwrap_or(&id);
        let mut tx = self.pool.begin().await?;
        if let Some(limit) = max_owned {
            // The owner's row lock orders concurrent creations by one owner, so each counts
            // what the ones before it committed. NO KEY: rows that merely reference the user
            // (runs, ledger entries) are not held up by it.
            let owner: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(owner_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owner.is_none() {
                tx.rollback().await?;
                return Err(AccountError::UserNotFound(owner_id.to_owned()));
            }
            let owned: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM workflows WHERE owner_id = $1 AND deleted_at IS NULL",
            )
            .bind(owner_id)
            .fetch_one(&mut *tx)
            .await?;
            if quota_full(owned, limit) {
                tx.rollback().await?;
                return Err(AccountError::QuotaExceeded { what: "workflows", limit });
            }
        }
        // One statement: the room's uniqueness and the owner's existence are checked by the
        // database, atomically. The reason nothing was inserted is looked up afterwards.
        let created: Option<Workflow> = sqlx::query_as(concat!(
            "INSERT INTO workflows (id, room, owner_id, title, public, created_at, updated_at)
             SELECT $1, $2, $3, $4, FALSE, $5, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $3)
             ON CONFLICT (room) DO NOTHING
             RETURNING ",
            workflow_columns!()
        ))
        .bind(&id)
        .bind(room)
        .bind(owner_id)
        .bind(title)
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match created {
            Some(workflow) => Ok(workflow),
            None if !self.user_exists(owner_id).await? => {
                Err(AccountError::UserNotFound(owner_id.to_owned()))
            }
            None => Err(AccountError::RoomTaken(room.to_owned())),
        }
    }

    async fn set_collaborator_now(
        &self,
        workflow_id: &str,
        user_id: &str,
        permission: CollaboratorPermission,
    ) -> Result<Collaborator, AccountError> {
        let Some(owner) = self.workflow_owner(workflow_id).await? else {
            return Err(AccountError::WorkflowNotFound(workflow_id.to_owned()));
        };
        if owner == user_id {
            return Err(AccountError::OwnerCannotCollaborate);
        }
        // The foreign key would refuse an unknown user too, but with an error we would have to
        // recognise by its code.
        if !self.user_exists(user_id).await? {
            return Err(AccountError::UserNotFound(user_id.to_owned()));
        }
        Ok(sqlx::query_as(
            "INSERT INTO workflow_collaborators (workflow_id, user_id, permission, added_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (workflow_id, user_id) DO UPDATE SET permission = EXCLUDED.permission
             RETURNING workflow_id, user_id, permission, added_at",
        )
        .bind(workflow_id)
        .bind(user_id)
        .bind(permission.as_str())
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn apply_credits_now(
        &self,
        user_id: &str,
        amount: i64,
        reason: &str,
        key: &str,
    ) -> Result<CreditOutcome, AccountError> {
        // A retry finds its entry here without taking any lock.
        if let Some(existing) = self.ledger_entry(key).await? {
            return replay(existing, user_id, amount);
        }
        let (at_least, at_most) = balance_bounds(amount)?;
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        // The decision and the write in one statement, under the row lock: a concurrent spend
        // waits here, then re-evaluates the condition against the balance the first one left.
        let balance_after: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET credits = credits + $2
             WHERE id = $1 AND credits >= $3 AND credits <= $4
             RETURNING credits",
        )
        .bind(user_id)
        .bind(amount)
        .bind(at_least)
        .bind(at_most)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(balance_after) = balance_after else {
            tx.rollback().await?;
            let balance: Option<i64> = sqlx::query_scalar("SELECT credits FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
            return Err(match balance {
                None => AccountError::UserNotFound(user_id.to_owned()),
                Some(balance) => refusal(balance, amount),
            });
        };
        // A concurrent use of the key that got past the look-up above meets this one here: the
        // unique index makes the later INSERT wait for the earlier transaction, and do nothing
        // if it committed.
        let entry: Option<LedgerEntry> = sqlx::query_as(concat!(
            "INSERT INTO credit_ledger (user_id, amount, balance_after, reason, idempotency_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING ",
            ledger_columns!()
        ))
        .bind(user_id)
        .bind(amount)
        .bind(balance_after)
        .bind(reason)
        .bind(key)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        match entry {
            Some(entry) => {
                tx.commit().await?;
                Ok(CreditOutcome::Applied(entry))
            }
            None => {
                // Undo our balance change: the key's first application already made it.
                tx.rollback().await?;
                let existing = self.ledger_entry(key).await?.ok_or(sqlx::Error::RowNotFound)?;
                replay(existing, user_id, amount)
            }
        }
    }
}

#[async_trait::async_trait]
impl AccountStore for PostgresAccounts {
    async fn upsert_user(
        &self,
        subject: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, AccountError> {
        let subject = validate_subject(subject)?;
        let (name, email) = profile(name, email)?;
        // The common case, a known user whose token says nothing new, is one indexed read.
        if let Some(user) = self.user_by_subject(subject).await?
            && !profile_changes(&user, name.as_deref(), email.as_deref())
        {
            return Ok(user);
        }
        let (this, subject) = (self.clone(), subject.to_owned());
        run_to_completion(
            async move { this.upsert_user_now(&subject, name.as_deref(), email.as_deref()).await },
        )
        .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, AccountError> {
        Ok(sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>, AccountError> {
        Ok(sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE subject = $1"))
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn find_user(&self, query: &str) -> Result<Option<User>, AccountError> {
        if let Some(user) = self.user(query).await? {
            return Ok(Some(user));
        }
        if let Some(user) = self.user_by_subject(query).await? {
            return Ok(Some(user));
        }
        let matches: Vec<User> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(email) = lower($1) ORDER BY created_at LIMIT 2"
        ))
        .bind(query)
        .fetch_all(&self.pool)
        .await?;
        single_email_match(query, matches)
    }

    async fn list_users(&self, limit: u32) -> Result<Vec<User>, AccountError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY created_at DESC, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn create_workflow_within(
        &self,
        owner_id: &str,
        title: &str,
        room: Option<&str>,
        max_owned: Option<u64>,
    ) -> Result<Workflow, AccountError> {
        let title = validate_title(title)?;
        let room = room.map(validate_room).transpose()?.map(str::to_owned);
        let (this, owner_id) = (self.clone(), owner_id.to_owned());
        run_to_completion(async move {
            this.create_workflow_now(&owner_id, &title, room.as_deref(), max_owned).await
        })
        .await
    }

    async fn workflow(&self, id: &str) -> Result<Option<Workflow>, AccountError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            workflow_columns!(),
            " FROM workflows WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn workflow_by_room(&self, room: &str) -> Result<Option<Workflow>, AccountError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            workflow_columns!(),
            " FROM workflows WHERE room = $1 AND deleted_at IS NULL"
        ))
        .bind(room)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_workflows(&self, user_id: &str) -> Result<Vec<WorkflowSummary>, AccountError> {
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "SELECT id, room, owner_id, title, public, created_at, updated_at, 'admin' AS permission
             FROM workflows WHERE owner_id = $1 AND deleted_at IS NULL
             UNION ALL
             SELECT w.id, w.room, w.owner_id, w.title, w.public, w.created_at, w.updated_at, c.permission
             FROM workflows w JOIN workflow_collaborators c ON c.workflow_id = w.id
             WHERE c.user_id = $1 AND w.owner_id <> $1 AND w.deleted_at IS NULL
             ORDER BY updated_at DESC, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(WorkflowSummary::try_from).collect()
    }

    async fn update_workflow(&self, id: &str, patch: WorkflowPatch) -> Result<Workflow, AccountError> {
        let title = patch.title.as_deref().map(validate_title).transpose()?;
        let (this, id) = (self.clone(), id.to_owned());
        run_to_completion(async move {
            let updated: Option<Workflow> = sqlx::query_as(concat!(
                "UPDATE workflows
                 SET title = COALESCE($2, title), public = COALESCE($3, public), updated_at = $4
                 WHERE id = $1 AND deleted_at IS NULL
                 RETURNING ",
                workflow_columns!()
            ))
            .bind(&id)
            .bind(title)
            .bind(patch.public)
            .bind(now_millis())
            .fetch_optional(&this.pool)
            .await?;
            updated.ok_or(AccountError::WorkflowNotFound(id))
        })
        .await
    }

    async fn delete_workflow(&self, id: &str) -> Result<(), AccountError> {
        let (this, id) = (self.clone(), id.to_owned());
        run_to_completion(async move {
            let deleted = sqlx::query(
                "UPDATE workflows SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(&id)
            .bind(now_millis())
            .execute(&this.pool)
            .await?
            .rows_affected();
            if deleted == 0 { Err(AccountError::WorkflowNotFound(id)) } else { Ok(()) }
        })
        .await
    }

    async fn set_collaborator(
        &self,
        workflow_id: &str,
        user_id: &str,
        permission: CollaboratorPermission,
    ) -> Result<Collaborator, AccountError> {
        let (this, workflow_id, user_id) = (self.clone(), workflow_id.to_owned(), user_id.to_owned());
        run_to_completion(async move { this.set_collaborator_now(&workflow_id, &user_id, permission).await })
            .await
    }

    async fn remove_collaborator(&self, workflow_id: &str, user_id: &str) -> Result<bool, AccountError> {
        let (this, workflow_id, user_id) = (self.clone(), workflow_id.to_owned(), user_id.to_owned());
        run_to_completion(async move {
            let removed =
                sqlx::query("DELETE FROM workflow_collaborators WHERE workflow_id = $1 AND user_id = $2")
                    .bind(&workflow_id)
                    .bind(&user_id)
                    .execute(&this.pool)
                    .await?
                    .rows_affected();
            Ok(removed > 0)
        })
        .await
    }

    async fn collaborators(&self, workflow_id: &str) -> Result<Vec<Collaborator>, AccountError> {
        if self.workflow_owner(workflow_id).await?.is_none() {
            return Err(AccountError::WorkflowNotFound(workflow_id.to_owned()));
        }
        Ok(sqlx::query_as(
            "SELECT workflow_id, user_id, permission, added_at FROM workflow_collaborators
             WHERE workflow_id = $1 ORDER BY added_at, user_id",
        )
        .bind(workflow_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn room_access(&self, user_id: Option<&str>, room: &str) -> Result<RoomAccess, AccountError> {
        let facts: Option<AccessFacts> = sqlx::query_as(
            "SELECT w.owner_id, w.public, w.deleted_at, c.permission
             FROM workflows w
             LEFT JOIN workflow_collaborators c ON c.workflow_id = w.id AND c.user_id = $2
             WHERE w.room = $1",
        )
        .bind(room)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        decide_access(facts, user_id)
    }

    async fn balance(&self, user_id: &str) -> Result<i64, AccountError> {
        let balance: Option<i64> = sqlx::query_scalar("SELECT credits FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        balance.ok_or_else(|| AccountError::UserNotFound(user_id.to_owned()))
    }

    async fn apply_credits(
        &self,
        user_id: &str,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<CreditOutcome, AccountError> {
        validate_credit_request(reason, idempotency_key)?;
        let this = self.clone();
        let (user_id, reason, key) = (user_id.to_owned(), reason.to_owned(), idempotency_key.to_owned());
        run_to_completion(async move { this.apply_credits_now(&user_id, amount, &reason, &key).await }).await
    }

    async fn ledger(&self, user_id: &str, limit: u32) -> Result<Vec<LedgerEntry>, AccountError> {
        let entries: Vec<LedgerEntry> = sqlx::query_as(concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM credit_ledger WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        if entries.is_empty() && !self.user_exists(user_id).await? {
            return Err(AccountError::UserNotFound(user_id.to_owned()));
        }
        Ok(entries)
    }
}
