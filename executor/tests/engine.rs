//! The engine end to end, with the real built-in nodes, a real asset directory and the
//! in-memory cache. No runner is faked: failures come from real conditions (an unconfigured
//! provider, a missing asset, a crop outside the image), slowness from real pixel work.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dojo_executor::builtins::imaging;
use dojo_executor::{
    AssetStore, Engine, EngineConfig, ExecutionPlan, GraphLimits, LoadedCatalog, MemoryCache, NodeOutcome,
    NodeState, ObjectAssetStore, OutputValue, RecordingObserver, RunScope, RunSummary, estimate, validate,
};
use dojo_ids::{NodeId, RunId};
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasGraph, CanvasNode, Position};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn node(id: &str, node_type: &str, data: Value) -> CanvasNode {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    CanvasNode { id: id.into(), node_type: node_type.into(), position: Position { x: 0.0, y: 0.0 }, data }
}

fn edge(source: &str, sh: &str, target: &str, th: &str) -> CanvasEdge {
    CanvasEdge {
        id: format!("{source}.{sh}-{target}.{th}"),
        source: source.into(),
        source_handle: Some(sh.into()),
        target: target.into(),
        target_handle: Some(th.into()),
    }
}

fn catalog() -> LoadedCatalog {
    LoadedCatalog::builtin().expect("catalog").clone()
}

struct Harness {
    _dir: tempfile::TempDir,
    assets: Arc<ObjectAssetStore>,
    cache: Arc<MemoryCache>,
    engine: Engine,
    catalog: LoadedCatalog,
}

fn harness_with(catalog: LoadedCatalog, config: EngineConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let assets = Arc::new(ObjectAssetStore::local(dir.path()).unwrap());
    let cache = Arc::new(MemoryCache::default());
    let engine = Engine::new(Arc::new(catalog.clone()), assets.clone(), cache.clone()).with_config(config);
    Harness { _dir: dir, assets, cache, engine, catalog }
}

fn harness() -> Harness {
    harness_with(catalog(), EngineConfig::default())
}

impl Harness {
    fn plan(&self, graph: &CanvasGraph, targets: Option<&[&str]>) -> ExecutionPlan {
        validate(&self.catalog, graph, targets, &GraphLimits::default()).expect("valid graph")
    }

    async fn run(&self, graph: &CanvasGraph) -> (RunSummary, RecordingObserver) {
        let plan = self.plan(graph, None);
        let observer = RecordingObserver::default();
        let summary =
            self.engine.run(&RunId::from("run-1"), &plan, &observer, &CancellationToken::new()).await;
        (summary, observer)
    }

    async fn png(&self, summary: &RunSummary, node: &str, output: &str) -> image::RgbaImage {
        let outputs = summary.outputs(node).unwrap_or_else(|| panic!("{node} has outputs: {summary:?}"));
        let asset = outputs[output].as_asset().expect("an asset");
        assert_eq!(asset.content_type, "image/png");
        let stored = self.assets.get(&asset.id).await.unwrap();
        imaging::decode_png(&stored.bytes).expect("a valid PNG")
    }
}

/// prompt → dev image → blur → upscale: the issue's story.
fn story(seed: u64) -> CanvasGraph {
    CanvasGraph {
        nodes: vec![
            node("prompt", "text-prompt", json!({"text": "a red fox in the snow"})),
            node("gen", "dev-image", json!({"seed": seed, "width": 64, "height": 48})),
            node("blur", "blur", json!({"sigma": 1.5})),
            node("up", "resize", json!({"scale": 2})),
        ],
        edges: vec![
            edge("prompt", "text", "gen", "prompt"),
            edge("gen", "image", "blur", "image"),
            edge("blur", "image", "up", "image"),
        ],
    }
}

fn state_names(observer: &RecordingObserver) -> BTreeMap<NodeId, Vec<&'static str>> {
    let mut out: BTreeMap<NodeId, Vec<&'static str>> = BTreeMap::new();
    for e in observer.events() {
        out.entry(e.node_id.clone()).or_default().push(e.state.name());
    }
    out
}

#[tokio::test]
async fn the_story_runs_end_to_end_and_reports_every_state() {
    let h = harness();
    let (summary, observer) = h.run(&story(1)).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert_eq!(summary.charged, 1, "the dev generator costs 1 credit");
    assert_eq!(summary.outputs("prompt").unwrap()["text"], OutputValue::text("a red fox in the snow"));
    let up = h.png(&summary, "up", "image").await;
    assert_eq!(up.dimensions(), (128, 96));

    // Every node is queued first (in plan order), then runs; image nodes report progress.
    let events = observer.events();
    let queued: Vec<&str> = events.iter().take(4).map(|e| e.node_id.as_str()).collect();
    assert_eq!(queued, ["prompt", "gen", "blur", "up"]);
    assert!(events.iter().take(4).all(|e| e.state == NodeState::Queued));
    assert!(events.iter().all(|e| e.run_id == "run-1"));
    let states = state_names(&observer);
    assert_eq!(states["prompt"], ["queued", "running", "succeeded"]);
    assert_eq!(states["blur"], ["queued", "running", "running", "succeeded"]);
    let progress: Vec<_> = events
        .iter()
        .filter(|e| e.node_id == "blur")
        .filter_map(|e| match e.state {
            NodeState::Running { progress } => Some(progress),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [0, 50]);
    // A node starts only after its input's producer succeeded.
    let position = |node: &str, state: &str| {
        events.iter().position(|e| e.node_id == node && e.state.name() == state).unwrap()
    };
    assert!(position("gen", "succeeded") < position("blur", "running"));
    assert!(position("blur", "succeeded") < position("up", "running"));

    // Outputs are references, small enough for the document.
    let json = serde_json::to_string(summary.outputs("up").unwrap()).unwrap();
    assert!(json.len() < 300, "{json}");
}

#[tokio::test]
async fn the_dev_generator_is_deterministic_across_engines() {
    let (a, b) = (harness(), harness());
    let (sa, _) = a.run(&story(7)).await;
    let (sb, _) = b.run(&story(7)).await;
    assert_eq!(sa.outputs("gen"), sb.outputs("gen"), "same prompt and seed, same PNG bytes");
    let (sc, _) = b.run(&story(8)).await;
    assert_ne!(sa.outputs("gen"), sc.outputs("gen"));
}

#[tokio::test]
async fn every_builtin_tool_computes() {
    let h = harness();
    // An uploaded 8×4 image: left half red, right half white, fully opaque.
    let upload = image::RgbaImage::from_fn(8, 4, |x, _| {
        if x < 4 { image::Rgba([255, 0, 0, 255]) } else { image::Rgba([255, 255, 255, 255]) }
    });
    let png = imaging::encode_png(&image::DynamicImage::ImageRgba8(upload)).unwrap();
    let asset = h.assets.put(png, "image/png").await.unwrap();
    let g = CanvasGraph {
        nodes: vec![
            node("in", "image-input", json!({"asset": asset.id})),
            node("inv", "invert", json!({})),
            node("crop", "crop", json!({"x": 2, "y": 1, "width": 4, "height": 2})),
            node("gray", "grayscale", json!({})),
            node("split", "channel-split", json!({})),
            node("mask", "threshold", json!({"level": 200})),
            node("small", "resize", json!({"width": 4})),
            node("comp", "composite", json!({"x": 4, "y": 0, "opacity": 1.0})),
            node("desc", "describe-image", json!({})),
        ],
        edges: vec![
            edge("in", "image", "inv", "image"),
            edge("in", "image", "crop", "image"),
            edge("in", "image", "gray", "image"),
            edge("in", "image", "split", "image"),
            edge("in", "image", "mask", "image"),
            edge("in", "image", "small", "image"),
            edge("in", "image", "comp", "background"),
            edge("inv", "image", "comp", "foreground"),
            edge("in", "image", "desc", "image"),
        ],
    };
    let (summary, _) = h.run(&g).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert_eq!(summary.outputs("in").unwrap()["image"].as_asset(), Some(&asset));

    let inv = h.png(&summary, "inv", "image").await;
    assert_eq!(inv.get_pixel(0, 0), &image::Rgba([0, 255, 255, 255]));
    let crop = h.png(&summary, "crop", "image").await;
    assert_eq!(crop.dimensions(), (4, 2));
    assert_eq!(crop.get_pixel(0, 0)[1], 0, "x=2 is red");
    assert_eq!(crop.get_pixel(3, 0)[1], 255, "x=5 is white");
    let gray = h.png(&summary, "gray", "image").await;
    assert!(gray.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    let red = h.png(&summary, "split", "r").await;
    let green = h.png(&summary, "split", "g").await;
    assert_eq!((red.get_pixel(0, 0)[0], green.get_pixel(0, 0)[0]), (255, 0));
    let mask = h.png(&summary, "mask", "mask").await;
    assert_eq!((mask.get_pixel(0, 0)[0], mask.get_pixel(7, 0)[0]), (0, 255));
    assert_eq!(h.png(&summary, "small", "image").await.dimensions(), (4, 2));
    let comp = h.png(&summary, "comp", "image").await;
    // The inverted image's left (cyan) half lands on the right half.
    assert_eq!(comp.get_pixel(0, 0), &image::Rgba([255, 0, 0, 255]));
    assert_eq!(comp.get_pixel(5, 0), &image::Rgba([0, 255, 255, 255]));

    let desc = summary.outputs("desc").unwrap();
    assert_eq!(desc["width"], OutputValue::Number { value: 8.0 });
    let json: Value = serde_json::from_str(desc["json"].as_text().unwrap()).unwrap();
    assert_eq!(json["height"], 4);
    assert_eq!(json["mean_rgba"], json!([255.0, 127.5, 127.5, 255.0]));
    assert_eq!(json["luminance_histogram"][15], 16);
}

#[tokio::test]
async fn a_failure_skips_its_descendants_and_independent_branches_finish() {
    let h = harness();
    let mut g = story(1);
    // A paid branch whose provider is not configured here, and a tool fed by it.
    g.nodes.push(node("dalle", "dall-e-3", json!({})));
    g.nodes.push(node("dalle-blur", "blur", json!({})));
    g.nodes.push(node("dalle-desc", "describe-image", json!({})));
    g.edges.push(edge("prompt", "text", "dalle", "prompt"));
    g.edges.push(edge("dalle", "image", "dalle-blur", "image"));
    g.edges.push(edge("dalle-blur", "image", "dalle-desc", "image"));
    // A node that fails while running: its crop lies outside the 64×48 image.
    g.nodes.push(node("bad-crop", "crop", json!({"x": 1000})));
    g.nodes.push(node("after-crop", "invert", json!({})));
    g.edges.push(edge("gen", "image", "bad-crop", "image"));
    g.edges.push(edge("bad-crop", "image", "after-crop", "image"));
    // An upload that is not in the store.
    g.nodes.push(node("missing", "image-input", json!({"asset": "0".repeat(64)})));

    let plan = h.plan(&g, None);
    assert_eq!(estimate(&h.catalog, &plan), 8 + 1, "DALL·E and the dev generator cost");
    let observer = RecordingObserver::default();
    let summary = h.engine.run(&RunId::from("r"), &plan, &observer, &CancellationToken::new()).await;
    assert_eq!(summary.charged, 1, "only the dev generator succeeded among paid nodes");

    let states = state_names(&observer);
    assert_eq!(states["dalle"], ["queued", "failed"]);
    assert_eq!(states["dalle-blur"], ["queued", "skipped"]);
    assert_eq!(states["dalle-desc"], ["queued", "skipped"]);
    assert_eq!(states["bad-crop"], ["queued", "running", "failed"]);
    assert_eq!(states["after-crop"], ["queued", "skipped"]);
    assert_eq!(states["missing"], ["queued", "running", "failed"]);
    assert_eq!(states["up"].last(), Some(&"succeeded"), "the independent branch finished");

    let NodeOutcome::Failed { error } = &summary.nodes["dalle"] else { panic!() };
    assert_eq!(error, "provider openai is not configured on this server");
    let NodeOutcome::Failed { error } = &summary.nodes["bad-crop"] else { panic!() };
    assert!(error.contains("empty"), "{error}");
    let NodeOutcome::Failed { error } = &summary.nodes["missing"] else { panic!() };
    assert!(error.contains("not found"), "{error}");
    assert_eq!(summary.nodes["dalle-desc"], NodeOutcome::Skipped { because: "dalle".into() });
    assert!(!summary.succeeded());
}

#[tokio::test]
async fn running_the_same_graph_again_is_all_cached() {
    let h = harness();
    let (first, _) = h.run(&story(3)).await;
    let entries = h.cache.len();
    assert_eq!(entries, 4);
    let (second, observer) = h.run(&story(3)).await;
    for (id, states) in state_names(&observer) {
        assert_eq!(states, ["queued", "cached"], "{id}");
    }
    for id in ["prompt", "gen", "blur", "up"] {
        assert_eq!(second.outputs(id), first.outputs(id));
        assert!(matches!(second.nodes[id], NodeOutcome::Cached { .. }));
    }
    assert_eq!(h.cache.len(), entries);
}

#[tokio::test]
async fn a_changed_seed_reruns_that_node_and_its_descendants_only() {
    let h = harness();
    let mut g = story(3);
    // A sibling branch that does not depend on the seed.
    g.nodes.push(node("other", "dev-image", json!({"seed": 99, "width": 16, "height": 16})));
    g.edges.push(edge("prompt", "text", "other", "prompt"));
    let (first, _) = h.run(&g).await;

    g.nodes[1].data.insert("seed".into(), json!(4));
    let (second, observer) = h.run(&g).await;
    let states = state_names(&observer);
    assert_eq!(states["prompt"], ["queued", "cached"]);
    assert_eq!(states["other"], ["queued", "cached"]);
    for id in ["gen", "blur", "up"] {
        assert_eq!(states[id].last(), Some(&"succeeded"), "{id} reran");
        assert_ne!(second.outputs(id), first.outputs(id), "{id}");
    }
    // Back to the first seed: all cached again, with the first outputs.
    g.nodes[1].data.insert("seed".into(), json!(3));
    let (third, observer) = h.run(&g).await;
    assert!(state_names(&observer).values().all(|s| s.last() == Some(&"cached")));
    assert_eq!(third.outputs("up"), first.outputs("up"));
    // An editor-only key in `data` does not invalidate anything.
    g.nodes[2].data.insert("label".into(), json!("soft"));
    let (_, observer) = h.run(&g).await;
    assert!(state_names(&observer).values().all(|s| s.last() == Some(&"cached")));
}

#[tokio::test]
async fn non_deterministic_nodes_always_run() {
    // The same built-in, declared non-deterministic by a custom catalog entry.
    let mut json: Value = serde_json::from_str(dojo_executor::catalog::BUILTIN_CATALOG_JSON).unwrap();
    for n in json["nodes"].as_array_mut().unwrap() {
        if n["id"] == "dev-image" {
            n["deterministic"] = json!(false);
        }
    }
    let catalog = LoadedCatalog::from_json(&json.to_string()).unwrap();
    let h = harness_with(catalog, EngineConfig::default());
    h.run(&story(1)).await;
    let (_, observer) = h.run(&story(1)).await;
    let states = state_names(&observer);
    assert_eq!(states["prompt"].last(), Some(&"cached"));
    assert_eq!(states["gen"].last(), Some(&"succeeded"), "not cached");
    // What it produced was identical, so what follows it is found in the cache by content.
    assert_eq!(states["blur"].last(), Some(&"cached"));
    assert_eq!(states["up"].last(), Some(&"cached"));
}

/// How many nodes were between `running` and a final state at once, at most.
fn max_running(observer: &RecordingObserver) -> usize {
    let mut running = std::collections::BTreeSet::new();
    let mut max = 0;
    for e in observer.events() {
        match e.state {
            NodeState::Running { .. } => {
                running.insert(e.node_id);
            }
            s if s.is_final() => {
                running.remove(&e.node_id);
            }
            _ => {}
        }
        max = max.max(running.len());
    }
    max
}

fn six_generators() -> CanvasGraph {
    CanvasGraph {
        nodes: (0..6)
            // Big enough that, on a busy machine, no node finishes before the others have started
            // (a 32 px image once did, and the limit-64 case saw 5 running at once, not 6).
            .map(|i| node(&format!("g{i}"), "dev-image", json!({"seed": i, "width": 512, "height": 512})))
            .collect(),
        edges: vec![],
    }
}

#[tokio::test]
async fn concurrency_is_bounded() {
    for (limit, expected) in [(1, 1), (4, 4), (64, 6)] {
        let h = harness_with(catalog(), EngineConfig { max_concurrency: limit, ..EngineConfig::default() });
        let (summary, observer) = h.run(&six_generators()).await;
        assert!(summary.succeeded());
        assert_eq!(max_running(&observer), expected, "limit {limit}");
    }
}

fn slow_graph() -> CanvasGraph {
    CanvasGraph {
        nodes: vec![
            node("gen", "dev-image", json!({"width": 2048, "height": 2048})),
            node("blur", "blur", json!({"sigma": 20})),
        ],
        edges: vec![edge("gen", "image", "blur", "image")],
    }
}

#[tokio::test]
async fn a_node_that_exceeds_its_timeout_fails_and_skips_the_rest() {
    let config = EngineConfig { default_timeout: Duration::from_millis(1), ..EngineConfig::default() };
    let h = harness_with(catalog(), config);
    let (summary, observer) = h.run(&slow_graph()).await;
    let NodeOutcome::Failed { error } = &summary.nodes["gen"] else { panic!("{summary:?}") };
    assert!(error.starts_with("timed out after"), "{error}");
    assert_eq!(state_names(&observer)["blur"], ["queued", "skipped"]);
}

#[tokio::test]
async fn cancelling_stops_the_run() {
    let h = harness();
    let plan = h.plan(&slow_graph(), None);
    let cancel = CancellationToken::new();
    let observer = RecordingObserver::default();
    let trigger = cancel.clone();
    let run_id = RunId::from("r");
    let (summary, ()) = tokio::join!(h.engine.run(&run_id, &plan, &observer, &cancel), async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        trigger.cancel();
    });
    assert_eq!(summary.nodes["blur"], NodeOutcome::Cancelled, "{summary:?}");
    assert!(summary.nodes.values().all(|o| !matches!(o, NodeOutcome::Failed { .. })));
    let states = state_names(&observer);
    assert_eq!(states["blur"].last(), Some(&"cancelled"));
    assert!(states.values().all(|s| s.len() <= 4 && s.last().is_some_and(|l| *l != "queued")));

    // Cancelled before it starts: everything is cancelled, nothing runs.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let observer = RecordingObserver::default();
    let summary = h.engine.run(&RunId::from("r2"), &plan, &observer, &cancel).await;
    assert!(summary.nodes.values().all(|o| *o == NodeOutcome::Cancelled));
    assert_eq!(state_names(&observer)["gen"], ["queued", "cancelled"]);
}

#[tokio::test]
async fn a_partial_run_executes_only_the_targets_and_their_ancestors() {
    let h = harness();
    let plan = h.plan(&story(1), Some(&["blur"]));
    let observer = RecordingObserver::default();
    let summary = h.engine.run(&RunId::from("r"), &plan, &observer, &CancellationToken::new()).await;
    assert_eq!(summary.nodes.keys().collect::<Vec<_>>(), ["blur", "gen", "prompt"]);
    assert!(summary.succeeded());
    assert!(observer.states_of("up").is_empty());
}

#[test]
fn estimates_sum_catalog_costs() {
    let cat = catalog();
    let g = CanvasGraph {
        nodes: vec![
            node("p", "text-prompt", json!({})),
            node("flux", "flux-pro-1.1-ultra", json!({})),
            node("dalle", "dall-e-3", json!({})),
            node("blur", "blur", json!({})),
        ],
        edges: vec![
            edge("p", "text", "flux", "prompt"),
            edge("p", "text", "dalle", "prompt"),
            edge("flux", "image", "blur", "image"),
        ],
    };
    let plan = validate(&cat, &g, None, &GraphLimits::default()).unwrap();
    assert_eq!(estimate(&cat, &plan), 6 + 8);
    let partial = validate(&cat, &g, Some(&["blur"]), &GraphLimits::default()).unwrap();
    assert_eq!(estimate(&cat, &partial), 6);
}

#[tokio::test]
async fn resuming_keeps_finished_nodes_and_runs_only_the_rest() {
    // A first attempt finished the prompt and the generator, then its worker died.
    let first = harness();
    let graph = story(7);
    let (full, _) = first.run(&graph).await;
    let plan = first.plan(&graph, None);
    let mut finished = BTreeMap::new();
    for id in ["prompt", "gen"] {
        finished.insert(NodeId::from(id), full.nodes[id].clone());
    }

    // Another worker (the shared asset store, its own empty cache: nothing can come from
    // there) resumes it.
    let second = Engine::new(Arc::new(catalog()), first.assets.clone(), Arc::new(MemoryCache::default()));
    let observer = RecordingObserver::default();
    let summary = second
        .resume(
            &RunId::from("run-1"),
            RunScope::unrestricted(),
            &plan,
            &finished,
            &observer,
            &CancellationToken::new(),
        )
        .await;

    assert!(summary.succeeded(), "{summary:?}");
    for id in ["prompt", "gen"] {
        assert_eq!(observer.states_of(id), vec!["succeeded"], "{id} is reported once, not run again");
        assert_eq!(summary.nodes[id], full.nodes[id]);
    }
    for id in plan.order().map(|n| n.id.as_str()).filter(|id| !finished.contains_key(*id)) {
        let states = observer.states_of(id);
        assert_eq!(states.first(), Some(&"queued"), "{id}: {states:?}");
        assert_eq!(states.last(), Some(&"succeeded"), "{id}: {states:?}");
    }
    // The rest computed from the first attempt's outputs: the same result as an unbroken run.
    assert_eq!(summary.outputs("up"), full.outputs("up"));
}
