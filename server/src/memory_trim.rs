//! Gives memory that hibernating and unloading rooms freed back to the operating system.
//!
//! glibc's allocator keeps freed memory for reuse and returns it only from the top of the heap,
//! so a server whose rooms fell asleep kept their documents' pages resident: reusable by the
//! process, but counted as its memory by everyone who measures it. `malloc_trim(0)` returns
//! every whole free page (glibc releases pages inside the heap too). It walks the allocator's
//! free lists, so it runs on a blocking thread, at most once per period, and only when rooms
//! went to sleep or unloaded since the last time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often to look whether rooms freed memory.
const EVERY: Duration = Duration::from_secs(10);

/// Runs until `shutdown`.
pub fn spawn(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    if !supported() {
        return;
    }
    tokio::spawn(async move {
        let mut seen = freed(&metrics);
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let now = freed(&metrics);
            if now != seen {
                seen = now;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    });
}

/// Counts that move when rooms free their documents.
fn freed(metrics: &Metrics) -> (u64, u64) {
    (metrics.room_hibernations.get(), metrics.rooms_unloaded.get())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn supported() -> bool {
    true
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only returns free pages of glibc's own heap to the kernel; it reads and
    // writes no memory of ours and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn supported() -> bool {
    false
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
