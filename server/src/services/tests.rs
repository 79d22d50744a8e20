//! The services called directly, without HTTP: the main paths and the refusals, on a real
//! SQLite file and a real PostgreSQL database. No run executes here (`run_workers = 0`): what a
//! submission does up to the queue is the service's; what happens after is the executor's.

use std::collections::BTreeMap;
use std::sync::Arc;

use dojo_auth::{Claims, Minter, Permission};
use dojo_ids::UserId;
use dojo_records::{CollaboratorPermission, RunStatus, WorkflowPatch};
use dojo_sync_protocol::canvas::{CanvasNode, Position, write_node};
use dojo_test_support::{Backend, TestDatabase};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use yrs::{ReadTxn, Transact};

use super::access::{self, AccessError};
use super::runs::{RunError, RunService, SubmitError, SubmitRequest};
use super::workflows::{WorkflowError, WorkflowService};
use super::{compose, credits, documents, versions};
use crate::caller::Caller;
use crate::config::Config;
use crate::execution::room_writer::RoomWriter;
use crate::room_name::RoomName;
use crate::state::AppState;

const SECRET: &str = "a test secret that is at least thirty-two bytes long";

/// A server's state on a fresh database, with tokens required and no run workers.
struct World {
    state: AppState,
    shutdown: CancellationToken,
    _database: TestDatabase,
}

impl World {
    async fn new(backend: Backend) -> Self {
        let database = TestDatabase::new(backend).await;
        let mut config = Config::for_tests_with_auth(&database.url, SECRET);
        config.executor.run_workers = 0;
        let storage = crate::Storage::open(&database.url).await.expect("open the database");
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let state =
            AppState::new(&config, storage, metrics, None, shutdown.clone()).await.expect("the server state");
        Self { state, shutdown, _database: database }
    }

    /// The caller a token for `subject` makes (the user is created on first sight).
    async fn caller(&self, subject: &str) -> Caller {
        self.caller_with(Claims::new(subject, 600)).await
    }

    async fn caller_with(&self, claims: Claims) -> Caller {
        let token = Minter::hs256(SECRET.as_bytes()).mint(&claims).expect("mint");
        self.state.auth().authenticate(Some(&token)).await.expect("the token authenticates")
    }

    fn user_id(caller: &Caller) -> UserId {
        caller.user().expect("a signed-in caller").id.clone()
    }

    async fn grant(&self, caller: &Caller, credits: i64) {
        let id = Self::user_id(caller);
        self.state
            .auth()
            .accounts()
            .apply_credits(&id, credits, "test grant", &format!("grant:{id}"))
            .await
            .expect("grant");
    }

    async fn workflow(&self, owner: &Caller, room: &str) -> dojo_records::Workflow {
        WorkflowService::new(&self.state)
            .create(owner, "a canvas", Some(room), None)
            .await
            .expect("create a workflow")
    }

    /// Puts `nodes` on the room's canvas, stored before this returns.
    async fn draw(&self, room: &str, nodes: &[(&str, &str)]) {
        let writer = RoomWriter::open(self.state.rooms().clone(), RoomName::parse(room).expect("room name"))
            .await
            .expect("open the room");
        writer
            .write(|txn| {
                for (id, node_type) in nodes {
                    write_node(txn, &node(id, node_type))?;
                }
                Ok(())
            })
            .await
            .expect("draw");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.state.drain().await;
    }
}

fn node(id: &str, node_type: &str) -> CanvasNode {
    let data = match node_type {
        "dev-image" => BTreeMap::from([("prompt".to_owned(), json!("a lighthouse"))]),
        _ => BTreeMap::new(),
    };
    CanvasNode {
        id: id.to_owned(),
        node_type: node_type.to_owned(),
        position: Position { x: 0.0, y: 0.0 },
        data,
    }
}

/// Runs `story` on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() { super::$story(dojo_test_support::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() { super::$story(dojo_test_support::Backend::Postgres).await })*
        }
    };
}

on_both_backends!(
    a_submitted_run_holds_its_estimate_and_only_a_writer_may_cancel_it,
    a_run_beyond_the_balance_is_refused_with_balance_and_cost,
    a_room_without_a_workflow_is_no_room_to_run_in,
    only_the_owner_shares_and_sharing_changes_access,
    a_restored_version_is_the_canvas_again,
);

async fn a_submitted_run_holds_its_estimate_and_only_a_writer_may_cancel_it(backend: Backend) {
    let world = World::new(backend).await;
    let (alice, bob, mallory) =
        (world.caller("alice").await, world.caller("bob").await, world.caller("mallory").await);
    world.grant(&alice, 5).await;
    let workflow = world.workflow(&alice, "canvas-run").await;
    world.draw("canvas-run", &[("gen", "dev-image")]).await;
    let runs = RunService::new(&world.state);

    let room =
        access::room_for(&world.state, &alice, "canvas-run", Permission::Write).await.expect("alice writes");
    let request = SubmitRequest { targets: None, idempotency_key: Some("once".into()), from: None };
    let run = runs.submit(&alice, &room, request.clone()).await.expect("submitted");
    assert_eq!(run.estimate, 1, "only the dev generator costs (1 credit)");
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(world.state.auth().accounts().balance(&World::user_id(&alice)).await.unwrap(), 4, "held");
    // The same key is the same run, holding nothing twice.
    let again = runs.submit(&alice, &room, request).await.expect("the same run");
    assert_eq!(again.id, run.id);
    assert_eq!(world.state.auth().accounts().balance(&World::user_id(&alice)).await.unwrap(), 4);

    // A stranger learns nothing about the run; a reader sees it but may not stop it.
    assert!(matches!(runs.cancel(&mallory, &run.id).await, Err(RunError::NotFound(_))));
    assert!(matches!(runs.get(&mallory, &run.id).await, Err(RunError::NotFound(_))));
    let service = WorkflowService::new(&world.state);
    let owned = service.owned(&alice, &workflow.id).await.expect("alice owns it");
    service
        .set_collaborator(&owned, &World::user_id(&bob), CollaboratorPermission::Read)
        .await
        .expect("share");
    assert!(matches!(runs.cancel(&bob, &run.id).await, Err(RunError::Forbidden(Permission::Write))));
    let (seen, nodes) = runs.get(&bob, &run.id).await.expect("a reader sees the run");
    assert_eq!((seen.id.as_str(), nodes.len()), (run.id.as_str(), 1));

    // The owner cancels it before any worker took it: final at once, the hold released.
    let cancelled = runs.cancel(&alice, &run.id).await.expect("cancelled");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(world.state.auth().accounts().balance(&World::user_id(&alice)).await.unwrap(), 5, "released");
    assert!(matches!(
        runs.cancel(&alice, &dojo_ids::RunId::from("run_unknown")).await,
        Err(RunError::NotFound(_))
    ));
    world.stop().await;
}

async fn a_run_beyond_the_balance_is_refused_with_balance_and_cost(backend: Backend) {
    let world = World::new(backend).await;
    let alice = world.caller("alice").await;
    world.workflow(&alice, "canvas-poor").await;
    world.draw("canvas-poor", &[("gen", "dev-image")]).await;
    let room =
        access::room_for(&world.state, &alice, "canvas-poor", Permission::Write).await.expect("access");
    let refused = RunService::new(&world.state).submit(&alice, &room, SubmitRequest::default()).await;
    assert!(
        matches!(refused, Err(SubmitError::InsufficientCredits { balance: 0, requested: 1 })),
        "{refused:?}"
    );
    let listed = RunService::new(&world.state).list(&room, 10).await.expect("list");
    assert!(listed.is_empty(), "nothing was created: {listed:?}");

    // Too many targets, and a graph that does not validate, are refused before any credit moves.
    let targets = Some((0..=super::runs::MAX_TARGETS).map(|i| format!("n{i}")).collect());
    let refused = RunService::new(&world.state)
        .submit(&alice, &room, SubmitRequest { targets, ..Default::default() })
        .await;
    assert!(matches!(refused, Err(SubmitError::TooManyTargets)), "{refused:?}");
    world.draw("canvas-poor", &[("mystery", "no-such-type")]).await;
    let refused = RunService::new(&world.state).submit(&alice, &room, SubmitRequest::default()).await;
    let Err(SubmitError::InvalidGraph(errors)) = refused else {
        panic!("not refused as invalid: {refused:?}")
    };
    assert!(errors.node_errors.contains_key("mystery"), "{errors:?}");
    world.stop().await;
}

async fn a_room_without_a_workflow_is_no_room_to_run_in(backend: Backend) {
    let world = World::new(backend).await;
    let alice = world.caller("alice").await;
    world.grant(&alice, 5).await;
    // Not dev mode: a room no workflow claims is closed, and says no more than "no room".
    let refused = access::room_for(&world.state, &alice, "nobody-s-room", Permission::Write).await;
    assert!(matches!(refused, Err(AccessError::Hidden(_))), "{refused:?}");
    assert_eq!(refused.unwrap_err().to_string(), "no room \"nobody-s-room\"");
    assert!(matches!(
        access::room_for(&world.state, &alice, "bad\nname", Permission::Read).await,
        Err(AccessError::BadName(_))
    ));

    // A service token granted the room may write it, and so run it, with no workflow at all.
    let mut claims = Claims::new("svc", 600);
    claims.grants = Some(dojo_auth::Grants([("nobody-s-room".to_owned(), Permission::Write)].into()));
    let service = world.caller_with(claims).await;
    world.grant(&service, 5).await;
    world.draw("nobody-s-room", &[("gen", "dev-image")]).await;
    let room =
        access::room_for(&world.state, &service, "nobody-s-room", Permission::Write).await.expect("granted");
    let run =
        RunService::new(&world.state).submit(&service, &room, SubmitRequest::default()).await.expect("run");
    assert_eq!(run.room, "nobody-s-room");

    // Compose needs write access too; a reader is refused before anything is planned.
    let mut read_only = Claims::new("reader", 600);
    read_only.grants = Some(dojo_auth::Grants([("nobody-s-room".to_owned(), Permission::Read)].into()));
    let reader_caller = world.caller_with(read_only).await;
    let reader_access = access::room_for(&world.state, &reader_caller, "nobody-s-room", Permission::Read)
        .await
        .expect("read");
    let refused =
        compose::compose(&world.state, &reader_caller, &reader_access, "prompt then flux", false).await;
    assert!(
        matches!(refused, Err(compose::ComposeError::Access(AccessError::Insufficient { .. }))),
        "{refused:?}"
    );
    // So do graph edits in JSON.
    let ops = vec![dojo_sync_protocol::canvas::edits::EditOp::RemoveNode { node: "gen".into() }];
    let refused = super::edits::apply(&world.state, &reader_caller, &reader_access, ops).await;
    assert!(
        matches!(refused, Err(super::edits::EditError::Access(AccessError::Insufficient { .. }))),
        "{refused:?}"
    );
    world.stop().await;
}

async fn only_the_owner_shares_and_sharing_changes_access(backend: Backend) {
    let world = World::new(backend).await;
    let (alice, bob, carol) =
        (world.caller("alice").await, world.caller("bob").await, world.caller("carol").await);
    let workflow = world.workflow(&alice, "canvas-shared").await;
    let service = WorkflowService::new(&world.state);
    // Someone else's room cannot be claimed again.
    let taken = service.create(&bob, "mine now", Some("canvas-shared"), None).await;
    assert!(matches!(taken, Err(WorkflowError::RoomTaken(_))), "{taken:?}");

    // Before it is shared, bob cannot see it at all.
    assert!(matches!(service.owned(&bob, &workflow.id).await, Err(WorkflowError::NotFound(_))));
    let owned = service.owned(&alice, &workflow.id).await.expect("alice owns it");
    service
        .set_collaborator(&owned, &World::user_id(&bob), CollaboratorPermission::Write)
        .await
        .expect("share");

    // A writer sees it, and may write the room, but may not share it further.
    assert!(matches!(service.owned(&bob, &workflow.id).await, Err(WorkflowError::NotOwner)));
    let (_, permission) = service.visible(&bob, &workflow.id).await.expect("bob sees it");
    assert_eq!(permission, Permission::Write);
    let detail = service.detail(&bob, &workflow.id).await.expect("detail");
    assert!(detail.collaborators.is_empty(), "listed for the owner only");
    assert_eq!(service.detail(&alice, &workflow.id).await.expect("detail").collaborators.len(), 1);

    // Public: anyone signed in reads it; private again: carol is back to "no such workflow".
    let public = WorkflowPatch { title: None, public: Some(true) };
    assert!(service.update(&owned, public).await.expect("publish").public);
    assert_eq!(service.visible(&carol, &workflow.id).await.expect("public").1, Permission::Read);
    let owned = service.owned(&alice, &workflow.id).await.expect("still alice's");
    service.update(&owned, WorkflowPatch { title: None, public: Some(false) }).await.expect("unpublish");
    assert!(matches!(service.visible(&carol, &workflow.id).await, Err(WorkflowError::NotFound(_))));

    // Unsharing: bob is out; unsharing again says he is no collaborator.
    service.remove_collaborator(&owned, &World::user_id(&bob)).await.expect("unshare");
    assert!(matches!(service.visible(&bob, &workflow.id).await, Err(WorkflowError::NotFound(_))));
    let again = service.remove_collaborator(&owned, &World::user_id(&bob)).await;
    assert!(matches!(again, Err(WorkflowError::NotCollaborator(_))), "{again:?}");

    // Deleted: gone for its owner too, and its room stays taken.
    service.delete(owned).await.expect("delete");
    assert!(matches!(service.visible(&alice, &workflow.id).await, Err(WorkflowError::NotFound(_))));
    let taken = service.create(&alice, "again", Some("canvas-shared"), None).await;
    assert!(matches!(taken, Err(WorkflowError::RoomTaken(_))), "{taken:?}");
    world.stop().await;
}

async fn a_restored_version_is_the_canvas_again(backend: Backend) {
    let world = World::new(backend).await;
    let alice = world.caller("alice").await;
    world.workflow(&alice, "canvas-versions").await;
    let room =
        access::room_for(&world.state, &alice, "canvas-versions", Permission::Write).await.expect("access");
    documents::apply(&world.state, &alice, &room, update_adding("first")).await.expect("apply");
    assert!(matches!(
        documents::apply(&world.state, &alice, &room, Vec::new()).await,
        Err(documents::DocumentError::EmptyUpdate)
    ));

    // A version of the canvas as it is now, as compaction would store it.
    let data = documents::state(&world.state, &alice, &room).await.expect("state");
    let state_vector = {
        let doc = yrs::Doc::new();
        dojo_sync_protocol::update::apply_client_update(&doc, &data).expect("the state applies");
        let txn = doc.transact();
        yrs::updates::encoder::Encode::encode_v1(&txn.state_vector())
    };
    let store = world.state.store();
    let covers_seq = store.append("canvas-versions", &[]).await.expect("last sequence");
    let snapshot = dojo_store::NewSnapshot { data: &data, state_vector: &state_vector, covers_seq, keep: 3 };
    store.compact("canvas-versions", snapshot).await.expect("compact");
    let listed = versions::list(&world.state, &room).await.expect("versions");
    assert_eq!(listed.len(), 1, "{listed:?}");

    documents::apply(&world.state, &alice, &room, update_adding("second")).await.expect("apply");
    let nodes = |canvas: serde_json::Value| {
        canvas["nodes"].as_object().map(|n| n.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
    };
    assert_eq!(
        nodes(documents::canvas_json(&world.state, &alice, &room).await.expect("canvas")),
        ["first", "second"]
    );

    versions::restore(&world.state, &alice, &room, listed[0].id).await.expect("restored");
    assert_eq!(nodes(documents::canvas_json(&world.state, &alice, &room).await.expect("canvas")), ["first"]);
    let missing = versions::restore(&world.state, &alice, &room, listed[0].id + 1000).await;
    assert!(matches!(missing, Err(versions::VersionError::NotFound { .. })), "{missing:?}");

    // A reader may list versions but not restore one.
    let bob = world.caller("bob").await;
    let workflow = WorkflowService::new(&world.state).list(&alice).await.expect("list").remove(0).workflow;
    let service = WorkflowService::new(&world.state);
    let owned = service.owned(&alice, &workflow.id).await.expect("owned");
    service
        .set_collaborator(&owned, &World::user_id(&bob), CollaboratorPermission::Read)
        .await
        .expect("share");
    let read = access::room_for(&world.state, &bob, "canvas-versions", Permission::Read).await.expect("read");
    assert_eq!(versions::list(&world.state, &read).await.expect("list").len(), 1);
    let refused = versions::restore(&world.state, &bob, &read, listed[0].id).await;
    assert!(
        matches!(refused, Err(versions::VersionError::Access(AccessError::Insufficient { .. }))),
        "{refused:?}"
    );
    world.stop().await;
}

/// An update that adds node `id` to an empty canvas (Yjs merges it with whatever is there).
fn update_adding(id: &str) -> Vec<u8> {
    let doc = yrs::Doc::new();
    let mut txn = doc.transact_mut();
    write_node(&mut txn, &node(id, "prompt")).expect("node");
    drop(txn);
    doc.transact().encode_state_as_update_v1(&yrs::StateVector::default())
}

#[tokio::test]
async fn an_operator_grant_with_a_key_applies_once() {
    let world = World::new(Backend::Sqlite).await;
    let alice = world.caller("alice").await;
    let service = credits::CreditService::new(world.state.auth().accounts());
    let first = service.grant("alice", 7, Some("k1")).await.expect("grant by subject");
    assert!(matches!(first.outcome, dojo_records::CreditOutcome::Applied(_)));
    let second = service.grant(World::user_id(&alice).as_str(), 7, Some("k1")).await.expect("grant by id");
    assert!(matches!(second.outcome, dojo_records::CreditOutcome::AlreadyApplied(_)));
    assert_eq!(world.state.auth().accounts().balance(&World::user_id(&alice)).await.unwrap(), 7);
    assert!(matches!(service.grant("nobody", 1, None).await, Err(credits::CreditError::NoSuchUser(_))));
    world.stop().await;
}
