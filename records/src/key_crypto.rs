//! Sealing team provider keys at rest: AES-256-GCM (RustCrypto's `aes-gcm`) under a
//! key-encryption key (KEK) from the server's configuration. Pure: no I/O, no database.
//!
//! - Every value gets a fresh random 96-bit nonce, so equal keys give different ciphertexts.
//! - The associated data is the team id and the provider name ([`KeyContext`]): a ciphertext
//!   copied into another team's (or provider's) row fails to open, as does one whose bytes
//!   were changed.
//! - A [`Keyring`] holds several KEKs, the first one current: values are sealed under the
//!   current one and opened under whichever their row names, so an operator rotates by
//!   putting a new KEK first, re-wrapping ([`Keyring::rewrap`]), then dropping the old one.
//!
//! Nothing here prints a secret: [`PlainKey`], [`Kek`] and [`Keyring`] redact themselves in
//! `Debug`, and their bytes are wiped (`zeroize`) when dropped.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use rand::TryRngCore;
use zeroize::Zeroizing;

/// Bytes of an AES-GCM nonce (96 bits, the size GCM is specified for).
pub const NONCE_LEN: usize = 12;
/// Longest KEK id: it is stored in every row.
pub const MAX_KEK_ID_LEN: usize = 32;

/// Why a keyring could not be read, or a value sealed or opened. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyCryptoError {
    /// No KEK is configured: nothing can be sealed or opened.
    #[error("no key-encryption key is configured (DOJO_KEY_ENCRYPTION_KEYS)")]
    NotConfigured,
    /// The row was sealed under a KEK this process does not have (dropped too early, or a
    /// worker configured differently from the server).
    #[error("the key-encryption key {0:?} is not configured")]
    UnknownKek(String),
    /// The ciphertext, nonce or associated data do not match: changed bytes, or a value moved
    /// to another team's or provider's row.
    #[error("the stored value does not decrypt: it was changed or belongs to another row")]
    Undecryptable,
    /// Sealing failed: the operating system's random generator gave no nonce, or the value is
    /// far larger than any key.
    #[error("the value could not be sealed")]
    SealFailed,
    /// The configured list does not parse; the message names the entry, never its key.
    #[error("DOJO_KEY_ENCRYPTION_KEYS: {0}")]
    BadConfig(String),
}

/// A decrypted provider key. `Debug` never shows it; the bytes are wiped when dropped.
pub struct PlainKey(Zeroizing<String>);

impl PlainKey {
    pub fn new(key: String) -> Self {
        Self(Zeroizing::new(key))
    }

    /// The key itself: for the HTTP header that carries it to the provider, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainKey(<redacted>)")
    }
}

/// Which row a value belongs to: bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyContext<'a> {
    pub team: &'a str,
    pub provider: &'a str,
}

impl KeyContext<'_> {
    /// Length-prefixed, so no pair of (team, provider) encodes like another.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.team.len() + self.provider.len());
        aad.extend_from_slice(b"dojo-provider-key/v1");
        for part in [self.team, self.provider] {
            aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A sealed value, as a row stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub kek_id: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_bytes", &self.ciphertext.len())
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// One key-encryption key: an id (stored with every value it seals) and 32 secret bytes.
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl Kek {
    pub fn new(id: &str, key: [u8; 32]) -> Result<Self, KeyCryptoError> {
        let valid = !id.is_empty()
            && id.len() <= MAX_KEK_ID_LEN
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(KeyCryptoError::BadConfig(format!(
                "a key id must be 1-{MAX_KEK_ID_LEN} letters, digits, `-` or `_` (got {} bytes)",
                id.len()
            )));
        }
        Ok(Self { id: id.to_owned(), key: Zeroizing::new(key) })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_slice()))
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The configured KEKs, the first one current. Empty: team keys can be neither stored nor
/// read (runs then use the server's keys).
#[derive(Debug, Default)]
pub struct Keyring {
    keks: Vec<Kek>,
}

impl Keyring {
    pub fn new(keks: Vec<Kek>) -> Result<Self, KeyCryptoError> {
        for (i, kek) in keks.iter().enumerate() {
            if keks[..i].iter().any(|earlier| earlier.id == kek.id) {
                return Err(KeyCryptoError::BadConfig(format!("the key id {:?} is listed twice", kek.id)));
            }
        }
        Ok(Self { keks })
    }

    /// `id:base64,id:base64,…` (standard base64 of exactly 32 bytes each; spaces around
    /// entries ignored). Empty or blank: an empty keyring.
    pub fn parse(text: &str) -> Result<Self, KeyCryptoError> {
        let mut keks = Vec::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let entry_no = index + 1;
            let (id, encoded) = entry.split_once(':').ok_or_else(|| {
                KeyCryptoError::BadConfig(format!("entry {entry_no} is not `id:base64-of-32-bytes`"))
            })?;
            let bytes =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(
                    |_| KeyCryptoError::BadConfig(format!("entry {entry_no}: the key is not base64")),
                )?);
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                KeyCryptoError::BadConfig(format!(
                    "entry {entry_no}: the key is {} bytes; AES-256 needs 32",
                    bytes.len()
                ))
            })?;
            keks.push(Kek::new(id.trim(), key)?);
        }
        Self::new(keks)
    }

    pub fn is_configured(&self) -> bool {
        !self.keks.is_empty()
    }

    /// The id new values are sealed under.
    pub fn current_id(&self) -> Option<&str> {
        self.keks.first().map(Kek::id)
    }

    /// `plaintext` sealed under the current KEK for the row `context` names.
    pub fn seal(&self, context: KeyContext<'_>, plaintext: &str) -> Result<Sealed, KeyCryptoError> {
        let kek = self.keks.first().ok_or(KeyCryptoError::NotConfigured)?;
        let mut nonce = [0u8; NONCE_LEN];
        // The operating system's generator: a repeated nonce under one KEK would expose keys.
        rand::rngs::OsRng.try_fill_bytes(&mut nonce).map_err(|_| KeyCryptoError::SealFailed)?;
        let aad = context.associated_data();
        let ciphertext = kek
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: &aad })
            // Encryption fails only for inputs of gigabytes, which callers bound long before.
            .map_err(|_| KeyCryptoError::SealFailed)?;
        Ok(Sealed { ciphertext, nonce: nonce.to_vec(), kek_id: kek.id.clone() })
    }

    /// The plaintext of a value stored for the row `context` names.
    pub fn open(&self, context: KeyContext<'_>, sealed: &Sealed) -> Result<PlainKey, KeyCryptoError> {
        if self.keks.is_empty() {
            return Err(KeyCryptoError::NotConfigured);
        }
        let kek = self
            .keks
            .iter()
            .find(|kek| kek.id == sealed.kek_id)
            .ok_or_else(|| KeyCryptoError::UnknownKek(sealed.kek_id.clone()))?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(KeyCryptoError::Undecryptable);
        }
        let aad = context.associated_data();
        let plain = Zeroizing::new(
            kek.cipher()
                .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
                .map_err(|_| KeyCryptoError::Undecryptable)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| KeyCryptoError::Undecryptable)?;
        Ok(PlainKey::new(text.to_owned()))
    }

    /// The value sealed again under the current KEK (with a new nonce), or `None` when it
    /// already is: what rotation writes back.
    pub fn rewrap(&self, context: KeyContext<'_>, sealed: &Sealed) -> Result<Option<Sealed>, KeyCryptoError> {
        if self.current_id() == Some(sealed.kek_id.as_str()) {
            return Ok(None);
        }
        let plain = self.open(context, sealed)?;
        self.seal(context, plain.expose()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM_A: KeyContext<'static> = KeyContext { team: "team_a", provider: "openai" };
    const TEAM_B: KeyContext<'static> = KeyContext { team: "team_b", provider: "openai" };

    fn ring(spec: &str) -> Keyring {
        Keyring::parse(spec).expect("keyring")
    }

    fn b64(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn equal_keys_give_different_ciphertexts_that_both_open() {
        let keys = ring(&format!("k1:{}", b64(1)));
        let one = keys.seal(TEAM_A, "sk-same").expect("seal");
        let two = keys.seal(TEAM_A, "sk-same").expect("seal");
        assert_ne!(one.ciphertext, two.ciphertext);
        assert_ne!(one.nonce, two.nonce);
        assert_eq!(keys.open(TEAM_A, &one).expect("open").expose(), "sk-same");
        assert_eq!(keys.open(TEAM_A, &two).expect("open").expose(), "sk-same");
        assert!(!one.ciphertext.windows(7).any(|w| w == b"sk-same"), "the plaintext shows in the ciphertext");
    }

    #[test]
    fn tampering_and_moving_are_detected() {
        let keys = ring(&format!("k1:{}", b64(1)));
        let sealed = keys.seal(TEAM_A, "sk-team-a").expect("seal");
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(keys.open(TEAM_A, &flipped).unwrap_err(), KeyCryptoError::Undecryptable);
        let mut other_nonce = sealed.clone();
        other_nonce.nonce[3] ^= 0x80;
        assert_eq!(keys.open(TEAM_A, &other_nonce).unwrap_err(), KeyCryptoError::Undecryptable);
        let mut short = sealed.clone();
        short.nonce.pop();
        assert_eq!(keys.open(TEAM_A, &short).unwrap_err(), KeyCryptoError::Undecryptable);
        // Another team's row, or another provider's row of the same team.
        assert_eq!(keys.open(TEAM_B, &sealed).unwrap_err(), KeyCryptoError::Undecryptable);
        let fal = KeyContext { team: "team_a", provider: "fal" };
        assert_eq!(keys.open(fal, &sealed).unwrap_err(), KeyCryptoError::Undecryptable);
        // Length prefixes: moving characters from one part to the other changes the data.
        let shifted = KeyContext { team: "team_ao", provider: "penai" };
        assert_eq!(keys.open(shifted, &sealed).unwrap_err(), KeyCryptoError::Undecryptable);
        assert_eq!(keys.open(TEAM_A, &sealed).expect("open").expose(), "sk-team-a");
    }

    #[test]
    fn rotation_keeps_every_value_readable() {
        let old = ring(&format!("k1:{}", b64(1)));
        let sealed = old.seal(TEAM_A, "sk-rotate").expect("seal");
        // The new KEK first, the old one still listed: old rows open, rewrap moves them.
        let both = ring(&format!("k2:{}, k1:{}", b64(2), b64(1)));
        assert_eq!(both.current_id(), Some("k2"));
        assert_eq!(both.open(TEAM_A, &sealed).expect("open").expose(), "sk-rotate");
        let rewrapped = both.rewrap(TEAM_A, &sealed).expect("rewrap").expect("a new value");
        assert_eq!(rewrapped.kek_id, "k2");
        assert_eq!(both.rewrap(TEAM_A, &rewrapped).expect("rewrap"), None, "already current");
        // The old KEK dropped: the rewrapped value still opens, the old one no longer does.
        let new_only = ring(&format!("k2:{}", b64(2)));
        assert_eq!(new_only.open(TEAM_A, &rewrapped).expect("open").expose(), "sk-rotate");
        assert_eq!(new_only.open(TEAM_A, &sealed).unwrap_err(), KeyCryptoError::UnknownKek("k1".into()));
    }

    #[test]
    fn wrong_or_missing_keks_are_typed_errors() {
        let sealed = ring(&format!("k1:{}", b64(1))).seal(TEAM_A, "sk").expect("seal");
        // Same id, other bytes: an operator pasted the wrong key.
        let wrong = ring(&format!("k1:{}", b64(9)));
        assert_eq!(wrong.open(TEAM_A, &sealed).unwrap_err(), KeyCryptoError::Undecryptable);
        let empty = ring("  ");
        assert!(!empty.is_configured());
        assert_eq!(empty.seal(TEAM_A, "sk").unwrap_err(), KeyCryptoError::NotConfigured);
        assert_eq!(empty.open(TEAM_A, &sealed).unwrap_err(), KeyCryptoError::NotConfigured);
    }

    #[test]
    fn bad_configuration_is_refused_without_echoing_keys() {
        let secret = b64(7);
        for spec in [
            secret.clone(),
            format!("k1:{}", &secret[..20]),
            "k1:not base64!".to_owned(),
            format!("bad id:{secret}"),
            format!("k1:{secret},k1:{}", b64(8)),
            format!(":{secret}"),
        ] {
            let error = Keyring::parse(&spec).expect_err(&spec);
            assert!(matches!(error, KeyCryptoError::BadConfig(_)), "{spec}: {error:?}");
            assert!(!error.to_string().contains(&secret[..20]), "the key is echoed: {error}");
        }
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let keys = ring(&format!("k1:{}", b64(1)));
        let plain = PlainKey::new("sk-very-secret".into());
        let sealed = keys.seal(TEAM_A, "sk-very-secret").expect("seal");
        for text in [format!("{plain:?}"), format!("{keys:?}"), format!("{sealed:?}")] {
            assert!(!text.contains("sk-very-secret") && !text.contains(&b64(1)), "{text}");
        }
    }
}
