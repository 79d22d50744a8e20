//! The Dojo load generator (`dojo-loadtest`, see README.md), built on the y-protocols client of
//! `dojo-room-client`, the one the server's integration tests use, so what the benchmarks
//! measure is what the tests prove correct.

pub mod bench;
mod clients;
pub mod config;
mod context;
mod editing;
pub mod procfs;
pub mod ramp;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod summary;

pub use config::{Config, Protocol};
pub use dojo_room_client::{ClientError, Framing, SyncClient};
pub use report::{Outcome, Report};
