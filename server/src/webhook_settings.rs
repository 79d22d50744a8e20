//! Webhook settings: part of the one typed configuration (`crate::config::Config`, flattened).

use std::time::Duration;

/// Signed webhooks and the change feed (docs/webhooks.md).
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookSettings {
    /// Let webhook URLs reach loopback, private, link-local and other non-public addresses
    /// (tests, on-premises receivers). Off: such URLs are refused when registered and, after
    /// resolving the name again, at every delivery.
    #[arg(long, env = "DOJO_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,

    /// Endpoints one workflow may have.
    #[arg(long, env = "DOJO_WEBHOOK_MAX_ENDPOINTS", default_value_t = 10)]
    pub webhook_max_endpoints: u64,

    /// Seconds between two `room.updated` events of one room, at most one per interval (the
    /// last change of a burst is still reported, at the end of the interval).
    #[arg(long, env = "DOJO_WEBHOOK_ROOM_INTERVAL_SECS", default_value_t = 60)]
    pub webhook_room_interval_secs: u64,

    /// Seconds a delivery request may take, connection included; then it counts as failed.
    #[arg(long, env = "DOJO_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,

    /// Attempts per delivery before it is marked failed (it can still be replayed).
    #[arg(long, env = "DOJO_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhook_max_attempts: u32,

    /// Seconds before the first retry; each later one waits twice as long (with jitter), up to
    /// six hours.
    #[arg(long, env = "DOJO_WEBHOOK_RETRY_SECS", default_value_t = 10)]
    pub webhook_retry_secs: u64,

    /// Days events (and their delivery log) are kept for the change feed.
    #[arg(long, env = "DOJO_WEBHOOK_KEEP_DAYS", default_value_t = 7)]
    pub webhook_keep_days: u64,

    /// Newest events kept per workflow; older ones are deleted as new ones arrive.
    #[arg(long, env = "DOJO_WEBHOOK_KEEP_EVENTS", default_value_t = 10_000)]
    pub webhook_keep_events: u64,

    /// The server's public address (`https://dojo.example.com`), put in front of `/assets/…`
    /// in event payloads. Unset: asset URLs are paths on this server.
    #[arg(long, env = "DOJO_WEBHOOK_PUBLIC_URL")]
    pub webhook_public_url: Option<String>,
}

impl WebhookSettings {
    pub fn room_interval(&self) -> Duration {
        Duration::from_secs(self.webhook_room_interval_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.webhook_timeout_secs.max(1))
    }

    /// How long before attempt `attempts + 1` (after `attempts` failed ones): the base doubled
    /// per attempt, capped at six hours, minus up to a quarter at random so that receivers
    /// coming back from an outage are not hit by every sender at the same instant.
    pub fn backoff(&self, attempts: u32) -> Duration {
        const CAP: u64 = 6 * 3600;
        let base = self.webhook_retry_secs.max(1);
        let exponent = attempts.saturating_sub(1).min(20);
        let secs = base.saturating_mul(1u64 << exponent).min(CAP);
        let millis = secs.saturating_mul(1000);
        let jitter = rand::random_range(0..=millis / 4);
        Duration::from_millis(millis - jitter)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let settings = crate::config::Config::parse_from(["dojo-server"]).webhooks;
        assert!(!settings.webhook_allow_private, "private targets are refused by default");
        for (attempts, secs) in [(1, 10u64), (2, 20), (3, 40), (30, 6 * 3600)] {
            let wait = settings.backoff(attempts).as_millis() as u64;
            assert!(wait <= secs * 1000 && wait >= secs * 750, "attempt {attempts}: {wait} ms");
        }
    }
}
