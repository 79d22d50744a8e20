//! A y-protocols WebSocket client built on `yrs` and tokio-tungstenite, and the load generator
//! built on it (`dojo-loadtest`, see README.md).
//!
//! The same client drives the server's integration tests and the load generator, so what the
//! benchmarks measure is what the tests prove correct.

pub mod bench;
pub mod client;
pub mod config;
pub mod hocuspocus;
pub mod procfs;
pub mod ramp;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod summary;

pub use client::{ClientError, Framing, Protocol, SyncClient};
pub use config::Config;
pub use report::{Outcome, Report};
