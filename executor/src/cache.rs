//! The execution cache: a node whose inputs did not change is not run again.
//!
//! The key follows ComfyUI's rule: a hash of the node's type, its parameters and its ancestors'
//! keys, so it is known before the node runs, and a change anywhere upstream (a new seed, a new
//! prompt) changes the key of every node downstream. Two refinements:
//!
//! - Non-deterministic nodes are never looked up or stored. What they feed downstream is
//!   identified by a hash of the outputs they actually produced instead of a key, so a node
//!   after them is cached only when it receives exactly the same thing again.
//! - The catalog version and the node type's own entry are part of the key, so changing a
//!   node's definition invalidates what it cached.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::NodeType;
use crate::value::Outputs;

/// Hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub String);

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an input receives, for the purpose of keys: the producing node's key, or (when that
/// node is not deterministic) a hash of what it produced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    Key(CacheKey),
    Produced(String),
}

/// The key of one node. `inputs` maps each wired input to (producing output, upstream identity).
pub fn node_key(
    catalog_version: u32,
    node_type: &NodeType,
    params: &BTreeMap<String, Value>,
    inputs: &BTreeMap<String, (String, Upstream)>,
) -> CacheKey {
    let mut h = Sha256::new();
    // Every field is length-prefixed so that no two different tuples hash the same bytes.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"dojo-cache-v1");
    field(&catalog_version.to_le_bytes());
    let mut definition = Vec::new();
    write_canonical(&serde_json::to_value(node_type).unwrap_or(Value::Null), &mut definition);
    field(&definition);
    let mut p = Vec::new();
    write_canonical(&Value::Object(params.iter().map(|(k, v)| (k.clone(), v.clone())).collect()), &mut p);
    field(&p);
    for (input, (output, upstream)) in inputs {
        field(input.as_bytes());
        field(output.as_bytes());
        match upstream {
            Upstream::Key(k) => {
                field(b"key");
                field(k.0.as_bytes());
            }
            Upstream::Produced(hash) => {
                field(b"produced");
                field(hash.as_bytes());
            }
        }
    }
    CacheKey(hex::encode(h.finalize()))
}

/// A hash of outputs, to identify what a non-deterministic node produced.
pub fn outputs_hash(outputs: &Outputs) -> String {
    let mut bytes = Vec::new();
    write_canonical(&serde_json::to_value(outputs).unwrap_or(Value::Null), &mut bytes);
    hex::encode(Sha256::digest(&bytes))
}

/// JSON with sorted object keys and integral numbers written as integers, so that values equal
/// to a user (`{"a":1,"b":2.0}` and `{"b":2,"a":1}`) hash the same whatever map order or number
/// representation the document or serde_json's features produced.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                out.extend((f as i64).to_string().as_bytes())
            }
            _ => out.extend(n.to_string().as_bytes()),
        },
        other => out.extend(other.to_string().as_bytes()),
    }
}

/// Where cached outputs live. Entries are references (asset ids, short text), so they are small.
///
/// Entries live in a `scope` (the server uses the user whose run produced them): a cache hit
/// hands out the earlier outputs for free, and one user must not get another's paid results,
/// or learn what they generated, by building the same graph.
#[async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, scope: &str, key: &CacheKey) -> Option<Outputs>;
    async fn put(&self, scope: &str, key: &CacheKey, outputs: &Outputs);
}

/// An in-process cache holding at most `capacity` entries, evicting the oldest inserted.
pub struct MemoryCache {
    capacity: usize,
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    entries: HashMap<(String, CacheKey), Outputs>,
    order: VecDeque<(String, CacheKey)>,
}

impl MemoryCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::default() }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a cache; keep serving.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(10_000)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, scope: &str, key: &CacheKey) -> Option<Outputs> {
        self.lock().entries.get(&(scope.to_owned(), key.clone())).cloned()
    }

    async fn put(&self, scope: &str, key: &CacheKey, outputs: &Outputs) {
        let mut inner = self.lock();
        let entry = (scope.to_owned(), key.clone());
        if inner.entries.insert(entry.clone(), outputs.clone()).is_none() {
            inner.order.push_back(entry);
        }
        while inner.entries.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::LoadedCatalog;
    use crate::value::OutputValue;
    use serde_json::json;

    fn blur() -> &'static NodeType {
        LoadedCatalog::builtin().unwrap().get("blur").unwrap()
    }

    fn params(v: Value) -> BTreeMap<String, Value> {
        v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    #[test]
    fn keys_depend_on_type_params_and_upstream_only() {
        let up =
            |k: &str| BTreeMap::from([("image".into(), ("image".into(), Upstream::Key(CacheKey(k.into()))))]);
        let a = node_key(1, blur(), &params(json!({"sigma": 2.0})), &up("x"));
        assert_eq!(a, node_key(1, blur(), &params(json!({"sigma": 2})), &up("x")), "2.0 == 2");
        assert_ne!(a, node_key(1, blur(), &params(json!({"sigma": 3})), &up("x")));
        assert_ne!(a, node_key(1, blur(), &params(json!({"sigma": 2})), &up("y")));
        assert_ne!(a, node_key(2, blur(), &params(json!({"sigma": 2})), &up("x")));
        let invert = LoadedCatalog::builtin().unwrap().get("invert").unwrap();
        assert_ne!(a, node_key(1, invert, &params(json!({"sigma": 2})), &up("x")));
        let produced = BTreeMap::from([("image".into(), ("image".into(), Upstream::Produced("x".into())))]);
        assert_ne!(a, node_key(1, blur(), &params(json!({"sigma": 2})), &produced));
    }

    #[test]
    fn canonical_json_ignores_key_order_and_number_spelling() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_canonical(&json!({"b": [1.0, "x"], "a": {"z": true, "y": null}}), &mut a);
        write_canonical(&json!({"a": {"y": null, "z": true}, "b": [1, "x"]}), &mut b);
        assert_eq!(a, b);
        assert_eq!(String::from_utf8(a).unwrap(), r#"{"a":{"y":null,"z":true},"b":[1,"x"]}"#);
    }

    #[tokio::test]
    async fn the_memory_cache_evicts_the_oldest_entry() {
        let cache = MemoryCache::new(2);
        let out = |t: &str| Outputs::from([("text".into(), OutputValue::text(t))]);
        for (k, v) in [("1", "a"), ("2", "b"), ("3", "c")] {
            cache.put("", &CacheKey(k.into()), &out(v)).await;
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("", &CacheKey("1".into())).await, None);
        assert_eq!(cache.get("", &CacheKey("3".into())).await, Some(out("c")));
        assert_eq!(cache.get("someone else", &CacheKey("3".into())).await, None, "scopes are apart");
    }
}
