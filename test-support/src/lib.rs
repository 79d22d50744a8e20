//! Test helpers shared by the store, accounts and server test suites.

mod database;

pub use database::{Backend, TestDatabase, postgres_admin_url};
