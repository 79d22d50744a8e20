//! App mode's form (docs/apps.md): which parameters a runner fills in and which outputs they
//! see, checked against the published graph and the catalog; and the graph a runner's values
//! make of the snapshot. Pure: no I/O, so the rules are tested without a server.
//!
//! Inputs and outputs are named to runners by keys (`in1`, `out1`…), never by node ids: an
//! output's node is not an input, and nothing but the chosen inputs may leave the server.

use std::collections::{BTreeMap, HashSet};

use dojo_executor::{LoadedCatalog, ValidationErrors};
use dojo_sync_protocol::canvas::CanvasGraph;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bounds of a published form.
pub const MAX_INPUTS: usize = 20;
pub const MAX_OUTPUTS: usize = 10;
pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub const MAX_LABEL_CHARS: usize = 80;
/// How much of a name the caller sent is echoed back in a refusal.
const MAX_ECHO: usize = 64;

/// One parameter the runner fills in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormInput {
    /// What the runner's values are keyed by (`in1`…).
    pub key: String,
    pub node: String,
    pub param: String,
    pub label: String,
}

/// One output the runner sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormOutput {
    /// What the runner sees it as (`out1`…).
    pub key: String,
    pub node: String,
    pub output: String,
    pub label: String,
}

/// The chosen inputs and outputs, as stored with the app.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppForm {
    pub inputs: Vec<FormInput>,
    pub outputs: Vec<FormOutput>,
}

/// What the publisher asks for, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct FormRequest {
    pub title: String,
    pub description: String,
    /// (node, param, label)
    pub inputs: Vec<(String, String, String)>,
    /// (node, output, label)
    pub outputs: Vec<(String, String, String)>,
}

/// A refusal that names the field it is about (`inputs[2].param`…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

fn echo(text: &str) -> String {
    text.chars().take(MAX_ECHO).collect()
}

/// One line of text, trimmed: `1..=max` characters, no control characters.
fn line(field: &str, text: &str, max: usize) -> Result<String, FieldError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(refuse(field, format!("1 to {max} characters on one line")));
    }
    Ok(text.to_owned())
}

/// Checked title and description, trimmed.
pub fn check_text(request: &FormRequest) -> Result<(String, String), FieldError> {
    let title = line("title", &request.title, MAX_TITLE_CHARS)?;
    let description = request.description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS
        || description.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(refuse("description", format!("at most {MAX_DESCRIPTION_CHARS} characters of text")));
    }
    Ok((title, description.to_owned()))
}

/// The form, if every input names a node of `graph` and a parameter its catalog entry has, and
/// every output a node and one of its catalog outputs, within the bounds.
pub fn check_form(
    catalog: &LoadedCatalog,
    graph: &CanvasGraph,
    request: &FormRequest,
) -> Result<AppForm, FieldError> {
    if request.inputs.len() > MAX_INPUTS {
        return Err(refuse("inputs", format!("at most {MAX_INPUTS} inputs")));
    }
    if request.outputs.is_empty() || request.outputs.len() > MAX_OUTPUTS {
        return Err(refuse("outputs", format!("1 to {MAX_OUTPUTS} outputs")));
    }
    let node_type = |field: String, id: &str| {
        let node = graph
            .nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| refuse(field.clone(), format!("no node `{}` in the workflow", echo(id))))?;
        catalog
            .get(&node.node_type)
            .ok_or_else(|| refuse(field, format!("node `{}` has a type the catalog does not know", echo(id))))
    };
    let mut form = AppForm::default();
    let mut seen = HashSet::new();
    for (i, (node, param, label)) in request.inputs.iter().enumerate() {
        let entry = node_type(format!("inputs[{i}].node"), node)?;
        if entry.param(param).is_none() {
            return Err(refuse(
                format!("inputs[{i}].param"),
                format!("`{}` is not a parameter of `{}` nodes", echo(param), entry.id),
            ));
        }
        if !seen.insert((node.as_str(), param.as_str())) {
            return Err(refuse(format!("inputs[{i}]"), "this parameter is an input already"));
        }
        let label = line(&format!("inputs[{i}].label"), label, MAX_LABEL_CHARS)?;
        form.inputs.push(FormInput {
            key: format!("in{}", i + 1),
            node: node.clone(),
            param: param.clone(),
            label,
        });
    }
    let mut seen = HashSet::new();
    for (i, (node, output, label)) in request.outputs.iter().enumerate() {
        let entry = node_type(format!("outputs[{i}].node"), node)?;
        if entry.output(output).is_none() {
            return Err(refuse(
                format!("outputs[{i}].output"),
                format!("`{}` is not an output of `{}` nodes", echo(output), entry.id),
            ));
        }
        if !seen.insert((node.as_str(), output.as_str())) {
            return Err(refuse(format!("outputs[{i}]"), "this output is chosen already"));
        }
        let label = line(&format!("outputs[{i}].label"), label, MAX_LABEL_CHARS)?;
        form.outputs.push(FormOutput {
            key: format!("out{}", i + 1),
            node: node.clone(),
            output: output.clone(),
            label,
        });
    }
    Ok(form)
}

/// The graph a run of the app executes: the snapshot with the runner's `values` (by input key)
/// in place of the published ones. Keys the form does not have, and values that are not a
/// plain string, number, boolean or null, are refused; absent keys keep the published value.
pub fn apply_values(
    graph: &CanvasGraph,
    form: &AppForm,
    values: &BTreeMap<String, Value>,
) -> Result<CanvasGraph, FieldError> {
    let mut graph = graph.clone();
    for (key, value) in values {
        let Some(input) = form.inputs.iter().find(|input| input.key == *key) else {
            return Err(refuse(format!("inputs.{}", echo(key)), "this app has no such input"));
        };
        if matches!(value, Value::Array(_) | Value::Object(_)) {
            return Err(refuse(format!("inputs.{key}"), "a string, number, boolean or null"));
        }
        let node =
            graph.nodes.iter_mut().find(|node| node.id == input.node).ok_or_else(|| {
                refuse(format!("inputs.{key}"), "this input's step is missing from the app")
            })?;
        if value.is_null() {
            node.data.remove(&input.param);
        } else {
            node.data.insert(input.param.clone(), value.clone());
        }
    }
    Ok(graph)
}

/// How a validation of the app's graph is told to its runner: the first error on one of the
/// inputs, by its key (with the catalog's message); `None` when every error is elsewhere in
/// the graph (the app as published cannot run: nothing the runner sends would help).
pub fn input_error(form: &AppForm, errors: &ValidationErrors) -> Option<FieldError> {
    for input in &form.inputs {
        let Some(node_errors) = errors.node_errors.get(input.node.as_str()) else { continue };
        if let Some(issue) =
            node_errors.errors.iter().find(|e| e.details.as_deref() == Some(input.param.as_str()))
        {
            return Some(refuse(
                format!("inputs.{}", input.key),
                format!("{}: {}", input.label, issue.message),
            ));
        }
    }
    None
}

/// An input field as a runner sees it: the catalog's type and bounds, and as the default the
/// value published on the canvas (else the catalog's default). Nothing else of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InputField {
    /// What the value is sent as in `inputs`.
    pub key: String,
    pub label: String,
    /// `string`, `number`, `integer` or `boolean`.
    #[serde(rename = "type")]
    pub param_type: String,
    pub required: bool,
    /// The published value, else the catalog's default; null when neither.
    pub default: Value,
    #[schema(required = true)]
    pub min: Option<f64>,
    #[schema(required = true)]
    pub max: Option<f64>,
    /// When present, the value must be one of these.
    #[schema(required = true)]
    pub allowed: Option<Vec<Value>>,
    #[schema(required = true)]
    pub max_length: Option<u64>,
    /// The value is an asset id: upload an image (`POST /api/assets`) and send its id.
    pub asset: bool,
}

/// An output as a runner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputField {
    pub key: String,
    pub label: String,
    /// The catalog's port type: `image`, `text`, `video`, `mesh`, `number`, `any`.
    #[serde(rename = "type")]
    pub port_type: String,
}

pub fn input_fields(catalog: &LoadedCatalog, graph: &CanvasGraph, form: &AppForm) -> Vec<InputField> {
    form.inputs
        .iter()
        .filter_map(|input| {
            let node = graph.nodes.iter().find(|n| n.id == input.node)?;
            let param = catalog.get(&node.node_type)?.param(&input.param)?;
            let published = node.data.get(&input.param).filter(|v| !v.is_null()).cloned();
            Some(InputField {
                key: input.key.clone(),
                label: input.label.clone(),
                param_type: param.param_type.to_string(),
                required: param.required,
                default: published.or_else(|| param.default.clone()).unwrap_or(Value::Null),
                min: param.min,
                max: param.max,
                allowed: param.allowed.clone(),
                max_length: param.max_length,
                asset: param.asset,
            })
        })
        .collect()
}

pub fn output_fields(catalog: &LoadedCatalog, graph: &CanvasGraph, form: &AppForm) -> Vec<OutputField> {
    form.outputs
        .iter()
        .map(|output| {
            let port_type = graph
                .nodes
                .iter()
                .find(|n| n.id == output.node)
                .and_then(|node| catalog.get(&node.node_type))
                .and_then(|entry| entry.output(&output.output))
                .and_then(|port| serde_json::to_value(port.port_type).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "any".into());
            OutputField { key: output.key.clone(), label: output.label.clone(), port_type }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use dojo_sync_protocol::canvas::{CanvasNode, Position};

    use super::*;

    fn graph() -> CanvasGraph {
        let node = |id: &str, node_type: &str, data: &[(&str, Value)]| CanvasNode {
            id: id.into(),
            node_type: node_type.into(),
            position: Position { x: 0.0, y: 0.0 },
            data: data.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        };
        CanvasGraph {
            nodes: vec![node(
                "gen",
                "dev-image",
                &[("prompt", Value::from("a fox")), ("seed", Value::from(3))],
            )],
            edges: Vec::new(),
        }
    }

    fn catalog() -> &'static LoadedCatalog {
        LoadedCatalog::builtin().expect("the built-in catalog loads")
    }

    fn request(inputs: &[(&str, &str, &str)], outputs: &[(&str, &str, &str)]) -> FormRequest {
        let own = |v: &[(&str, &str, &str)]| {
            v.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect()
        };
        FormRequest {
            title: "Fox".into(),
            description: String::new(),
            inputs: own(inputs),
            outputs: own(outputs),
        }
    }

    #[test]
    fn a_form_names_nodes_parameters_and_outputs_that_exist() {
        let form = check_form(
            catalog(),
            &graph(),
            &request(&[("gen", "prompt", "Prompt")], &[("gen", "image", "Image")]),
        )
        .expect("a good form");
        assert_eq!(form.inputs[0].key, "in1");
        assert_eq!(form.outputs[0].key, "out1");
        let refused = |r: FormRequest| check_form(catalog(), &graph(), &r).expect_err("refused").field;
        assert_eq!(refused(request(&[("nope", "prompt", "P")], &[("gen", "image", "I")])), "inputs[0].node");
        assert_eq!(refused(request(&[("gen", "nope", "P")], &[("gen", "image", "I")])), "inputs[0].param");
        assert_eq!(refused(request(&[], &[("gen", "nope", "I")])), "outputs[0].output");
        assert_eq!(refused(request(&[], &[])), "outputs");
        assert_eq!(refused(request(&[("gen", "prompt", "")], &[("gen", "image", "I")])), "inputs[0].label");
        let twice = [("gen", "prompt", "P"), ("gen", "prompt", "Q")];
        assert_eq!(refused(request(&twice, &[("gen", "image", "I")])), "inputs[1]");
        let many: Vec<(&str, &str, &str)> = (0..=MAX_INPUTS).map(|_| ("gen", "prompt", "P")).collect();
        assert_eq!(refused(request(&many, &[("gen", "image", "I")])), "inputs");
    }

    #[test]
    fn values_replace_only_inputs_and_unknown_keys_are_refused() {
        let form = check_form(
            catalog(),
            &graph(),
            &request(&[("gen", "prompt", "Prompt")], &[("gen", "image", "I")]),
        )
        .expect("a good form");
        let values = BTreeMap::from([("in1".to_owned(), Value::from("a cat"))]);
        let built = apply_values(&graph(), &form, &values).expect("applied");
        assert_eq!(built.nodes[0].data["prompt"], "a cat");
        assert_eq!(built.nodes[0].data["seed"], 3);
        let unknown = BTreeMap::from([("in9".to_owned(), Value::from(1))]);
        assert_eq!(apply_values(&graph(), &form, &unknown).expect_err("refused").field, "inputs.in9");
        let nested = BTreeMap::from([("in1".to_owned(), serde_json::json!({"a": 1}))]);
        assert!(apply_values(&graph(), &form, &nested).is_err());
    }
}
