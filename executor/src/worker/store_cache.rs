//! The node cache in the database, shared by every process that executes runs: a node cached
//! by one worker is a hit for all of them, and for the next run after a restart.

use std::sync::Arc;

use async_trait::async_trait;
use dojo_records::RunStore;

use crate::cache::{Cache, CacheKey};
use crate::value::Outputs;

pub struct StoreCache {
    runs: Arc<dyn RunStore>,
}

impl StoreCache {
    pub fn new(runs: Arc<dyn RunStore>) -> Self {
        Self { runs }
    }
}

#[async_trait]
impl Cache for StoreCache {
    /// A miss when the database does not answer: the node runs (and costs) as if new, which is
    /// what a cache that cannot be read must mean.
    async fn get(&self, scope: &str, key: &CacheKey) -> Option<Outputs> {
        match self.runs.cached_outputs(scope, &key.0).await {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(outputs) => Some(outputs),
                Err(error) => {
                    tracing::warn!(key = %key, %error, "ignoring an unreadable cache entry");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(key = %key, %error, "could not read the node cache");
                None
            }
        }
    }

    async fn put(&self, scope: &str, key: &CacheKey, outputs: &Outputs) {
        let json = match serde_json::to_string(outputs) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(key = %key, %error, "could not encode outputs for the node cache");
                return;
            }
        };
        if let Err(error) = self.runs.cache_outputs(scope, &key.0, &json).await {
            tracing::warn!(key = %key, %error, "could not store outputs in the node cache");
        }
    }
}
