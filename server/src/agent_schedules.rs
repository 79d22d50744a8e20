//! Scheduled agent jobs: every tick, each enabled schedule whose slot has come enqueues one job
//! for that slot and moves to its next slot. Several servers may tick the same schedules: the
//! job's idempotency key (`schedule:NAME:SLOT`) makes the slot's job one job, and moving the
//! slot is a compare-and-set, so a slot is neither lost nor doubled. A server that was down
//! over several slots enqueues one job for the latest missed slot, not one per slot: a daily
//! agent that missed three days runs once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use dojo_records::{JobStore, NewJob, Schedule};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest cron expression accepted, in bytes.
const MAX_CRON_LEN: usize = 128;
/// Attempts a scheduled job gets.
const SCHEDULED_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("invalid cron expression: {0}")]
    Invalid(String),
    #[error("the cron expression never matches a future time")]
    NoNextSlot,
}

fn parse(cron: &str) -> Result<Cron, CronError> {
    if cron.is_empty() || cron.len() > MAX_CRON_LEN {
        return Err(CronError::Invalid("1 to 128 bytes".into()));
    }
    // Five fields (minute precision), six with seconds first, or seven with a year last.
    Cron::from_str(cron).map_err(|error| CronError::Invalid(error.to_string()))
}

fn utc(ms: i64) -> Result<DateTime<Utc>, CronError> {
    Utc.timestamp_millis_opt(ms).single().ok_or(CronError::NoNextSlot)
}

/// The first slot of `cron` strictly after `after_ms` (milliseconds since the epoch, UTC).
pub fn next_slot(cron: &str, after_ms: i64) -> Result<i64, CronError> {
    let cron = parse(cron)?;
    let next = cron.find_next_occurrence(&utc(after_ms)?, false).map_err(|_| CronError::NoNextSlot)?;
    Ok(next.timestamp_millis())
}

/// One tick: enqueues the job of every due slot and moves each due schedule past `now`.
/// Returns how many jobs it enqueued.
pub async fn tick(jobs: &Arc<dyn JobStore>, now: i64) -> usize {
    let schedules = match jobs.schedules().await {
        Ok(schedules) => schedules,
        Err(error) => {
            tracing::warn!(%error, "agent schedules: could not read the schedules");
            return 0;
        }
    };
    let mut enqueued = 0;
    for schedule in schedules.into_iter().filter(|s| s.enabled && s.next_at <= now) {
        match run_slot(jobs, &schedule, now).await {
            Ok(true) => enqueued += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(schedule = %schedule.name, %error, "agent schedules: a slot failed"),
        }
    }
    enqueued
}

#[derive(Debug, thiserror::Error)]
enum SlotError {
    #[error(transparent)]
    Cron(#[from] CronError),
    #[error(transparent)]
    Records(#[from] dojo_records::AccountError),
}

/// Enqueues the job of `schedule`'s due slot (once, by key) and moves the schedule on.
async fn run_slot(jobs: &Arc<dyn JobStore>, schedule: &Schedule, now: i64) -> Result<bool, SlotError> {
    let due = schedule.next_at;
    let job = NewJob {
        job_type: schedule.job_type.clone(),
        payload: schedule.payload.clone(),
        priority: schedule.priority,
        max_attempts: SCHEDULED_ATTEMPTS,
        run_after: None,
        idempotency_key: Some(format!("schedule:{}:{due}", schedule.name)),
        created_by: format!("schedule:{}", schedule.name),
    };
    let created = matches!(jobs.enqueue_job(job).await?, dojo_records::Enqueued::Created(_));
    let next = next_slot(&schedule.cron, now)?;
    jobs.advance_schedule(&schedule.name, due, next).await?;
    Ok(created)
}

/// Ticks every `every` until `shutdown`; nothing when `every` is zero.
pub fn start(jobs: Arc<dyn JobStore>, every: Duration, shutdown: CancellationToken, tasks: &TaskTracker) {
    if every.is_zero() {
        return;
    }
    tasks.spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {
                    let now = crate::execution::now_millis();
                    let enqueued = tick(&jobs, now).await;
                    if enqueued > 0 {
                        tracing::info!(enqueued, "agent schedules: jobs enqueued");
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    #[test]
    fn five_fields_step_by_the_minute_and_six_by_the_second() {
        // 2026-12-06T10:00:30Z
        let at =
            Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 30).single().map(|t| t.timestamp_millis()).unwrap_or(0);
        let next = next_slot("* * * * *", at).ok();
        assert_eq!(next, Some(at - 30_000 + MINUTE));
        assert_eq!(next_slot("*/5 * * * * *", at).ok(), Some(at + 5_000));
        // 03:00 the next day: midnight today plus 27 hours.
        assert_eq!(next_slot("0 3 * * *", at).ok(), Some(at - 30_000 - 10 * 60 * MINUTE + 27 * 60 * MINUTE));
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        assert!(matches!(next_slot("", 0), Err(CronError::Invalid(_))));
        assert!(matches!(next_slot("61 * * * *", 0), Err(CronError::Invalid(_))));
        assert!(matches!(next_slot("not cron", 0), Err(CronError::Invalid(_))));
        assert!(matches!(next_slot(&"* ".repeat(100), 0), Err(CronError::Invalid(_))));
    }
}
