//! The run queue's order in the database, against every backend: claims in turn follow plan
//! priority, then "move to front", then age; paused queues and users at their limit are passed
//! over; positions count the unpaused runs ahead; a full queue refuses with the would-be
//! position and writes nothing.

use dojo_test_support::Stores;

dojo_test_support::each_backend!(cases:
    claims_in_turn_follow_priority_rank_and_age,
    paused_queues_and_busy_users_are_passed_over,
    positions_count_the_unpaused_runs_ahead,
    a_full_queue_refuses_with_the_would_be_position,
    plan_limits_travel_with_the_run,
    running_runs_are_listed_by_when_they_started,
);

mod cases {
    use dojo_ids::{RunId, UserId};
    use dojo_records::{
        AccountError, Claim, CreditOutcome, NewRun, NewRunNode, QueueOwner, QueueTerms, RunStatus, Submission,
    };

    use super::*;

    const HOUR: i64 = 3_600_000;

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }

    async fn user(b: &Stores, subject: &str) -> String {
        let user = b.accounts.upsert_user(subject, None, None).await.expect("upsert user");
        let granted = b.accounts.apply_credits(&user.id, 1000, "grant", &format!("grant:{subject}")).await;
        assert!(matches!(granted, Ok(CreditOutcome::Applied(_))), "{granted:?}");
        user.id.into_string()
    }

    fn new_run(id: &str, user_id: &str, queue: QueueTerms) -> NewRun {
        NewRun {
            id: id.into(),
            room: "canvas-1".to_owned(),
            user_id: user_id.into(),
            graph: r#"{"nodes":[]}"#.to_owned(),
            targets: None,
            idempotency_key: None,
            nodes: vec![NewRunNode {
                node_id: "a".into(),
                node_type: "image.generate".to_owned(),
                cost: 1,
                params: "{}".to_owned(),
            }],
            hold_expires_at: now() + HOUR,
            max_unfinished: None,
            team_id: None,
            queue,
            granted_assets: Vec::new(),
        }
    }

    async fn create(b: &Stores, id: &str, user_id: &str, queue: QueueTerms) {
        let created = b.runs.create_run(new_run(id, user_id, queue)).await.expect("create run");
        assert!(matches!(created, Submission::Created(_)), "{created:?}");
        // Distinct creation times, so age orders them.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }

    fn queue(b: &Stores) -> std::sync::Arc<dyn dojo_records::QueueStore> {
        dojo_records::queue(&b.db)
    }

    async fn claim(b: &Stores, id: &str) -> Claim {
        b.runs.claim_run_in_turn(&RunId::from(id), "w1", HOUR, Some(10)).await.expect("claim")
    }

    fn claimed(claim: &Claim) -> bool {
        matches!(claim, Claim::Claimed(_))
    }

    pub async fn claims_in_turn_follow_priority_rank_and_age(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        create(&b, "run_old", &ada, QueueTerms::default()).await;
        create(&b, "run_new", &ada, QueueTerms::default()).await;
        create(&b, "run_pro", &bob, QueueTerms { priority: 10, ..QueueTerms::default() }).await;
        // The higher plan goes first, though it came last.
        assert_eq!(claim(&b, "run_old").await, Claim::UserBusy);
        assert!(claimed(&claim(&b, "run_pro").await));
        // Then by age…
        assert_eq!(claim(&b, "run_new").await, Claim::UserBusy);
        // …unless moved to the front.
        let moved = queue(&b).move_to_front(&"run_new".into()).await.expect("move").expect("the run");
        assert_eq!(moved.status, RunStatus::Queued);
        assert!(moved.queue_rank < 0, "{moved:?}");
        assert_eq!(claim(&b, "run_old").await, Claim::UserBusy);
        assert!(claimed(&claim(&b, "run_new").await));
        assert!(claimed(&claim(&b, "run_old").await));
        // The plain claim keeps its meaning: no order.
        create(&b, "run_a", &ada, QueueTerms::default()).await;
        create(&b, "run_b", &ada, QueueTerms::default()).await;
        assert!(claimed(&b.runs.claim_run(&"run_b".into(), "w1", HOUR, Some(10)).await.expect("claim")));
        // Moving a run no longer queued changes nothing.
        let same = queue(&b).move_to_front(&"run_b".into()).await.expect("move").expect("the run");
        assert_eq!(same.status, RunStatus::Running);
        assert!(queue(&b).move_to_front(&"run_none".into()).await.expect("move").is_none());
    }

    pub async fn paused_queues_and_busy_users_are_passed_over(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let ada_owner = QueueOwner::User(UserId::from(ada.as_str()));
        create(&b, "run_ada", &ada, QueueTerms { run_limit: Some(1), ..QueueTerms::default() }).await;
        create(&b, "run_ada2", &ada, QueueTerms { run_limit: Some(1), ..QueueTerms::default() }).await;
        create(&b, "run_bob", &bob, QueueTerms::default()).await;
        assert!(queue(&b).set_queue_paused(&ada_owner, true).await.expect("pause"));
        assert_eq!(queue(&b).queue_paused(&ada_owner).await.expect("read"), Some(true));
        // Ada's are older but paused: Bob's goes, Ada's wait.
        assert_eq!(claim(&b, "run_ada").await, Claim::UserBusy);
        assert!(claimed(&claim(&b, "run_bob").await));
        let still = b.runs.run(&"run_ada".into()).await.expect("read").expect("the run");
        assert_eq!((still.status, still.attempts), (RunStatus::Queued, 0));
        assert!(queue(&b).set_queue_paused(&ada_owner, false).await.expect("resume"));
        assert!(claimed(&claim(&b, "run_ada").await));
        // At her plan's one run: her next waits, and does not hold up Bob's newer run.
        create(&b, "run_bob2", &bob, QueueTerms::default()).await;
        assert_eq!(claim(&b, "run_ada2").await, Claim::UserBusy);
        assert!(claimed(&claim(&b, "run_bob2").await));
        // Unknown owners.
        let nobody = QueueOwner::User(UserId::from("user_nobody"));
        assert!(!queue(&b).set_queue_paused(&nobody, true).await.expect("pause"));
        assert_eq!(queue(&b).queue_paused(&nobody).await.expect("read"), None);
    }

    pub async fn positions_count_the_unpaused_runs_ahead(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        create(&b, "run_1", &ada, QueueTerms::default()).await;
        create(&b, "run_2", &bob, QueueTerms::default()).await;
        create(&b, "run_3", &ada, QueueTerms::default()).await;
        let q = queue(&b);
        let position = |id: &'static str| {
            let q = q.clone();
            async move { q.queue_position(&RunId::from(id)).await.expect("position") }
        };
        assert_eq!(
            (position("run_1").await, position("run_2").await, position("run_3").await),
            (Some(1), Some(2), Some(3))
        );
        q.set_queue_paused(&QueueOwner::User(UserId::from(bob.as_str())), true).await.expect("pause");
        assert_eq!(position("run_3").await, Some(2), "Bob's paused run is not ahead");
        let head = q.head_of_queue(10).await.expect("head");
        let places: Vec<(String, Option<i64>)> =
            head.iter().map(|r| (r.run.id.to_string(), r.position)).collect();
        assert_eq!(
            places,
            [("run_1".to_owned(), Some(1)), ("run_2".to_owned(), None), ("run_3".to_owned(), Some(2))]
        );
        let mine = q.queue_of(&QueueOwner::User(UserId::from(ada.as_str())), 10).await.expect("mine");
        assert_eq!(mine.len(), 2);
        assert!(claimed(&claim(&b, "run_1").await));
        assert_eq!(position("run_1").await, None, "claimed: no position");
        assert_eq!(position("run_3").await, Some(1));
        let mine = q.queue_of(&QueueOwner::User(UserId::from(ada.as_str())), 10).await.expect("mine");
        assert_eq!(mine[0].run.id, "run_1", "running first");
        assert_eq!((mine[0].position, mine[1].position), (None, Some(1)));
    }

    pub async fn a_full_queue_refuses_with_the_would_be_position(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let terms = QueueTerms { max_queued: Some(2), ..QueueTerms::default() };
        create(&b, "run_bob", &bob, QueueTerms::default()).await;
        create(&b, "run_1", &ada, terms.clone()).await;
        create(&b, "run_2", &ada, terms.clone()).await;
        let refused = b.runs.create_run(new_run("run_3", &ada, terms.clone())).await;
        assert!(matches!(refused, Err(AccountError::QueueFull { limit: 2, position: 4 })), "{refused:?}");
        assert!(b.runs.run(&"run_3".into()).await.expect("read").is_none(), "nothing written");
        assert_eq!(b.accounts.balance(&UserId::from(ada.as_str())).await.expect("balance"), 998);
        // A running run does not count against the queue length.
        assert!(claimed(&claim(&b, "run_bob").await));
        assert!(claimed(&claim(&b, "run_1").await));
        create(&b, "run_3", &ada, terms).await;
    }

    pub async fn plan_limits_travel_with_the_run(b: Stores) {
        let ada = user(&b, "ada").await;
        let terms = QueueTerms { priority: 7, run_limit: Some(3), max_run_ms: Some(5000), max_queued: None };
        create(&b, "run_1", &ada, terms).await;
        let run = b.runs.run(&"run_1".into()).await.expect("read").expect("the run");
        assert_eq!(
            (run.priority, run.queue_rank, run.run_limit, run.max_run_ms),
            (7, 0, Some(3), Some(5000))
        );
        let owner = QueueOwner::User(UserId::from(ada.as_str()));
        assert_eq!(queue(&b).plan_of(&owner).await.expect("plan"), None);
        assert!(queue(&b).set_plan(&owner, Some("pro")).await.expect("set"));
        assert_eq!(queue(&b).plan_of(&owner).await.expect("plan").as_deref(), Some("pro"));
        assert!(queue(&b).set_plan(&owner, Some(&"x".repeat(65))).await.is_err());
        assert!(queue(&b).set_plan(&owner, None).await.expect("reset"));
        assert_eq!(queue(&b).plan_of(&owner).await.expect("plan"), None);
        assert_eq!(queue(&b).average_run_ms(50).await.expect("average"), None);
    }

    pub async fn running_runs_are_listed_by_when_they_started(b: Stores) {
        let ada = user(&b, "ada").await;
        for id in ["run_1", "run_2", "run_3"] {
            create(&b, id, &ada, QueueTerms::default()).await;
        }
        assert_eq!(queue(&b).running_started_at(10).await.expect("read"), Vec::<i64>::new());
        for id in ["run_2", "run_1"] {
            assert!(claimed(&b.runs.claim_run(&id.into(), "w1", HOUR, Some(10)).await.expect("claim")));
            // Distinct start times, whatever the clock's resolution.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let mut started = Vec::new();
        for id in ["run_2", "run_1"] {
            let run = b.runs.run(&id.into()).await.expect("read").expect("the run");
            started.push(run.started_at.expect("started"));
        }
        assert!(started[0] < started[1], "{started:?}");
        assert_eq!(
            queue(&b).running_started_at(10).await.expect("read"),
            started,
            "earliest first, queued ones left out"
        );
        assert_eq!(queue(&b).running_started_at(1).await.expect("read"), started[..1]);
    }
}
