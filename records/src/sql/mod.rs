//! The statements of accounts and runs, each written once, by topic. `postgres.rs` and
//! `sqlite.rs` each compile this directory as a module of their own, where `Store` and `Conn`
//! name their store and connection type (see `dialect.rs` for why).

use super::{Conn, Store};

mod account_deletion;
mod account_store;
mod apps;
mod assets;
mod audit;
mod batches;
mod collaborators;
mod data_rights;
mod engagement;
mod finished;
mod fraud;
mod gauges;
mod holds;
mod invitations;
mod jobs;
mod leases;
mod ledger;
mod node_cache;
mod outbox;
// Before `queue`, which uses its SQL macros.
#[macro_use]
mod queue_order;
mod provider_keys;
mod queue;
mod run_store;
mod runs;
mod suggestions;
mod support;
mod team_credits;
mod team_lifecycle;
mod team_store;
mod teams;
mod users;
mod webhooks;
mod workflow_invitations;
mod workflows;
