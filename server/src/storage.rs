//! Where everything durable lives: documents, and accounts (users, workflows, credits), on one
//! database.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dojo_records::AccountStore;
use dojo_store::{DocumentStore, StoreError};

use crate::sqlite_lock::{LockError, SqliteLock};

/// How long opening an SQLite database waits for an `admin restore` to finish with it.
const RESTORE_WAIT: Duration = Duration::from_secs(60);

/// Where everything durable lives: documents, and accounts (users, workflows, credits), on one
/// database.
#[derive(Clone)]
pub struct Storage {
    pub documents: Arc<dyn DocumentStore>,
    pub accounts: Arc<dyn AccountStore>,
    /// Runs, credit holds and asset records (same database).
    pub runs: Arc<dyn dojo_records::RunStore>,
    /// Webhook endpoints, the change feed and deliveries (same database).
    pub webhooks: Arc<dyn dojo_records::WebhookStore>,
    /// Teams, members and invitations (same database).
    pub teams: Arc<dyn dojo_records::TeamStore>,
    /// The append-only audit log (same database).
    pub audit: Arc<dyn dojo_records::AuditLog>,
    /// Teams' provider keys, sealed (same database).
    pub provider_keys: Arc<dyn dojo_records::ProviderKeyStore>,
    /// A person's data: export reads, the analytics opt-out, account deletion (same database).
    pub data_rights: Arc<dyn dojo_records::DataRightsStore>,
    /// The agents' job queue, schedules and staff roles (same database).
    pub jobs: Arc<dyn dojo_records::JobStore>,
    /// Support tickets (same database).
    pub support: Arc<dyn dojo_records::SupportStore>,
    /// Payments, fraud evidence and account flags (same database).
    pub fraud: Arc<dyn dojo_records::FraudStore>,
    /// Activity, tips opt-outs and re-engagement messages (same database).
    pub engagement: Arc<dyn dojo_records::EngagementStore>,
    /// The workflow agent's suggestions (same database).
    pub suggestions: Arc<dyn dojo_records::SuggestionStore>,
    /// Published apps (same database).
    pub apps: Arc<dyn dojo_records::AppStore>,
    /// The run queue's positions, pauses and plans (same database).
    pub queue: Arc<dyn dojo_records::QueueStore>,
    /// On SQLite: the shared lock that tells `admin restore` the file is in use.
    _in_use: Option<Arc<SqliteLock>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl Storage {
    /// Opens the database `url` names and applies its migrations. An SQLite file is locked
    /// (shared) first, see `sqlite_lock.rs`.
    pub async fn open(url: &str) -> Result<Self, StorageError> {
        let in_use = match dojo_store::sqlite_path(url).filter(|path| *path != ":memory:") {
            Some(path) => Some(Arc::new(SqliteLock::shared(Path::new(path), RESTORE_WAIT).await?)),
            None => None,
        };
        let database = dojo_store::open_database(url).await?;
        Ok(Self {
            documents: database.documents(),
            accounts: dojo_records::accounts(&database),
            runs: dojo_records::runs(&database),
            webhooks: dojo_records::webhooks(&database),
            teams: dojo_records::teams(&database),
            audit: dojo_records::audit_log(&database),
            provider_keys: dojo_records::provider_keys(&database),
            data_rights: dojo_records::data_rights(&database),
            jobs: dojo_records::jobs(&database),
            support: dojo_records::support(&database),
            fraud: dojo_records::fraud(&database),
            engagement: dojo_records::engagement(&database),
            suggestions: dojo_records::suggestions(&database),
            queue: dojo_records::queue(&database),
            apps: dojo_records::apps(&database),
            _in_use: in_use,
        })
    }
}
