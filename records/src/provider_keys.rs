//! Team provider keys as stored: one sealed value per team and provider (see [`crate::key_crypto`]
//! for the sealing), with the last four characters, who set it and when. The store never sees a
//! plaintext key; the statements are in `sql/provider_keys.rs`.

use dojo_ids::{TeamId, UserId};

use crate::AccountError;
use crate::key_crypto::Sealed;

/// Rows [`ProviderKeyStore::provider_keys_not_under`] returns at most per call.
pub const MAX_REWRAP_BATCH: u32 = 500;

/// One team's key for one provider, sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredProviderKey {
    pub team_id: TeamId,
    /// The provider's name as the catalog spells it (`openai`, `replicate`, `fal`, `stability`).
    pub provider: String,
    pub sealed: Sealed,
    /// The key's last four characters: all that is ever shown of it.
    pub last_four: String,
    pub set_by: UserId,
    /// Milliseconds since the Unix epoch.
    pub set_at: i64,
}

impl std::fmt::Debug for StoredProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredProviderKey")
            .field("team_id", &self.team_id)
            .field("provider", &self.provider)
            .field("sealed", &self.sealed)
            .field("set_by", &self.set_by)
            .field("set_at", &self.set_at)
            .finish_non_exhaustive()
    }
}

/// A row of `team_provider_keys`.
#[derive(sqlx::FromRow)]
pub(crate) struct ProviderKeyRow {
    pub team_id: TeamId,
    pub provider: String,
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub kek_id: String,
    pub last_four: String,
    pub set_by: UserId,
    pub set_at: i64,
}

impl From<ProviderKeyRow> for StoredProviderKey {
    fn from(row: ProviderKeyRow) -> Self {
        Self {
            team_id: row.team_id,
            provider: row.provider,
            sealed: Sealed { ciphertext: row.ciphertext, nonce: row.nonce, kek_id: row.kek_id },
            last_four: row.last_four,
            set_by: row.set_by,
            set_at: row.set_at,
        }
    }
}

/// Team provider keys. Every statement names the team, so none reaches another team's row.
#[async_trait::async_trait]
pub trait ProviderKeyStore: Send + Sync + 'static {
    /// Stores (or replaces) the team's key for the provider; `true` when it replaced one.
    async fn put_provider_key(&self, key: StoredProviderKey) -> Result<bool, AccountError>;

    /// The team's keys, by provider.
    async fn provider_keys(&self, team: &TeamId) -> Result<Vec<StoredProviderKey>, AccountError>;

    async fn provider_key(
        &self,
        team: &TeamId,
        provider: &str,
    ) -> Result<Option<StoredProviderKey>, AccountError>;

    /// Removes the team's key for the provider; the removed row, if there was one.
    async fn delete_provider_key(
        &self,
        team: &TeamId,
        provider: &str,
    ) -> Result<Option<StoredProviderKey>, AccountError>;

    /// Keys of every team sealed under another KEK than `kek_id`, at most `limit`
    /// ([`MAX_REWRAP_BATCH`]): what rotation re-wraps.
    async fn provider_keys_not_under(
        &self,
        kek_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredProviderKey>, AccountError>;

    /// Replaces the sealed value of `old` with `new` if the row still holds `old`'s value
    /// (same nonce): a key set again meanwhile is left as its admin set it. `true` when
    /// replaced.
    async fn rewrap_provider_key(&self, old: &StoredProviderKey, new: &Sealed) -> Result<bool, AccountError>;
}
