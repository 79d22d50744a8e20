//! Re-exported from `dojo-test-support`, shared with the store and accounts suites.

#[allow(unused_imports)] // not every test binary uses both
pub use dojo_test_support::{Backend, TestDatabase};
