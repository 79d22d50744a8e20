//! Workers: take runs from a queue and execute them, at most `concurrency` at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver::{Execution, RunDriver};
use super::queue::{Delivery, RunQueue};

/// After deferring a run whose user is at their limit, the slot waits this long before taking
/// another, so a queue holding only such runs is not spun through.
const DEFER_PAUSE: Duration = Duration::from_millis(500);
/// After the queue failed (Redis down), wait this long before asking again.
const QUEUE_RETRY: Duration = Duration::from_secs(1);

/// Takes runs from `queue` until `stop` fires, executing up to `concurrency` at once with
/// `driver`. Runs in flight go on until they finish or `shutdown` fires (which stops them at
/// once: they are resumed by the next worker to take them). Returns when nothing is in flight.
pub async fn work(
    queue: Arc<dyn RunQueue>,
    driver: Arc<RunDriver>,
    concurrency: usize,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let tasks = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let delivery = match queue.next(&stop).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "could not take a run from the queue; retrying");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(QUEUE_RETRY) => continue,
                }
            }
        };
        let (queue, driver, shutdown) = (queue.clone(), driver.clone(), shutdown.clone());
        tasks.spawn(async move {
            let pause = handle(&queue, &driver, &delivery, &shutdown).await;
            if pause {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(DEFER_PAUSE) => {}
                }
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Executes one delivery and tells the queue what became of it. Returns whether the slot
/// should pause before taking the next.
async fn handle(
    queue: &Arc<dyn RunQueue>,
    driver: &RunDriver,
    delivery: &Delivery,
    shutdown: &CancellationToken,
) -> bool {
    let run = &delivery.run_id;
    // Its own task, so a slow answer from the queue never pauses the run's node futures
    // (which this task polls).
    let toucher = queue.touch_every().map(|every| {
        let (queue, delivery) = (queue.clone(), delivery.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = queue.touch(&delivery).await {
                    tracing::warn!(run = %delivery.run_id, %error, "could not tell the queue this run is still executing");
                }
            }
        })
    });
    let outcome = driver.execute(run, shutdown).await;
    if let Some(toucher) = toucher {
        toucher.abort();
    }
    match outcome {
        Ok(execution) if execution.is_settled() => {
            if let Err(error) = queue.ack(delivery).await {
                // Redelivered later, found final, acknowledged then.
                tracing::warn!(%run, %error, "could not acknowledge a finished run");
            }
            false
        }
        Ok(Execution::UserBusy) => {
            if let Err(error) = queue.defer(delivery).await {
                tracing::warn!(%run, %error, "could not put a run back in line");
            }
            true
        }
        // Stopped here by the shutdown: handed back at once (lease released, a fresh queue
        // entry), so another worker resumes it now rather than after the lease and the
        // visibility timeout.
        Ok(Execution::Released) if shutdown.is_cancelled() => {
            hand_back(queue, driver, delivery).await;
            false
        }
        // Held by another live worker, or stopped here: the entry stays with the queue, which
        // hands it out again after its visibility timeout (or the relay finds the run again).
        Ok(_) => false,
        Err(error) => {
            tracing::error!(%run, %error, "run failed to execute; it is retried after its lease");
            false
        }
    }
}

/// Releases the lease of a run stopped by the shutdown and puts it back in line. If either step
/// fails, the run is still resumed, only later: after its lease and the queue's visibility
/// timeout, as after a crash.
async fn hand_back(queue: &Arc<dyn RunQueue>, driver: &RunDriver, delivery: &Delivery) {
    let run = &delivery.run_id;
    match driver.release(run).await {
        Ok(true) => match queue.defer(delivery).await {
            Ok(()) => tracing::info!(%run, "shutting down: handed the run back to the queue"),
            Err(error) => {
                tracing::warn!(%run, %error, "could not put a stopped run back in line; it resumes after its visibility timeout")
            }
        },
        // Another worker holds it now: nothing to hand back.
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(%run, %error, "could not release a stopped run's lease; it resumes after the lease")
        }
    }
}
