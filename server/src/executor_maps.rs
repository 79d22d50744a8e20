//! Who may write the `results` and `runs` maps of a room's document.
//!
//! They hold what the executor reports (node states, outputs, run summaries), which every
//! viewer trusts, so only the executor writes them: in-process through the room actor
//! (`execution/room_writer.rs`), or a `dojo-worker` over the WebSocket protocol with its service
//! token. That token carries explicit room grants and the worker's subject
//! (`DOJO_WORKER_SUBJECT`, `dojo-worker` by default), which the server knows as
//! `DOJO_EXECUTOR_SUBJECT`. Any other client's update (WebSocket or REST) that inserts or deletes
//! anything under those roots is refused whole (see `dojo_sync_protocol::update::WriteRules`).
//! In dev mode (no JWT key configured) every client is trusted, signed in with a dev identity or
//! not, as for everything else there: anyone who can reach the port is admin of every room.

use crate::config::Config;

use dojo_sync_protocol::update::WriteRules;

use crate::caller::Caller;

/// The rules an update from `caller` is applied under, on a server configured by `config`.
pub fn write_rules(caller: &Caller, config: &Config) -> WriteRules<'static> {
    if config.auth.dev_mode() || is_executor(caller, &config.executor.executor_subject) {
        WriteRules::ANYTHING
    } else {
        WriteRules::NOT_EXECUTOR_MAPS
    }
}

/// The executor's service identity: a token with explicit grants and the executor's subject.
/// (A user's own token never has grants; a grants token for another service has another subject.)
pub fn is_executor(caller: &Caller, executor_subject: &str) -> bool {
    match caller {
        Caller::Anonymous => true,
        Caller::User(signed_in) => {
            signed_in.identity.grants.is_some() && signed_in.identity.subject == executor_subject
        }
    }
}
