//! The catalog's rules for graph edits in JSON (`dojo_sync_protocol::canvas::edits`): node
//! types exist, parameters exist and hold values of their type and range, handles exist and a
//! wire's output type fits its input. The same checks a run makes (`validate`), made per
//! operation so an agent hears about a mistake when it makes it, not when it runs.

use std::collections::BTreeMap;

use dojo_sync_protocol::canvas::edits::{EditRules, WireEnds};
use serde_json::Value;

use crate::catalog::{LoadedCatalog, NodeType, Port, check_value};

/// [`EditRules`] backed by a catalog.
#[derive(Debug, Clone, Copy)]
pub struct CatalogRules<'c> {
    catalog: &'c LoadedCatalog,
}

impl<'c> CatalogRules<'c> {
    pub fn new(catalog: &'c LoadedCatalog) -> Self {
        Self { catalog }
    }

    fn node_type_of(&self, node_type: &str) -> Result<&'c NodeType, String> {
        self.catalog.get(node_type).ok_or_else(|| format!("unknown node type {node_type:?}"))
    }
}

impl EditRules for CatalogRules<'_> {
    fn node_type(&self, node_type: &str) -> Result<BTreeMap<String, Value>, String> {
        let spec = self.node_type_of(node_type)?;
        // What the editor's palette does: every parameter with a default starts at it.
        Ok(spec.params.iter().filter_map(|p| Some((p.name.clone(), p.default.clone()?))).collect())
    }

    fn param(&self, node_type: &str, name: &str, value: &Value) -> Result<Value, String> {
        let spec = self.node_type_of(node_type)?;
        let param = spec
            .param(name)
            .ok_or_else(|| no_such("parameter", name, spec, spec.params.iter().map(|p| &p.name)))?;
        check_value(param, value, true).map_err(|problem| problem.to_string())
    }

    fn has_param(&self, node_type: &str, name: &str) -> bool {
        self.catalog.get(node_type).is_some_and(|spec| spec.param(name).is_some())
    }

    fn wire(&self, wire: WireEnds<'_>) -> Result<(Option<String>, Option<String>), String> {
        let source = self.node_type_of(wire.source_type)?;
        let target = self.node_type_of(wire.target_type)?;
        let output = port(source, "output", wire.source_handle, &source.outputs)?;
        let input = port(target, "input", wire.target_handle, &target.inputs)?;
        if !output.port_type.fits(input.port_type) {
            return Err(format!(
                "output {:?} ({}) of {} does not fit input {:?} ({}) of {}",
                output.name, output.port_type, source.id, input.name, input.port_type, target.id
            ));
        }
        Ok((Some(output.name.clone()), Some(input.name.clone())))
    }
}

/// The port a wire end names; no name means the node's only port, as in run validation.
fn port<'c>(
    spec: &NodeType,
    what: &str,
    handle: Option<&str>,
    ports: &'c [Port],
) -> Result<&'c Port, String> {
    match (handle, ports) {
        (Some(name), _) => ports
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| no_such(what, name, spec, ports.iter().map(|p| &p.name))),
        (None, [only]) => Ok(only),
        (None, []) => Err(format!("{} has no {what}", spec.id)),
        (None, _) => Err(format!(
            "name the {what} handle: {} has several ({})",
            spec.id,
            ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn no_such<'a>(what: &str, name: &str, spec: &NodeType, names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    let list = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    format!("{} has no {what} {name:?}; it has: {list}", spec.id)
}

#[cfg(test)]
mod tests {
    use dojo_sync_protocol::canvas::CanvasGraph;
    use dojo_sync_protocol::canvas::edits::{EditLimits, EditOp, plan};
    use serde_json::json;

    use super::*;

    fn builtin() -> &'static LoadedCatalog {
        LoadedCatalog::builtin().expect("the shipped catalog loads")
    }

    fn check(batch: Value) -> Result<Vec<String>, Vec<String>> {
        let ops: Vec<EditOp> = serde_json::from_value(batch).expect("ops");
        let mut n = 0;
        let mut ids = |prefix: &str| {
            n += 1;
            format!("{prefix}-{n}")
        };
        plan(&CanvasGraph::default(), &ops, &CatalogRules::new(builtin()), &EditLimits::default(), &mut ids)
            .map(|p| p.created.nodes)
            .map_err(|errors| errors.into_iter().map(|e| format!("{}: {}", e.index, e.message)).collect())
    }

    #[test]
    fn the_catalog_judges_types_params_handles_and_wire_types() {
        let chain = json!([
            {"op": "addNode", "id": "p", "type": "text-prompt", "position": {"x": 0, "y": 0}, "params": {"text": "a fox"}},
            {"op": "addNode", "id": "img", "type": "dev-image", "position": {"x": 300, "y": 0}},
            {"op": "addNode", "id": "b", "type": "blur", "position": {"x": 600, "y": 0}},
            {"op": "connect", "source": "p", "sourceHandle": "text", "target": "img", "targetHandle": "prompt"},
            {"op": "connect", "source": "img", "target": "b"},
        ]);
        assert_eq!(check(chain).expect("a valid chain"), ["p", "img", "b"]);

        let errors = check(json!([
            {"op": "addNode", "id": "p", "type": "text-prompt", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "id": "b", "type": "blur", "position": {"x": 0, "y": 0}},
            {"op": "addNode", "type": "flux-capacitor", "position": {"x": 0, "y": 0}},
            {"op": "setParam", "node": "b", "name": "sigma", "value": "big"},
            {"op": "setParam", "node": "b", "name": "colour", "value": 1},
            {"op": "connect", "source": "p", "target": "b", "targetHandle": "image"},
            {"op": "connect", "source": "b", "sourceHandle": "nope", "target": "p"},
        ]))
        .unwrap_err();
        let text = errors.join("\n");
        assert_eq!(errors.len(), 5, "{text}");
        assert!(text.contains("2: unknown node type \"flux-capacitor\""), "{text}");
        assert!(text.contains("3: parameter \"sigma\": expected a number"), "{text}");
        assert!(text.contains("4: parameter \"colour\": blur has no parameter"), "{text}");
        assert!(
            text.contains("5: output \"text\" (text) of text-prompt does not fit input \"image\" (image)"),
            "{text}"
        );
        assert!(text.contains("6: blur has no output \"nope\""), "{text}");
    }

    #[test]
    fn new_nodes_start_with_the_catalog_defaults() {
        let spec = builtin().get("blur").expect("blur");
        let defaults = CatalogRules::new(builtin()).node_type("blur").expect("known");
        for param in spec.params.iter().filter(|p| p.default.is_some()) {
            assert_eq!(defaults.get(&param.name), param.default.as_ref(), "{}", param.name);
        }
    }
}
