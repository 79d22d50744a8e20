//! Per-user rate limits (token buckets), on HTTP requests and on WebSocket frames.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{Quota, RateLimiter};

/// One token bucket per user id.
pub type UserLimiter = governor::DefaultKeyedRateLimiter<String>;

/// How often buckets of users who went quiet are dropped, so the map cannot grow without bound.
const FORGET_EVERY: Duration = Duration::from_secs(60);

pub fn user_limiter(per_second: u32, burst: u32) -> Arc<UserLimiter> {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(per_second).max(1)).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

/// Drops full (idle) buckets every minute until `shutdown`.
pub fn forget_idle_users(limiters: Vec<Arc<UserLimiter>>, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FORGET_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            for limiter in &limiters {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    });
}

/// Seconds a caller refused now should wait, for `Retry-After` (at least 1).
pub fn retry_after_secs(
    limiter: &UserLimiter,
    not_until: &governor::NotUntil<governor::clock::QuantaInstant>,
) -> u64 {
    let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
