//! The fraud agent's records (issue 23): what Stripe told us about payments, the rules that turn
//! payments and spending into flags for staff review, and the flags. A user with a flag that is
//! `open` or `confirmed` cannot start a run that costs credits ([`crate::RunStore::create_run`]
//! refuses it in the transaction that would take the holds). The rules are pure functions over
//! what the database aggregates ([`Evidence`]), so each is a unit test; the statements are in
//! `sql/fraud.rs`.

use dojo_ids::UserId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AccountError;

/// Most flags one list returns.
pub const MAX_FLAG_PAGE: u32 = 200;
/// Most users one rule may flag per scan: a scan stays bounded whatever the data holds; the
/// next scan takes the rest.
pub const MAX_FINDINGS_PER_RULE: u32 = 500;
/// Longest staff note, in bytes.
pub const MAX_NOTE_LEN: usize = 2_000;

/// What happened to a payment, from Stripe's charge events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentKind {
    /// `charge.succeeded`.
    Paid,
    /// `charge.refunded`.
    Refunded,
    /// `charge.failed`.
    Failed,
    /// `charge.dispute.created`: a chargeback.
    Disputed,
}

impl PaymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentKind::Paid => "paid",
            PaymentKind::Refunded => "refunded",
            PaymentKind::Failed => "failed",
            PaymentKind::Disputed => "disputed",
        }
    }
}

/// One Stripe event about a payment, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// Stripe's event id: each is recorded once.
    pub event_id: String,
    pub kind: PaymentKind,
    /// `metadata.user_id` as sent; the store keeps it only if it names a user, and otherwise
    /// resolves the user from the customer or an earlier event of the same charge.
    pub user_id: Option<UserId>,
    pub customer: Option<String>,
    pub charge: Option<String>,
    /// The card's fingerprint.
    pub source: Option<String>,
    /// In the currency's smallest unit.
    pub amount: i64,
    /// Milliseconds since the Unix epoch (Stripe's `created`).
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagStatus {
    /// Waiting for staff; the user cannot start paid runs.
    Open,
    /// Staff found nothing wrong; this flag no longer blocks.
    Cleared,
    /// Staff confirmed it; the user stays blocked until someone clears it.
    Confirmed,
}

impl FlagStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagStatus::Open => "open",
            FlagStatus::Cleared => "cleared",
            FlagStatus::Confirmed => "confirmed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(FlagStatus::Open),
            "cleared" => Some(FlagStatus::Cleared),
            "confirmed" => Some(FlagStatus::Confirmed),
            _ => None,
        }
    }

    /// Whether a flag in this state stops its user's paid runs.
    pub fn blocks(self) -> bool {
        matches!(self, FlagStatus::Open | FlagStatus::Confirmed)
    }
}

/// A rule's finding about one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub id: String,
    pub user_id: UserId,
    pub rule: String,
    pub detail: Value,
    /// The newest event the evidence includes.
    pub evidence_at: i64,
    pub status: FlagStatus,
    pub created_at: i64,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub note: Option<String>,
}

/// The rules' thresholds. A `fraud.scan` job's payload may set any of them (camelCase); the
/// rest keep these defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FraudRules {
    /// Refunds, failed payments and disputes of one user within `burstWindowHours` that flag
    /// them.
    pub burst_count: i64,
    pub burst_window_hours: i64,
    /// Distinct users paying with one card within `sharedSourceWindowDays` that flag each of
    /// them.
    pub shared_source_accounts: i64,
    pub shared_source_window_days: i64,
    /// Credits spent in the last `spendWindowHours` that flag a user when they are at least
    /// `spendMinimum` and more than `spendFactor` times the user's average spend per such window
    /// over the `spendHistoryDays` before.
    pub spend_minimum: i64,
    pub spend_factor: i64,
    pub spend_window_hours: i64,
    pub spend_history_days: i64,
}

impl Default for FraudRules {
    fn default() -> Self {
        Self {
            burst_count: 3,
            burst_window_hours: 24,
            shared_source_accounts: 3,
            shared_source_window_days: 30,
            spend_minimum: 1_000,
            spend_factor: 10,
            spend_window_hours: 24,
            spend_history_days: 30,
        }
    }
}

impl FraudRules {
    /// Refuses thresholds that would flag everyone or look back without bound.
    pub fn check(&self) -> Result<(), AccountError> {
        let in_range = |value: i64, min: i64, max: i64| (min..=max).contains(&value);
        let checks: [(&'static str, bool); 8] = [
            ("burstCount", in_range(self.burst_count, 1, 1_000)),
            ("burstWindowHours", in_range(self.burst_window_hours, 1, 24 * 90)),
            ("sharedSourceAccounts", in_range(self.shared_source_accounts, 2, 1_000)),
            ("sharedSourceWindowDays", in_range(self.shared_source_window_days, 1, 365)),
            ("spendMinimum", in_range(self.spend_minimum, 1, i64::MAX / 4)),
            ("spendFactor", in_range(self.spend_factor, 1, 1_000_000)),
            ("spendWindowHours", in_range(self.spend_window_hours, 1, 24 * 30)),
            ("spendHistoryDays", in_range(self.spend_history_days, 1, 365)),
        ];
        match checks.into_iter().find(|(_, ok)| !ok) {
            Some((field, _)) => Err(AccountError::InvalidInput { field, reason: "out of range" }),
            None => Ok(()),
        }
    }

    pub fn burst_since(&self, now: i64) -> i64 {
        now.saturating_sub(self.burst_window_hours.saturating_mul(HOUR))
    }

    pub fn shared_source_since(&self, now: i64) -> i64 {
        now.saturating_sub(self.shared_source_window_days.saturating_mul(DAY))
    }

    /// Where the recent spending window begins.
    pub fn spend_since(&self, now: i64) -> i64 {
        now.saturating_sub(self.spend_window_hours.saturating_mul(HOUR))
    }

    /// Where the history the recent window is compared with begins.
    pub fn history_since(&self, now: i64) -> i64 {
        self.spend_since(now).saturating_sub(self.spend_history_days.saturating_mul(DAY))
    }
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// A user's refunds, failed payments and disputes in the burst window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentTrouble {
    pub user_id: UserId,
    pub refunded: i64,
    pub failed: i64,
    pub disputed: i64,
    pub latest_at: i64,
}

/// One card used by several users in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSource {
    pub source: String,
    /// Each user who paid with it, and their latest event with it.
    pub users: Vec<(UserId, i64)>,
}

/// A user's spending: in the recent window, and in the history before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spending {
    pub user_id: UserId,
    pub recent: i64,
    pub history: i64,
    pub latest_at: i64,
}

/// What the database aggregated for one scan (each list already narrowed by the cheap part of
/// its rule, and bounded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub trouble: Vec<PaymentTrouble>,
    pub shared_sources: Vec<SharedSource>,
    pub spending: Vec<Spending>,
}

/// A flag to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub user_id: UserId,
    pub rule: &'static str,
    pub detail: Value,
    pub evidence_at: i64,
}

pub const RULE_PAYMENT_TROUBLE: &str = "payment_trouble";
pub const RULE_SHARED_SOURCE: &str = "shared_payment_source";
pub const RULE_SPEND_SPIKE: &str = "spend_spike";

/// The flags `evidence` calls for under `rules`.
pub fn findings(rules: &FraudRules, evidence: &Evidence) -> Vec<Finding> {
    let mut found = Vec::new();
    for trouble in &evidence.trouble {
        let total = trouble.refunded.saturating_add(trouble.failed).saturating_add(trouble.disputed);
        if total >= rules.burst_count {
            found.push(Finding {
                user_id: trouble.user_id.clone(),
                rule: RULE_PAYMENT_TROUBLE,
                detail: json!({
                    "refunded": trouble.refunded, "failed": trouble.failed, "disputed": trouble.disputed,
                    "windowHours": rules.burst_window_hours, "threshold": rules.burst_count,
                }),
                evidence_at: trouble.latest_at,
            });
        }
    }
    for shared in &evidence.shared_sources {
        if i64::try_from(shared.users.len()).unwrap_or(i64::MAX) < rules.shared_source_accounts {
            continue;
        }
        let latest = shared.users.iter().map(|(_, at)| *at).max().unwrap_or(0);
        for (user, _) in &shared.users {
            let others: Vec<&str> = shared
                .users
                .iter()
                .filter(|(other, _)| other != user)
                .map(|(other, _)| other.as_str())
                .collect();
            found.push(Finding {
                user_id: user.clone(),
                rule: RULE_SHARED_SOURCE,
                detail: json!({
                    // The fingerprint, not the card: Stripe's fingerprint reveals no card data.
                    "source": shared.source, "accounts": shared.users.len(), "otherAccounts": others,
                    "windowDays": rules.shared_source_window_days,
                }),
                evidence_at: latest,
            });
        }
    }
    for spending in &evidence.spending {
        if let Some(detail) = spend_spike(rules, spending) {
            found.push(Finding {
                user_id: spending.user_id.clone(),
                rule: RULE_SPEND_SPIKE,
                detail,
                evidence_at: spending.latest_at,
            });
        }
    }
    found
}

/// Whether recent spending is far above the user's history: at least the minimum, and more
/// than `factor` times the average per window of the history (a user with no history is
/// compared with the minimum alone).
fn spend_spike(rules: &FraudRules, spending: &Spending) -> Option<Value> {
    if spending.recent < rules.spend_minimum {
        return None;
    }
    let windows = (rules.spend_history_days.saturating_mul(24) / rules.spend_window_hours.max(1)).max(1);
    let average = spending.history.max(0) / windows;
    if spending.recent <= average.saturating_mul(rules.spend_factor) {
        return None;
    }
    Some(json!({
        "spent": spending.recent, "windowHours": rules.spend_window_hours,
        "averagePerWindow": average, "historyDays": rules.spend_history_days,
        "factor": rules.spend_factor, "minimum": rules.spend_minimum,
    }))
}

/// Which flags [`FraudStore::flags`] lists: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagQuery {
    pub status: Option<FlagStatus>,
    pub user_id: Option<UserId>,
    /// Flags listed after this one (the previous page's last `(created_at, id)`).
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

/// Payments, scans and flags. One implementation per database kind.
#[async_trait::async_trait]
pub trait FraudStore: Send + Sync + 'static {
    /// Records a payment event once per event id; `false` when it was recorded before.
    async fn record_payment(&self, event: PaymentEvent) -> Result<bool, AccountError>;

    /// Remembers that a Stripe customer is one of our users (from a completed checkout). The
    /// first user a customer was seen with is kept.
    async fn remember_customer(&self, customer: &str, user: &UserId) -> Result<(), AccountError>;

    /// What the rules look at, as of `now`.
    async fn evidence(&self, rules: &FraudRules, now: i64) -> Result<Evidence, AccountError>;

    /// Raises a flag unless the user has an unreviewed or confirmed one of the same rule, or
    /// staff cleared one after the newest event this evidence includes. The flag, when raised.
    async fn raise_flag(&self, finding: &Finding) -> Result<Option<Flag>, AccountError>;

    async fn flag(&self, id: &str) -> Result<Option<Flag>, AccountError>;

    async fn flags(&self, query: &FlagQuery) -> Result<Vec<Flag>, AccountError>;

    /// Staff's verdict on a flag: `Cleared` (from open or confirmed) or `Confirmed` (from
    /// open). `None` when no flag has the id or its state does not allow it.
    async fn review_flag(
        &self,
        id: &str,
        verdict: FlagStatus,
        reviewer: &str,
        note: Option<&str>,
    ) -> Result<Option<Flag>, AccountError>;

    /// Whether the user has a flag that stops paid runs.
    async fn under_review(&self, user: &UserId) -> Result<bool, AccountError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::from(id)
    }

    #[test]
    fn payment_trouble_counts_refunds_failures_and_disputes_together() {
        let rules = FraudRules::default();
        let evidence = Evidence {
            trouble: vec![
                PaymentTrouble { user_id: user("a"), refunded: 1, failed: 1, disputed: 1, latest_at: 5 },
                PaymentTrouble { user_id: user("b"), refunded: 0, failed: 2, disputed: 0, latest_at: 6 },
            ],
            ..Evidence::default()
        };
        let found = findings(&rules, &evidence);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].user_id, user("a"));
        assert_eq!(found[0].rule, RULE_PAYMENT_TROUBLE);
        assert_eq!(found[0].evidence_at, 5);
        assert_eq!(found[0].detail["disputed"], 1);
    }

    #[test]
    fn a_shared_card_flags_every_account_that_used_it() {
        let rules = FraudRules { shared_source_accounts: 3, ..FraudRules::default() };
        let three = SharedSource {
            source: "fp_1".into(),
            users: vec![(user("a"), 10), (user("b"), 30), (user("c"), 20)],
        };
        let two = SharedSource { source: "fp_2".into(), users: vec![(user("d"), 1), (user("e"), 2)] };
        let found = findings(&rules, &Evidence { shared_sources: vec![three, two], ..Evidence::default() });
        let flagged: Vec<&str> = found.iter().map(|f| f.user_id.as_str()).collect();
        assert_eq!(flagged, ["a", "b", "c"]);
        assert!(found.iter().all(|f| f.evidence_at == 30 && f.rule == RULE_SHARED_SOURCE));
        assert_eq!(found[0].detail["otherAccounts"], json!(["b", "c"]));
    }

    #[test]
    fn spending_is_compared_with_the_users_own_history() {
        let rules = FraudRules::default(); // 1,000 minimum, ×10, 24 h against 30 days
        let spend = |id: &str, recent: i64, history: i64| Spending {
            user_id: user(id),
            recent,
            history,
            latest_at: 1,
        };
        let evidence = Evidence {
            spending: vec![
                spend("new", 1_000, 0),           // no history, at the minimum: flagged
                spend("small", 999, 0),           // under the minimum
                spend("steady", 5_000, 30 * 600), // 600 a day on average: ×10 is 6,000
                spend("spike", 6_001, 30 * 600),
            ],
            ..Evidence::default()
        };
        let found = findings(&rules, &evidence);
        let flagged: Vec<&str> = found.iter().map(|f| f.user_id.as_str()).collect();
        assert_eq!(flagged, ["new", "spike"]);
    }

    #[test]
    fn rules_out_of_range_are_refused() {
        assert!(FraudRules::default().check().is_ok());
        let zero = FraudRules { burst_count: 0, ..FraudRules::default() };
        assert!(matches!(zero.check(), Err(AccountError::InvalidInput { field: "burstCount", .. })));
        let one_account = FraudRules { shared_source_accounts: 1, ..FraudRules::default() };
        assert!(one_account.check().is_err());
        let forever = FraudRules { spend_history_days: 10_000, ..FraudRules::default() };
        assert!(forever.check().is_err());
    }

    #[test]
    fn rules_parse_from_a_partial_payload() {
        let rules: FraudRules = serde_json::from_value(json!({"burstCount": 5})).expect("parses");
        assert_eq!(rules.burst_count, 5);
        assert_eq!(rules.spend_factor, 10);
        assert!(serde_json::from_value::<FraudRules>(json!({"nope": 1})).is_err());
    }

    #[test]
    fn only_open_and_confirmed_flags_block() {
        assert!(FlagStatus::Open.blocks());
        assert!(FlagStatus::Confirmed.blocks());
        assert!(!FlagStatus::Cleared.blocks());
        for status in [FlagStatus::Open, FlagStatus::Cleared, FlagStatus::Confirmed] {
            assert_eq!(FlagStatus::parse(status.as_str()), Some(status));
        }
    }
}
