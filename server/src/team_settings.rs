//! Team settings: part of the one typed configuration (`crate::config::Config`, flattened).

use std::time::Duration;

use dojo_records::TeamLimits;

/// Teams: their sizes and how long an invitation stays open (docs/api.md, "Teams").
#[derive(Debug, Clone, clap::Args)]
pub struct TeamSettings {
    /// Teams one user may belong to (created or joined). Beyond: HTTP 429 `quota_exceeded`.
    /// 0: no limit.
    #[arg(long, env = "DOJO_MAX_TEAMS_PER_USER", default_value_t = 20)]
    pub max_teams_per_user: u64,

    /// Members plus pending invitations of one team. Beyond: HTTP 409 `team_full`. 0: no limit.
    #[arg(long, env = "DOJO_MAX_MEMBERS_PER_TEAM", default_value_t = 100)]
    pub max_members_per_team: u64,

    /// Live workflows one team may hold (they do not count against their creator's
    /// `DOJO_MAX_WORKFLOWS_PER_USER`). Beyond: HTTP 429 `quota_exceeded`. 0: no limit.
    #[arg(long, env = "DOJO_MAX_WORKFLOWS_PER_TEAM", default_value_t = 5_000)]
    pub max_workflows_per_team: u64,

    /// Hours an invitation may be accepted or declined; then it expires.
    #[arg(long, env = "DOJO_TEAM_INVITATION_TTL_HOURS", default_value_t = 168)]
    pub team_invitation_ttl_hours: u64,
}

impl TeamSettings {
    pub fn limits(&self) -> TeamLimits {
        TeamLimits {
            max_teams_per_user: self.max_teams_per_user,
            max_members_per_team: self.max_members_per_team,
        }
    }

    /// At least an hour, at most a year: a zero TTL would make every invitation born expired.
    pub fn invitation_ttl(&self) -> Duration {
        Duration::from_secs(self.team_invitation_ttl_hours.clamp(1, 24 * 365) * 3600)
    }
}
