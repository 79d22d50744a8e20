//! The node catalog: every node type a canvas may use, in one data file (`executor/catalog.json`).
//!
//! Adding a model is one entry there: its handles and parameters drive validation, its cost
//! drives the estimate, its provider and model id tell the engine which runner calls what. The
//! file is compiled in (`include_str!`) so a binary can never run with a catalog that does not
//! match its code, and it is checked when loaded: a broken entry fails the unit test, not a run.
//!
//! The same structure serialises back to JSON for the editor (`GET /api/catalog`, later).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The catalog shipped with this build.
pub const BUILTIN_CATALOG_JSON: &str = include_str!("../catalog.json");

/// Upper bounds that keep one entry from asking for absurd work or money.
const MAX_COST: u64 = 100_000;
const MAX_TIMEOUT_SECS: u64 = 3_600;
const MAX_STRING_LEN: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Bumped when entries change incompatibly; part of every cache key.
    pub version: u32,
    pub nodes: Vec<NodeType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Image,
    Video,
    #[serde(rename = "3d")]
    ThreeD,
    Text,
    Tool,
}

/// What travels on a wire between two handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    Text,
    Image,
    Video,
    Mesh,
    Number,
    /// Accepts, or may produce, anything.
    Any,
}

impl PortType {
    /// Whether an output of type `self` may feed an input of type `input`.
    pub fn fits(self, input: PortType) -> bool {
        self == input || self == PortType::Any || input == PortType::Any
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortType::Text => "text",
            PortType::Image => "image",
            PortType::Video => "video",
            PortType::Mesh => "mesh",
            PortType::Number => "number",
            PortType::Any => "any",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub name: String,
    #[serde(rename = "type")]
    pub port_type: PortType,
    /// Inputs only: a run is refused when a required input is not wired.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Any finite JSON number.
    Number,
    /// A whole JSON number (editors written in JavaScript may send `4.0`; that counts).
    Integer,
    String,
    Boolean,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Number => "number",
            ParamType::Integer => "integer",
            ParamType::String => "string",
            ParamType::Boolean => "boolean",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub param_type: ParamType,
    /// Used when the node's `data` lacks the parameter (or holds `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// When present, the value must be one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// Strings only: the longest accepted value, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// A required parameter has no default: the user must set it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// Strings only: the value is an asset id the node reads. A run may read only assets its
    /// user may read, so the worker checks these before the node runs or is served from cache.
    #[serde(default, skip_serializing_if = "is_false")]
    pub asset: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Openai,
    Replicate,
    Fal,
    Stability,
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderName::Openai => "openai",
            ProviderName::Replicate => "replicate",
            ProviderName::Fal => "fal",
            ProviderName::Stability => "stability",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRef {
    pub name: ProviderName,
    /// The provider's own id for the model (`owner/name` on Replicate, an endpoint id on fal…).
    pub model: String,
}

/// One kind of node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeType {
    /// The `type` field of a canvas node.
    pub id: String,
    /// What the editor shows.
    pub name: String,
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub inputs: Vec<Port>,
    #[serde(default)]
    pub outputs: Vec<Port>,
    #[serde(default)]
    pub params: Vec<Param>,
    /// AI nodes: who runs them. Absent: a built-in node computed locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRef>,
    /// Credits charged for one successful execution.
    pub cost: u64,
    /// Whether the same type, parameters and inputs always give the same outputs. Only
    /// deterministic nodes are cached.
    pub deterministic: bool,
    /// Overrides the engine's default per-node timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl NodeType {
    pub fn input(&self, name: &str) -> Option<&Port> {
        self.inputs.iter().find(|p| p.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&Port> {
        self.outputs.iter().find(|p| p.name == name)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn is_builtin(&self) -> bool {
        self.provider.is_none()
    }
}

/// Why a catalog file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog is not valid JSON for the schema: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("catalog entry {node}: {reason}")]
    Invalid { node: String, reason: String },
}

/// A checked catalog, indexed by node type id.
#[derive(Debug, Clone)]
pub struct LoadedCatalog {
    catalog: Catalog,
    index: BTreeMap<String, usize>,
}

impl LoadedCatalog {
    /// Parses and checks a catalog.
    pub fn from_json(json: &str) -> Result<Self, CatalogError> {
        let catalog: Catalog = serde_json::from_str(json)?;
        let mut index = BTreeMap::new();
        for (i, node) in catalog.nodes.iter().enumerate() {
            check_node(node)?;
            if index.insert(node.id.clone(), i).is_some() {
                return Err(invalid(node, "the id is used by another entry"));
            }
        }
        Ok(Self { catalog, index })
    }

    /// The catalog compiled into this build, parsed once.
    ///
    /// Returns an error rather than panicking so a server can report it; the unit test
    /// `the_builtin_catalog_loads` keeps it from ever happening in a released build.
    pub fn builtin() -> Result<&'static LoadedCatalog, &'static CatalogError> {
        static BUILTIN: OnceLock<Result<LoadedCatalog, CatalogError>> = OnceLock::new();
        BUILTIN.get_or_init(|| LoadedCatalog::from_json(BUILTIN_CATALOG_JSON)).as_ref()
    }

    pub fn get(&self, id: &str) -> Option<&NodeType> {
        self.index.get(id).map(|&i| &self.catalog.nodes[i])
    }

    pub fn nodes(&self) -> &[NodeType] {
        &self.catalog.nodes
    }

    pub fn version(&self) -> u32 {
        self.catalog.version
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog as the editor receives it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.catalog).unwrap_or(Value::Null)
    }

    /// The entries `keep` accepts, in the same order (same version: the entries are unchanged).
    pub fn restricted(&self, keep: impl Fn(&NodeType) -> bool) -> LoadedCatalog {
        let nodes: Vec<NodeType> = self.catalog.nodes.iter().filter(|n| keep(n)).cloned().collect();
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
        LoadedCatalog { catalog: Catalog { version: self.catalog.version, nodes }, index }
    }

    /// Credits one execution of this node type costs (`None` for an unknown type).
    pub fn cost(&self, node_type: &str) -> Option<u64> {
        self.get(node_type).map(|n| n.cost)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn invalid(node: &NodeType, reason: impl Into<String>) -> CatalogError {
    CatalogError::Invalid { node: node.id.clone(), reason: reason.into() }
}

fn check_node(node: &NodeType) -> Result<(), CatalogError> {
    let id_ok = !node.id.is_empty()
        && node.id.len() <= 64
        && node.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !id_ok {
        return Err(invalid(node, "ids are 1-64 characters of a-z, 0-9, '-' and '.'"));
    }
    if node.name.trim().is_empty() {
        return Err(invalid(node, "the display name is empty"));
    }
    if node.cost > MAX_COST {
        return Err(invalid(node, format!("cost {} exceeds {MAX_COST}", node.cost)));
    }
    if node.timeout_secs.is_some_and(|t| t == 0 || t > MAX_TIMEOUT_SECS) {
        return Err(invalid(node, format!("timeout_secs must be 1..={MAX_TIMEOUT_SECS}")));
    }
    if node.outputs.is_empty() {
        return Err(invalid(node, "a node without outputs produces nothing"));
    }
    if let Some(provider) = &node.provider
        && provider.model.trim().is_empty()
    {
        return Err(invalid(node, "the provider model id is empty"));
    }
    if node.outputs.iter().any(|p| p.required) {
        return Err(invalid(node, "`required` applies to inputs only"));
    }
    for (what, names) in [
        ("input", node.inputs.iter().map(|p| &p.name).collect::<Vec<_>>()),
        ("output", node.outputs.iter().map(|p| &p.name).collect()),
        ("parameter", node.params.iter().map(|p| &p.name).collect()),
    ] {
        let mut seen = BTreeSet::new();
        for name in names {
            if name.is_empty() || !seen.insert(name) {
                return Err(invalid(node, format!("{what} name {name:?} is empty or repeated")));
            }
        }
    }
    for param in &node.params {
        check_param(param).map_err(|reason| invalid(node, format!("parameter {}: {reason}", param.name)))?;
    }
    Ok(())
}

fn check_param(param: &Param) -> Result<(), String> {
    let numeric = matches!(param.param_type, ParamType::Number | ParamType::Integer);
    if !numeric && (param.min.is_some() || param.max.is_some()) {
        return Err(format!("min/max do not apply to a {}", param.param_type));
    }
    if let (Some(min), Some(max)) = (param.min, param.max)
        && min > max
    {
        return Err(format!("min {min} is above max {max}"));
    }
    if param.asset && param.param_type != ParamType::String {
        return Err("only a string can name an asset".into());
    }
    if param.max_length.is_some() && param.param_type != ParamType::String {
        return Err("max_length applies to strings only".into());
    }
    if param.max_length.is_some_and(|n| n == 0 || n > MAX_STRING_LEN) {
        return Err(format!("max_length must be 1..={MAX_STRING_LEN}"));
    }
    if let Some(allowed) = &param.allowed {
        if allowed.is_empty() {
            return Err("the allowed list is empty".into());
        }
        for value in allowed {
            check_value(param, value, false).map_err(|e| format!("allowed value {value}: {e}"))?;
        }
    }
    match (&param.default, param.required) {
        (Some(_), true) => Err("a required parameter cannot have a default".into()),
        (None, false) => Err("an optional parameter needs a default".into()),
        (Some(default), false) => {
            check_value(param, default, true).map(|_| ()).map_err(|e| format!("default: {e}"))
        }
        (None, true) => Ok(()),
    }
}

/// A parameter value the catalog's rules refuse, with the validation error type it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueProblem {
    WrongType(String),
    OutOfRange(String),
    NotInList(String),
    TooLong(String),
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueProblem::WrongType(m)
            | ValueProblem::OutOfRange(m)
            | ValueProblem::NotInList(m)
            | ValueProblem::TooLong(m) => f.write_str(m),
        }
    }
}

/// Checks one value against a parameter's type, range, list and length and returns it in its
/// canonical form (integers as JSON integers, so `4.0` and `4` are the same value and the same
/// cache key). `check_list` is off while checking the allowed list itself.
pub(crate) fn check_value(param: &Param, value: &Value, check_list: bool) -> Result<Value, ValueProblem> {
    let wrong = || ValueProblem::WrongType(format!("expected a {}, got {}", param.param_type, kind(value)));
    let canonical = match param.param_type {
        ParamType::Boolean => Value::Bool(value.as_bool().ok_or_else(wrong)?),
        ParamType::String => {
            let s = value.as_str().ok_or_else(wrong)?;
            if let Some(max) = param.max_length {
                let len = s.chars().count() as u64;
                if len > max {
                    return Err(ValueProblem::TooLong(format!("{len} characters, at most {max} allowed")));
                }
            }
            Value::String(s.to_owned())
        }
        ParamType::Number | ParamType::Integer => {
            let n = value.as_f64().filter(|n| n.is_finite()).ok_or_else(wrong)?;
            if let Some(min) = param.min
                && n < min
            {
                return Err(ValueProblem::OutOfRange(format!("{n} is below the minimum {min}")));
            }
            if let Some(max) = param.max
                && n > max
            {
                return Err(ValueProblem::OutOfRange(format!("{n} is above the maximum {max}")));
            }
            if param.param_type == ParamType::Integer {
                // 2^53: beyond it an f64 no longer holds every integer, so a JavaScript editor
                // could not have meant the value exactly.
                if n.fract() != 0.0 || n.abs() > 9_007_199_254_740_992.0 {
                    return Err(ValueProblem::WrongType(format!("expected an integer, got {n}")));
                }
                Value::from(n as i64)
            } else {
                value.clone()
            }
        }
    };
    if check_list
        && let Some(allowed) = &param.allowed
        && !allowed.iter().any(|a| same_value(a, &canonical))
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(ValueProblem::NotInList(format!("{canonical} is not one of {}", list.join(", "))));
    }
    Ok(canonical)
}

/// Equality that treats `5` and `5.0` as the same number.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builtin() -> &'static LoadedCatalog {
        LoadedCatalog::builtin().expect("the shipped catalog loads")
    }

    #[test]
    fn the_builtin_catalog_loads() {
        let catalog = builtin();
        assert!(catalog.nodes().len() >= 26, "{}", catalog.nodes().len());
        // Every built-in tool and every model the issue lists is there.
        for id in [
            "text-prompt",
            "image-input",
            "dev-image",
            "blur",
            "invert",
            "crop",
            "resize",
            "grayscale",
            "channel-split",
            "threshold",
            "composite",
            "describe-image",
            "flux-pro-1.1-ultra",
            "sd-3.5-large",
            "dall-e-3",
            "gpt-image-1",
            "ideogram-v3",
            "imagen-4",
            "recraft-v3",
            "runway-gen4",
            "luma-ray-2",
            "veo-3",
            "kling-2.1",
            "rodin",
            "trellis",
            "gpt-4.1",
        ] {
            assert!(catalog.get(id).is_some(), "{id} is missing");
        }
        // Built-ins are free and local, except the dev generator, which stands in for a model
        // (1 credit) so the credit flow can be tried with no provider account; AI models name
        // a provider and cost something.
        for node in catalog.nodes() {
            match &node.provider {
                None if node.id == "dev-image" => assert_eq!(node.cost, 1),
                None => assert_eq!(node.cost, 0, "{}", node.id),
                Some(p) => assert!(node.cost > 0 && !p.model.is_empty(), "{}", node.id),
            }
        }
        let providers: BTreeSet<ProviderName> =
            catalog.nodes().iter().filter_map(|n| n.provider.as_ref().map(|p| p.name)).collect();
        assert_eq!(providers.len(), 4, "openai, replicate, fal and stability are all used");
        assert_eq!(catalog.cost("dall-e-3"), Some(8));
        assert_eq!(catalog.cost("nope"), None);
    }

    #[test]
    fn the_catalog_serialises_back_to_the_same_catalog() {
        let json = builtin().to_json();
        assert_eq!(json["nodes"][0]["id"], "text-prompt");
        let again = LoadedCatalog::from_json(&json.to_string()).expect("round trip");
        assert_eq!(again.catalog(), builtin().catalog());
    }

    fn one_node(node: Value) -> Result<LoadedCatalog, CatalogError> {
        LoadedCatalog::from_json(&json!({"version": 1, "nodes": [node]}).to_string())
    }

    fn node_with_params(params: Value) -> Value {
        json!({
            "id": "x", "name": "X", "category": "tool", "cost": 0, "deterministic": true,
            "outputs": [{"name": "out", "type": "text"}], "params": params
        })
    }

    #[test]
    fn broken_entries_are_refused_with_a_reason() {
        let dup = json!({"version": 1, "nodes": [node_with_params(json!([])), node_with_params(json!([]))]});
        let err = LoadedCatalog::from_json(&dup.to_string()).unwrap_err();
        assert!(err.to_string().contains("used by another entry"), "{err}");

        let cases = [
            (json!([{"name": "a", "type": "number", "default": 5, "min": 10, "max": 1}]), "above max"),
            (json!([{"name": "a", "type": "number", "default": 50, "min": 0, "max": 10}]), "default"),
            (json!([{"name": "a", "type": "string", "default": "z", "allowed": ["x", "y"]}]), "not one of"),
            (json!([{"name": "a", "type": "string", "default": "x", "min": 1}]), "min/max"),
            (json!([{"name": "a", "type": "integer", "default": 1.5}]), "integer"),
            (json!([{"name": "a", "type": "integer"}]), "needs a default"),
            (json!([{"name": "a", "type": "integer", "required": true, "default": 1}]), "cannot have"),
            (json!([{"name": "a", "type": "integer", "default": 1, "allowed": []}]), "empty"),
            (
                json!([{"name": "a", "type": "boolean", "default": true}, {"name": "a", "type": "boolean", "default": true}]),
                "repeated",
            ),
        ];
        for (params, expected) in cases {
            let err = one_node(node_with_params(params.clone())).unwrap_err();
            assert!(err.to_string().contains(expected), "{params}: {err}");
        }
        let mut bad_id = node_with_params(json!([]));
        bad_id["id"] = json!("Has Spaces");
        assert!(one_node(bad_id).is_err());
        let mut unknown_field = node_with_params(json!([]));
        unknown_field["colour"] = json!("red");
        assert!(matches!(one_node(unknown_field), Err(CatalogError::Parse(_))));
        let mut pricey = node_with_params(json!([]));
        pricey["cost"] = json!(MAX_COST + 1);
        assert!(one_node(pricey).is_err());
    }

    #[test]
    fn values_are_checked_and_canonicalised() {
        let int = Param {
            name: "n".into(),
            param_type: ParamType::Integer,
            default: Some(json!(1)),
            min: Some(0.0),
            max: Some(10.0),
            allowed: None,
            max_length: None,
            required: false,
            asset: false,
        };
        assert_eq!(check_value(&int, &json!(4.0), true), Ok(json!(4)));
        assert!(matches!(check_value(&int, &json!(4.5), true), Err(ValueProblem::WrongType(_))));
        assert!(matches!(check_value(&int, &json!(11), true), Err(ValueProblem::OutOfRange(_))));
        assert!(matches!(check_value(&int, &json!("4"), true), Err(ValueProblem::WrongType(_))));
        let listed = Param { allowed: Some(vec![json!(5), json!(10)]), min: None, max: None, ..int };
        assert_eq!(check_value(&listed, &json!(10.0), true), Ok(json!(10)));
        assert!(matches!(check_value(&listed, &json!(7), true), Err(ValueProblem::NotInList(_))));
    }
}
