//! Fraud review (issue 23's fraud agent): the scan that turns payments and spending into flags
//! (run by the agent in `crate::agents::fraud`), and staff's review of the flags. A flag that is
//! open or confirmed stops its user's paid runs; the refusal itself is in the run's transaction
//! (`dojo_records`' run store), so every way of starting a run honours it.

use std::net::IpAddr;

use dojo_records::fraud::{Finding, findings};
use dojo_records::{AccountError, ActorKind, Flag, FlagQuery, FlagStatus, FraudRules, StaffRole};
use serde_json::json;

use super::audit::{Actor, Record, record};
use super::jobs::{JobError, require_role};
use crate::caller::Caller;
use crate::state::AppState;

/// The job type of a scan.
pub const SCAN_JOB: &str = "fraud.scan";
/// The service identity the agent's actions are audited as.
pub const AGENT_ID: &str = "agent:fraud";

#[derive(Debug, thiserror::Error)]
pub enum FraudError {
    #[error(transparent)]
    Staff(#[from] JobError),
    #[error("no flag {0:?}")]
    NotFound(String),
    /// A verdict the flag's state does not allow (confirming a cleared flag, clearing twice).
    #[error("the flag is {0}: it cannot become {1}")]
    Conflict(&'static str, &'static str),
    #[error(transparent)]
    Records(#[from] AccountError),
}

/// Runs the rules once, as of `now`: the flags raised (a finding the user already has a flag
/// for, or that staff cleared, raises nothing). Each raised flag is audited as the agent.
pub async fn scan(state: &AppState, rules: &FraudRules, now: i64) -> Result<Vec<Flag>, AccountError> {
    let evidence = state.fraud().evidence(rules, now).await?;
    let mut raised = Vec::new();
    for finding in findings(rules, &evidence) {
        if let Some(flag) = state.fraud().raise_flag(&finding).await? {
            audit_raised(state, &finding, &flag).await;
            raised.push(flag);
        }
    }
    Ok(raised)
}

async fn audit_raised(state: &AppState, finding: &Finding, flag: &Flag) {
    let actor = Actor { kind: ActorKind::Service, id: AGENT_ID.into(), addr: None };
    let detail = json!({"flag": flag.id, "rule": finding.rule, "evidence": finding.detail});
    let entry = Record {
        action: "fraud.flagged",
        target_type: "user",
        target_id: flag.user_id.as_str(),
        team: None,
        detail,
    };
    record(state.audit(), &actor, entry).await;
    tracing::warn!(user = %flag.user_id, rule = finding.rule, flag = %flag.id, "fraud agent: flagged an account for review");
}

/// Staff's side: list, read and decide flags.
pub struct FraudService<'a> {
    state: &'a AppState,
    addr: Option<IpAddr>,
}

impl<'a> FraudService<'a> {
    pub fn new(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    pub async fn flags(&self, caller: &Caller, query: &FlagQuery) -> Result<Vec<Flag>, FraudError> {
        require_role(self.state, caller, StaffRole::Staff).await?;
        Ok(self.state.fraud().flags(query).await?)
    }

    pub async fn flag(&self, caller: &Caller, id: &str) -> Result<Flag, FraudError> {
        require_role(self.state, caller, StaffRole::Staff).await?;
        self.state.fraud().flag(id).await?.ok_or_else(|| FraudError::NotFound(id.to_owned()))
    }

    /// Clears or confirms a flag; the flag as it is now, and whether its user is still blocked
    /// (another flag may still be open).
    pub async fn review(
        &self,
        caller: &Caller,
        id: &str,
        verdict: FlagStatus,
        note: Option<&str>,
    ) -> Result<(Flag, bool), FraudError> {
        require_role(self.state, caller, StaffRole::Staff).await?;
        let reviewer = Actor::of(caller, self.addr);
        let Some(flag) = self.state.fraud().review_flag(id, verdict, &reviewer.id, note).await? else {
            let current =
                self.state.fraud().flag(id).await?.ok_or_else(|| FraudError::NotFound(id.to_owned()))?;
            return Err(FraudError::Conflict(current.status.as_str(), verdict.as_str()));
        };
        let action = match verdict {
            FlagStatus::Confirmed => "fraud.confirmed",
            _ => "fraud.cleared",
        };
        let detail = json!({"flag": flag.id, "rule": flag.rule, "note": flag.note});
        let entry =
            Record { action, target_type: "user", target_id: flag.user_id.as_str(), team: None, detail };
        record(self.state.audit(), &reviewer, entry).await;
        let blocked = self.state.fraud().under_review(&flag.user_id).await?;
        Ok((flag, blocked))
    }
}
