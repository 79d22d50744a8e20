//! Team credits' statements: the team's balance moved in the same ledger as users' (entries
//! with a `team_id`), the hold a run of a team's workflow takes with its member's monthly
//! limit checked under the same lock, and what members spent this month.
//!
//! Lock order (see `runs.rs`): the run row, then the user row (its quota), then the team row.
//! Every submission billed to a team takes the team row before it counts the member's spend,
//! so concurrent submissions count each other and cannot pass a limit together.

use dojo_ids::{TeamId, UserId};

use super::{Conn, Store, ledger, users};
use crate::dialect::Dialect;
use crate::ledger::{NewEntry, balance_bounds, refusal, replay_for};
use crate::team_credits::{MemberSpend, TeamCredits, month_start_millis};
use crate::teams::page_size;
use crate::{AccountError, CreditOutcome, LedgerEntry, now_millis};

/// Adds `amount` (0: only locks the row) to the account a run's money is on, the team's when
/// `team` is set, else the user's, and returns the new balance. `None`: the team was deleted
/// (its balance went with it, so there is nothing to refund to).
pub(super) async fn add_to_account(
    conn: &mut Conn,
    user: &UserId,
    team: Option<&TeamId>,
    amount: i64,
) -> Result<Option<i64>, AccountError> {
    let Some(team) = team else { return users::add_credits(conn, user, amount).await.map(Some) };
    Ok(sqlx::query_scalar("UPDATE teams SET credits = credits + $2 WHERE id = $1 RETURNING credits")
        .bind(team)
        .bind(amount)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Takes a run's whole `estimate` (> 0) from the account that pays for it, in one guarded
/// statement under its row lock, and returns the balance after. For a team, the member's
/// monthly limit is checked first, under the team row's lock.
pub(super) async fn take_hold(
    conn: &mut Conn,
    user: &UserId,
    team: Option<&TeamId>,
    estimate: i64,
    now: i64,
) -> Result<i64, AccountError> {
    let Some(team) = team else {
        let balance: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET credits = credits - $2 WHERE id = $1 AND credits >= $2 RETURNING credits",
        )
        .bind(user)
        .bind(estimate)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(balance) = balance {
            return Ok(balance);
        }
        let current: Option<i64> = sqlx::query_scalar("SELECT credits FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
        return Err(match current {
            None => AccountError::UserNotFound(user.clone()),
            Some(balance) => AccountError::InsufficientCredits { balance, requested: estimate },
        });
    };
    let Some(balance) = add_to_account(conn, user, Some(team), 0).await? else {
        return Err(AccountError::TeamNotFound(team.clone()));
    };
    let limit: Option<Option<i64>> =
        sqlx::query_scalar("SELECT spending_limit FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(Some(limit)) = limit {
        let spent = member_spend(conn, team, user, month_start_millis(now)).await?;
        if spent.saturating_add(estimate) > limit {
            return Err(AccountError::SpendingLimitReached { limit, spent, requested: estimate });
        }
    }
    if balance < estimate {
        return Err(AccountError::InsufficientTeamCredits {
            team: team.clone(),
            balance,
            requested: estimate,
        });
    }
    add_to_account(conn, user, Some(team), -estimate)
        .await?
        .ok_or_else(|| AccountError::TeamNotFound(team.clone()))
}

/// Credits captured and still held for `user`'s runs billed to `team` since `since`.
async fn member_spend(
    conn: &mut Conn,
    team: &TeamId,
    user: &UserId,
    since: i64,
) -> Result<i64, AccountError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT CAST(COALESCE(SUM(",
        spend_expr!(),
        "), 0) AS BIGINT)
         FROM runs r JOIN run_nodes n ON n.run_id = r.id
         WHERE r.billed_team_id = $1 AND r.user_id = $2 AND r.created_at >= $3"
    ))
    .bind(team)
    .bind(user)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?)
}

/// Adds `amount` to the team's balance once per key (validated by the caller), on behalf of
/// `member` (`None`: the team's first owner, for an operator's grant).
pub(super) async fn apply(
    store: &Store,
    team: &TeamId,
    member: Option<&UserId>,
    amount: i64,
    reason: &str,
    key: &str,
) -> Result<CreditOutcome, AccountError> {
    let member = match member {
        Some(member) => member.clone(),
        None => {
            let owner: Option<UserId> = sqlx::query_scalar(
                "SELECT user_id FROM team_members WHERE team_id = $1 AND role = 'owner'
                 ORDER BY joined_at, user_id LIMIT 1",
            )
            .bind(team)
            .fetch_optional(store.pool())
            .await?;
            owner.ok_or_else(|| AccountError::TeamNotFound(team.clone()))?
        }
    };
    if let Some(existing) = ledger::by_key(&mut *store.pool().acquire().await?, key).await? {
        return replay_for(existing, &member, Some(team), amount);
    }
    let (at_least, at_most) = balance_bounds(amount)?;
    let now = now_millis();
    let mut w = store.begin_write().await?;
    // As in `ledger::apply_credits`: looked up again inside the transaction, and the decision
    // and the write in one guarded statement under the team row's lock.
    if let Some(existing) = ledger::by_key(&mut w.tx, key).await? {
        w.tx.rollback().await?;
        return replay_for(existing, &member, Some(team), amount);
    }
    let balance_after: Option<i64> = sqlx::query_scalar(
        "UPDATE teams SET credits = credits + $2
         WHERE id = $1 AND credits >= $3 AND credits <= $4
         RETURNING credits",
    )
    .bind(team)
    .bind(amount)
    .bind(at_least)
    .bind(at_most)
    .fetch_optional(&mut *w.tx)
    .await?;
    let Some(balance_after) = balance_after else {
        let balance: Option<i64> = sqlx::query_scalar("SELECT credits FROM teams WHERE id = $1")
            .bind(team)
            .fetch_optional(&mut *w.tx)
            .await?;
        w.tx.rollback().await?;
        return Err(match balance {
            None => AccountError::TeamNotFound(team.clone()),
            Some(balance) => refusal(balance, amount),
        });
    };
    let entry = NewEntry {
        user_id: &member,
        amount,
        balance_after,
        reason,
        key,
        created_at: now,
        team_id: Some(team),
    };
    match ledger::insert(&mut w.tx, &entry).await? {
        Some(entry) => {
            w.tx.commit().await?;
            Ok(CreditOutcome::Applied(entry))
        }
        None => {
            w.tx.rollback().await?;
            drop(w._lock);
            let existing = ledger::by_key(&mut *store.pool().acquire().await?, key)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            replay_for(existing, &member, Some(team), amount)
        }
    }
}

/// The team's balance and every member's spend this month with their limit; `None`: no team.
pub(super) async fn credits(store: &Store, team: &TeamId) -> Result<Option<TeamCredits>, AccountError> {
    let balance: Option<i64> = sqlx::query_scalar("SELECT credits FROM teams WHERE id = $1")
        .bind(team)
        .fetch_optional(store.pool())
        .await?;
    let Some(balance) = balance else { return Ok(None) };
    let month_start = month_start_millis(now_millis());
    let rows: Vec<(UserId, Option<String>, Option<i64>, i64)> = sqlx::query_as(concat!(
        "SELECT m.user_id, u.name, m.spending_limit,
             CAST(COALESCE((SELECT SUM(", spend_expr!(), ")
                 FROM runs r JOIN run_nodes n ON n.run_id = r.id
                 WHERE r.billed_team_id = m.team_id AND r.user_id = m.user_id AND r.created_at >= $2), 0) AS BIGINT)
         FROM team_members m JOIN users u ON u.id = m.user_id
         WHERE m.team_id = $1 ORDER BY m.user_id"
    ))
    .bind(team)
    .bind(month_start)
    .fetch_all(store.pool())
    .await?;
    let members = rows
        .into_iter()
        .map(|(user_id, name, limit, spent)| MemberSpend { user_id, name, spent, limit })
        .collect();
    Ok(Some(TeamCredits { team_id: team.clone(), balance, month_start, members }))
}

/// The team's ledger entries, newest first, older than the entry id `before`.
pub(super) async fn ledger_page(
    store: &Store,
    team: &TeamId,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<LedgerEntry>, AccountError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM credit_ledger WHERE team_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    ))
    .bind(team)
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(page_size(limit)))
    .fetch_all(store.pool())
    .await?)
}

/// Sets (or, with `None`, removes) the member's monthly limit. [`AccountError::NotMember`]
/// when they are not a member of the team.
pub(super) async fn set_limit(
    store: &Store,
    team: &TeamId,
    user: &UserId,
    limit: Option<i64>,
) -> Result<(), AccountError> {
    let mut w = store.begin_write().await?;
    let changed =
        sqlx::query("UPDATE team_members SET spending_limit = $3 WHERE team_id = $1 AND user_id = $2")
            .bind(team)
            .bind(user)
            .bind(limit)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
    if changed == 0 {
        w.tx.rollback().await?;
        return Err(AccountError::NotMember);
    }
    w.tx.commit().await?;
    Ok(())
}
