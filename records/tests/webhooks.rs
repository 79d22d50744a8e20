//! The webhook store's suite, run against every backend like `runs.rs`: endpoints, the event
//! log read as a change feed, deliveries claimed, retried, replayed and pruned.

use dojo_test_support::Stores;

dojo_test_support::each_backend!(cases:
    endpoints_are_bounded_per_workflow_and_listed_oldest_first,
    events_queue_deliveries_for_subscribed_endpoints_only,
    the_change_feed_pages_in_cursor_order,
    claimed_deliveries_are_not_claimed_again_until_their_lease_ends,
    attempts_are_logged_and_replay_queues_a_new_delivery,
    concurrent_claimers_never_share_a_delivery,
    old_events_and_events_beyond_the_cap_are_pruned,
    deleting_an_endpoint_deletes_its_deliveries,
    an_event_id_recorded_twice_is_one_event,
);

mod cases {
    use std::collections::HashSet;
    use std::sync::Arc;

    use dojo_ids::{EventId, WorkflowId};
    use dojo_records::AccountError;
    use dojo_records::webhooks::{Attempt, DeliveryStatus, NewEndpoint, NewEvent, WebhookStore};

    use super::*;

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    }

    async fn workflow(b: &Stores, subject: &str) -> (Arc<dyn WebhookStore>, WorkflowId, dojo_ids::UserId) {
        let user = b.accounts.upsert_user(subject, None, None).await.expect("user");
        let workflow = b.accounts.create_workflow(&user.id, "hooks", None).await.expect("workflow");
        (dojo_records::webhooks(&b.db), workflow.id, user.id)
    }

    fn endpoint(workflow: &WorkflowId, user: &dojo_ids::UserId, events: &[&str]) -> NewEndpoint {
        NewEndpoint {
            workflow_id: workflow.clone(),
            url: "https://hooks.example.com/dojo".to_owned(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            description: Some("test".to_owned()),
            secret: "whsec_0123456789abcdef0123".to_owned(),
            created_by: user.clone(),
        }
    }

    fn event(workflow: &WorkflowId, kind: &str, n: usize) -> NewEvent {
        NewEvent {
            id: EventId::generate(),
            workflow_id: workflow.clone(),
            event_type: kind.to_owned(),
            payload: format!("{{\"n\":{n}}}"),
            created_at: now(),
        }
    }

    pub async fn endpoints_are_bounded_per_workflow_and_listed_oldest_first(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "owner").await;
        let first = hooks.create_endpoint(endpoint(&wf, &user, &["run.finished"]), 2).await.unwrap();
        let second = hooks.create_endpoint(endpoint(&wf, &user, &["user.left"]), 2).await.unwrap();
        let third = hooks.create_endpoint(endpoint(&wf, &user, &["user.left"]), 2).await;
        assert!(matches!(third, Err(AccountError::QuotaExceeded { limit: 2, .. })), "{third:?}");
        let listed = hooks.endpoints(&wf).await.unwrap();
        assert_eq!(listed.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), [first.id.clone(), second.id]);
        assert_eq!(listed[0].events, ["run.finished"]);
        assert_eq!(hooks.endpoint(&wf, &first.id).await.unwrap().map(|e| e.secret), Some(first.secret));
        let bad = hooks.create_endpoint(endpoint(&wf, &user, &["nope"]), 10).await;
        assert!(matches!(bad, Err(AccountError::InvalidInput { field: "events", .. })), "{bad:?}");
        let missing = WorkflowId::from("wf_missing");
        let gone = hooks.create_endpoint(endpoint(&missing, &user, &["user.left"]), 10).await;
        assert!(matches!(gone, Err(AccountError::WorkflowNotFound(_))), "{gone:?}");
    }

    pub async fn events_queue_deliveries_for_subscribed_endpoints_only(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "owner").await;
        let runs = hooks.create_endpoint(endpoint(&wf, &user, &["run.finished"]), 10).await.unwrap();
        let both =
            hooks.create_endpoint(endpoint(&wf, &user, &["run.finished", "user.left"]), 10).await.unwrap();
        let (_, queued) =
            hooks.append_event(event(&wf, "run.finished", 1), 100).await.unwrap().expect("a new event");
        assert_eq!(queued, 2);
        let (_, queued) =
            hooks.append_event(event(&wf, "user.left", 2), 100).await.unwrap().expect("a new event");
        assert_eq!(queued, 1);
        let (_, queued) =
            hooks.append_event(event(&wf, "room.updated", 3), 100).await.unwrap().expect("a new event");
        assert_eq!(queued, 0, "nobody subscribed");
        assert_eq!(hooks.deliveries(&runs.id, None, 10).await.unwrap().len(), 1);
        let log = hooks.deliveries(&both.id, None, 10).await.unwrap();
        assert_eq!(
            log.iter().map(|d| d.event_type.as_str()).collect::<Vec<_>>(),
            ["user.left", "run.finished"]
        );
        assert!(log.iter().all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0));
        let bad = hooks.append_event(event(&wf, "run.started", 4), 100).await;
        assert!(bad.is_err(), "unknown types are refused");
    }

    pub async fn the_change_feed_pages_in_cursor_order(b: Stores) {
        let (hooks, wf, _) = workflow(&b, "owner").await;
        let (_, other, _) = workflow(&b, "someone-else").await;
        for n in 0..7 {
            hooks.append_event(event(&wf, "room.updated", n), 100).await.unwrap();
            hooks.append_event(event(&other, "room.updated", n), 100).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = hooks.events(&wf, after, 3).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 3);
            after = page.last().unwrap().cursor;
            seen.extend(page);
        }
        assert_eq!(seen.len(), 7, "every event of this workflow, none of the other");
        assert!(seen.windows(2).all(|w| w[0].cursor < w[1].cursor));
        let payloads: Vec<String> = seen.iter().map(|e| e.payload.clone()).collect();
        assert_eq!(payloads, (0..7).map(|n| format!("{{\"n\":{n}}}")).collect::<Vec<_>>());
    }

    pub async fn claimed_deliveries_are_not_claimed_again_until_their_lease_ends(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "owner").await;
        hooks.create_endpoint(endpoint(&wf, &user, &["run.finished"]), 10).await.unwrap();
        hooks.append_event(event(&wf, "run.finished", 1), 100).await.unwrap();
        let t = now() + 1_000;
        let due = hooks.claim_due(t, 30_000, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event_type, "run.finished");
        assert_eq!(due[0].payload, "{\"n\":1}");
        assert_eq!(due[0].secret, "whsec_0123456789abcdef0123");
        assert!(hooks.claim_due(t, 30_000, 10).await.unwrap().is_empty(), "claimed once");
        let again = hooks.claim_due(t + 30_001, 30_000, 10).await.unwrap();
        assert_eq!(again.len(), 1, "a claimer that died leaves it to be retried");
    }

    pub async fn attempts_are_logged_and_replay_queues_a_new_delivery(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "owner").await;
        let hook = hooks.create_endpoint(endpoint(&wf, &user, &["run.finished"]), 10).await.unwrap();
        hooks.append_event(event(&wf, "run.finished", 1), 100).await.unwrap();
        let t = now() + 1_000;
        let due = hooks.claim_due(t, 30_000, 10).await.unwrap();
        let retry = Attempt {
            status: DeliveryStatus::Pending,
            retry_at: t + 5_000,
            response_status: Some(500),
            response_body: Some("x".repeat(10_000)),
            error: Some("HTTP 500".to_owned()),
        };
        hooks.record_attempt(due[0].id, retry).await.unwrap();
        assert!(hooks.claim_due(t + 4_000, 30_000, 10).await.unwrap().is_empty(), "not due yet");
        let due = hooks.claim_due(t + 5_000, 30_000, 10).await.unwrap();
        assert_eq!(due[0].attempts, 1);
        let done = Attempt {
            status: DeliveryStatus::Succeeded,
            retry_at: t + 5_000,
            response_status: Some(200),
            response_body: Some("ok".to_owned()),
            error: None,
        };
        hooks.record_attempt(due[0].id, done).await.unwrap();
        let log = hooks.deliveries(&hook.id, None, 10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].status, log[0].attempts, log[0].response_status),
            (DeliveryStatus::Succeeded, 2, Some(200))
        );
        assert_eq!(log[0].last_error, None);
        assert!(hooks.claim_due(t + 100_000, 30_000, 10).await.unwrap().is_empty(), "finished for good");

        let replayed = hooks.replay(&hook.id, log[0].id).await.unwrap().expect("replayed");
        assert_ne!(replayed.id, log[0].id);
        assert_eq!((replayed.status, replayed.attempts), (DeliveryStatus::Pending, 0));
        assert_eq!(replayed.event_id, log[0].event_id);
        let due = hooks.claim_due(now() + 1_000, 30_000, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].id, replayed.id);
        assert!(hooks.replay(&hook.id, 999_999).await.unwrap().is_none());
        let page = hooks.deliveries(&hook.id, Some(replayed.id), 10).await.unwrap();
        assert_eq!(page.len(), 1, "pages below the cursor");
    }

    pub async fn concurrent_claimers_never_share_a_delivery(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "owner").await;
        hooks.create_endpoint(endpoint(&wf, &user, &["room.updated"]), 10).await.unwrap();
        for n in 0..40 {
            hooks.append_event(event(&wf, "room.updated", n), 1000).await.unwrap();
        }
        let other = b.reopen().await;
        let hooks2 = dojo_records::webhooks(&other.db);
        let t = now() + 1_000;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { hooks.clone() } else { hooks2.clone() };
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let due = store.claim_due(t, 60_000, 3).await.expect("claim");
                    if due.is_empty() {
                        return mine;
                    }
                    mine.extend(due.into_iter().map(|d| d.id));
                }
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let unique: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), 40, "every delivery claimed once: {all:?}");
        assert_eq!(unique.len(), 40);
    }

    pub async fn old_events_and_events_beyond_the_cap_are_pruned(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "owner").await;
        let hook = hooks.create_endpoint(endpoint(&wf, &user, &["room.updated"]), 10).await.unwrap();
        for n in 0..5 {
            hooks.append_event(event(&wf, "room.updated", n), 3).await.unwrap();
        }
        let kept = hooks.events(&wf, 0, 100).await.unwrap();
        assert_eq!(
            kept.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
            ["{\"n\":2}", "{\"n\":3}", "{\"n\":4}"]
        );
        assert_eq!(hooks.deliveries(&hook.id, None, 100).await.unwrap().len(), 3, "with their deliveries");
        assert_eq!(hooks.prune_events(now() - 60_000).await.unwrap(), 0, "nothing that old");
        assert_eq!(hooks.prune_events(now() + 1).await.unwrap(), 3);
        assert!(hooks.events(&wf, 0, 100).await.unwrap().is_empty());
        assert!(hooks.deliveries(&hook.id, None, 100).await.unwrap().is_empty());
    }

    pub async fn deleting_an_endpoint_deletes_its_deliveries(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "owner").await;
        let hook = hooks.create_endpoint(endpoint(&wf, &user, &["user.entered"]), 10).await.unwrap();
        hooks.append_event(event(&wf, "user.entered", 1), 100).await.unwrap();
        assert!(hooks.delete_endpoint(&wf, &hook.id).await.unwrap());
        assert!(!hooks.delete_endpoint(&wf, &hook.id).await.unwrap(), "once");
        assert!(hooks.endpoints(&wf).await.unwrap().is_empty());
        assert!(hooks.claim_due(now() + 1_000, 30_000, 10).await.unwrap().is_empty());
        assert_eq!(hooks.events(&wf, 0, 10).await.unwrap().len(), 1, "the feed keeps the event");
    }

    /// Ends of runs and nodes are reported by every server that sees them, under one id: the
    /// second report changes nothing and queues no second delivery.
    pub async fn an_event_id_recorded_twice_is_one_event(b: Stores) {
        let (hooks, wf, user) = workflow(&b, "twice").await;
        hooks.create_endpoint(endpoint(&wf, &user, &["run.finished"]), 10).await.unwrap();
        let mut first = event(&wf, "run.finished", 1);
        first.id = EventId::from("evt_run_1_finished".to_owned());
        let mut again = event(&wf, "run.finished", 2);
        again.id = first.id.clone();
        let (seq, queued) = hooks.append_event(first, 100).await.unwrap().expect("a new event");
        assert_eq!(queued, 1);
        assert_eq!(hooks.append_event(again, 100).await.unwrap(), None);
        let feed = hooks.events(&wf, 0, 10).await.unwrap();
        assert_eq!(feed.len(), 1);
        assert_eq!((feed[0].cursor, feed[0].payload.as_str()), (seq, "{\"n\":1}"), "the first report stays");
        let due = hooks.claim_due(now(), 60_000, 10).await.unwrap();
        assert_eq!(due.len(), 1, "one delivery: {due:?}");
    }
}
