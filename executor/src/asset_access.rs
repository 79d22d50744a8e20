//! Which assets a run may read.
//!
//! Asset ids are not secrets: they sit in every reader's copy of a room's document. So a run
//! must not read an asset just because its graph names one: before a node uses an asset (an
//! `image-input`'s parameter, or an image wired into it) or is served from the cache instead,
//! the engine asks an [`AssetAccess`] whether the run may read it. A forbidden asset fails the
//! node exactly like a missing one ("asset … not found"), so a run cannot probe which ids exist.
//!
//! What "may read" means is the caller's: the worker's rule (the asset's owner, or a reader of
//! one of its rooms, decided now) is [`crate::worker::asset_access`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use dojo_ids::AssetId;
use serde_json::Value;

use crate::catalog::NodeType;
use crate::value::OutputValue;

/// Why access could not be decided (the database failed, say): the source, kept for the log.
#[derive(Debug, thiserror::Error)]
#[error("could not check access to an asset: {0}")]
pub struct AssetAccessError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Decides, for one run, whether it may read an asset.
#[async_trait]
pub trait AssetAccess: Send + Sync {
    async fn may_read(&self, asset_id: &AssetId) -> Result<bool, AssetAccessError>;
}

/// Every asset is readable: for runs with no user to check against (the engine used as a
/// library, its own tests). The worker never uses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyAsset;

#[async_trait]
impl AssetAccess for AnyAsset {
    async fn may_read(&self, _asset_id: &AssetId) -> Result<bool, AssetAccessError> {
        Ok(true)
    }
}

/// The asset ids a node's parameters name (its catalog entry marks them `asset`; in the
/// parameters, which come from the document, they are strings).
pub fn assets_named_by_params(
    node_type: &NodeType,
    params: &std::collections::BTreeMap<String, Value>,
) -> BTreeSet<AssetId> {
    node_type
        .params
        .iter()
        .filter(|p| p.asset)
        .filter_map(|p| params.get(&p.name)?.as_str())
        .map(AssetId::from)
        .collect()
}

/// Every asset a node would read: those its parameters name and those wired into it.
pub fn assets_read(
    node_type: &NodeType,
    params: &std::collections::BTreeMap<String, Value>,
    inputs: &std::collections::BTreeMap<String, OutputValue>,
) -> BTreeSet<AssetId> {
    let mut ids = assets_named_by_params(node_type, params);
    ids.extend(inputs.values().filter_map(|v| v.as_asset()).map(|a| a.id.clone()));
    ids
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::catalog::LoadedCatalog;
    use crate::value::AssetRef;

    fn asset(id: &str) -> OutputValue {
        OutputValue::Asset {
            asset: AssetRef {
                id: id.into(),
                content_hash: id.into(),
                content_type: "image/png".into(),
                size: 1,
            },
        }
    }

    #[test]
    fn the_image_input_parameter_and_wired_images_are_read() {
        let catalog = LoadedCatalog::builtin().unwrap();
        let input = catalog.get("image-input").unwrap();
        let params = BTreeMap::from([("asset".to_owned(), json!("abc"))]);
        assert_eq!(assets_read(input, &params, &BTreeMap::new()), BTreeSet::from([AssetId::from("abc")]));

        let composite = catalog.get("composite").unwrap();
        let params = BTreeMap::from([("x".to_owned(), json!(0))]);
        let inputs =
            BTreeMap::from([("background".to_owned(), asset("bg")), ("foreground".to_owned(), asset("fg"))]);
        assert_eq!(assets_read(composite, &params, &inputs), BTreeSet::from(["bg".into(), "fg".into()]));
    }

    #[test]
    fn text_parameters_and_text_inputs_are_not_assets() {
        let catalog = LoadedCatalog::builtin().unwrap();
        let prompt = catalog.get("text-prompt").unwrap();
        let params = BTreeMap::from([("text".to_owned(), json!("0".repeat(64)))]);
        let inputs = BTreeMap::from([("prompt".to_owned(), OutputValue::text("1".repeat(64)))]);
        assert!(assets_read(prompt, &params, &inputs).is_empty());
    }
}
