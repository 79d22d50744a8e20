//! The natural-language builder's deterministic planner: "prompt, flux image, then upscale"
//! becomes a chain of catalog nodes, each wired to the previous one where their port types
//! allow. It always works (no model, no network); the LLM planner ([`llm`]) sits in front of it
//! when OpenAI is configured, and falls back to it.
//!
//! The text is split into steps (commas, "then", "and", arrows, semicolons); each step is the
//! catalog entry whose id, name and synonyms share the most words with it (ties: catalog order,
//! so the result is deterministic).

use crate::availability::Availability;
use crate::catalog::{LoadedCatalog, NodeType, PortType};

pub mod llm;

/// Steps one request may add.
pub const MAX_STEPS: usize = 16;
/// Longest accepted text, in bytes.
pub const MAX_TEXT: usize = 1000;

/// Words that say nothing about which node is meant.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "then", "and", "with", "to", "into", "of", "it", "make", "add", "use", "using", "some",
    "node", "step", "finally", "first", "after", "that",
];

/// Extra words per node type, beyond its id and display name.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("text-prompt", &["prompt", "text", "write"]),
    ("image-input", &["upload", "uploaded", "input", "photo", "picture"]),
    ("dev-image", &["dev", "test", "procedural", "placeholder"]),
    ("blur", &["blur", "blurry", "soften", "gaussian"]),
    ("invert", &["invert", "negative"]),
    ("resize", &["upscale", "upscaled", "enlarge", "resize", "scale", "bigger"]),
    ("grayscale", &["grayscale", "greyscale", "gray", "grey", "monochrome"]),
    ("threshold", &["threshold", "mask"]),
    ("describe-image", &["describe", "caption", "analyse", "analyze", "histogram"]),
    ("flux-pro-1.1-ultra", &["flux"]),
    ("dall-e-3", &["dalle", "dall-e"]),
    ("gpt-4.1", &["gpt", "llm", "chat"]),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedEdge {
    /// Indexes into [`Composition::nodes`].
    pub source: usize,
    pub source_handle: String,
    pub target: usize,
    pub target_handle: String,
}

/// A step that named a node this server cannot run, and the runnable node used instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    /// The node type the step named.
    pub asked: String,
    /// The node type planned in its place.
    pub used: String,
    /// Why the named one cannot run here.
    pub reason: String,
}

/// The planned chain: node types in order, and the wires between neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composition {
    pub nodes: Vec<String>,
    pub edges: Vec<ComposedEdge>,
    /// Steps whose node cannot run here, planned as a runnable node of the same kind.
    pub substitutions: Vec<Substitution>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("describe the nodes to add, e.g. \"prompt, flux image, then upscale\"")]
    Empty,
    #[error("the text is longer than {MAX_TEXT} bytes")]
    TooLong,
    #[error("at most {MAX_STEPS} steps at once")]
    TooManySteps,
    #[error("no node matches {0:?}")]
    Unknown(String),
    /// The step names a node this server cannot run, and no runnable node does the same job.
    #[error("{step:?}: {reason}, and no node that runs here does the same")]
    Unavailable { step: String, reason: String },
}

/// Plans `text` over the whole catalog, as if every provider had a key.
pub fn compose(catalog: &LoadedCatalog, text: &str) -> Result<Composition, ComposeError> {
    compose_runnable(catalog, &Availability::all(), text)
}

/// Plans `text` with node types that run here only: a step that names one that does not (the
/// "flux" of "prompt, flux image" with no Replicate key) gets the runnable node that makes the
/// same outputs from the most of the same inputs (the dev image generator), recorded in
/// [`Composition::substitutions`], or is refused with the reason when there is none.
pub fn compose_runnable(
    catalog: &LoadedCatalog,
    availability: &Availability,
    text: &str,
) -> Result<Composition, ComposeError> {
    if text.len() > MAX_TEXT {
        return Err(ComposeError::TooLong);
    }
    let steps = split_steps(text);
    if steps.is_empty() {
        return Err(ComposeError::Empty);
    }
    if steps.len() > MAX_STEPS {
        return Err(ComposeError::TooManySteps);
    }
    let mut nodes: Vec<&NodeType> = Vec::with_capacity(steps.len());
    let mut substitutions = Vec::new();
    for step in &steps {
        let meant = best_match(catalog, step).ok_or_else(|| ComposeError::Unknown(step.clone()))?;
        match availability.unavailable_reason(meant) {
            None => nodes.push(meant),
            Some(reason) => {
                let Some(used) = stand_in(catalog, availability, meant) else {
                    return Err(ComposeError::Unavailable { step: step.clone(), reason });
                };
                substitutions.push(Substitution { asked: meant.id.clone(), used: used.id.clone(), reason });
                nodes.push(used);
            }
        }
    }
    let mut edges = Vec::new();
    for (i, pair) in nodes.windows(2).enumerate() {
        if let [source, target] = pair
            && let Some((out, input)) = first_fit(source, target)
        {
            edges.push(ComposedEdge { source: i, source_handle: out, target: i + 1, target_handle: input });
        }
    }
    Ok(Composition { nodes: nodes.iter().map(|n| n.id.clone()).collect(), edges, substitutions })
}

/// The runnable node that does `meant`'s job: the same output types, inputs that each match one
/// of `meant`'s, and (when `meant` has inputs) at least one of them; the most shared input
/// types wins, ties in catalog order.
fn stand_in<'c>(
    catalog: &'c LoadedCatalog,
    availability: &Availability,
    meant: &NodeType,
) -> Option<&'c NodeType> {
    let types = |ports: &[crate::catalog::Port]| {
        let mut types: Vec<PortType> = ports.iter().map(|p| p.port_type).collect();
        types.sort_by_key(|t| t.to_string());
        types
    };
    let outputs = types(&meant.outputs);
    let inputs = types(&meant.inputs);
    let mut best: Option<(usize, &NodeType)> = None;
    for node in catalog.nodes().iter().filter(|n| availability.runs(n)) {
        if types(&node.outputs) != outputs {
            continue;
        }
        // Each of its inputs takes one of `meant`'s (a compositor's two images do not fit a
        // generator's prompt and image).
        let mut left = inputs.clone();
        let fits = types(&node.inputs).iter().all(|t| match left.iter().position(|l| l == t) {
            Some(at) => {
                left.swap_remove(at);
                true
            }
            None => false,
        });
        if !fits {
            continue;
        }
        let shared = node.inputs.len();
        if !inputs.is_empty() && shared == 0 {
            continue;
        }
        if best.is_none_or(|(score, _)| shared > score) {
            best = Some((shared, node));
        }
    }
    best.map(|(_, node)| node)
}

fn split_steps(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase().replace("->", ",").replace(['→', ';'], ",");
    let mut steps = Vec::new();
    for part in lowered.split(',') {
        // "then" and "and" separate steps too ("blur then upscale"); a step that is only
        // stopwords (", then upscale" leaves "then") is dropped.
        let mut current: Vec<&str> = Vec::new();
        for word in part.split_whitespace() {
            if word == "then" || word == "and" {
                if !current.is_empty() {
                    steps.push(current.join(" "));
                    current.clear();
                }
            } else {
                current.push(word);
            }
        }
        if !current.is_empty() {
            steps.push(current.join(" "));
        }
    }
    steps.retain(|s| !words(s).is_empty());
    steps
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '.')
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(w))
        .map(str::to_owned)
        .collect()
}

fn keywords(node: &NodeType) -> Vec<String> {
    let mut out: Vec<String> = words(&node.id.replace('-', " "));
    out.extend(words(&node.name.to_lowercase()));
    out.extend(
        SYNONYMS
            .iter()
            .filter(|(id, _)| *id == node.id)
            .flat_map(|(_, extra)| extra.iter().map(|w| (*w).to_owned())),
    );
    out
}

fn best_match<'c>(catalog: &'c LoadedCatalog, step: &str) -> Option<&'c NodeType> {
    let step_words = words(step);
    let mut best: Option<(usize, &NodeType)> = None;
    for node in catalog.nodes() {
        let keys = keywords(node);
        // "image" alone matches half the catalog: it counts only when nothing else does.
        let score: usize =
            step_words.iter().filter(|w| keys.contains(w)).map(|w| if w == "image" { 1 } else { 10 }).sum();
        if score > best.map_or(0, |(s, _)| s) {
            best = Some((score, node));
        }
    }
    best.map(|(_, node)| node)
}

/// The first output of `source` and the first free input of `target` of a compatible type.
fn first_fit(source: &NodeType, target: &NodeType) -> Option<(String, String)> {
    for output in &source.outputs {
        for input in &target.inputs {
            if output.port_type == input.port_type || input.port_type == PortType::Any {
                return Some((output.name.clone(), input.name.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> &'static LoadedCatalog {
        LoadedCatalog::builtin().expect("catalog")
    }

    #[test]
    fn the_docks_example_becomes_a_wired_chain() {
        let plan = compose(catalog(), "prompt, flux image, then upscale").expect("composed");
        assert_eq!(plan.nodes, ["text-prompt", "flux-pro-1.1-ultra", "resize"]);
        assert_eq!(
            plan.edges,
            [
                ComposedEdge {
                    source: 0,
                    source_handle: "text".into(),
                    target: 1,
                    target_handle: "prompt".into()
                },
                ComposedEdge {
                    source: 1,
                    source_handle: "image".into(),
                    target: 2,
                    target_handle: "image".into()
                },
            ]
        );
    }

    #[test]
    fn then_and_arrows_separate_steps() {
        let plan = compose(catalog(), "a prompt -> dev image then blur and grayscale").expect("composed");
        assert_eq!(plan.nodes, ["text-prompt", "dev-image", "blur", "grayscale"]);
        assert_eq!(plan.edges.len(), 3);
    }

    #[test]
    fn incompatible_neighbours_are_left_unwired() {
        // An image describer's outputs are text and numbers; a blur needs an image.
        let plan = compose(catalog(), "dev image, describe, blur").expect("composed");
        assert_eq!(plan.nodes, ["dev-image", "describe-image", "blur"]);
        assert_eq!(plan.edges.len(), 1, "{plan:?}");
    }

    #[test]
    fn a_node_without_its_providers_key_is_never_planned() {
        let none = Availability::builtin_only();
        let plan = compose_runnable(catalog(), &none, "prompt, flux image, then upscale").expect("composed");
        assert_eq!(plan.nodes, ["text-prompt", "dev-image", "resize"]);
        assert_eq!(plan.edges.len(), 2, "still a wired chain: {plan:?}");
        assert_eq!(plan.substitutions.len(), 1);
        assert_eq!(plan.substitutions[0].asked, "flux-pro-1.1-ultra");
        assert_eq!(plan.substitutions[0].used, "dev-image");
        // Nothing built in makes a video: refused, with the reason.
        match compose_runnable(catalog(), &none, "prompt, veo video") {
            Err(ComposeError::Unavailable { reason, .. }) => assert!(reason.contains("FAL_KEY"), "{reason}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // An LLM node has no built-in stand-in either (a text prompt does not answer one).
        assert!(matches!(compose_runnable(catalog(), &none, "chat"), Err(ComposeError::Unavailable { .. })));
        // Every planned node runs.
        for text in ["dalle picture then blur", "prompt, imagen, grayscale", "recraft then invert"] {
            let plan = compose_runnable(catalog(), &none, text).expect(text);
            assert!(plan.nodes.iter().all(|id| catalog().get(id).is_some_and(|n| none.runs(n))), "{plan:?}");
        }
    }

    #[test]
    fn nonsense_and_bounds_are_refused_with_the_reason() {
        assert_eq!(compose(catalog(), "  , then ,"), Err(ComposeError::Empty));
        assert_eq!(compose(catalog(), "prompt, frobnicate"), Err(ComposeError::Unknown("frobnicate".into())));
        assert_eq!(compose(catalog(), &"blur, ".repeat(MAX_STEPS + 1)), Err(ComposeError::TooManySteps));
        assert_eq!(compose(catalog(), &"x".repeat(MAX_TEXT + 1)), Err(ComposeError::TooLong));
    }
}
