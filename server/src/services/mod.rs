//! Domain operations, one service per domain: runs, workflows, compose, versions, credits.
//!
//! A service takes typed inputs (the authenticated [`Caller`](crate::caller::Caller), typed
//! parameters) and returns a typed result or a typed error that keeps its source. Services know
//! nothing about HTTP: the handlers in `crate::api` parse a request, call a service and map its
//! error to a status and the `{"error", "code"}` body; the admin CLI and the tests call the same
//! services directly.
//!
//! Authorization comes first and is typed: [`access::RoomAccess`] and
//! [`workflows::OwnedWorkflow`] are made only by the checks that grant them, so an operation
//! that takes one cannot run for a caller who was not checked.

pub mod access;
pub mod app_form;
pub mod app_runs;
pub mod apps;
pub mod audit;
pub mod batches;
mod claim;
pub mod compose;
pub mod credits;
pub mod data_rights;
pub mod documents;
pub mod edits;
pub mod fraud;
pub mod jobs;
pub mod plans;
pub mod provider_keys;
pub mod queue;
pub mod runs;
pub mod support;
pub mod team_credits;
pub mod team_lifecycle;
pub mod teams;
pub mod versions;
pub mod webhooks;
pub mod workflow_invitations;
pub mod workflows;

#[cfg(test)]
mod tests;

use dojo_records::User;

use crate::caller::Caller;

/// The operation acts on the caller's account, and the caller is anonymous (dev mode).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("sign in first: this needs a user token")]
pub struct SignInRequired;

/// The signed-in user behind `caller`.
pub fn signed_in(caller: &Caller) -> Result<&User, SignInRequired> {
    caller.user().ok_or(SignInRequired)
}
