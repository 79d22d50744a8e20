//! The run store's suite, run against every backend like `conformance.rs`: each case in
//! `cases` takes the [`Stores`] of a fresh database and must pass on SQLite and PostgreSQL.
//!
//! What matters most here is money: a hold takes exactly the estimate, every pending hold is
//! captured or released exactly once whatever races, and the ledger explains the balance.
//!
//! PostgreSQL: `DOJO_TEST_POSTGRES_URL` names a server and a user allowed to create databases
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;

use dojo_test_support::Stores;

dojo_test_support::each_backend!(cases:
    create_holds_exactly_the_estimate,
    free_runs_hold_nothing,
    insufficient_credits_write_nothing,
    create_refuses_unknown_users_and_bad_input,
    resubmission_with_the_same_key_returns_the_first_run,
    concurrent_submissions_with_one_key_hold_once,
    the_unfinished_runs_quota_holds_under_concurrency,
    settle_captures_or_releases_once,
    finish_releases_the_rest_and_marks_leftover_nodes,
    cancel_of_a_queued_run_releases_at_once,
    claim_respects_live_leases,
    expire_holds_releases_stale_holds_and_fails_the_run,
    settle_racing_expiry_resolves_each_hold_once,
    orphaned_runs_are_the_unclaimed_and_the_abandoned,
    list_runs_newest_first,
    outbox_is_relayed_in_order,
    run_gauges_count_active_runs_holds_and_expired_leases,
    assets_and_their_links,
    uploads_stay_within_the_owners_quota,
    per_user_limit_holds_across_workers,
    node_cache_by_scope_and_key,
    finished_runs_and_nodes_are_read_by_when_they_ended,
);

mod cases {
    use std::collections::HashMap;
    use std::time::Duration;

    use dojo_records::{
        AccountError, AssetLink, AssetRecord, Claim, CreditOutcome, HoldState, LedgerEntry,
        MAX_CACHED_OUTPUTS, NewRun, NewRunNode, NodeSettlement, Run, RunNodeState, RunStatus, Submission,
    };

    use dojo_ids::{NodeId, RunId, UserId};

    use super::*;

    const HOUR: i64 = 3_600_000;

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    }

    /// A user holding `credits`.
    async fn user(b: &Stores, subject: &str, credits: i64) -> String {
        let user = b.accounts.upsert_user(subject, None, None).await.expect("upsert user");
        if credits > 0 {
            let granted =
                b.accounts.apply_credits(&user.id, credits, "grant", &format!("grant:{subject}")).await;
            assert!(matches!(granted, Ok(CreditOutcome::Applied(_))), "{granted:?}");
        }
        user.id.into_string()
    }

    fn new_run(id: &str, user_id: &str, key: Option<&str>, nodes: &[(&str, i64)]) -> NewRun {
        NewRun {
            id: id.into(),
            room: "canvas-1".to_owned(),
            user_id: user_id.into(),
            graph: r#"{"nodes":[]}"#.to_owned(),
            targets: None,
            idempotency_key: key.map(str::to_owned),
            nodes: nodes
                .iter()
                .map(|(node_id, cost)| NewRunNode {
                    node_id: (*node_id).into(),
                    node_type: "image.generate".to_owned(),
                    cost: *cost,
                    params: format!(r#"{{"prompt":"{node_id}"}}"#),
                })
                .collect(),
            hold_expires_at: now() + HOUR,
            max_unfinished: None,
            team_id: None,
            queue: Default::default(),
            granted_assets: Vec::new(),
        }
    }

    async fn create(b: &Stores, run: NewRun) -> Run {
        match b.runs.create_run(run).await.expect("create run") {
            Submission::Created(run) => run,
            other => panic!("expected a new run, got {other:?}"),
        }
    }

    fn settlement(state: &str, capture: bool) -> NodeSettlement {
        NodeSettlement {
            state: RunNodeState::parse(state).expect("a node state"),
            outputs: (state == "succeeded").then(|| r#"{"image":"asset:1"}"#.to_owned()),
            error: (state == "failed").then(|| "provider error".to_owned()),
            capture,
        }
    }

    /// The user's ledger, oldest first, after checking that it chains: each entry's
    /// balance_after is the previous one's plus its amount, and the last one is the balance.
    async fn ledger(b: &Stores, user_id: &str) -> Vec<LedgerEntry> {
        let user_id = UserId::from(user_id);
        let mut entries = b.accounts.ledger(&user_id, 10_000).await.expect("ledger");
        entries.reverse();
        let mut balance = 0;
        for entry in &entries {
            balance += entry.amount;
            assert_eq!(entry.balance_after, balance, "the ledger chains: {entry:?}");
        }
        assert_eq!(b.accounts.balance(&user_id).await.unwrap(), balance, "the ledger explains the balance");
        entries
    }

    /// The ledger's entries for one run, by key suffix (`a:hold`, `a:capture`, …).
    async fn run_entries(b: &Stores, user_id: &str, run_id: &str) -> HashMap<String, LedgerEntry> {
        let prefix = format!("run:{run_id}:");
        ledger(b, user_id)
            .await
            .into_iter()
            .filter_map(|entry| {
                let suffix = entry.idempotency_key.strip_prefix(&prefix)?.to_owned();
                Some((suffix, entry))
            })
            .collect()
    }

    async fn balance(b: &Stores, user_id: &str) -> i64 {
        b.accounts.balance(&UserId::from(user_id)).await.expect("balance")
    }

    pub async fn create_holds_exactly_the_estimate(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        let run = create(&b, new_run("run_1", &ada, None, &[("a", 10), ("b", 0), ("c", 25)])).await;
        assert_eq!(
            (run.status, run.estimate, run.charged, run.attempts, run.cancel_requested),
            (RunStatus::Queued, 35, 0, 0, false)
        );
        assert_eq!((run.room.as_str(), run.user_id.as_str()), ("canvas-1", ada.as_str()));
        assert_eq!((run.lease_owner.as_deref(), run.started_at, run.finished_at), (None, None, None));
        assert_eq!(balance(&b, &ada).await, 65);

        // One hold entry per paid node, in submission order, chained from the balance before.
        let entries = ledger(&b, &ada).await;
        assert_eq!(entries.len(), 3);
        let holds: Vec<_> =
            entries[1..].iter().map(|e| (e.idempotency_key.as_str(), e.amount, e.balance_after)).collect();
        assert_eq!(holds, [("run:run_1:a:hold", -10, 90), ("run:run_1:c:hold", -25, 65)]);
        assert_eq!(entries[1].reason, "run run_1: hold for a (image.generate)");

        let nodes = b.runs.run_nodes(&"run_1".into()).await.unwrap();
        let summary: Vec<_> =
            nodes.iter().map(|n| (n.node_id.as_str(), n.state.as_str(), n.cost, n.hold_state)).collect();
        assert_eq!(
            summary,
            [
                ("a", "queued", 10, HoldState::Pending),
                ("b", "queued", 0, HoldState::None),
                ("c", "queued", 25, HoldState::Pending),
            ]
        );
        assert_eq!(nodes[0].params, r#"{"prompt":"a"}"#);
        assert_eq!((nodes[0].charged, nodes[0].outputs.as_deref()), (0, None));

        assert_eq!(b.runs.run(&"run_1".into()).await.unwrap(), Some(run.clone()));
        assert_eq!(b.runs.run(&"run_none".into()).await.unwrap(), None);
        assert_eq!(b.runs.list_runs("canvas-1", 10).await.unwrap(), [run]);
        let outbox = b.runs.outbox(10).await.unwrap();
        assert_eq!(outbox.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(), ["run_1"]);
    }

    pub async fn free_runs_hold_nothing(b: Stores) {
        // No credits at all: a free run is still accepted, and touches no balance.
        let ada = user(&b, "ada", 0).await;
        let run = create(&b, new_run("run_free", &ada, None, &[("a", 0), ("b", 0)])).await;
        assert_eq!(run.estimate, 0);
        assert_eq!(balance(&b, &ada).await, 0);
        assert!(ledger(&b, &ada).await.is_empty());
        let nodes = b.runs.run_nodes(&"run_free".into()).await.unwrap();
        assert!(nodes.iter().all(|n| n.hold_state == HoldState::None));
        assert!(
            b.runs.settle_node(&"run_free".into(), &"a".into(), settlement("succeeded", true)).await.unwrap()
        );
        let run = b.runs.finish_run(&"run_free".into(), RunStatus::Failed, Some("b failed")).await.unwrap();
        assert_eq!((run.status, run.charged), (RunStatus::Failed, 0));
        assert!(ledger(&b, &ada).await.is_empty());
    }

    pub async fn insufficient_credits_write_nothing(b: Stores) {
        let ada = user(&b, "ada", 30).await;
        let refused = b.runs.create_run(new_run("run_big", &ada, Some("k1"), &[("a", 10), ("b", 25)])).await;
        assert!(
            matches!(refused, Err(AccountError::InsufficientCredits { balance: 30, requested: 35 })),
            "{refused:?}"
        );
        assert_eq!(balance(&b, &ada).await, 30);
        assert_eq!(ledger(&b, &ada).await.len(), 1, "only the grant");
        assert_eq!(b.runs.run(&"run_big".into()).await.unwrap(), None);
        assert!(b.runs.run_nodes(&"run_big".into()).await.unwrap().is_empty());
        assert!(b.runs.list_runs("canvas-1", 10).await.unwrap().is_empty());
        assert!(b.runs.outbox(10).await.unwrap().is_empty());

        // The key was not consumed: once affordable, the same submission goes through.
        let run = create(&b, new_run("run_big", &ada, Some("k1"), &[("a", 10), ("b", 20)])).await;
        assert_eq!((run.id.as_str(), run.estimate), ("run_big", 30));
        assert_eq!(balance(&b, &ada).await, 0);
        ledger(&b, &ada).await;
    }

    pub async fn create_refuses_unknown_users_and_bad_input(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        let unknown = b.runs.create_run(new_run("run_x", "u_nobody", None, &[("a", 1)])).await;
        assert!(matches!(unknown, Err(AccountError::UserNotFound(id)) if id == "u_nobody"));
        let invalid = |r: Result<Submission, AccountError>, expected: &str| match r {
            Err(AccountError::InvalidInput { field, .. }) => assert_eq!(field, expected),
            other => panic!("expected invalid {expected}, got {other:?}"),
        };
        invalid(b.runs.create_run(new_run("run_x", &ada, None, &[("a", 1), ("a", 2)])).await, "nodes");
        invalid(b.runs.create_run(new_run("run_x", &ada, None, &[("a", -1)])).await, "cost");
        invalid(b.runs.create_run(new_run("run_x", &ada, None, &[("a", i64::MAX), ("b", 1)])).await, "cost");
        invalid(b.runs.create_run(new_run("", &ada, None, &[])).await, "id");
        let mut bad_room = new_run("run_x", &ada, None, &[]);
        bad_room.room = "a\nb".to_owned();
        invalid(b.runs.create_run(bad_room).await, "room");
        // A run id already taken, without a key that matches: refused, nothing held.
        create(&b, new_run("run_taken", &ada, None, &[("a", 5)])).await;
        invalid(b.runs.create_run(new_run("run_taken", &ada, None, &[("a", 5)])).await, "id");
        assert_eq!(balance(&b, &ada).await, 95);
        assert_eq!(b.runs.list_runs("canvas-1", 10).await.unwrap().len(), 1);
        ledger(&b, &ada).await;
    }

    pub async fn resubmission_with_the_same_key_returns_the_first_run(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        let bob = user(&b, "bob", 100).await;
        let first = create(&b, new_run("run_1", &ada, Some("key-1"), &[("a", 10)])).await;
        // A retry carries a fresh run id (the server makes one per request): same run back.
        let again = b.runs.create_run(new_run("run_2", &ada, Some("key-1"), &[("a", 10)])).await.unwrap();
        assert_eq!(again, Submission::Existing(first.clone()));
        assert_eq!(balance(&b, &ada).await, 90, "held once");
        assert_eq!(b.runs.run(&"run_2".into()).await.unwrap(), None);
        assert_eq!(b.runs.outbox(10).await.unwrap().len(), 1);

        // Keys are per user, and another key is another run.
        let bobs = create(&b, new_run("run_3", &bob, Some("key-1"), &[("a", 10)])).await;
        assert_eq!(bobs.user_id, bob.as_str());
        let other = create(&b, new_run("run_4", &ada, Some("key-2"), &[("a", 10)])).await;
        assert_eq!(other.id, "run_4");
        assert_eq!((balance(&b, &ada).await, balance(&b, &bob).await), (80, 90));
        assert_eq!(ledger(&b, &ada).await.len(), 3);
    }

    pub async fn concurrent_submissions_with_one_key_hold_once(b: Stores) {
        // Credits for one hold only: a duplicate that reached the hold would be refused for
        // insufficient credits instead of answered with the first run.
        let ada = user(&b, "ada", 40).await;
        let second = b.reopen().await.runs;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let runs = if i % 2 == 0 { Arc::clone(&b.runs) } else { Arc::clone(&second) };
            let run = new_run(&format!("run_{i}"), &ada, Some("double-click"), &[("a", 10), ("b", 20)]);
            tasks.push(tokio::spawn(async move { runs.create_run(run).await }));
        }
        let mut created = 0;
        let mut ids = Vec::new();
        for task in tasks {
            let submission = task.await.unwrap().expect("every submission answers with the run");
            created += usize::from(matches!(submission, Submission::Created(_)));
            ids.push(submission.run().id.clone());
        }
        ids.dedup();
        assert_eq!((created, ids.len()), (1, 1), "one run: {ids:?}");
        assert_eq!(b.runs.list_runs("canvas-1", 100).await.unwrap().len(), 1);
        assert_eq!(balance(&b, &ada).await, 10);
        let holds = run_entries(&b, &ada, ids[0].as_str()).await;
        assert_eq!(holds.len(), 2, "{holds:?}");
        assert_eq!(b.runs.outbox(100).await.unwrap().len(), 1);
    }

    pub async fn the_unfinished_runs_quota_holds_under_concurrency(b: Stores) {
        // Twenty submissions at once, from two pools, against a quota of three: three runs,
        // and the refused ones hold nothing.
        let ada = user(&b, "ada", 1_000).await;
        let second = b.reopen().await.runs;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let runs = if i % 2 == 0 { Arc::clone(&b.runs) } else { Arc::clone(&second) };
            let mut run = new_run(&format!("run_{i}"), &ada, None, &[("a", 10)]);
            run.max_unfinished = Some(3);
            tasks.push(tokio::spawn(async move { runs.create_run(run).await }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(Submission::Created(_)) => created += 1,
                Err(AccountError::QuotaExceeded { limit: 3, .. }) => {}
                other => panic!("a run or a quota refusal, not {other:?}"),
            }
        }
        assert_eq!(created, 3);
        assert_eq!(balance(&b, &ada).await, 1_000 - 30, "only accepted runs hold credits");
        assert_eq!(b.runs.outbox(100).await.unwrap().len(), 3);
        // A finished run frees its place; runs of another user never counted.
        let runs = b.runs.list_runs("canvas-1", 100).await.unwrap();
        b.runs.request_cancel(&runs[0].id).await.unwrap();
        let mut next = new_run("run_next", &ada, None, &[("a", 10)]);
        next.max_unfinished = Some(3);
        create(&b, next).await;
        let bob = user(&b, "bob", 0).await;
        let mut free = new_run("run_bob", &bob, None, &[]);
        free.max_unfinished = Some(1);
        create(&b, free).await;
    }

    pub async fn settle_captures_or_releases_once(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        create(&b, new_run("run_1", &ada, None, &[("a", 10), ("b", 20), ("c", 0)])).await;
        assert_eq!(balance(&b, &ada).await, 70);

        b.runs.mark_node(&"run_1".into(), &"a".into(), RunNodeState::Running).await.unwrap();
        let a = &b.runs.run_nodes(&"run_1".into()).await.unwrap()[0];
        assert_eq!(a.state, RunNodeState::Running);
        let started = a.started_at.expect("started_at set");

        assert!(
            b.runs.settle_node(&"run_1".into(), &"a".into(), settlement("succeeded", true)).await.unwrap()
        );
        assert!(b.runs.settle_node(&"run_1".into(), &"b".into(), settlement("failed", false)).await.unwrap());
        assert!(b.runs.settle_node(&"run_1".into(), &"c".into(), settlement("cached", true)).await.unwrap());
        assert_eq!(balance(&b, &ada).await, 90, "charged exactly the captured cost");

        let nodes = b.runs.run_nodes(&"run_1".into()).await.unwrap();
        let summary: Vec<_> =
            nodes.iter().map(|n| (n.node_id.as_str(), n.state.as_str(), n.hold_state, n.charged)).collect();
        assert_eq!(
            summary,
            [
                ("a", "succeeded", HoldState::Captured, 10),
                ("b", "failed", HoldState::Released, 0),
                ("c", "cached", HoldState::None, 0),
            ]
        );
        assert_eq!(nodes[0].outputs.as_deref(), Some(r#"{"image":"asset:1"}"#));
        assert_eq!(nodes[0].started_at, Some(started));
        assert!(nodes[0].finished_at.is_some());
        assert_eq!(nodes[1].error.as_deref(), Some("provider error"));
        assert_eq!(b.runs.run(&"run_1".into()).await.unwrap().unwrap().charged, 10);

        let entries = run_entries(&b, &ada, "run_1").await;
        let capture = &entries["a:capture"];
        assert_eq!((capture.amount, capture.balance_after), (0, 70));
        let release = &entries["b:release"];
        assert_eq!((release.amount, release.balance_after), (20, 90));
        assert_eq!(entries.len(), 4, "{:?}", entries.keys());

        // Replays, even with the opposite decision, change nothing.
        let before = ledger(&b, &ada).await;
        assert!(
            !b.runs.settle_node(&"run_1".into(), &"a".into(), settlement("succeeded", true)).await.unwrap()
        );
        assert!(
            !b.runs.settle_node(&"run_1".into(), &"a".into(), settlement("failed", false)).await.unwrap()
        );
        assert!(
            !b.runs.settle_node(&"run_1".into(), &"b".into(), settlement("succeeded", true)).await.unwrap()
        );
        assert!(
            !b.runs.settle_node(&"run_1".into(), &"zz".into(), settlement("succeeded", true)).await.unwrap()
        );
        assert!(
            !b.runs
                .settle_node(&"run_none".into(), &"a".into(), settlement("succeeded", true))
                .await
                .unwrap()
        );
        b.runs.mark_node(&"run_1".into(), &"a".into(), RunNodeState::Running).await.unwrap();
        assert_eq!(ledger(&b, &ada).await, before);
        assert_eq!(b.runs.run_nodes(&"run_1".into()).await.unwrap(), nodes);

        let run = b.runs.finish_run(&"run_1".into(), RunStatus::Failed, Some("b failed")).await.unwrap();
        assert_eq!(
            (run.status, run.charged, run.error.as_deref()),
            (RunStatus::Failed, 10, Some("b failed"))
        );
        assert_eq!(balance(&b, &ada).await, 90);

        let invalid = b.runs.settle_node(&"run_1".into(), &"a".into(), settlement("running", true)).await;
        assert!(matches!(invalid, Err(AccountError::InvalidInput { field: "state", .. })), "{invalid:?}");
        let invalid = b.runs.mark_node(&"run_1".into(), &"a".into(), RunNodeState::Succeeded).await;
        assert!(matches!(invalid, Err(AccountError::InvalidInput { field: "state", .. })), "{invalid:?}");
    }

    pub async fn finish_releases_the_rest_and_marks_leftover_nodes(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        create(&b, new_run("run_1", &ada, None, &[("a", 10), ("b", 20), ("c", 30), ("d", 0)])).await;
        b.runs.claim_run(&"run_1".into(), "w1", 60_000, None).await.unwrap().run().expect("claimed");
        b.runs.mark_node(&"run_1".into(), &"b".into(), RunNodeState::Running).await.unwrap();
        assert!(
            b.runs.settle_node(&"run_1".into(), &"a".into(), settlement("succeeded", true)).await.unwrap()
        );

        let run = b.runs.finish_run(&"run_1".into(), RunStatus::Failed, Some("boom")).await.unwrap();
        assert_eq!((run.status, run.charged, run.error.as_deref()), (RunStatus::Failed, 10, Some("boom")));
        assert_eq!((run.lease_owner.as_deref(), run.lease_expires_at), (None, None));
        assert!(run.finished_at.is_some());
        assert_eq!(balance(&b, &ada).await, 90);
        let nodes = b.runs.run_nodes(&"run_1".into()).await.unwrap();
        let summary: Vec<_> = nodes.iter().map(|n| (n.state.as_str(), n.hold_state)).collect();
        assert_eq!(
            summary,
            [
                ("succeeded", HoldState::Captured),
                ("skipped", HoldState::Released),
                ("skipped", HoldState::Released),
                ("skipped", HoldState::None),
            ]
        );
        let entries = run_entries(&b, &ada, "run_1").await;
        assert_eq!((entries["b:release"].amount, entries["c:release"].amount), (20, 30));
        assert!(!entries.contains_key("a:release"));

        // Final: a second finish returns it unchanged and moves nothing.
        let before = ledger(&b, &ada).await;
        let again = b.runs.finish_run(&"run_1".into(), RunStatus::Cancelled, None).await.unwrap();
        assert_eq!(again, run);
        assert_eq!(ledger(&b, &ada).await, before);
        assert!(
            !b.runs.settle_node(&"run_1".into(), &"b".into(), settlement("succeeded", true)).await.unwrap()
        );

        // Cancelled: leftover nodes are cancelled rather than skipped.
        create(&b, new_run("run_2", &ada, None, &[("a", 5)])).await;
        let cancelled = b.runs.finish_run(&"run_2".into(), RunStatus::Cancelled, None).await.unwrap();
        assert_eq!((cancelled.status, cancelled.charged), (RunStatus::Cancelled, 0));
        assert_eq!(b.runs.run_nodes(&"run_2".into()).await.unwrap()[0].state, RunNodeState::Cancelled);
        assert_eq!(balance(&b, &ada).await, 90);

        let invalid = b.runs.finish_run(&"run_2".into(), RunStatus::Running, None).await;
        assert!(matches!(invalid, Err(AccountError::InvalidInput { field: "status", .. })), "{invalid:?}");
        let missing = b.runs.finish_run(&"run_none".into(), RunStatus::Failed, None).await;
        assert!(matches!(missing, Err(AccountError::RunNotFound(id)) if id == "run_none"));
    }

    pub async fn cancel_of_a_queued_run_releases_at_once(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        create(&b, new_run("run_q", &ada, None, &[("a", 10), ("b", 20)])).await;
        let run = b.runs.request_cancel(&"run_q".into()).await.unwrap().expect("the run");
        assert_eq!((run.status, run.cancel_requested, run.charged), (RunStatus::Cancelled, true, 0));
        assert_eq!(balance(&b, &ada).await, 100);
        let nodes = b.runs.run_nodes(&"run_q".into()).await.unwrap();
        assert!(
            nodes.iter().all(|n| n.state == RunNodeState::Cancelled && n.hold_state == HoldState::Released)
        );
        assert_eq!(
            b.runs.claim_run(&"run_q".into(), "w1", 60_000, None).await.unwrap(),
            Claim::Gone,
            "nothing to run"
        );
        // Again: unchanged.
        assert_eq!(b.runs.request_cancel(&"run_q".into()).await.unwrap(), Some(run));

        // A running run is only flagged: its worker stops it, and the holds stay until then.
        create(&b, new_run("run_r", &ada, None, &[("a", 10)])).await;
        b.runs.claim_run(&"run_r".into(), "w1", 60_000, None).await.unwrap().run().expect("claimed");
        let run = b.runs.request_cancel(&"run_r".into()).await.unwrap().expect("the run");
        assert_eq!((run.status, run.cancel_requested), (RunStatus::Running, true));
        assert_eq!(balance(&b, &ada).await, 90);
        let done = b.runs.finish_run(&"run_r".into(), RunStatus::Cancelled, None).await.unwrap();
        assert_eq!(done.status, RunStatus::Cancelled);
        assert_eq!(balance(&b, &ada).await, 100);

        assert_eq!(b.runs.request_cancel(&"run_none".into()).await.unwrap(), None);
        ledger(&b, &ada).await;
    }

    pub async fn claim_respects_live_leases(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        create(&b, new_run("run_1", &ada, None, &[("a", 10)])).await;
        let before = now();
        let claimed =
            b.runs.claim_run(&"run_1".into(), "w1", 60_000, None).await.unwrap().run().expect("claimed");
        assert_eq!((claimed.status, claimed.attempts), (RunStatus::Running, 1));
        assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
        let expires = claimed.lease_expires_at.expect("a lease");
        assert!(expires >= before + 60_000, "{expires}");
        let started = claimed.started_at.expect("started");

        assert_eq!(
            b.runs.claim_run(&"run_1".into(), "w2", 60_000, None).await.unwrap(),
            Claim::Leased,
            "leased by a live worker"
        );
        assert!(b.runs.renew_lease(&"run_1".into(), "w1", 120_000).await.unwrap());
        assert!(!b.runs.renew_lease(&"run_1".into(), "w2", 120_000).await.unwrap());
        let renewed = b.runs.run(&"run_1".into()).await.unwrap().unwrap().lease_expires_at.unwrap();
        assert!(renewed >= before + 120_000);

        // The worker died: its lease runs out (moved into the past rather than waited for).
        assert_eq!(
            b.execute("UPDATE runs SET lease_expires_at = 1 WHERE id = $1", &["run_1"])
                .await
                .expect("raw SQL"),
            1
        );
        let taken =
            b.runs.claim_run(&"run_1".into(), "w2", 60_000, None).await.unwrap().run().expect("taken over");
        assert_eq!((taken.attempts, taken.lease_owner.as_deref()), (2, Some("w2")));
        assert_eq!(taken.started_at, Some(started), "started_at is set once");
        assert!(!b.runs.renew_lease(&"run_1".into(), "w1", 60_000).await.unwrap(), "w1 lost it");
        assert!(b.runs.renew_lease(&"run_1".into(), "w2", 60_000).await.unwrap());

        b.runs.finish_run(&"run_1".into(), RunStatus::Succeeded, None).await.unwrap();
        assert_eq!(
            b.runs.claim_run(&"run_1".into(), "w3", 60_000, None).await.unwrap(),
            Claim::Gone,
            "final"
        );
        assert!(!b.runs.renew_lease(&"run_1".into(), "w2", 60_000).await.unwrap());
        assert_eq!(b.runs.claim_run(&"run_none".into(), "w3", 60_000, None).await.unwrap(), Claim::Gone);
        let invalid = b.runs.claim_run(&"run_1".into(), "w3", 0, None).await;
        assert!(matches!(invalid, Err(AccountError::InvalidInput { field: "lease_ms", .. })), "{invalid:?}");
    }

    pub async fn expire_holds_releases_stale_holds_and_fails_the_run(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        let base = now();
        let mut stale = new_run("run_stale", &ada, None, &[("a", 10), ("b", 20), ("c", 30)]);
        stale.hold_expires_at = base + 1_000;
        create(&b, stale).await;
        let mut fresh = new_run("run_fresh", &ada, None, &[("a", 5)]);
        fresh.hold_expires_at = base + 10 * HOUR;
        create(&b, fresh).await;
        b.runs.claim_run(&"run_stale".into(), "w1", 60_000, None).await.unwrap().run().expect("claimed");
        assert!(
            b.runs
                .settle_node(&"run_stale".into(), &"a".into(), settlement("succeeded", true))
                .await
                .unwrap()
        );
        assert_eq!(balance(&b, &ada).await, 35);

        assert_eq!(b.runs.expire_holds(base + 500).await.unwrap(), 0, "nothing expired yet");
        assert_eq!(b.runs.run(&"run_stale".into()).await.unwrap().unwrap().status, RunStatus::Running);

        assert_eq!(b.runs.expire_holds(base + 2_000).await.unwrap(), 2);
        let run = b.runs.run(&"run_stale".into()).await.unwrap().unwrap();
        assert_eq!(
            (run.status, run.error.as_deref(), run.charged),
            (RunStatus::Failed, Some("credit hold expired"), 10)
        );
        assert_eq!(balance(&b, &ada).await, 85, "b and c released, a stays charged, fresh stays held");
        let nodes = b.runs.run_nodes(&"run_stale".into()).await.unwrap();
        let holds: Vec<_> = nodes.iter().map(|n| n.hold_state).collect();
        assert_eq!(holds, [HoldState::Captured, HoldState::Released, HoldState::Released]);
        assert_eq!(b.runs.run(&"run_fresh".into()).await.unwrap().unwrap().status, RunStatus::Queued);

        assert_eq!(b.runs.expire_holds(base + 2_000).await.unwrap(), 0, "once");
        assert!(
            !b.runs
                .settle_node(&"run_stale".into(), &"b".into(), settlement("succeeded", true))
                .await
                .unwrap()
        );
        assert_eq!(b.runs.expire_holds(base + 11 * HOUR).await.unwrap(), 1);
        assert_eq!(balance(&b, &ada).await, 90);
        ledger(&b, &ada).await;
    }

    pub async fn settle_racing_expiry_resolves_each_hold_once(b: Stores) {
        const NODES: i64 = 30;
        let ada = user(&b, "ada", 1_000_000).await;
        let sweeper = b.reopen().await.runs;
        let mut expected_charge = 0;
        for round in 0..3 {
            let run_id = RunId::from(format!("run_{round}"));
            let names: Vec<String> = (0..NODES).map(|i| format!("n{i:02}")).collect();
            let nodes: Vec<(&str, i64)> = names.iter().zip(1..).map(|(n, cost)| (n.as_str(), cost)).collect();
            let mut run = new_run(run_id.as_str(), &ada, None, &nodes);
            run.hold_expires_at = now() + HOUR;
            create(&b, run).await;
            b.runs.claim_run(&run_id, "w1", 60_000, None).await.unwrap().run().expect("claimed");

            let mut tasks = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let (runs, run_id, name) = (Arc::clone(&b.runs), run_id.clone(), name.clone());
                let capture = i % 3 != 0;
                let state = if capture { "succeeded" } else { "failed" };
                tasks.push(tokio::spawn(async move {
                    runs.settle_node(&run_id, &NodeId::from(name), settlement(state, capture)).await
                }));
                if i == (NODES as usize) / 2 - (round * 5) {
                    let sweeper = Arc::clone(&sweeper);
                    tasks.push(tokio::spawn(async move {
                        sweeper.expire_holds(now() + 2 * HOUR).await.map(|n| n > 0)
                    }));
                }
            }
            for task in tasks {
                task.await.unwrap().expect("settle or sweep");
            }
            // Whatever the interleaving, each hold resolved once, and the run ended.
            let entries = run_entries(&b, &ada, run_id.as_str()).await;
            let nodes = b.runs.run_nodes(&run_id).await.unwrap();
            let mut captured = 0;
            for node in &nodes {
                let capture = entries.contains_key(&format!("{}:capture", node.node_id));
                let release = entries.contains_key(&format!("{}:release", node.node_id));
                assert!(entries.contains_key(&format!("{}:hold", node.node_id)));
                assert!(capture ^ release, "{}: exactly one of capture and release", node.node_id);
                match node.hold_state {
                    HoldState::Captured => {
                        assert!(capture);
                        assert_eq!(node.charged, node.cost);
                        captured += node.cost;
                    }
                    HoldState::Released => assert!(release && node.charged == 0),
                    other => panic!("{}: hold still {other:?}", node.node_id),
                }
            }
            assert_eq!(entries.len(), 2 * nodes.len());
            let run = b.runs.run(&run_id).await.unwrap().unwrap();
            let run = if run.status.is_final() {
                run
            } else {
                b.runs.finish_run(&run_id, RunStatus::Succeeded, None).await.unwrap()
            };
            assert_eq!(run.charged, captured);
            expected_charge += captured;
            let net: i64 = entries.values().map(|e| e.amount).sum();
            assert_eq!(net, -captured, "the run's entries sum to its charge");
            assert_eq!(balance(&b, &ada).await, 1_000_000 - expected_charge);
        }
        ledger(&b, &ada).await;
    }

    pub async fn orphaned_runs_are_the_unclaimed_and_the_abandoned(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        let queued = create(&b, new_run("run_queued", &ada, None, &[("a", 1)])).await;
        create(&b, new_run("run_live", &ada, None, &[("a", 1)])).await;
        create(&b, new_run("run_dead", &ada, None, &[("a", 1)])).await;
        create(&b, new_run("run_done", &ada, None, &[("a", 1)])).await;
        b.runs.claim_run(&"run_live".into(), "w1", HOUR, None).await.unwrap().run().expect("claimed");
        b.runs.claim_run(&"run_dead".into(), "w2", HOUR, None).await.unwrap().run().expect("claimed");
        b.execute("UPDATE runs SET lease_expires_at = 1 WHERE id = $1", &["run_dead"])
            .await
            .expect("raw SQL");
        b.runs.finish_run(&"run_done".into(), RunStatus::Succeeded, None).await.unwrap();

        let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        // Before any run was created: only the lease that ran out at 1.
        assert_eq!(ids(b.runs.orphaned_runs(2, 10).await.unwrap()), ["run_dead"]);
        assert!(b.runs.orphaned_runs(1, 10).await.unwrap().is_empty());
        // After every creation, before the live lease runs out: the queued one too.
        let mut found = ids(b.runs.orphaned_runs(queued.created_at + 60_000, 10).await.unwrap());
        found.sort();
        assert_eq!(found, ["run_dead", "run_queued"]);
        assert_eq!(b.runs.orphaned_runs(queued.created_at + 60_000, 1).await.unwrap().len(), 1);
        // Past the live lease: every active run.
        let mut found = ids(b.runs.orphaned_runs(now() + 2 * HOUR, 10).await.unwrap());
        found.sort();
        assert_eq!(found, ["run_dead", "run_live", "run_queued"]);
    }

    pub async fn list_runs_newest_first(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        for id in ["run_a", "run_b", "run_c"] {
            create(&b, new_run(id, &ada, None, &[("a", 1)])).await;
            // Lets the millisecond clock move on, so creation times order the runs.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let mut other = new_run("run_elsewhere", &ada, None, &[]);
        other.room = "canvas-2".to_owned();
        create(&b, other).await;
        let listed: Vec<_> =
            b.runs.list_runs("canvas-1", 10).await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(listed, ["run_c", "run_b", "run_a"]);
        assert_eq!(b.runs.list_runs("canvas-1", 2).await.unwrap().len(), 2);
        assert_eq!(b.runs.list_runs("canvas-2", 10).await.unwrap().len(), 1);
        assert!(b.runs.list_runs("canvas-3", 10).await.unwrap().is_empty());
    }

    pub async fn outbox_is_relayed_in_order(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        for id in ["run_1", "run_2", "run_3"] {
            create(&b, new_run(id, &ada, None, &[("a", 1)])).await;
        }
        let all = b.runs.outbox(10).await.unwrap();
        assert_eq!(all.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(), ["run_1", "run_2", "run_3"]);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(b.runs.outbox(2).await.unwrap(), all[..2]);
        b.runs.delete_outbox(&[all[0].id, all[1].id, 999_999]).await.unwrap();
        b.runs.delete_outbox(&[]).await.unwrap();
        assert_eq!(b.runs.outbox(10).await.unwrap(), all[2..]);
        // A new run adds its row; a resubmission of it (same key) adds none.
        create(&b, new_run("run_4", &ada, Some("k"), &[])).await;
        let again = b.runs.create_run(new_run("run_5", &ada, Some("k"), &[])).await.unwrap();
        assert!(matches!(again, Submission::Existing(run) if run.id == "run_4"));
        let left: Vec<_> = b.runs.outbox(10).await.unwrap().into_iter().map(|e| e.run_id).collect();
        assert_eq!(left, ["run_3", "run_4"]);
    }

    /// What `/metrics` shows: runs by active state, credits held, the outbox, expired leases.
    pub async fn run_gauges_count_active_runs_holds_and_expired_leases(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        assert_eq!(b.runs.run_gauges(now()).await.unwrap(), dojo_records::RunGauges::default());
        create(&b, new_run("run_1", &ada, None, &[("a", 10), ("b", 5)])).await;
        create(&b, new_run("run_2", &ada, None, &[("a", 3)])).await;
        let outbox = b.runs.outbox(10).await.unwrap().len() as i64;
        let gauges = b.runs.run_gauges(now()).await.unwrap();
        assert_eq!((gauges.queued, gauges.running, gauges.credits_held), (2, 0, 18), "{gauges:?}");
        assert_eq!((gauges.outbox_pending, gauges.lease_expired), (outbox, 0), "{gauges:?}");

        b.runs.claim_run(&"run_1".into(), "w1", 60_000, None).await.unwrap().run().expect("claimed");
        assert!(
            b.runs.settle_node(&"run_1".into(), &"a".into(), settlement("succeeded", true)).await.unwrap()
        );
        let gauges = b.runs.run_gauges(now()).await.unwrap();
        assert_eq!((gauges.queued, gauges.running, gauges.credits_held, gauges.lease_expired), (1, 1, 8, 0));
        // Two minutes on, the one-minute lease has passed: its worker stopped renewing.
        let later = b.runs.run_gauges(now() + 120_000).await.unwrap();
        assert_eq!((later.running, later.lease_expired), (1, 1), "{later:?}");

        b.runs.finish_run(&"run_1".into(), RunStatus::Succeeded, None).await.unwrap();
        let gauges = b.runs.run_gauges(now() + 120_000).await.unwrap();
        assert_eq!((gauges.queued, gauges.running, gauges.credits_held, gauges.lease_expired), (1, 0, 3, 0));
    }

    pub async fn assets_and_their_links(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        let asset = AssetRecord {
            id: "ab".repeat(32).into(),
            content_type: "image/png".to_owned(),
            size: 1234,
            created_at: 1_700_000_000_000,
        };
        let uploaded = AssetLink { owner_id: ada.as_str().into(), room: None, run_id: None, node_id: None };
        b.runs.record_asset(&asset, &uploaded).await.unwrap();
        b.runs.record_asset(&asset, &uploaded).await.unwrap();
        assert_eq!(b.runs.asset(&asset.id).await.unwrap(), Some(asset.clone()));
        assert_eq!(
            b.runs.asset_links(&asset.id, 10).await.unwrap(),
            std::slice::from_ref(&uploaded),
            "linked once"
        );

        // The same bytes produced by a run node: the first record stays, a second link is added.
        let produced = AssetLink {
            owner_id: ada.as_str().into(),
            room: Some("canvas-1".to_owned()),
            run_id: Some("run_1".into()),
            node_id: Some("a".into()),
        };
        let renamed = AssetRecord { content_type: "application/octet-stream".to_owned(), ..asset.clone() };
        b.runs.record_asset(&renamed, &produced).await.unwrap();
        b.runs.record_asset(&renamed, &produced).await.unwrap();
        assert_eq!(b.runs.asset(&asset.id).await.unwrap(), Some(asset.clone()));
        let links = b.runs.asset_links(&asset.id, 10).await.unwrap();
        assert_eq!(links.len(), 2);
        assert!(links.contains(&uploaded) && links.contains(&produced));
        assert_eq!(b.runs.asset_links(&asset.id, 1).await.unwrap().len(), 1);

        assert_eq!(b.runs.asset(&"cd".repeat(32).into()).await.unwrap(), None);
        assert!(b.runs.asset_links(&"cd".repeat(32).into(), 10).await.unwrap().is_empty());
    }

    pub async fn uploads_stay_within_the_owners_quota(b: Stores) {
        let ada = user(&b, "ada", 0).await;
        let bob = user(&b, "bob", 0).await;
        let asset = |n: u8, size: i64| AssetRecord {
            id: format!("{n:02x}").repeat(32).into(),
            content_type: "image/png".to_owned(),
            size,
            created_at: 1_700_000_000_000,
        };
        let by = |owner: &str| AssetLink { owner_id: owner.into(), room: None, run_id: None, node_id: None };
        assert_eq!(b.runs.storage_used(&ada.as_str().into()).await.unwrap(), 0);
        b.runs.record_upload(&asset(1, 400), &by(&ada), 1000).await.unwrap();
        b.runs.record_upload(&asset(2, 500), &by(&ada), 1000).await.unwrap();
        // The same bytes again cost nothing more: each asset counts once.
        b.runs.record_upload(&asset(2, 500), &by(&ada), 1000).await.unwrap();
        assert_eq!(b.runs.storage_used(&ada.as_str().into()).await.unwrap(), 900);

        let over = b.runs.record_upload(&asset(3, 101), &by(&ada), 1000).await;
        assert!(
            matches!(over, Err(AccountError::StorageQuotaExceeded { used: 1001, quota: 1000 })),
            "{over:?}"
        );
        assert_eq!(b.runs.asset(&asset(3, 101).id).await.unwrap(), None, "nothing was written");
        assert_eq!(b.runs.storage_used(&ada.as_str().into()).await.unwrap(), 900);

        // Run outputs count too; other users' assets do not.
        let produced = AssetLink { run_id: Some("run_1".into()), node_id: Some("a".into()), ..by(&ada) };
        b.runs.record_asset(&asset(4, 50), &produced).await.unwrap();
        b.runs.record_upload(&asset(5, 7000), &by(&bob), 10_000).await.unwrap();
        assert_eq!(b.runs.storage_used(&ada.as_str().into()).await.unwrap(), 950);
        // Bob's bytes uploaded by Ada too: hers as well now.
        b.runs.record_upload(&asset(5, 7000), &by(&ada), 10_000).await.unwrap();
        assert_eq!(b.runs.storage_used(&ada.as_str().into()).await.unwrap(), 7950);
        assert_eq!(b.runs.storage_used(&bob.as_str().into()).await.unwrap(), 7000);
    }

    pub async fn per_user_limit_holds_across_workers(b: Stores) {
        let ada = user(&b, "ada", 1000).await;
        let bob = user(&b, "bob", 1000).await;
        for i in 0..6 {
            create(&b, new_run(&format!("run_a{i}"), &ada, None, &[("a", 1)])).await;
        }
        create(&b, new_run("run_b0", &bob, None, &[("a", 1)])).await;

        // Six workers, each with its own pool (as separate processes would have), claim Ada's
        // six runs at the same instant under a limit of two: exactly two get one.
        let mut claims = Vec::new();
        for i in 0..6 {
            let store = b.reopen().await.runs;
            claims.push(tokio::spawn(async move {
                store
                    .claim_run(&RunId::from(format!("run_a{i}")), &format!("w{i}"), HOUR, Some(2))
                    .await
                    .expect("claim")
            }));
        }
        let mut claimed = Vec::new();
        let mut busy = 0;
        for claim in claims {
            match claim.await.expect("claim task") {
                Claim::Claimed(run) => claimed.push(run.id),
                Claim::UserBusy => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((claimed.len(), busy), (2, 4), "claimed {claimed:?}");

        // Another user is not held up by Ada's runs.
        let theirs = b.runs.claim_run(&"run_b0".into(), "w9", HOUR, Some(2)).await.unwrap();
        assert!(matches!(theirs, Claim::Claimed(_)), "{theirs:?}");

        // One of Ada's finishes: one more may start; without a limit, any may.
        let waiting: Vec<RunId> =
            (0..6).map(|i| RunId::from(format!("run_a{i}"))).filter(|id| !claimed.contains(id)).collect();
        b.runs.finish_run(&claimed[0], RunStatus::Succeeded, None).await.unwrap();
        assert!(matches!(
            b.runs.claim_run(&waiting[0], "w1", HOUR, Some(2)).await.unwrap(),
            Claim::Claimed(_)
        ));
        assert_eq!(b.runs.claim_run(&waiting[1], "w1", HOUR, Some(2)).await.unwrap(), Claim::UserBusy);
        assert!(matches!(b.runs.claim_run(&waiting[1], "w1", HOUR, None).await.unwrap(), Claim::Claimed(_)));

        // Runs whose worker died no longer count against their user: of the three running,
        // two are abandoned, so one more may start.
        assert_eq!(
            b.execute("UPDATE runs SET lease_expires_at = 1 WHERE id = $1", &[claimed[1].as_str()])
                .await
                .expect("raw SQL"),
            1
        );
        assert_eq!(
            b.execute("UPDATE runs SET lease_expires_at = 1 WHERE id = $1", &[waiting[1].as_str()])
                .await
                .expect("raw SQL"),
            1
        );
        assert!(matches!(
            b.runs.claim_run(&waiting[2], "w1", HOUR, Some(2)).await.unwrap(),
            Claim::Claimed(_)
        ));
        // A busy answer changed nothing.
        let still = b.runs.run(&waiting[3]).await.unwrap().expect("the run");
        assert_eq!((still.status, still.attempts, still.lease_owner), (RunStatus::Queued, 0, None));
    }

    pub async fn node_cache_by_scope_and_key(b: Stores) {
        assert_eq!(b.runs.cached_outputs("user-1", "k1").await.unwrap(), None);
        b.runs.cache_outputs("user-1", "k1", r#"{"image":1}"#).await.unwrap();
        assert_eq!(b.runs.cached_outputs("user-1", "k1").await.unwrap().as_deref(), Some(r#"{"image":1}"#));
        // Scopes do not see each other's entries.
        assert_eq!(b.runs.cached_outputs("user-2", "k1").await.unwrap(), None);
        // Storing again replaces.
        b.runs.cache_outputs("user-1", "k1", r#"{"image":2}"#).await.unwrap();
        assert_eq!(b.runs.cached_outputs("user-1", "k1").await.unwrap().as_deref(), Some(r#"{"image":2}"#));
        // Another process sees it.
        let other = b.reopen().await.runs;
        assert_eq!(other.cached_outputs("user-1", "k1").await.unwrap().as_deref(), Some(r#"{"image":2}"#));

        let huge = "x".repeat(MAX_CACHED_OUTPUTS + 1);
        let refused = b.runs.cache_outputs("user-1", "k2", &huge).await;
        assert!(matches!(refused, Err(AccountError::InvalidInput { field: "outputs", .. })), "{refused:?}");
        assert_eq!(b.runs.cached_outputs("user-1", "k2").await.unwrap(), None);

        b.runs.cache_outputs("user-2", "k3", "{}").await.unwrap();
        assert_eq!(b.runs.prune_cache(now() - HOUR).await.unwrap(), 0, "nothing that old");
        assert_eq!(b.runs.prune_cache(now() + 1_000).await.unwrap(), 2);
        assert_eq!(b.runs.cached_outputs("user-1", "k1").await.unwrap(), None);
    }

    /// What the servers' webhook sweep reads: runs and nodes by the moment they ended, from a
    /// moment on, never the ones still going.
    pub async fn finished_runs_and_nodes_are_read_by_when_they_ended(b: Stores) {
        let ada = user(&b, "ada", 100).await;
        let before = b.runs.finished_runs_since(0, 10).await.unwrap();
        assert!(before.is_empty(), "{before:?}");
        create(&b, new_run("run_1", &ada, None, &[("a", 1), ("b", 1)])).await;
        create(&b, new_run("run_2", &ada, None, &[("c", 1)])).await;
        b.runs.claim_run(&"run_1".into(), "w1", 60_000, None).await.unwrap().run().expect("claimed");
        assert!(
            b.runs.settle_node(&"run_1".into(), &"a".into(), settlement("succeeded", true)).await.unwrap()
        );
        let nodes = b.runs.finished_nodes_since(0, 10).await.unwrap();
        assert_eq!(
            nodes.iter().map(|n| (n.run_id.as_str(), n.node_id.as_str())).collect::<Vec<_>>(),
            [("run_1", "a")]
        );
        assert!(b.runs.finished_runs_since(0, 10).await.unwrap().is_empty(), "run_1 is still running");

        let run = b.runs.finish_run(&"run_1".into(), RunStatus::Succeeded, None).await.unwrap();
        let ended = run.finished_at.expect("finished");
        let runs = b.runs.finished_runs_since(0, 10).await.unwrap();
        assert_eq!(runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["run_1"]);
        assert_eq!(b.runs.finished_runs_since(ended, 10).await.unwrap().len(), 1, "inclusive");
        assert!(b.runs.finished_runs_since(ended + 1, 10).await.unwrap().is_empty());
        // Finishing the run settled its last node too.
        let nodes = b.runs.finished_nodes_since(0, 10).await.unwrap();
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        assert!(nodes.windows(2).all(|w| w[0].finished_at <= w[1].finished_at));
        assert_eq!(b.runs.finished_nodes_since(0, 1).await.unwrap().len(), 1, "bounded");
    }
}
