//! Room names: validated once, at the edge. The rule lives in `dojo-ids`, shared with the
//! worker, the load generator and the accounts; this path keeps the server's imports working.

pub use dojo_ids::{RoomName, RoomNameError};
