//! A run's team keys from the database: the sealed row of the team and provider a node needs,
//! opened with the worker's key-encryption keys (`DOJO_KEY_ENCRYPTION_KEYS`, the same list the
//! servers have) when that node is about to run.

use std::sync::Arc;

use async_trait::async_trait;
use dojo_ids::TeamId;
use dojo_records::ProviderKeyStore;
use dojo_records::key_crypto::{KeyContext, Keyring};

use crate::catalog::ProviderName;
use crate::team_keys::{ApiKey, TeamKeyError, TeamKeys};

/// Where a worker finds teams' keys: the store and the keyring that opens them.
#[derive(Clone)]
pub struct TeamKeySource {
    pub store: Arc<dyn ProviderKeyStore>,
    pub keyring: Arc<Keyring>,
}

impl TeamKeySource {
    /// The keys of `team`, for one run.
    pub fn for_team(&self, team: TeamId) -> StoredTeamKeys {
        StoredTeamKeys { source: self.clone(), team }
    }
}

/// One team's keys, read and opened per node.
pub struct StoredTeamKeys {
    source: TeamKeySource,
    team: TeamId,
}

#[async_trait]
impl TeamKeys for StoredTeamKeys {
    async fn key(&self, provider: ProviderName) -> Result<Option<ApiKey>, TeamKeyError> {
        let name = provider.to_string();
        let stored = match self.source.store.provider_key(&self.team, &name).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(team = %self.team, %provider, %error, "could not read a team's provider key");
                return Err(TeamKeyError("it could not be read; try again".into()));
            }
        };
        let Some(stored) = stored else { return Ok(None) };
        let context = KeyContext { team: self.team.as_str(), provider: &name };
        match self.source.keyring.open(context, &stored.sealed) {
            Ok(plain) => Ok(ApiKey::new(plain.expose())),
            Err(error) => {
                // Never the key: the error names a KEK id at most.
                tracing::error!(team = %self.team, %provider, %error, "a team's provider key does not open");
                Err(TeamKeyError(format!("the stored key cannot be used ({error})")))
            }
        }
    }
}
