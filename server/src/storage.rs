//! Where everything durable lives: documents, and accounts (users, workflows, credits), on one
//! database.

use std::sync::Arc;

use dojo_records::AccountStore;
use dojo_store::{DocumentStore, StoreError};

/// Where everything durable lives: documents, and accounts (users, workflows, credits), on one
/// database.
#[derive(Clone)]
pub struct Storage {
    pub documents: Arc<dyn DocumentStore>,
    pub accounts: Arc<dyn AccountStore>,
    /// Runs, credit holds and asset records (same database).
    pub runs: Arc<dyn dojo_records::RunStore>,
}

impl Storage {
    /// Opens the database `url` names and applies its migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let database = dojo_store::open_database(url).await?;
        Ok(Self {
            documents: database.documents(),
            accounts: dojo_records::accounts(&database),
            runs: dojo_records::runs(&database),
        })
    }
}
