//! The credit ledger: one append-only entry per balance change, once per idempotency key, and
//! the rules that decide whether an amount may apply.

use dojo_ids::{TeamId, UserId};
use serde::Serialize;

use crate::AccountError;

/// One change of a user's balance. Rows are never updated or deleted (the database refuses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Increasing in the order a user's entries were applied (the user row's lock orders them).
    pub id: i64,
    pub user_id: UserId,
    /// Positive for grants and purchases, negative for spends.
    pub amount: i64,
    /// The balance right after this entry: each entry's equals the previous one's plus its
    /// amount, so the ledger can be audited against the balance.
    pub balance_after: i64,
    pub reason: String,
    pub idempotency_key: String,
    pub created_at: i64,
    /// Set on an entry of a team's account: `balance_after` is then the team's balance, and
    /// `user_id` the member it was on behalf of (who started the run, who paid).
    pub team_id: Option<TeamId>,
}

/// The result of [`AccountStore::apply_credits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditOutcome {
    /// This call changed the balance.
    Applied(LedgerEntry),
    /// The key was applied before, by this call's earlier attempt or another process: nothing
    /// changed, and this is the entry that earlier application wrote.
    AlreadyApplied(LedgerEntry),
}

impl CreditOutcome {
    pub fn entry(&self) -> &LedgerEntry {
        match self {
            CreditOutcome::Applied(entry) | CreditOutcome::AlreadyApplied(entry) => entry,
        }
    }

    pub fn into_entry(self) -> LedgerEntry {
        match self {
            CreditOutcome::Applied(entry) | CreditOutcome::AlreadyApplied(entry) => entry,
        }
    }
}

/// An entry to append. The database numbers it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewEntry<'a> {
    pub user_id: &'a UserId,
    pub amount: i64,
    pub balance_after: i64,
    pub reason: &'a str,
    pub key: &'a str,
    pub created_at: i64,
    /// The team whose balance this entry moves; `None`: the user's own.
    pub team_id: Option<&'a TeamId>,
}

/// Longest reason and idempotency key accepted.
const MAX_REASON_LEN: usize = 500;
pub(crate) const MAX_KEY_LEN: usize = 255;

pub(crate) fn validate_credit_request(reason: &str, key: &str) -> Result<(), AccountError> {
    if key.is_empty() {
        return Err(AccountError::InvalidInput { field: "idempotency_key", reason: "empty" });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(AccountError::InvalidInput { field: "idempotency_key", reason: "longer than 255 bytes" });
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(AccountError::InvalidInput { field: "reason", reason: "longer than 500 bytes" });
    }
    Ok(())
}

/// The range the current balance must lie in for `amount` to apply: at least the spend, and
/// low enough that a grant cannot overflow. The UPDATE checks it, under the row lock, so the
/// decision and the write are one atomic step; the CHECK (credits >= 0) backs it up.
pub(crate) fn balance_bounds(amount: i64) -> Result<(i64, i64), AccountError> {
    if amount < 0 {
        let spend = amount
            .checked_neg()
            .ok_or(AccountError::InvalidInput { field: "amount", reason: "out of range" })?;
        Ok((spend, i64::MAX))
    } else {
        Ok((0, i64::MAX - amount))
    }
}

/// Why an amount did not apply to a user whose balance is `balance`.
pub(crate) fn refusal(balance: i64, amount: i64) -> AccountError {
    if amount < 0 {
        AccountError::InsufficientCredits { balance, requested: amount.saturating_neg() }
    } else {
        AccountError::BalanceOverflow { balance, amount }
    }
}

/// What seeing `existing` under the key means for a request for `user_id` and `amount`.
pub(crate) fn replay(
    existing: LedgerEntry,
    user_id: &UserId,
    amount: i64,
) -> Result<CreditOutcome, AccountError> {
    replay_for(existing, user_id, None, amount)
}

/// [`replay`] for an entry of `team`'s account (`None`: the user's own).
pub(crate) fn replay_for(
    existing: LedgerEntry,
    user_id: &UserId,
    team: Option<&TeamId>,
    amount: i64,
) -> Result<CreditOutcome, AccountError> {
    if existing.user_id == *user_id && existing.amount == amount && existing.team_id.as_ref() == team {
        Ok(CreditOutcome::AlreadyApplied(existing))
    } else {
        Err(AccountError::IdempotencyKeyReused {
            key: existing.idempotency_key.clone(),
            existing: Box::new(existing),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_refuse_overdraft_and_overflow_up_front() {
        assert_eq!(balance_bounds(-5).ok(), Some((5, i64::MAX)));
        assert_eq!(balance_bounds(5).ok(), Some((0, i64::MAX - 5)));
        assert_eq!(balance_bounds(0).ok(), Some((0, i64::MAX)));
        assert!(matches!(balance_bounds(i64::MIN), Err(AccountError::InvalidInput { field: "amount", .. })));
        assert!(matches!(refusal(3, -5), AccountError::InsufficientCredits { balance: 3, requested: 5 }));
        assert!(matches!(refusal(i64::MAX, 1), AccountError::BalanceOverflow { .. }));
    }
}
