//! Who is calling, and what they may do in a room: tokens checked by `dojo-auth`, permissions
//! from the token's grants or from the workflow records in `dojo-records`.
//!
//! Two modes. With a JWT key configured, every room and API call needs a valid token. With
//! none (the embedded dev default), anonymous callers may do everything, and the server mints
//! dev tokens with a secret it makes up at start-up, so signed-in flows work locally too.

use std::sync::Arc;

use dashmap::DashMap;
use dojo_auth::{Claims, Identity, KeyError, Minter, Permission, TokenError, Verifier, VerifierConfig};
use dojo_ids::UserId;
use dojo_records::engagement::ACTIVITY_RESOLUTION_MS;
use dojo_records::{AccountError, AccountStore, EngagementStore, RoomAccess, User};

use crate::config::AuthSettings;
use crate::room_name::RoomName;

/// Users remembered as already stored with their current profile, so that a reconnecting
/// client does not cost a database write. Cleared when it reaches this size (a cache, not state).
const MAX_KNOWN_USERS: usize = 100_000;

/// How long a remembered profile is trusted: another instance may have changed it (the
/// analytics opt-out) or deleted the account meanwhile.
const KNOWN_USER_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// How long dev tokens live.
const DEV_TOKEN_TTL_S: u64 = 12 * 3600;
/// The token subject of every dev identity (`dev:{name}`): only Dojo mints these, in dev mode.
const DEV_SUBJECT_PREFIX: &str = "dev:";

/// Who a request or connection speaks for.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No token, in dev mode only.
    Anonymous,
    User(Box<SignedIn>),
}

#[derive(Debug, Clone)]
pub struct SignedIn {
    pub identity: Identity,
    pub user: User,
}

impl Caller {
    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::Anonymous => None,
            Caller::User(signed_in) => Some(&signed_in.user),
        }
    }

    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Caller::Anonymous => None,
            Caller::User(signed_in) => Some(&signed_in.identity),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required: pass ?token=… or Authorization: Bearer …")]
    MissingToken,
    #[error("invalid token: {0}")]
    InvalidToken(#[from] TokenError),
    #[error("you do not have access to this room")]
    Forbidden,
    #[error("accounts unavailable")]
    Accounts(#[from] AccountError),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read {path}: {source}")]
    ReadKey { path: String, source: std::io::Error },
    #[error(transparent)]
    Key(#[from] KeyError),
}

pub struct Auth {
    verifier: Verifier,
    /// Signs tokens Dojo issues: with the configured HS256 secret, or the dev secret.
    minter: Option<Minter>,
    dev_mode: bool,
    /// Dev mode with `DOJO_DEV_OPEN_WORKFLOWS`: dev identities edit every live workflow.
    open_workflows_to_dev: bool,
    accounts: Arc<dyn AccountStore>,
    known_users: DashMap<String, (User, std::time::Instant)>,
    /// Where sign-ins are recorded as activity (the re-engagement agent reads it), and when this
    /// process last recorded each user: at most once per [`ACTIVITY_RESOLUTION_MS`] each.
    activity: Option<Arc<dyn EngagementStore>>,
    marked_active: DashMap<UserId, std::time::Instant>,
}

impl Auth {
    pub fn new(settings: &AuthSettings, accounts: Arc<dyn AccountStore>) -> Result<Self, AuthSetupError> {
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path)
                .map_err(|source| AuthSetupError::ReadKey { path: path.display().to_string(), source })
        };
        let dev_mode = settings.dev_mode();
        let secret = match &settings.jwt_secret {
            Some(secret) => Some(secret.as_bytes().to_vec()),
            // Made up per process: dev tokens die with the process, and nobody can mint them
            // from the outside.
            None if dev_mode => Some(rand::random::<[u8; 32]>().to_vec()),
            None => None,
        };
        let config = VerifierConfig {
            hs256_secret: secret.clone(),
            public_key_pem: settings.jwt_public_key_file.as_ref().map(read).transpose()?,
            jwks_json: settings.jwt_jwks_file.as_ref().map(read).transpose()?,
            issuers: settings.jwt_issuer.clone(),
            audiences: settings.jwt_audience.clone(),
            leeway_s: settings.jwt_leeway_secs,
        };
        let verifier = Verifier::new(&config)?;
        if dev_mode {
            tracing::warn!(
                "DEV MODE: no JWT key configured (DOJO_JWT_SECRET, DOJO_JWT_PUBLIC_KEY_FILE or \
                 DOJO_JWT_JWKS_FILE), so anyone who can reach this server can read and change every room"
            );
        }
        Ok(Self {
            verifier,
            minter: secret.as_deref().map(Minter::hs256),
            dev_mode,
            open_workflows_to_dev: dev_mode && settings.dev_open_workflows,
            accounts,
            known_users: DashMap::new(),
            activity: None,
            marked_active: DashMap::new(),
        })
    }

    /// Records each signed-in user's activity in `store`.
    pub fn with_activity(mut self, store: Arc<dyn EngagementStore>) -> Self {
        self.activity = Some(store);
        self
    }

    /// Records that `user` is active, in the background, unless this process did within the
    /// resolution: a sign-in never waits for it, and a burst of requests writes once.
    fn mark_active(&self, user: &UserId) {
        let Some(store) = &self.activity else { return };
        let resolution = std::time::Duration::from_millis(ACTIVITY_RESOLUTION_MS.unsigned_abs());
        if self.marked_active.get(user).is_some_and(|at| at.elapsed() < resolution) {
            return;
        }
        if self.marked_active.len() >= MAX_KNOWN_USERS {
            self.marked_active.clear();
        }
        self.marked_active.insert(user.clone(), std::time::Instant::now());
        let (store, user) = (store.clone(), user.clone());
        tokio::spawn(async move {
            if let Err(error) = store.mark_active(&user, now_millis()).await {
                tracing::debug!(%error, "could not record a user's activity");
            }
        });
    }

    /// Forgets the remembered profile of `subject`, so that its next request reads the database
    /// (after its account was deleted, or its privacy settings changed).
    pub fn forget_user(&self, subject: &str) {
        self.known_users.remove(subject);
    }

    pub fn dev_mode(&self) -> bool {
        self.dev_mode
    }

    pub fn accounts(&self) -> &Arc<dyn AccountStore> {
        &self.accounts
    }

    /// A token for `claims`, signed with the HS256 secret (configured, or the dev one).
    pub fn mint(&self, claims: &Claims) -> Option<String> {
        self.minter.as_ref()?.mint(claims).ok()
    }

    /// A dev identity's token, with `email` as a verified email if given; only in dev mode.
    pub fn mint_dev_token(&self, name: &str, email: Option<&str>) -> Option<String> {
        if !self.dev_mode {
            return None;
        }
        let mut claims = Claims::new(format!("{DEV_SUBJECT_PREFIX}{name}"), DEV_TOKEN_TTL_S);
        claims.name = Some(name.to_owned());
        claims.email = email.map(str::to_owned);
        self.mint(&claims)
    }

    /// Checks the token, if any, and finds or creates its user.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return if self.dev_mode { Ok(Caller::Anonymous) } else { Err(AuthError::MissingToken) };
        };
        let identity = self.verifier.verify(token)?;
        let user = self.user_for(&identity).await?;
        Ok(Caller::User(Box::new(SignedIn { identity, user })))
    }

    async fn user_for(&self, identity: &Identity) -> Result<User, AccountError> {
        if let Some(entry) = self.known_users.get(&identity.subject)
            && entry.1.elapsed() < KNOWN_USER_TTL
        {
            let known = &entry.0;
            let unchanged = identity.name.as_ref().is_none_or(|n| known.name.as_ref() == Some(n))
                && identity.email.as_ref().is_none_or(|e| known.email.as_ref() == Some(e));
            if unchanged {
                return Ok(known.clone());
            }
        }
        let user = self
            .accounts
            .upsert_user(&identity.subject, identity.name.as_deref(), identity.email.as_deref())
            .await?;
        // Workflows shared with this address before it had an account (or before this token
        // carried it) become this user's now. Only verified emails get here (see the token's
        // `email_verified`). Failing to claim must not fail the sign-in: the next one retries.
        if let Some(email) = identity.email.as_deref() {
            match self.accounts.claim_workflow_invitations(&user.id, email).await {
                Ok(claimed) => {
                    for collaborator in &claimed {
                        tracing::info!(
                            workflow = collaborator.workflow_id.as_str(),
                            user = collaborator.user_id.as_str(),
                            permission = collaborator.permission.as_str(),
                            "an invitation by email was claimed at sign-in"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming invitations by email failed"),
            }
        }
        self.mark_active(&user.id);
        if self.known_users.len() >= MAX_KNOWN_USERS {
            self.known_users.clear();
        }
        self.known_users.insert(identity.subject.clone(), (user.clone(), std::time::Instant::now()));
        Ok(user)
    }

    /// What `caller` may do in `room`. A token with grants is good for its grants only;
    /// otherwise the workflow records decide. A room no workflow claims is open in dev mode
    /// and closed otherwise (create a workflow, or mint a token with a grant).
    pub async fn room_permission(&self, caller: &Caller, room: &RoomName) -> Result<Permission, AuthError> {
        let signed_in = match caller {
            Caller::Anonymous => return Ok(Permission::Admin),
            Caller::User(signed_in) => signed_in,
        };
        if let Some(grants) = &signed_in.identity.grants {
            return grants.permission_for(room.as_str()).ok_or(AuthError::Forbidden);
        }
        match self.accounts.room_access(Some(&signed_in.user.id), room).await? {
            RoomAccess::NoWorkflow if self.dev_mode => Ok(Permission::Admin),
            RoomAccess::Denied | RoomAccess::Read if self.opens_to_dev(&signed_in.identity, room).await? => {
                Ok(Permission::Write)
            }
            access => access.permission().ok_or(AuthError::Forbidden),
        }
    }

    /// Whether this dev identity edits `room`'s workflow without being given access: in dev
    /// mode with open workflows, a live workflow (a deleted one stays closed to everyone).
    async fn opens_to_dev(&self, identity: &Identity, room: &RoomName) -> Result<bool, AuthError> {
        if !self.open_workflows_to_dev || !identity.subject.starts_with(DEV_SUBJECT_PREFIX) {
            return Ok(false);
        }
        // Finds live workflows only.
        Ok(self.accounts.workflow_by_room(room).await?.is_some())
    }

    /// Like [`room_permission`](Self::room_permission), refusing less than `needed`.
    pub async fn require(
        &self,
        caller: &Caller,
        room: &RoomName,
        needed: Permission,
    ) -> Result<Permission, AuthError> {
        let permission = self.room_permission(caller, room).await?;
        if permission >= needed { Ok(permission) } else { Err(AuthError::Forbidden) }
    }
}

/// The bearer token of a request: `Authorization: Bearer …`, else the `token` query parameter
/// (browsers cannot set headers on a WebSocket; y-websocket's `params` option puts it there).
pub fn bearer_token<'a>(headers: &'a axum::http::HeaderMap, query: Option<&'a str>) -> Option<String> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
            return Some(token.trim().to_owned());
        }
    }
    let query = query?;
    url_query_param(query, "token")
}

fn url_query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

/// JWTs are base64url and dots, which need no escaping, but clients may escape anyway.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Milliseconds since the Unix epoch, as the records store them.
fn now_millis() -> i64 {
    i64::try_from(dojo_auth::unix_now().saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers, Some("a=1&token=abc.def&b=2")).as_deref(), Some("abc.def"));
        assert_eq!(bearer_token(&headers, Some("token=a%2Eb")).as_deref(), Some("a.b"));
        assert_eq!(bearer_token(&headers, Some("tokens=x")), None);
        assert_eq!(bearer_token(&headers, None), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  xyz "));
        assert_eq!(bearer_token(&headers, Some("token=abc")).as_deref(), Some("xyz"));
    }

    #[test]
    fn percent_decoding_never_panics_on_odd_input() {
        for input in ["%", "%4", "%zz", "a%", "%%41", "é%41"] {
            let _ = percent_decode(input);
        }
        assert_eq!(percent_decode("%41%42c"), "ABc");
    }
}
