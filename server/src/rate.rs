//! Per-user rate limits (token buckets), on HTTP requests and on WebSocket frames; and the
//! per-address one of the routes that take no token.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dojo_ids::UserId;
use governor::{Quota, RateLimiter};

/// One token bucket per key.
pub type KeyedLimiter<K> = governor::DefaultKeyedRateLimiter<K>;

/// One token bucket per user id.
pub type UserLimiter = KeyedLimiter<UserId>;

/// One token bucket per client address (`public_rate::client_key`).
pub type ClientLimiter = KeyedLimiter<String>;

/// How often buckets of users who went quiet are dropped, so the map cannot grow without bound.
const FORGET_EVERY: Duration = Duration::from_secs(60);

pub fn keyed_limiter<K: Clone + Hash + Eq>(per_second: u32, burst: u32) -> Arc<KeyedLimiter<K>> {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(per_second).max(1)).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

/// One request per `period` per key, without a burst (`GET /api/me/export`).
pub fn keyed_limiter_per<K: Clone + Hash + Eq>(period: Duration) -> Arc<KeyedLimiter<K>> {
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    Arc::new(RateLimiter::keyed(quota))
}

/// A limiter whose idle buckets can be dropped, whatever its key.
pub trait ForgetIdle: Send + Sync {
    fn forget_idle(&self);
}

impl<K: Clone + Hash + Eq + Send + Sync> ForgetIdle for KeyedLimiter<K> {
    fn forget_idle(&self) {
        self.retain_recent();
        self.shrink_to_fit();
    }
}

/// Drops full (idle) buckets every minute until `shutdown`.
pub fn forget_idle_users(limiters: Vec<Arc<dyn ForgetIdle>>, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FORGET_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            for limiter in &limiters {
                limiter.forget_idle();
            }
        }
    });
}

/// Seconds a caller refused now should wait, for `Retry-After` (at least 1).
pub fn retry_after_secs<K: Clone + Hash + Eq>(
    limiter: &KeyedLimiter<K>,
    not_until: &governor::NotUntil<governor::clock::QuantaInstant>,
) -> u64 {
    let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
