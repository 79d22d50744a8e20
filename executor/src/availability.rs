//! Which node types this process can run: the built-in ones always, a provider's only when the
//! provider has a key (and its runner could be built). The catalog lists every node type; this
//! is what `GET /api/catalog` marks, what run validation refuses before any credit is held, and
//! what the natural-language builder chooses from.

use std::collections::BTreeSet;

use crate::catalog::{LoadedCatalog, NodeType, ProviderName};
use crate::provider_env::ENV_VARIABLES;

/// The providers this process has runners for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Availability {
    providers: BTreeSet<ProviderName>,
    /// For a team's workflow: a missing key is the server's *and* the team's (the reason says
    /// so, so an admin knows a team key would do).
    team: bool,
}

impl Availability {
    /// Every provider: what a process that checks nothing assumes (tests, offline tools).
    pub fn all() -> Self {
        Self::with_providers(ENV_VARIABLES.iter().map(|(provider, _, _)| *provider))
    }

    /// Only the built-in nodes run.
    pub fn builtin_only() -> Self {
        Self::default()
    }

    pub fn with_providers(providers: impl IntoIterator<Item = ProviderName>) -> Self {
        Self { providers: providers.into_iter().collect(), team: false }
    }

    /// The same, as a team's workflow sees it: its providers count the team's keys.
    pub fn for_team(mut self) -> Self {
        self.team = true;
        self
    }

    pub fn has_provider(&self, provider: ProviderName) -> bool {
        self.providers.contains(&provider)
    }

    /// Whether `node` can run here.
    pub fn runs(&self, node: &NodeType) -> bool {
        node.provider.as_ref().is_none_or(|p| self.has_provider(p.name))
    }

    /// Why `node` cannot run here, in words for the person who placed it; `None` when it can.
    pub fn unavailable_reason(&self, node: &NodeType) -> Option<String> {
        let provider = node.provider.as_ref()?.name;
        if self.has_provider(provider) {
            return None;
        }
        let variable = ENV_VARIABLES.iter().find(|(p, _, _)| *p == provider).map_or("", |(_, key, _)| *key);
        let title = provider_title(provider);
        Some(if self.team {
            format!(
                "neither this server ({variable}) nor the team has a {title} key, so {} cannot run here; a team \
                 admin can add one",
                node.name
            )
        } else {
            format!("this server has no {title} key ({variable}), so {} cannot run here", node.name)
        })
    }

    /// The part of `catalog` that runs here, in catalog order.
    pub fn runnable(&self, catalog: &LoadedCatalog) -> LoadedCatalog {
        catalog.restricted(|node| self.runs(node))
    }
}

/// A provider's name as its customers write it.
pub fn provider_title(provider: ProviderName) -> &'static str {
    match provider {
        ProviderName::Openai => "OpenAI",
        ProviderName::Replicate => "Replicate",
        ProviderName::Fal => "fal.ai",
        ProviderName::Stability => "Stability AI",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> &'static LoadedCatalog {
        LoadedCatalog::builtin().expect("catalog")
    }

    #[test]
    fn builtins_always_run_and_providers_need_a_key() {
        let none = Availability::builtin_only();
        let blur = catalog().get("blur").expect("blur");
        let flux = catalog().get("flux-schnell").expect("flux");
        assert!(none.runs(blur));
        assert_eq!(none.unavailable_reason(blur), None);
        assert!(!none.runs(flux));
        let reason = none.unavailable_reason(flux).expect("a reason");
        assert!(reason.contains("Replicate") && reason.contains("REPLICATE_API_TOKEN"), "{reason}");
        let team = Availability::builtin_only().for_team().unavailable_reason(flux).expect("a reason");
        assert!(team.contains("nor the team") && team.contains("REPLICATE_API_TOKEN"), "{team}");
        let replicate = Availability::with_providers([ProviderName::Replicate]);
        assert!(replicate.runs(flux));
        assert!(!replicate.runs(catalog().get("dall-e-3").expect("dall-e")));
    }

    #[test]
    fn the_runnable_catalog_keeps_order_and_leaves_out_the_rest() {
        let runnable = Availability::builtin_only().runnable(catalog());
        assert!(runnable.nodes().iter().all(NodeType::is_builtin));
        assert!(runnable.get("flux-schnell").is_none());
        let ids: Vec<&str> = runnable.nodes().iter().map(|n| n.id.as_str()).collect();
        let builtin: Vec<&str> =
            catalog().nodes().iter().filter(|n| n.is_builtin()).map(|n| n.id.as_str()).collect();
        assert_eq!(ids, builtin);
        assert_eq!(Availability::all().runnable(catalog()).nodes().len(), catalog().nodes().len());
    }
}
