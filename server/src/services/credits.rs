//! Credits coming in: an operator's grant, a paid checkout, dev mode's welcome. Every one goes
//! through `apply_credits` with a key of its own namespace, so a retry changes the balance once.

use dojo_ids::{TeamId, UserId};
use dojo_records::stripe::CheckoutCredit;
use dojo_records::{AccountError, AccountStore, AuditLog, CreditOutcome, TeamStore, User};
use serde_json::json;

use super::audit::{Actor, Record, record};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    #[error("no user {0:?} (give an id, an email or a token subject)")]
    NoSuchUser(String),
    #[error("unknown user {:?}", .0.as_str())]
    UnknownCheckoutUser(UserId),
    #[error("no team {:?}", .0.as_str())]
    NoSuchTeam(TeamId),
    /// A team checkout whose team does not exist (any more).
    #[error("unknown team {:?}", .0.as_str())]
    UnknownCheckoutTeam(TeamId),
    /// A team checkout paid by someone who is not (any more) an owner or admin of that team.
    #[error("user {:?} is not an owner or admin of team {:?}", .user.as_str(), .team.as_str())]
    PayerNotTeamManager { user: UserId, team: TeamId },
    #[error(transparent)]
    Accounts(#[from] AccountError),
}

/// An operator's grant, applied or found applied before.
#[derive(Debug)]
pub struct Granted {
    pub user: User,
    pub outcome: CreditOutcome,
}

pub struct CreditService<'a> {
    accounts: &'a dyn AccountStore,
    /// Where grants and payments are recorded, and who makes them.
    audit: Option<(&'a std::sync::Arc<dyn AuditLog>, Actor)>,
}

impl<'a> CreditService<'a> {
    pub fn new(accounts: &'a std::sync::Arc<dyn AccountStore>) -> Self {
        Self { accounts: accounts.as_ref(), audit: None }
    }

    /// Records every credit this service applies (not replays of one applied before) in
    /// `log`, as done by `actor`.
    pub fn audited(mut self, log: &'a std::sync::Arc<dyn AuditLog>, actor: Actor) -> Self {
        self.audit = Some((log, actor));
        self
    }

    async fn audit(&self, action: &'static str, user: &UserId, outcome: &CreditOutcome, key: &str) {
        let (Some((log, actor)), CreditOutcome::Applied(entry)) = (&self.audit, outcome) else { return };
        let detail =
            json!({"amount": entry.amount, "balanceAfter": entry.balance_after, "idempotencyKey": key});
        record(
            log,
            actor,
            Record { action, target_type: "user", target_id: user.as_str(), team: None, detail },
        )
        .await;
    }

    async fn audit_team(&self, action: &'static str, team: &TeamId, outcome: &CreditOutcome, key: &str) {
        let (Some((log, actor)), CreditOutcome::Applied(entry)) = (&self.audit, outcome) else { return };
        let detail = json!({
            "amount": entry.amount,
            "balanceAfter": entry.balance_after,
            "member": entry.user_id,
            "idempotencyKey": key,
        });
        record(
            log,
            actor,
            Record { action, target_type: "team", target_id: team.as_str(), team: Some(team), detail },
        )
        .await;
    }

    /// Adds `amount` (negative: removes) to the team's balance, as [`Self::grant`] does to a
    /// user's; the ledger entry names the team's first owner as the member.
    pub async fn grant_team(
        &self,
        teams: &dyn TeamStore,
        team: &TeamId,
        amount: i64,
        idempotency_key: Option<&str>,
    ) -> Result<CreditOutcome, CreditError> {
        if teams.team(team).await?.is_none() {
            return Err(CreditError::NoSuchTeam(team.clone()));
        }
        let key = match idempotency_key {
            Some(key) => format!("admin:team:{key}"),
            None => format!("admin:{team}:{}", rand::random::<u64>()),
        };
        let outcome = match teams.apply_team_credits(team, None, amount, "granted by an operator", &key).await
        {
            Err(AccountError::TeamNotFound(_)) => return Err(CreditError::NoSuchTeam(team.clone())),
            outcome => outcome?,
        };
        self.audit_team("team.credits_granted", team, &outcome, &key).await;
        Ok(outcome)
    }

    /// Credits a paid checkout for a team (`metadata.team_id`) once per event. The payer
    /// (`client_reference_id` / `metadata.user_id`) must be an owner or admin of the team when
    /// the event arrives: a member cannot turn their own payment into credits of a team they do
    /// not manage, nor anyone buy credits into a team they do not belong to.
    pub async fn credit_team_checkout(
        &self,
        teams: &dyn TeamStore,
        team: &TeamId,
        credit: &CheckoutCredit,
    ) -> Result<CreditOutcome, CreditError> {
        if teams.team(team).await?.is_none() {
            return Err(CreditError::UnknownCheckoutTeam(team.clone()));
        }
        let role = teams.role(team, &credit.user_id).await?;
        if !role.is_some_and(|role| role.manages_members()) {
            return Err(CreditError::PayerNotTeamManager {
                user: credit.user_id.clone(),
                team: team.clone(),
            });
        }
        let key = credit.idempotency_key();
        let outcome = teams
            .apply_team_credits(team, Some(&credit.user_id), credit.credits, "stripe checkout", &key)
            .await?;
        self.audit_team("team.stripe_credited", team, &outcome, &key).await;
        Ok(outcome)
    }

    /// Adds `amount` (negative: removes) to the user `who` names (id, email or subject). With
    /// a key, granting again changes nothing; without one, every call is a new grant.
    pub async fn grant(
        &self,
        who: &str,
        amount: i64,
        idempotency_key: Option<&str>,
    ) -> Result<Granted, CreditError> {
        let Some(user) = self.accounts.find_user(who).await? else {
            return Err(CreditError::NoSuchUser(who.to_owned()));
        };
        let key = match idempotency_key {
            Some(key) => format!("admin:{key}"),
            None => format!("admin:{}:{}", user.id, rand::random::<u64>()),
        };
        let outcome = self.accounts.apply_credits(&user.id, amount, "granted by an operator", &key).await?;
        self.audit("credits.granted", &user.id, &outcome, &key).await;
        Ok(Granted { user, outcome })
    }

    /// Credits a paid checkout to its user, once per event.
    pub async fn credit_checkout(&self, credit: &CheckoutCredit) -> Result<CreditOutcome, CreditError> {
        if self.accounts.user(&credit.user_id).await?.is_none() {
            return Err(CreditError::UnknownCheckoutUser(credit.user_id.clone()));
        }
        let key = credit.idempotency_key();
        let outcome =
            self.accounts.apply_credits(&credit.user_id, credit.credits, "stripe checkout", &key).await?;
        self.audit("credits.purchased", &credit.user_id, &outcome, &key).await;
        Ok(outcome)
    }

    /// Dev mode's welcome: `amount` once per user.
    pub async fn welcome(&self, user_id: &UserId, amount: i64) -> Result<CreditOutcome, CreditError> {
        let key = format!("dev:welcome:{user_id}");
        Ok(self.accounts.apply_credits(user_id, amount, "dev mode welcome credits", &key).await?)
    }
}

/// In dev mode (no JWT key), a dev identity gets `DOJO_DEV_CREDITS` once, so runs can be tried
/// end to end. Idempotent per user; never in production. A failure is logged, not returned:
/// the welcome is a convenience, never a reason to refuse what the caller asked.
pub async fn dev_welcome(state: &AppState, user_id: &UserId) {
    let amount = state.config().executor.dev_credits;
    if !state.auth().dev_mode() || amount <= 0 {
        return;
    }
    if let Err(error) = CreditService::new(state.auth().accounts()).welcome(user_id, amount).await {
        tracing::warn!(%error, "could not grant dev credits");
    }
}
