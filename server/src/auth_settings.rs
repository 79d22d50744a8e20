//! Auth settings: part of the one typed configuration (`crate::config::Config`, flattened).

/// Who may connect. With no key configured the server runs in dev mode: anyone may do
/// anything, and it says so loudly at start-up.
#[derive(Clone, clap::Args)]
pub struct AuthSettings {
    /// Shared secret for HS256 tokens (at least 32 bytes). Also signs the tokens Dojo mints.
    #[arg(long, env = "DOJO_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM file with the identity provider's public key (RSA → RS256, EC P-256 → ES256).
    #[arg(long, env = "DOJO_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,

    /// JWKS file (`{"keys": [...]}`) with the identity provider's keys, chosen by `kid`.
    #[arg(long, env = "DOJO_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<std::path::PathBuf>,

    /// Accepted token issuers (`iss`), comma-separated; unset: not checked.
    #[arg(long, env = "DOJO_JWT_ISSUER", value_delimiter = ',')]
    pub jwt_issuer: Vec<String>,

    /// Accepted token audiences (`aud`), comma-separated; unset: not checked.
    #[arg(long, env = "DOJO_JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "DOJO_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,

    /// Stripe webhook endpoint secret (`whsec_…`); unset: the webhook answers 404.
    #[arg(long, env = "DOJO_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,

    /// Seconds a Stripe signature stays acceptable (replay window).
    #[arg(long, env = "DOJO_STRIPE_TOLERANCE_SECS", default_value_t = 300)]
    pub stripe_tolerance_secs: i64,

    /// Dev mode only: every dev identity may edit (`write`) every live workflow, shared or not,
    /// so two people in two browsers co-edit one canvas by its URL. `false` keeps workflow
    /// permissions as with a key, to try sharing, teams and read-only access in dev mode.
    #[arg(long, env = "DOJO_DEV_OPEN_WORKFLOWS", default_value_t = true, action = clap::ArgAction::Set)]
    pub dev_open_workflows: bool,
}

impl AuthSettings {
    pub fn dev_mode(&self) -> bool {
        self.jwt_secret.is_none() && self.jwt_public_key_file.is_none() && self.jwt_jwks_file.is_none()
    }
}

// Secrets stay out of logs and panics.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &redacted(&self.jwt_secret))
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_jwks_file", &self.jwt_jwks_file)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_leeway_secs", &self.jwt_leeway_secs)
            .field("stripe_webhook_secret", &redacted(&self.stripe_webhook_secret))
            .field("dev_open_workflows", &self.dev_open_workflows)
            .finish()
    }
}
