//! Key-encryption settings: part of the one typed configuration (`crate::config::Config`,
//! flattened). The KEKs that seal teams' provider keys (`dojo_records::key_crypto`).

use std::sync::Arc;

use dojo_records::key_crypto::Keyring;

/// The parsed `DOJO_KEY_ENCRYPTION_KEYS`: parsed once at start-up (a bad value stops the
/// server, naming the entry, never echoing a key), and never printed.
#[derive(Clone, Default)]
pub struct KeyringSetting(pub Arc<Keyring>);

impl std::fmt::Debug for KeyringSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyringSetting(current: {:?})", self.0.current_id())
    }
}

fn parse_keyring(text: &str) -> Result<KeyringSetting, String> {
    Keyring::parse(text).map(|ring| KeyringSetting(Arc::new(ring))).map_err(|error| error.to_string())
}

/// Team provider keys (docs/operations.md, "Team provider keys").
#[derive(Debug, Clone, clap::Args)]
pub struct KeySettings {
    /// Key-encryption keys for teams' provider keys: `id:BASE64,id:BASE64,…`, each 32 random
    /// bytes (`openssl rand -base64 32`), ids of 1-32 letters, digits, `-`, `_`. The first
    /// seals new keys; the others still open what they sealed until `dojo-server admin
    /// rotate-provider-keys` re-wraps it. Unset: teams cannot store keys (HTTP 503
    /// `key_encryption_not_configured`). `dojo-worker`s need the same list.
    #[arg(long, env = "DOJO_KEY_ENCRYPTION_KEYS", hide_env_values = true, value_parser = parse_keyring)]
    pub key_encryption_keys: Option<KeyringSetting>,
}

impl KeySettings {
    /// The configured keyring (empty when unset).
    pub fn keyring(&self) -> Arc<Keyring> {
        self.key_encryption_keys.as_ref().map(|setting| setting.0.clone()).unwrap_or_default()
    }
}
