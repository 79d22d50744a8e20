//! Verifying bearer tokens (JWTs) and minting our own.
//!
//! Several keys may be configured at once: an identity provider's JWKS for people, and a shared
//! HS256 secret for tokens Dojo mints itself (workers, services, tests). A token is checked only
//! against keys of the algorithm its header names, and each key accepts exactly one algorithm, so
//! an HS256 token "signed" with an RSA public key (the classic algorithm-confusion attack) finds no
//! key, and `alg: none` is not an algorithm at all.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::Grants;

/// The claims Dojo reads from a token (others are ignored) and writes into tokens it mints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user: the identity provider's stable id.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// OpenID Connect's `email_verified`; `Some(false)` makes Dojo ignore `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Expiry, seconds since the epoch. Required: a token without one would be good forever.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Explicit room grants; absent means "whatever the workflow records allow".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Grants>,
    /// With `admin` grants: also manage the workflow records (rename, publish, share, delete)
    /// of rooms those grants cover that other users own. Without it an `admin` grant
    /// administers documents only; another user's workflow stays theirs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manage_workflows: bool,
}

impl Claims {
    /// Claims for `sub` that expire `ttl_s` seconds from now.
    pub fn new(sub: impl Into<String>, ttl_s: u64) -> Self {
        let now = unix_now();
        Self {
            sub: sub.into(),
            name: None,
            email: None,
            email_verified: None,
            exp: now.saturating_add(ttl_s),
            iat: Some(now),
            nbf: None,
            iss: None,
            aud: None,
            grants: None,
            manage_workflows: false,
        }
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// When present, the token is good for these rooms only.
    pub grants: Option<Grants>,
    /// Whether `admin` grants reach workflows other users own (see [`Claims::manage_workflows`]).
    pub manage_workflows: bool,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

impl Identity {
    /// Seconds until the token expires (0 when it already has).
    pub fn seconds_left(&self) -> u64 {
        self.expires_at.saturating_sub(unix_now())
    }
}

/// Where verification keys come from. Every field is optional; at least one key must be given.
#[derive(Clone, Default)]
pub struct VerifierConfig {
    /// Shared secret for HS256.
    pub hs256_secret: Option<Vec<u8>>,
    /// A PEM public key (RSA → RS256, EC P-256 → ES256).
    pub public_key_pem: Option<Vec<u8>>,
    /// A JWKS document (`{"keys": [...]}`), as identity providers publish.
    pub jwks_json: Option<Vec<u8>>,
    /// Accepted `iss` values; empty: not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; empty: not checked (and tokens that carry one still pass).
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
}

// Secrets never reach logs: this prints which keys exist, not what they are.
impl std::fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("public_key_pem", &self.public_key_pem.is_some())
            .field("jwks_json", &self.jwks_json.is_some())
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway_s", &self.leeway_s)
            .finish()
    }
}

impl VerifierConfig {
    pub fn has_keys(&self) -> bool {
        self.hs256_secret.is_some() || self.public_key_pem.is_some() || self.jwks_json.is_some()
    }
}

/// A key configuration that cannot be used; reported at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no verification key configured")]
    NoKeys,
    #[error("the HS256 secret is shorter than 32 bytes")]
    WeakSecret,
    #[error("the public key PEM is neither an RSA nor an EC P-256 public key: {0}")]
    BadPem(String),
    #[error("the JWKS document is not valid: {0}")]
    BadJwks(String),
    #[error("the JWKS document holds no key Dojo can use (RSA or EC P-256 signing keys)")]
    EmptyJwks,
}

/// Why a token was refused. The text is safe to show the caller; it never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("tokens signed with {0} are not accepted")]
    AlgorithmNotAccepted(String),
    #[error("no configured key matches the token's key id")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token's claims are not valid: {0}")]
    BadClaims(String),
}

struct VerifyingKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// Checks tokens against the configured keys.
pub struct Verifier {
    keys: Vec<VerifyingKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|k| (k.kid.as_deref(), k.validation.algorithms[0])).collect();
        f.debug_struct("Verifier").field("keys", &algs).finish()
    }
}

impl Verifier {
    pub fn new(config: &VerifierConfig) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        let mut add = |kid: Option<String>, key: DecodingKey, alg: Algorithm| {
            let mut validation = Validation::new(alg);
            validation.leeway = config.leeway_s;
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp", "sub"]);
            if !config.issuers.is_empty() {
                validation.set_issuer(&config.issuers);
                validation.required_spec_claims.insert("iss".to_owned());
            }
            if config.audiences.is_empty() {
                validation.validate_aud = false;
            } else {
                validation.set_audience(&config.audiences);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            keys.push(VerifyingKey { kid, key, validation });
        };
        if let Some(secret) = &config.hs256_secret {
            // Short secrets can be brute-forced offline from any token.
            if secret.len() < 32 {
                return Err(KeyError::WeakSecret);
            }
            add(None, DecodingKey::from_secret(secret), Algorithm::HS256);
        }
        if let Some(pem) = &config.public_key_pem {
            match (DecodingKey::from_rsa_pem(pem), DecodingKey::from_ec_pem(pem)) {
                (Ok(key), _) => add(None, key, Algorithm::RS256),
                (_, Ok(key)) => add(None, key, Algorithm::ES256),
                (Err(error), _) => return Err(KeyError::BadPem(error.to_string())),
            }
        }
        if let Some(json) = &config.jwks_json {
            let set: JwkSet = serde_json::from_slice(json).map_err(|e| KeyError::BadJwks(e.to_string()))?;
            let mut usable = 0;
            for jwk in &set.keys {
                let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                    (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                    (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                        if ec.curve == EllipticCurve::P256 =>
                    {
                        Algorithm::ES256
                    }
                    // Encryption keys, other curves and algorithms: not for us, skip them.
                    _ => continue,
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::BadJwks(e.to_string()))?;
                add(jwk.common.key_id.clone(), key, alg);
                usable += 1;
            }
            if usable == 0 {
                return Err(KeyError::EmptyJwks);
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// Verifies `token` and returns whom it speaks for.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let same_alg: Vec<&VerifyingKey> =
            self.keys.iter().filter(|k| k.validation.algorithms.contains(&header.alg)).collect();
        if same_alg.is_empty() {
            return Err(TokenError::AlgorithmNotAccepted(format!("{:?}", header.alg)));
        }
        // A key id, when both sides have one, must match; keys without an id are tried in turn.
        let candidates: Vec<&VerifyingKey> = match &header.kid {
            Some(kid) if same_alg.iter().any(|k| k.kid.as_ref() == Some(kid)) => {
                same_alg.into_iter().filter(|k| k.kid.as_ref() == Some(kid)).collect()
            }
            Some(_) => same_alg.into_iter().filter(|k| k.kid.is_none()).collect(),
            None => same_alg,
        };
        let mut first_error = TokenError::UnknownKey;
        for (i, key) in candidates.iter().enumerate() {
            match jsonwebtoken::decode::<ReceivedClaims>(token, &key.key, &key.validation) {
                Ok(data) => return identity(data.claims),
                Err(error) => {
                    let error = token_error(error.kind());
                    // Another key of the same algorithm may still match a bad signature;
                    // any other failure is about the token itself.
                    if error != TokenError::BadSignature {
                        return Err(error);
                    }
                    if i == 0 {
                        first_error = error;
                    }
                }
            }
        }
        Err(first_error)
    }
}

/// What a token must or may carry, as received: the required claims are optional here so that
/// a missing one is reported by name by the validation (serde would only say "missing field").
#[derive(Deserialize)]
struct ReceivedClaims {
    sub: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// OpenID Connect's `email_verified`: when a token says `false`, its `email` is not trusted
    /// (an identity provider that lets people type any address would otherwise let them take
    /// the team invitations addressed to it). Absent: trusted, as the operator's signer vouches.
    #[serde(default)]
    email_verified: Option<bool>,
    exp: Option<u64>,
    #[serde(default)]
    grants: Option<Grants>,
    #[serde(default)]
    manage_workflows: bool,
}

fn identity(claims: ReceivedClaims) -> Result<Identity, TokenError> {
    let subject = claims.sub.filter(|sub| !sub.trim().is_empty());
    let (Some(subject), Some(expires_at)) = (subject, claims.exp) else {
        return Err(TokenError::MissingClaim(if claims.exp.is_none() { "exp" } else { "sub" }.to_owned()));
    };
    Ok(Identity {
        subject,
        name: claims.name,
        email: claims.email.filter(|_| claims.email_verified != Some(false)),
        grants: claims.grants,
        manage_workflows: claims.manage_workflows,
        expires_at,
    })
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            TokenError::AlgorithmNotAccepted("this algorithm".to_owned())
        }
        ErrorKind::Json(error) => TokenError::BadClaims(error.to_string()),
        ErrorKind::InvalidClaimFormat(claim) => TokenError::BadClaims(format!("{claim} has the wrong type")),
        _ => TokenError::Malformed,
    }
}

/// Mints HS256 tokens with a shared secret: for workers and services, and for the dev identity.
#[derive(Clone)]
pub struct Minter {
    key: EncodingKey,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minter(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the token: {0}")]
pub struct MintError(String);

impl Minter {
    pub fn hs256(secret: &[u8]) -> Self {
        Self { key: EncodingKey::from_secret(secret) }
    }

    pub fn mint(&self, claims: &Claims) -> Result<String, MintError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .map_err(|e| MintError(e.to_string()))
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
