//! Which assets a run may read, at the engine: every way an asset id enters a run (an
//! `image-input` parameter, an image wired in from upstream, a cache hit, an earlier attempt's
//! outputs on resume) is checked against the run's [`AssetAccess`] before the node uses it.
//! Real built-in nodes, a real asset directory, the in-memory cache; the access rule is a plain
//! allow-list here (the worker's database rule has its own tests and server stories).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dojo_executor::builtins::imaging;
use dojo_executor::{
    AnyAsset, AssetAccess, AssetAccessError, AssetRef, AssetStore, Engine, ExecutionPlan, GraphLimits,
    LoadedCatalog, MemoryCache, NodeOutcome, ObjectAssetStore, RecordingObserver, RunScope, RunSummary,
    validate,
};
use dojo_ids::{AssetId, NodeId, RunId};
use dojo_sync_protocol::canvas::{CanvasEdge, CanvasGraph, CanvasNode, Position};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Readable: exactly the ids in the set; every question is remembered.
#[derive(Default)]
struct AllowList {
    allowed: Mutex<BTreeSet<AssetId>>,
    asked: Mutex<Vec<AssetId>>,
}

impl AllowList {
    fn allow(&self, id: &AssetId) {
        self.allowed.lock().unwrap().insert(id.clone());
    }

    fn revoke(&self, id: &AssetId) {
        self.allowed.lock().unwrap().remove(id);
    }

    fn asked(&self) -> Vec<AssetId> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl AssetAccess for AllowList {
    async fn may_read(&self, asset_id: &AssetId) -> Result<bool, AssetAccessError> {
        self.asked.lock().unwrap().push(asset_id.clone());
        Ok(self.allowed.lock().unwrap().contains(asset_id))
    }
}

/// Fails every check, like a database that does not answer.
struct Unavailable;

#[async_trait]
impl AssetAccess for Unavailable {
    async fn may_read(&self, _asset_id: &AssetId) -> Result<bool, AssetAccessError> {
        Err(AssetAccessError("the database is down".into()))
    }
}

fn node(id: &str, node_type: &str, data: Value) -> CanvasNode {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    CanvasNode { id: id.into(), node_type: node_type.into(), position: Position { x: 0.0, y: 0.0 }, data }
}

fn edge(source: &str, target: &str) -> CanvasEdge {
    CanvasEdge {
        id: format!("{source}-{target}"),
        source: source.into(),
        source_handle: Some("image".into()),
        target: target.into(),
        target_handle: Some("image".into()),
    }
}

/// Someone's upload → blur → invert.
fn graph(asset: &AssetId) -> CanvasGraph {
    CanvasGraph {
        nodes: vec![
            node("in", "image-input", json!({ "asset": asset })),
            node("blur", "blur", json!({"sigma": 1.0})),
            node("inv", "invert", json!({})),
        ],
        edges: vec![edge("in", "blur"), edge("blur", "inv")],
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    assets: Arc<ObjectAssetStore>,
    engine: Engine,
    catalog: LoadedCatalog,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let assets = Arc::new(ObjectAssetStore::local(dir.path()).unwrap());
        let catalog = LoadedCatalog::builtin().unwrap().clone();
        let engine = Engine::new(Arc::new(catalog.clone()), assets.clone(), Arc::new(MemoryCache::default()));
        Harness { _dir: dir, assets, engine, catalog }
    }

    /// Alice's upload: a real PNG in the store.
    async fn upload(&self) -> AssetRef {
        let image = image::RgbaImage::from_pixel(6, 4, image::Rgba([10, 200, 30, 255]));
        let png = imaging::encode_png(&image::DynamicImage::ImageRgba8(image)).unwrap();
        self.assets.put(png, "image/png").await.unwrap()
    }

    fn plan(&self, graph: &CanvasGraph) -> ExecutionPlan {
        validate(&self.catalog, graph, None, &GraphLimits::default()).expect("valid graph")
    }

    async fn run(
        &self,
        graph: &CanvasGraph,
        user: &str,
        access: &dyn AssetAccess,
        finished: &BTreeMap<NodeId, NodeOutcome>,
    ) -> (RunSummary, RecordingObserver) {
        let plan = self.plan(graph);
        let observer = RecordingObserver::default();
        let scope = RunScope { cache: user, assets: access, keys: &dojo_executor::NoTeamKeys };
        let summary = self
            .engine
            .resume(&RunId::from("run"), scope, &plan, finished, &observer, &CancellationToken::new())
            .await;
        (summary, observer)
    }
}

fn error_of(summary: &RunSummary, node: &str) -> String {
    match &summary.nodes[node] {
        NodeOutcome::Failed { error } => error.clone(),
        other => panic!("{node} did not fail: {other:?}"),
    }
}

#[tokio::test]
async fn a_forbidden_upload_fails_its_node_exactly_like_a_missing_one() {
    let h = Harness::new();
    let alices = h.upload().await;
    let bob = AllowList::default();

    let (summary, observer) = h.run(&graph(&alices.id), "bob", &bob, &BTreeMap::new()).await;
    assert_eq!(error_of(&summary, "in"), format!("asset {} not found", alices.id));
    assert_eq!(observer.states_of("in"), ["queued", "failed"], "it never started running");
    assert!(matches!(summary.nodes["blur"], NodeOutcome::Skipped { .. }));
    assert!(matches!(summary.nodes["inv"], NodeOutcome::Skipped { .. }));
    assert_eq!(bob.asked(), vec![alices.id.clone()]);

    // An id nobody uploaded reads the same, so a run cannot probe which ids exist.
    let absent = AssetId::from("ab".repeat(32));
    let (summary, _) = h.run(&graph(&absent), "bob", &bob, &BTreeMap::new()).await;
    assert_eq!(error_of(&summary, "in"), format!("asset {absent} not found"));

    // The owner's run of the same graph works.
    let alice = AllowList::default();
    alice.allow(&alices.id);
    let (summary, _) = h.run(&graph(&alices.id), "alice", &alice, &BTreeMap::new()).await;
    assert!(summary.succeeded(), "{summary:?}");
}

#[tokio::test]
async fn a_cached_output_is_not_served_once_its_upload_is_forbidden() {
    let h = Harness::new();
    let alices = h.upload().await;
    // Bob may read it while he collaborates with Alice: his run fills his cache.
    let bob = AllowList::default();
    bob.allow(&alices.id);
    let (first, _) = h.run(&graph(&alices.id), "bob", &bob, &BTreeMap::new()).await;
    assert!(first.succeeded(), "{first:?}");
    let (again, observer) = h.run(&graph(&alices.id), "bob", &bob, &BTreeMap::new()).await;
    assert_eq!(observer.states_of("blur"), ["queued", "cached"], "the cache works while he may read it");
    assert!(again.succeeded());

    // Alice removes him: the same graph, same keys, finds nothing in his cache.
    bob.revoke(&alices.id);
    let (summary, observer) = h.run(&graph(&alices.id), "bob", &bob, &BTreeMap::new()).await;
    assert_eq!(error_of(&summary, "in"), format!("asset {} not found", alices.id));
    assert_eq!(observer.states_of("blur"), ["queued", "skipped"]);
    assert_eq!(observer.states_of("inv"), ["queued", "skipped"]);
}

#[tokio::test]
async fn another_users_cache_never_serves_outputs_derived_from_an_upload() {
    let h = Harness::new();
    let alices = h.upload().await;
    let alice = AllowList::default();
    alice.allow(&alices.id);
    let (summary, _) = h.run(&graph(&alices.id), "alice", &alice, &BTreeMap::new()).await;
    assert!(summary.succeeded());

    // Carol may read the upload too (a reader of Alice's room), but Alice's cache is Alice's.
    let carol = AllowList::default();
    carol.allow(&alices.id);
    let (summary, observer) = h.run(&graph(&alices.id), "carol", &carol, &BTreeMap::new()).await;
    assert!(summary.succeeded());
    let blur = observer.states_of("blur");
    assert!(blur.contains(&"running") && !blur.contains(&"cached"), "computed, not cached: {blur:?}");
    assert_eq!(blur.last(), Some(&"succeeded"));

    // Bob may not read it: nothing of it reaches him, cached or not.
    let bob = AllowList::default();
    let (summary, _) = h.run(&graph(&alices.id), "bob", &bob, &BTreeMap::new()).await;
    assert!(
        summary
            .nodes
            .values()
            .all(|o| !matches!(o, NodeOutcome::Cached { .. } | NodeOutcome::Succeeded { .. }))
    );
}

#[tokio::test]
async fn a_resumed_run_does_not_feed_an_upload_that_became_forbidden_downstream() {
    let h = Harness::new();
    let alices = h.upload().await;
    // An earlier attempt read the upload while Bob could; its worker died after `in`.
    let bob = AllowList::default();
    bob.allow(&alices.id);
    let (earlier, _) = h.run(&graph(&alices.id), "bob-before", &bob, &BTreeMap::new()).await;
    let finished = BTreeMap::from([(NodeId::from("in"), earlier.nodes["in"].clone())]);

    // He was removed before another worker resumed the run.
    bob.revoke(&alices.id);
    let (summary, observer) = h.run(&graph(&alices.id), "bob", &bob, &finished).await;
    assert_eq!(observer.states_of("in"), ["succeeded"], "the earlier outcome stands, unread");
    assert_eq!(error_of(&summary, "blur"), format!("asset {} not found", alices.id));
    assert!(matches!(summary.nodes["inv"], NodeOutcome::Skipped { .. }));
}

#[tokio::test]
async fn every_wired_image_is_checked_not_only_the_first() {
    let h = Harness::new();
    let alices = h.upload().await;
    let bobs = {
        let image = image::RgbaImage::from_pixel(3, 3, image::Rgba([1, 2, 3, 255]));
        let png = imaging::encode_png(&image::DynamicImage::ImageRgba8(image)).unwrap();
        h.assets.put(png, "image/png").await.unwrap()
    };
    // Bob composites his own picture over one he could read when the run began.
    let g = CanvasGraph {
        nodes: vec![
            node("mine", "image-input", json!({ "asset": bobs.id })),
            node("theirs", "image-input", json!({ "asset": alices.id })),
            node("comp", "composite", json!({})),
        ],
        edges: vec![
            CanvasEdge {
                id: "a".into(),
                source: "mine".into(),
                source_handle: Some("image".into()),
                target: "comp".into(),
                target_handle: Some("background".into()),
            },
            CanvasEdge {
                id: "b".into(),
                source: "theirs".into(),
                source_handle: Some("image".into()),
                target: "comp".into(),
                target_handle: Some("foreground".into()),
            },
        ],
    };
    let bob = AllowList::default();
    bob.allow(&bobs.id);
    bob.allow(&alices.id);
    let (earlier, _) = h.run(&g, "bob", &bob, &BTreeMap::new()).await;
    assert!(earlier.succeeded(), "{earlier:?}");
    let finished: BTreeMap<NodeId, NodeOutcome> =
        ["mine", "theirs"].into_iter().map(|n| (NodeId::from(n), earlier.nodes[n].clone())).collect();

    bob.revoke(&alices.id);
    let (summary, _) = h.run(&g, "bob", &bob, &finished).await;
    assert_eq!(error_of(&summary, "comp"), format!("asset {} not found", alices.id));
}

#[tokio::test]
async fn when_access_cannot_be_checked_the_asset_is_refused() {
    let h = Harness::new();
    let alices = h.upload().await;
    let (summary, _) = h.run(&graph(&alices.id), "bob", &Unavailable, &BTreeMap::new()).await;
    assert_eq!(error_of(&summary, "in"), "internal error: could not check access to an asset");
    // Nodes that read no asset need no check.
    let prompt = CanvasGraph { nodes: vec![node("p", "text-prompt", json!({"text": "hi"}))], edges: vec![] };
    let (summary, _) = h.run(&prompt, "bob", &Unavailable, &BTreeMap::new()).await;
    assert!(summary.succeeded());
    let (summary, _) = h.run(&graph(&alices.id), "anyone", &AnyAsset, &BTreeMap::new()).await;
    assert!(summary.succeeded(), "the library's default reads everything");
}
