//! Team credits: reading a team's balance and its members' spend (any member), its ledger
//! (owners and admins), and setting a member's monthly spending limit (owners and admins).
//! Runs in a team's workflow draw on the team's balance in `dojo_records` (`sql/team_credits.rs`);
//! grants and Stripe checkouts for a team are `services::credits`'s.
//!
//! Every operation first checks the caller's membership of the team it names (a team the
//! caller is not a member of is hidden, as in `services::teams`), then passes the same team id
//! to the store.

use dojo_ids::{TeamId, UserId};
use dojo_records::{LedgerEntry, TeamCredits};
use serde_json::json;

use super::audit::Record;
use super::teams::{TeamError, TeamService};
use crate::caller::Caller;

pub struct TeamCreditService<'a> {
    teams: TeamService<'a>,
}

impl<'a> TeamCreditService<'a> {
    pub fn new(teams: TeamService<'a>) -> Self {
        Self { teams }
    }

    /// The balance, and each member's spend this month with their limit. Every member may read
    /// it, viewers included: it is the budget they all draw on, and it holds no secret.
    pub async fn credits(&self, caller: &Caller, team: &TeamId) -> Result<TeamCredits, TeamError> {
        self.teams.membership(caller, team).await?;
        self.teams.state.teams().team_credits(team).await?.ok_or_else(|| TeamError::NotFound(team.clone()))
    }

    /// The team's ledger, newest first (owners and admins: it names who spent what, when).
    pub async fn ledger(
        &self,
        caller: &Caller,
        team: &TeamId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, TeamError> {
        self.teams.membership(caller, team).await?.require_manager()?;
        Ok(self.teams.state.teams().team_ledger(team, before, limit).await?)
    }

    /// Sets (or with `None` removes) a member's monthly spending limit (owners and admins).
    pub async fn set_limit(
        &self,
        caller: &Caller,
        team: &TeamId,
        member: &UserId,
        limit: Option<i64>,
    ) -> Result<(), TeamError> {
        self.teams.membership(caller, team).await?.require_manager()?;
        self.teams.state.teams().set_spending_limit(team, member, limit).await?;
        let record = Record {
            action: "team.spending_limit_set",
            target_type: "user",
            target_id: member.as_str(),
            team: Some(team),
            detail: json!({"limit": limit}),
        };
        self.teams.audit(caller, record).await;
        Ok(())
    }
}
