//! What nodes hand each other: small values and references to stored assets.
//!
//! Outputs go into the room document (through the observer), so they must stay small: an image
//! is an [`AssetRef`], never its bytes.

use std::collections::BTreeMap;

use dojo_ids::AssetId;
use serde::{Deserialize, Serialize};

use crate::catalog::PortType;

/// A stored blob, as returned by an [`AssetStore`](crate::assets::AssetStore).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetRef {
    /// What to ask the store for.
    pub id: AssetId,
    /// Hex SHA-256 of the bytes.
    pub content_hash: String,
    pub content_type: String,
    pub size: u64,
}

/// One output (or input) value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OutputValue {
    Text {
        text: String,
    },
    Number {
        value: f64,
    },
    /// An image, video or mesh: the port type says which.
    Asset {
        asset: AssetRef,
    },
}

impl OutputValue {
    pub fn text(text: impl Into<String>) -> Self {
        OutputValue::Text { text: text.into() }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            OutputValue::Text { text } => Some(text),
            _ => None,
        }
    }

    pub fn as_asset(&self) -> Option<&AssetRef> {
        match self {
            OutputValue::Asset { asset } => Some(asset),
            _ => None,
        }
    }

    /// Whether this value may travel on a wire of `port` type.
    pub fn fits(&self, port: PortType) -> bool {
        matches!(
            (self, port),
            (_, PortType::Any)
                | (OutputValue::Text { .. }, PortType::Text)
                | (OutputValue::Number { .. }, PortType::Number)
                | (OutputValue::Asset { .. }, PortType::Image | PortType::Video | PortType::Mesh)
        )
    }
}

/// A node's outputs: output handle → value.
pub type Outputs = BTreeMap<String, OutputValue>;
