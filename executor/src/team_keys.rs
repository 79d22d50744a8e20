//! A provider's key per run: the secret type ([`ApiKey`]) and where a run's team keys come from
//! ([`TeamKeys`]). A leaf module, so the engine, the node contract and the provider adapters
//! can all name them without depending on each other.
//!
//! A run of a team's workflow uses the team's key for a provider when the team stored one, and
//! the server's otherwise. The team's key is decrypted here, in the worker, for the one node
//! that needs it, when that node is about to run, and lives only as long as that node's call.

use async_trait::async_trait;

use crate::catalog::ProviderName;

/// A provider's secret. `Debug` never shows it; only the HTTP layer reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(zeroize::Zeroizing<String>);

impl ApiKey {
    /// `None` for an empty or blank key, so an unset variable and `VAR=` mean the same.
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into().trim().to_owned();
        (!key.is_empty()).then(|| Self(zeroize::Zeroizing::new(key)))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Why a team's key could not be had; the node fails with these words (never the key).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TeamKeyError(pub String);

/// The keys of the team a run belongs to.
#[async_trait]
pub trait TeamKeys: Send + Sync {
    /// The team's key for `provider`, decrypted; `None` when the team has none (or the run
    /// has no team): the server's key is used then.
    async fn key(&self, provider: ProviderName) -> Result<Option<ApiKey>, TeamKeyError>;
}

/// No team: every node uses the server's keys.
pub struct NoTeamKeys;

#[async_trait]
impl TeamKeys for NoTeamKeys {
    async fn key(&self, _provider: ProviderName) -> Result<Option<ApiKey>, TeamKeyError> {
        Ok(None)
    }
}
