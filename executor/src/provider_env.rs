//! The environment variables that configure each provider: its key and its base URL. A leaf
//! module, so what only needs the names (which node types can run here) does not depend on the
//! provider adapters.

use crate::catalog::ProviderName;

/// The environment variables read by [`ProviderConfig::from_env`](crate::ProviderConfig::from_env): (provider, key, base URL).
pub const ENV_VARIABLES: [(ProviderName, &str, &str); 4] = [
    (ProviderName::Openai, "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    (ProviderName::Replicate, "REPLICATE_API_TOKEN", "REPLICATE_BASE_URL"),
    (ProviderName::Fal, "FAL_KEY", "FAL_BASE_URL"),
    (ProviderName::Stability, "STABILITY_API_KEY", "STABILITY_BASE_URL"),
];
