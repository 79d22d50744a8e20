//! Agent settings: part of the one typed configuration (`crate::config::Config`, flattened).
//! The agents' job queue, its schedules, and the agents this server runs (docs/agents.md).

#[derive(Debug, Clone, clap::Args)]
pub struct AgentSettings {
    /// Milliseconds between two looks at the agent schedules: each enabled schedule whose slot
    /// has come enqueues its job then. Every server may tick; a slot's job is enqueued once.
    /// 0: this server never enqueues scheduled jobs.
    #[arg(long, env = "DOJO_AGENT_SCHEDULE_TICK_MS", default_value_t = 5_000)]
    pub schedule_tick_ms: u64,

    /// Agents this server runs in-process, comma-separated (`support`, `fraud`, `workflow`,
    /// `reengagement`), or `none`. Several servers may run the same agent: each job is claimed
    /// by one.
    #[arg(long, env = "DOJO_AGENTS", default_value = "support,fraud,workflow,reengagement")]
    pub agents: String,

    /// The cron expression (UTC) of the `fraud-scan` schedule a server running the fraud agent
    /// creates when no schedule of that name exists. An existing schedule is never changed:
    /// admins change or disable it through `PUT /api/agent-schedules/fraud-scan`.
    #[arg(long, env = "DOJO_FRAUD_SCAN_CRON", default_value = "*/15 * * * *")]
    pub fraud_scan_cron: String,

    /// The cron expression (UTC) of the `workflow-review` schedule a server running the workflow
    /// agent creates when none exists (as for `DOJO_FRAUD_SCAN_CRON`).
    #[arg(long, env = "DOJO_WORKFLOW_REVIEW_CRON", default_value = "0 4 * * *")]
    pub workflow_review_cron: String,

    /// The cron expression (UTC) of the `reengagement` schedule a server running the
    /// re-engagement agent creates when none exists (as for `DOJO_FRAUD_SCAN_CRON`).
    #[arg(long, env = "DOJO_REENGAGE_CRON", default_value = "0 10 * * *")]
    pub reengage_cron: String,

    /// Days without activity after which the re-engagement agent drafts tips for a user.
    #[arg(long, env = "DOJO_REENGAGE_AFTER_DAYS", default_value_t = 14)]
    pub reengage_after_days: u32,

    /// Days after a message before the same user may get another.
    #[arg(long, env = "DOJO_REENGAGE_QUIET_DAYS", default_value_t = 30)]
    pub reengage_quiet_days: u32,

    /// Where the re-engagement agent delivers its messages: a URL that receives each as a
    /// signed JSON POST (`docs/agents.md`), for the studio's mailer. Unset: messages are only
    /// recorded, for staff, and nobody is sent anything.
    #[arg(long, env = "DOJO_REENGAGE_WEBHOOK", hide_env_values = true)]
    pub reengage_webhook: Option<String>,

    /// The secret that signs those POSTs (`Dojo-Signature`, the scheme of workflow webhooks).
    /// Unset: they are not signed.
    #[arg(long, env = "DOJO_REENGAGE_WEBHOOK_SECRET", hide_env_values = true)]
    pub reengage_webhook_secret: Option<String>,

    /// Milliseconds an in-process agent waits before looking for work again when it found none.
    #[arg(long, env = "DOJO_AGENT_POLL_MS", default_value_t = 1_000)]
    pub agent_poll_ms: u64,

    /// A chat webhook (Slack-style: `POST {"text": …}`) told of each new support ticket. Unset:
    /// nobody is told; staff see tickets in `GET /api/support/queue`.
    #[arg(long, env = "DOJO_SUPPORT_CHAT_WEBHOOK", hide_env_values = true)]
    pub support_chat_webhook: Option<String>,
}

impl AgentSettings {
    /// Whether this server runs the agent `name` in-process.
    pub fn runs(&self, name: &str) -> bool {
        self.agents.split(',').map(str::trim).any(|agent| agent == name)
    }
}
