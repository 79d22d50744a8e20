//! Parking: a hibernating room with nothing to do gives up its task and its queue.
//!
//! Hibernation (`hibernation.rs`) drops an idle room's document, but the room still held a
//! tokio task waiting on its queue and its timers: about 3 KiB per open room, most of them idle
//! (BENCHMARKS.md, idle memory). A room parks when it is asleep and nothing is under way or due:
//! no write, read, compaction or load in flight, no HTTP caller waiting, no unload due (it has
//! clients), not shared with other instances, and its queue is empty. What stays is the actor's
//! state, boxed, in the room's address (`RoomHandle`); the task and the queue go.
//!
//! One deadline may still be pending: a `room.updated` report held back by its throttle (after
//! a burst of changes, up to `DOJO_WEBHOOK_ROOM_INTERVAL_SECS`). The room parks anyway and
//! leaves a timer behind, a small task holding a weak address, which sends it
//! [`RoomCommand::Due`] when the report falls due; the room resumes, reports, and parks again.
//!
//! The next command sent to the room (a client's frame, a join, a leave, an HTTP request) makes
//! a new queue holding that command and starts a task on the parked state (`resume`), through
//! the registry as the first task was (`RoomRegistration::respawn`). Presence renewals from
//! stock clients (every 15 s) resume the room briefly; it parks again once they are relayed.
//! Commands are pushed under the address's lock, and the room parks under the same lock only
//! if its queue is empty, so no command is lost between the two.

use super::actor::{Actor, Failed, Served, TaskEnd};
use super::handle::{ParkedRoom, RoomCommand, RoomCommands};

/// Parks the room unless a command arrived meanwhile; then both come back. The actor's box
/// itself waits in the room's address: parking allocates nothing (but the timer of a report
/// still due), since anything allocated now would land in the memory the document just freed
/// and keep those pages resident.
pub(super) fn park(actor: Box<Actor>, commands: RoomCommands) -> Result<(), (Box<Actor>, RoomCommands)> {
    let metrics = actor.shell.metrics.clone();
    let due = actor.shell.updates.deadline().map(|at| (at, actor.shell.slot.weak_handle()));
    match commands.park(actor) {
        Ok(()) => {
            metrics.rooms_parked.inc();
            if let Some((at, room)) = due {
                // Weak: the timer does not keep the room open. If the room is running by then,
                // it reports by itself and this command is a no-op (or, its queue full, dropped).
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let _ = room.try_send(RoomCommand::Due);
                });
            }
            Ok(())
        }
        Err((commands, actor)) => Err((actor, commands)),
    }
}

impl ParkedRoom for Actor {
    fn resume(self: Box<Self>, commands: RoomCommands) {
        self.shell.metrics.rooms_parked.dec();
        self.shell.metrics.room_resumes.inc();
        let slot = self.shell.slot.clone();
        slot.respawn(Box::pin(self.drive(commands)));
    }
}

impl Actor {
    /// Serves until the room ends or parks.
    pub(super) async fn drive(mut self: Box<Self>, mut commands: RoomCommands) -> TaskEnd {
        loop {
            let stop = self.stop.clone();
            match self.serve(&mut commands, &stop).await {
                Ok(Served::Quiet) => match park(self, commands) {
                    Ok(()) => return TaskEnd::Parked,
                    // A command arrived meanwhile: serve it.
                    Err((actor, queue)) => (self, commands) = (actor, queue),
                },
                Ok(Served::Ended) => break,
                Err(Failed) => {
                    // The room failed: its clients reconnect to a fresh load (as before, without
                    // waiting for the cluster or a compaction).
                    if self.core.is_hibernating() {
                        self.shell.metrics.rooms_hibernating.dec();
                    }
                    return TaskEnd::Stopped;
                }
            }
        }
        if self.core.is_hibernating() {
            self.shell.metrics.rooms_hibernating.dec();
        }
        if let Some(cluster) = &self.shell.cluster {
            cluster.unsubscribe(&self.shell.name, self.generation);
        }
        if let Some(compaction) = self.compacting.take() {
            let _ = compaction.await;
        }
        tracing::debug!(room = %self.shell.name, "room stopped");
        TaskEnd::Stopped
    }

    /// Asleep (not waking), with nothing in flight, nobody waiting for an answer, and not in a
    /// cluster. The caller checks the other timers and the queue; a held-back report's deadline
    /// is left to a timer (see `park`).
    pub(super) fn may_park(&self) -> bool {
        self.core.is_hibernating()
            && self.core.is_quiet()
            && self.shell.cluster.is_none()
            && self.writing.is_none()
            && self.catch_up.is_none()
            && self.compacting.is_none()
            && self.waking.is_none()
            && self.replies.is_empty()
    }
}
