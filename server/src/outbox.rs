//! The old name of [`crate::send_queue`]: the room actor still imports its queue type from
//! here. "Outbox" now means the database run outbox only; new code uses `send_queue`.

#[allow(unused_imports)]
pub(crate) use crate::send_queue::{PushError, SendQueue as Outbox};
