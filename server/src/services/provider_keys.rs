//! Teams' provider keys: an owner or admin stores, lists (last four characters only) and
//! removes the team's key per provider; an operator re-wraps every key under the current
//! key-encryption key. The sealing is `dojo_records::key_crypto`; runs use the keys in the
//! worker (`dojo_executor::worker::team_keys`), never here.
//!
//! The teams rule holds: a team the caller is not a member of is hidden (`NotFound`), and a
//! member below admin is `Forbidden`, exactly as on the other team routes, before anything
//! about the key is looked at.

use std::net::IpAddr;
use std::sync::Arc;

use dojo_executor::ProviderName;
use dojo_executor::provider_env::ENV_VARIABLES;
use dojo_ids::TeamId;
use dojo_records::key_crypto::{KeyContext, KeyCryptoError, Keyring};
use dojo_records::provider_keys::MAX_REWRAP_BATCH;
use dojo_records::{AccountError, AuditLog, ProviderKeyStore, StoredProviderKey};
use serde_json::json;

use super::audit::{Actor, Record, record};
use super::teams::{TeamError, TeamService};
use crate::caller::Caller;
use crate::state::AppState;

/// Longest key accepted, in bytes: the four providers' keys are far shorter.
pub const MAX_KEY_BYTES: usize = 1024;
/// Rows one rotation pass re-wraps at most (it stops there; run it again for the rest).
const MAX_REWRAP_ROWS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ProviderKeyError {
    #[error(transparent)]
    Team(#[from] TeamError),
    #[error("unknown provider {0:?}: one of openai, replicate, fal, stability")]
    UnknownProvider(String),
    /// Empty, too long, or with characters a key never has; the message never echoes it.
    #[error("{0}")]
    InvalidKey(String),
    #[error(
        "this server has no key-encryption key (DOJO_KEY_ENCRYPTION_KEYS), so it cannot store provider keys"
    )]
    NotConfigured,
    #[error("the team has no key for {0}")]
    NoKey(String),
    #[error("sealing the key failed: {0}")]
    Crypto(KeyCryptoError),
    #[error(transparent)]
    Accounts(#[from] AccountError),
}

/// The provider `name` names, as the catalog spells it.
pub fn parse_provider(name: &str) -> Result<ProviderName, ProviderKeyError> {
    ENV_VARIABLES
        .iter()
        .map(|(provider, _, _)| *provider)
        .find(|provider| provider.to_string() == name)
        .ok_or_else(|| ProviderKeyError::UnknownProvider(name.chars().take(32).collect()))
}

/// A key is printable text without whitespace inside, at most [`MAX_KEY_BYTES`].
fn check_key(key: &str) -> Result<&str, ProviderKeyError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(ProviderKeyError::InvalidKey("`key` is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ProviderKeyError::InvalidKey(format!("`key` is longer than {MAX_KEY_BYTES} bytes")));
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ProviderKeyError::InvalidKey(
            "`key` has control or whitespace characters, which no provider key has".into(),
        ));
    }
    Ok(key)
}

/// The last four characters: what is shown of a key (all of a key of four or fewer would
/// show it whole, so those show nothing).
fn last_four(key: &str) -> String {
    let count = key.chars().count();
    if count <= 8 { String::new() } else { key.chars().skip(count - 4).collect() }
}

pub struct ProviderKeyService<'a> {
    state: &'a AppState,
    addr: Option<IpAddr>,
}

impl<'a> ProviderKeyService<'a> {
    pub fn new(state: &'a AppState, addr: Option<IpAddr>) -> Self {
        Self { state, addr }
    }

    async fn manager(&self, caller: &Caller, team: &TeamId) -> Result<(), ProviderKeyError> {
        let access = TeamService::new(self.state, self.addr).membership(caller, team).await?;
        access.require_manager()?;
        Ok(())
    }

    /// Stores (or replaces) the team's key for `provider`. Returns the stored row (sealed).
    pub async fn set(
        &self,
        caller: &Caller,
        team: &TeamId,
        provider: &str,
        key: &str,
    ) -> Result<StoredProviderKey, ProviderKeyError> {
        self.manager(caller, team).await?;
        let provider = parse_provider(provider)?.to_string();
        let key = check_key(key)?;
        let keyring = self.state.config().keys.keyring();
        let sealed =
            keyring.seal(KeyContext { team: team.as_str(), provider: &provider }, key).map_err(|error| {
                match error {
                    KeyCryptoError::NotConfigured => ProviderKeyError::NotConfigured,
                    other => ProviderKeyError::Crypto(other),
                }
            })?;
        let user = super::signed_in(caller).map_err(TeamError::from)?;
        let stored = StoredProviderKey {
            team_id: team.clone(),
            provider,
            sealed,
            last_four: last_four(key),
            set_by: user.id.clone(),
            set_at: crate::execution::now_millis(),
        };
        let replaced = self.state.provider_keys().put_provider_key(stored.clone()).await?;
        let detail = json!({"provider": stored.provider, "lastFour": stored.last_four,
            "kekId": stored.sealed.kek_id, "replaced": replaced});
        self.audit(caller, "provider_key.set", &stored.provider, team, detail).await;
        Ok(stored)
    }

    /// The providers the team has keys for, as any member may know it (what its workflows can
    /// run besides the server's providers).
    pub async fn member_view(
        &self,
        caller: &Caller,
        team: &TeamId,
    ) -> Result<Vec<ProviderName>, ProviderKeyError> {
        TeamService::new(self.state, self.addr).membership(caller, team).await?;
        Ok(team_providers(self.state, team).await?)
    }

    /// The team's keys (sealed; callers show the last four only).
    pub async fn list(
        &self,
        caller: &Caller,
        team: &TeamId,
    ) -> Result<Vec<StoredProviderKey>, ProviderKeyError> {
        self.manager(caller, team).await?;
        Ok(self.state.provider_keys().provider_keys(team).await?)
    }

    /// Removes the team's key for `provider`; its runs use the server's key again.
    pub async fn delete(
        &self,
        caller: &Caller,
        team: &TeamId,
        provider: &str,
    ) -> Result<(), ProviderKeyError> {
        self.manager(caller, team).await?;
        let provider = parse_provider(provider)?.to_string();
        let removed = self.state.provider_keys().delete_provider_key(team, &provider).await?;
        let removed = removed.ok_or_else(|| ProviderKeyError::NoKey(provider.clone()))?;
        let detail = json!({"provider": provider, "lastFour": removed.last_four});
        self.audit(caller, "provider_key.deleted", &provider, team, detail).await;
        Ok(())
    }

    async fn audit(
        &self,
        caller: &Caller,
        action: &'static str,
        provider: &str,
        team: &TeamId,
        detail: serde_json::Value,
    ) {
        let entry =
            Record { action, target_type: "provider_key", target_id: provider, team: Some(team), detail };
        record(self.state.audit(), &Actor::of(caller, self.addr), entry).await;
    }
}

/// The providers `team` stored a key for: what a run of its workflow may use besides the
/// server's.
pub async fn team_providers(state: &AppState, team: &TeamId) -> Result<Vec<ProviderName>, AccountError> {
    let stored = state.provider_keys().provider_keys(team).await?;
    Ok(stored.iter().filter_map(|key| parse_provider(&key.provider).ok()).collect())
}

/// What a rotation pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewrapped {
    /// Re-sealed under the current KEK.
    pub rewrapped: usize,
    /// Set again (or removed) by an admin while the pass ran: left as they are.
    pub raced: usize,
    /// Could not be opened (a KEK no longer listed, or a changed row): left as they are and
    /// logged; they must be set again by the team.
    pub failed: usize,
}

/// Re-seals every team's key not under the current KEK: the old KEKs must still be listed.
/// Each row is replaced only if it still holds what was read, so a key an admin sets during
/// the pass is kept. Runs keep working throughout: every process opens old and new rows alike
/// as long as both KEKs are listed. One audit entry per team touched (`provider_key.rotated`).
pub async fn rewrap_all(
    store: &Arc<dyn ProviderKeyStore>,
    keyring: &Keyring,
    audit: &Arc<dyn AuditLog>,
    actor: &Actor,
) -> Result<Rewrapped, ProviderKeyError> {
    let current = keyring.current_id().ok_or(ProviderKeyError::NotConfigured)?.to_owned();
    let mut done = Rewrapped::default();
    let mut skipped: Vec<(TeamId, String)> = Vec::new();
    loop {
        let batch = store.provider_keys_not_under(&current, MAX_REWRAP_BATCH).await?;
        // Rows that failed stay under their old KEK and come back in every batch.
        let fresh: Vec<_> = batch
            .into_iter()
            .filter(|row| !skipped.iter().any(|(t, p)| *t == row.team_id && *p == row.provider))
            .collect();
        if fresh.is_empty() || done.rewrapped + done.raced + done.failed >= MAX_REWRAP_ROWS {
            return Ok(done);
        }
        for row in fresh {
            let context = KeyContext { team: row.team_id.as_str(), provider: &row.provider };
            let outcome = match keyring.rewrap(context, &row.sealed) {
                Ok(Some(new)) => store.rewrap_provider_key(&row, &new).await.map(Some)?,
                Ok(None) => None,
                Err(error) => {
                    tracing::error!(team = %row.team_id, provider = %row.provider, %error,
                        "a team's provider key does not open; left under its old key-encryption key");
                    done.failed += 1;
                    skipped.push((row.team_id.clone(), row.provider.clone()));
                    continue;
                }
            };
            match outcome {
                Some(true) => {
                    done.rewrapped += 1;
                    let detail = json!({"provider": row.provider, "lastFour": row.last_four,
                        "fromKekId": row.sealed.kek_id, "kekId": current});
                    let entry = Record {
                        action: "provider_key.rotated",
                        target_type: "provider_key",
                        target_id: &row.provider,
                        team: Some(&row.team_id),
                        detail,
                    };
                    record(audit, actor, entry).await;
                }
                Some(false) => {
                    done.raced += 1;
                    skipped.push((row.team_id.clone(), row.provider.clone()));
                }
                None => {}
            }
        }
    }
}

/// The start-up step of a rotation: when the current key-encryption key is new, rows still
/// sealed under an older (still listed) one are re-sealed in the background. Serving does not
/// wait for it: every row opens under any listed KEK meanwhile.
pub fn rewrap_on_start(
    store: &Arc<dyn dojo_records::ProviderKeyStore>,
    keyring: Arc<dojo_records::key_crypto::Keyring>,
    audit: &Arc<dyn dojo_records::AuditLog>,
) {
    if !keyring.is_configured() {
        return;
    }
    let (store, audit) = (store.clone(), audit.clone());
    tokio::spawn(async move {
        let actor = super::audit::Actor::system("key-rotation");
        match rewrap_all(&store, &keyring, &audit, &actor).await {
            Ok(done) if done.rewrapped + done.raced + done.failed > 0 => tracing::info!(
                rewrapped = done.rewrapped,
                raced = done.raced,
                failed = done.failed,
                kek = keyring.current_id().unwrap_or_default(),
                "re-wrapped team provider keys under the current key-encryption key"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not re-wrap team provider keys at start-up"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_shown_by_their_last_four_only() {
        assert_eq!(check_key("  sk-abcdefgh1234 ").expect("ok"), "sk-abcdefgh1234");
        assert_eq!(last_four("sk-abcdefgh1234"), "1234");
        assert_eq!(last_four("short"), "", "a short key is not shown at all");
        assert!(check_key("").is_err());
        assert!(check_key("sk-a\u{7}b").is_err());
        assert!(check_key("sk-a b").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(parse_provider("openai").is_ok());
        assert!(matches!(parse_provider("OpenAI"), Err(ProviderKeyError::UnknownProvider(_))));
    }
}
