//! Test helpers shared by the store, accounts, executor and server test suites.

mod database;
mod s3;

pub use database::{Backend, TestDatabase, postgres_admin_url};
pub use s3::S3StandIn;
