//! Whether a room holds its document, has dropped it, or is loading it again: the state that
//! `hibernation.rs` drives, kept apart so that the core can hold it without depending on it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::effects::Input;

/// Inputs that arrive while the document is being loaded again. Bounded by the actor, which
/// reads no command while the room wakes: one command plus what the room itself feeds back.
pub(super) enum Sleep {
    Awake,
    Asleep,
    Waking(VecDeque<Input>),
}

pub(super) struct Hibernation {
    pub(super) sleep: Sleep,
    pub(super) after: Duration,
    /// When the room last handled an input that needs its document.
    pub(super) last_active: Option<Instant>,
}

impl Hibernation {
    pub(super) fn new(after: Duration) -> Self {
        Hibernation { sleep: Sleep::Awake, after, last_active: None }
    }
}
