//! Team credits: a team's balance kept in the same ledger as users' (entries with a `team_id`),
//! what each member spent from it this calendar month, and their spending limits. The
//! statements are in `sql/team_credits.rs`; the store methods are on [`TeamStore`](crate::TeamStore).

use dojo_ids::{TeamId, UserId};
use serde::Serialize;

use crate::AccountError;

/// Highest spending limit accepted: far above any real budget, and low enough that a limit
/// plus a run's estimate cannot overflow.
pub const MAX_SPENDING_LIMIT: i64 = 1 << 53;

/// A team's balance and its members' spend this month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamCredits {
    pub team_id: TeamId,
    pub balance: i64,
    /// Start of the current calendar month (UTC), milliseconds since the epoch: spend is
    /// counted from here.
    pub month_start: i64,
    /// Every member, by user id.
    pub members: Vec<MemberSpend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberSpend {
    pub user_id: UserId,
    pub name: Option<String>,
    /// Credits captured and still held for this member's runs billed to the team this month.
    pub spent: i64,
    /// Credits per calendar month; `None`: no limit.
    pub limit: Option<i64>,
}

pub(crate) fn validate_limit(limit: Option<i64>) -> Result<(), AccountError> {
    match limit {
        Some(limit) if !(0..=MAX_SPENDING_LIMIT).contains(&limit) => Err(AccountError::InvalidInput {
            field: "limit",
            reason: "must be between 0 and 2^53, or null for no limit",
        }),
        _ => Ok(()),
    }
}

/// The first millisecond of the calendar month (UTC) that `now_ms` falls in.
pub fn month_start_millis(now_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let days = now_ms.div_euclid(DAY_MS);
    let (year, month, _) = civil_from_days(days);
    days_from_civil(year, month, 1) * DAY_MS
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_start_is_the_first_of_the_month_utc() {
        // 2026-12-06T21:42:56Z → 2026-12-01T00:00:00Z.
        assert_eq!(month_start_millis(1_796_593_376_000), 1_796_083_200_000);
        // The first millisecond of a month is its own start; the last belongs to the month before.
        assert_eq!(month_start_millis(1_796_083_200_000), 1_796_083_200_000);
        // 2024-02-29T12:00:00Z → 2024-02-01.
        assert_eq!(month_start_millis(1_709_208_000_000), 1_706_745_600_000);
        assert_eq!(month_start_millis(0), 0);
        assert_eq!(month_start_millis(-1), -2_678_400_000);
    }

    #[test]
    fn limits_are_bounded() {
        assert!(validate_limit(None).is_ok());
        assert!(validate_limit(Some(0)).is_ok());
        assert!(validate_limit(Some(-1)).is_err());
        assert!(validate_limit(Some(MAX_SPENDING_LIMIT + 1)).is_err());
    }
}
