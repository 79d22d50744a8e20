//! Test helpers shared by the store, accounts, executor and server test suites.

pub mod config_reference;
mod database;
mod s3;
mod stores;

pub use database::{Backend, TestDatabase, postgres_admin_url};
pub use s3::S3StandIn;
pub use stores::{Stores, run_case};

/// A TCP port on 127.0.0.1 that was free a moment ago, for a child process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}
