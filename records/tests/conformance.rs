//! One suite, run against every backend: each case in `cases` takes the [`Stores`] of a fresh
//! database and must pass on SQLite and PostgreSQL (`dojo_test_support::each_backend!`).
//!
//! PostgreSQL: `DOJO_TEST_POSTGRES_URL` names a server and a user allowed to create databases
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;

use dojo_records::AccountError;
use dojo_test_support::Stores;

dojo_test_support::each_backend!(cases:
    upsert_creates_once_and_refreshes_the_profile,
    concurrent_first_sign_ins_make_one_user,
    upsert_refuses_bad_input,
    user_lookups,
    find_user_by_id_subject_or_email,
    list_users_newest_first,
    create_workflow_claims_a_room,
    create_workflow_refuses_a_taken_room_and_bad_input,
    a_stored_room_the_rule_refuses_is_a_decode_error,
    create_workflow_within_counts_the_owners_live_workflows,
    workflow_lookups_hide_deleted_ones,
    list_workflows_shows_owned_and_shared,
    update_workflow_patches_fields,
    collaborators_are_set_changed_and_removed,
    collaborators_refuse_owner_and_unknowns,
    delete_workflow_is_soft,
    room_access_matrix,
    credits_grant_then_spend,
    overspend_is_refused_with_nothing_written,
    idempotency_key_applies_once,
    idempotency_key_reused_differently_is_refused,
    concurrent_spends_never_overdraw,
    concurrent_uses_of_one_key_apply_once,
    ledger_explains_the_balance,
    credits_refuse_unknown_users_and_bad_input,
    database_refuses_negative_balances_and_ledger_edits,
    abandoned_credit_operations_leave_the_pool_clean,
    stripe_checkout_credits_once_per_event,
);

mod cases {
    use std::time::Duration;

    use dojo_records::stripe;
    use dojo_records::{
        CollaboratorPermission, CreditOutcome, LedgerEntry, Permission, RoomAccess, User, WorkflowPatch,
    };

    use dojo_ids::{RoomName, UserId, WorkflowId};

    use super::*;

    async fn user(b: &Stores, subject: &str) -> User {
        b.accounts.upsert_user(subject, Some(subject), None).await.expect("upsert user")
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("a valid room name")
    }

    /// An id no row has.
    fn user_id(id: &str) -> UserId {
        UserId::from(id)
    }

    fn workflow_id(id: &str) -> WorkflowId {
        WorkflowId::from(id)
    }

    async fn grant(b: &Stores, user_id: &UserId, amount: i64, key: &str) -> LedgerEntry {
        match b.accounts.apply_credits(user_id, amount, "grant", key).await.expect("grant") {
            CreditOutcome::Applied(entry) => entry,
            other => panic!("expected a fresh grant, got {other:?}"),
        }
    }

    /// Lets the millisecond clock move on, so that timestamps order what a case did.
    async fn tick() {
        tokio::time::sleep(Duration::from_millis(3)).await;
    }

    pub async fn upsert_creates_once_and_refreshes_the_profile(b: Stores) {
        let first = b.accounts.upsert_user("auth0|ada", Some("Ada"), Some("ada@example.com")).await.unwrap();
        assert!(first.id.as_str().starts_with("u_") && first.id.as_str().len() == 18, "{}", first.id);
        assert_eq!(
            (first.subject.as_str(), first.name.as_deref(), first.email.as_deref(), first.credits),
            ("auth0|ada", Some("Ada"), Some("ada@example.com"), 0)
        );
        assert_eq!(first.created_at, first.updated_at);

        // Same profile: the same row, untouched.
        let again = b.accounts.upsert_user("auth0|ada", Some("Ada"), Some("ada@example.com")).await.unwrap();
        assert_eq!(again, first);

        // A changed profile refreshes it; claims absent from the token keep what is stored.
        tick().await;
        let renamed = b.accounts.upsert_user("auth0|ada", Some("Ada L."), None).await.unwrap();
        assert_eq!(renamed.id, first.id);
        assert_eq!(
            (renamed.name.as_deref(), renamed.email.as_deref()),
            (Some("Ada L."), Some("ada@example.com"))
        );
        assert!(renamed.updated_at > first.updated_at);
        assert_eq!(renamed.created_at, first.created_at);
        let blank = b.accounts.upsert_user("auth0|ada", Some("  "), Some("ada@new.example")).await.unwrap();
        assert_eq!(
            (blank.name.as_deref(), blank.email.as_deref()),
            (Some("Ada L."), Some("ada@new.example"))
        );

        assert_eq!(b.accounts.list_users(100).await.unwrap().len(), 1);
        let other = b.accounts.upsert_user("auth0|bob", None, None).await.unwrap();
        assert_ne!(other.id, first.id);
        assert_eq!((other.name, other.email), (None, None));
        assert_eq!(b.accounts.list_users(100).await.unwrap().len(), 2);
    }

    pub async fn concurrent_first_sign_ins_make_one_user(b: Stores) {
        let second = b.reopen().await.accounts;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let accounts = if i % 2 == 0 { Arc::clone(&b.accounts) } else { Arc::clone(&second) };
            tasks.push(tokio::spawn(async move {
                accounts.upsert_user("auth0|racer", Some(&format!("Racer {i}")), None).await
            }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap().expect("upsert").id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one user for one subject: {ids:?}");
        assert_eq!(b.accounts.list_users(100).await.unwrap().len(), 1);
    }

    pub async fn upsert_refuses_bad_input(b: Stores) {
        let refused = |r: Result<User, AccountError>, expected: &str| match r {
            Err(AccountError::InvalidInput { field, .. }) => assert_eq!(field, expected),
            other => panic!("expected invalid {expected}, got {other:?}"),
        };
        refused(b.accounts.upsert_user("", None, None).await, "subject");
        refused(b.accounts.upsert_user(&"s".repeat(256), None, None).await, "subject");
        refused(b.accounts.upsert_user("s", Some(&"n".repeat(201)), None).await, "name");
        refused(b.accounts.upsert_user("s", None, Some(&"e".repeat(321))).await, "email");
        assert!(b.accounts.list_users(10).await.unwrap().is_empty(), "nothing written");
    }

    pub async fn user_lookups(b: Stores) {
        let ada = user(&b, "auth0|ada").await;
        assert_eq!(b.accounts.user(&ada.id).await.unwrap(), Some(ada.clone()));
        assert_eq!(b.accounts.user_by_subject("auth0|ada").await.unwrap(), Some(ada));
        assert_eq!(b.accounts.user(&user_id("u_0000000000000000")).await.unwrap(), None);
        assert_eq!(b.accounts.user_by_subject("auth0|nobody").await.unwrap(), None);
    }

    pub async fn find_user_by_id_subject_or_email(b: Stores) {
        let ada = b.accounts.upsert_user("auth0|ada", None, Some("Ada@Example.com")).await.unwrap();
        assert_eq!(b.accounts.find_user(ada.id.as_str()).await.unwrap(), Some(ada.clone()));
        assert_eq!(b.accounts.find_user("auth0|ada").await.unwrap(), Some(ada.clone()));
        assert_eq!(b.accounts.find_user("ada@example.COM").await.unwrap(), Some(ada.clone()));
        assert_eq!(b.accounts.find_user("nobody@example.com").await.unwrap(), None);

        // A shared email is ambiguous; ids still find each user.
        let twin = b.accounts.upsert_user("google|ada", None, Some("ada@example.com")).await.unwrap();
        assert!(matches!(
            b.accounts.find_user("ada@example.com").await,
            Err(AccountError::AmbiguousUser(query)) if query == "ada@example.com"
        ));
        assert_eq!(b.accounts.find_user(twin.id.as_str()).await.unwrap(), Some(twin));
    }

    pub async fn list_users_newest_first(b: Stores) {
        let mut ids = Vec::new();
        for subject in ["a", "b", "c"] {
            ids.push(user(&b, subject).await.id);
            tick().await;
        }
        let listed: Vec<UserId> =
            b.accounts.list_users(10).await.unwrap().into_iter().map(|u| u.id).collect();
        ids.reverse();
        assert_eq!(listed, ids);
        assert_eq!(b.accounts.list_users(2).await.unwrap().len(), 2);
        assert!(b.accounts.list_users(0).await.unwrap().is_empty());
    }

    pub async fn create_workflow_claims_a_room(b: Stores) {
        let ada = user(&b, "ada").await;
        let wf = b.accounts.create_workflow(&ada.id, "  Launch plan ", None).await.unwrap();
        assert!(wf.id.as_str().starts_with("wf_") && wf.id.as_str().len() == 19, "{}", wf.id);
        assert_eq!(wf.room.as_str(), wf.id.as_str(), "the room defaults to the id");
        assert_eq!(
            (wf.owner_id.as_str(), wf.title.as_str(), wf.public),
            (ada.id.as_str(), "Launch plan", false)
        );
        assert_eq!(wf.created_at, wf.updated_at);

        let named = b.accounts.create_workflow(&ada.id, "Named", Some(&room("team:launch-1"))).await.unwrap();
        assert_eq!(named.room, "team:launch-1");
        assert_eq!(b.accounts.workflow_by_room(&room("team:launch-1")).await.unwrap(), Some(named));
    }

    pub async fn create_workflow_refuses_a_taken_room_and_bad_input(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let shared = room("shared-room");
        let first = b.accounts.create_workflow(&ada.id, "First", Some(&shared)).await.unwrap();
        assert!(matches!(
            b.accounts.create_workflow(&bob.id, "Second", Some(&shared)).await,
            Err(AccountError::RoomTaken(taken)) if taken == "shared-room"
        ));
        // Deleting does not free the room: its document is still stored under it.
        b.accounts.delete_workflow(&first.id).await.unwrap();
        assert!(matches!(
            b.accounts.create_workflow(&bob.id, "Third", Some(&shared)).await,
            Err(AccountError::RoomTaken(_))
        ));
        assert!(matches!(
            b.accounts.create_workflow(&user_id("u_nobody"), "Orphan", Some(&room("orphan"))).await,
            Err(AccountError::UserNotFound(id)) if id == "u_nobody"
        ));
        // Room names are checked where a `RoomName` is made: a bad one never reaches the store.
        for title in ["", &*"t".repeat(201)] {
            match b.accounts.create_workflow(&ada.id, title, None).await {
                Err(AccountError::InvalidInput { field: "title", .. }) => {}
                other => panic!("expected an invalid title, got {other:?}"),
            }
        }
        assert!(b.accounts.workflow_by_room(&room("orphan")).await.unwrap().is_none());
        assert_eq!(b.accounts.list_workflows(&bob.id).await.unwrap().len(), 0);
    }

    pub async fn a_stored_room_the_rule_refuses_is_a_decode_error(b: Stores) {
        let ada = user(&b, "ada").await;
        // Written by hand, as no code of ours can: the row reads back as an error, never as a
        // `RoomName` the server would refuse.
        b.execute(
            "INSERT INTO workflows (id, room, owner_id, title, public, created_at, updated_at)
             VALUES ($1, $2, $3, 'Bad', FALSE, 0, 0)",
            &["wf_badroom", "has\nnewline", ada.id.as_str()],
        )
        .await
        .expect("insert by hand");
        assert!(matches!(
            b.accounts.workflow(&workflow_id("wf_badroom")).await,
            Err(AccountError::Database(sqlx::Error::ColumnDecode { .. }))
        ));
        assert!(b.accounts.list_workflows(&ada.id).await.is_err());
    }

    pub async fn create_workflow_within_counts_the_owners_live_workflows(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let first = b.accounts.create_workflow_within(&ada.id, "One", None, Some(2)).await.unwrap();
        b.accounts.create_workflow_within(&ada.id, "Two", None, Some(2)).await.unwrap();
        assert!(matches!(
            b.accounts.create_workflow_within(&ada.id, "Three", Some(&room("ada-3")), Some(2)).await,
            Err(AccountError::QuotaExceeded { what: "workflows", limit: 2 })
        ));
        assert!(b.accounts.workflow_by_room(&room("ada-3")).await.unwrap().is_none(), "nothing written");
        // Other owners' workflows do not count; deleted ones stop counting.
        b.accounts.create_workflow_within(&bob.id, "Bob's", None, Some(2)).await.unwrap();
        b.accounts.delete_workflow(&first.id).await.unwrap();
        b.accounts.create_workflow_within(&ada.id, "Three", Some(&room("ada-3")), Some(2)).await.unwrap();
        assert!(matches!(
            b.accounts.create_workflow_within(&user_id("u_nobody"), "Orphan", None, Some(2)).await,
            Err(AccountError::UserNotFound(_))
        ));
    }

    pub async fn workflow_lookups_hide_deleted_ones(b: Stores) {
        let ada = user(&b, "ada").await;
        let wf = b.accounts.create_workflow(&ada.id, "Plan", Some(&room("plan"))).await.unwrap();
        assert_eq!(b.accounts.workflow(&wf.id).await.unwrap(), Some(wf.clone()));
        assert_eq!(b.accounts.workflow_by_room(&room("plan")).await.unwrap(), Some(wf.clone()));
        assert_eq!(b.accounts.workflow(&workflow_id("wf_unknown")).await.unwrap(), None);
        assert_eq!(b.accounts.workflow_by_room(&room("unknown")).await.unwrap(), None);
        b.accounts.delete_workflow(&wf.id).await.unwrap();
        assert_eq!(b.accounts.workflow(&wf.id).await.unwrap(), None);
        assert_eq!(b.accounts.workflow_by_room(&room("plan")).await.unwrap(), None);
    }

    pub async fn list_workflows_shows_owned_and_shared(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let cy = user(&b, "cy").await;
        let own = b.accounts.create_workflow(&ada.id, "Mine", None).await.unwrap();
        tick().await;
        let shared_write = b.accounts.create_workflow(&bob.id, "Bob writes", None).await.unwrap();
        b.accounts.set_collaborator(&shared_write.id, &ada.id, CollaboratorPermission::Write).await.unwrap();
        tick().await;
        let shared_read = b.accounts.create_workflow(&cy.id, "Cy reads", None).await.unwrap();
        b.accounts.set_collaborator(&shared_read.id, &ada.id, CollaboratorPermission::Read).await.unwrap();
        tick().await;
        // Not listed: someone else's private one, someone else's public one, a deleted one.
        b.accounts.create_workflow(&bob.id, "Bob private", None).await.unwrap();
        let public = b.accounts.create_workflow(&bob.id, "Bob public", None).await.unwrap();
        b.accounts
            .update_workflow(&public.id, WorkflowPatch { public: Some(true), ..Default::default() })
            .await
            .unwrap();
        let gone = b.accounts.create_workflow(&ada.id, "Gone", None).await.unwrap();
        b.accounts.set_collaborator(&shared_write.id, &cy.id, CollaboratorPermission::Read).await.unwrap();
        b.accounts.delete_workflow(&gone.id).await.unwrap();
        let shared_gone = b.accounts.create_workflow(&cy.id, "Cy gone", None).await.unwrap();
        b.accounts.set_collaborator(&shared_gone.id, &ada.id, CollaboratorPermission::Write).await.unwrap();
        b.accounts.delete_workflow(&shared_gone.id).await.unwrap();

        let listed: Vec<(WorkflowId, Permission)> = b
            .accounts
            .list_workflows(&ada.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.workflow.id, s.permission))
            .collect();
        assert_eq!(
            listed,
            vec![
                (shared_read.id.clone(), Permission::Read),
                (shared_write.id.clone(), Permission::Write),
                (own.id.clone(), Permission::Admin),
            ],
            "newest updated first"
        );

        // Updating moves a workflow to the top.
        tick().await;
        b.accounts
            .update_workflow(&own.id, WorkflowPatch { title: Some("Mine v2".into()), public: None })
            .await
            .unwrap();
        let first = &b.accounts.list_workflows(&ada.id).await.unwrap()[0];
        assert_eq!((first.workflow.id.as_str(), first.workflow.title.as_str()), (own.id.as_str(), "Mine v2"));
        assert!(b.accounts.list_workflows(&user_id("u_nobody")).await.unwrap().is_empty());
    }

    pub async fn update_workflow_patches_fields(b: Stores) {
        let ada = user(&b, "ada").await;
        let wf = b.accounts.create_workflow(&ada.id, "Plan", None).await.unwrap();
        tick().await;
        let public = b
            .accounts
            .update_workflow(&wf.id, WorkflowPatch { title: None, public: Some(true) })
            .await
            .unwrap();
        assert_eq!((public.title.as_str(), public.public), ("Plan", true));
        assert!(public.updated_at > wf.updated_at);
        assert_eq!((public.created_at, public.room.as_str()), (wf.created_at, wf.room.as_str()));
        let renamed = b
            .accounts
            .update_workflow(&wf.id, WorkflowPatch { title: Some(" Plan B ".into()), public: None })
            .await
            .unwrap();
        assert_eq!((renamed.title.as_str(), renamed.public), ("Plan B", true));
        let both = b
            .accounts
            .update_workflow(&wf.id, WorkflowPatch { title: Some("C".into()), public: Some(false) })
            .await
            .unwrap();
        assert_eq!((both.title.as_str(), both.public), ("C", false));
        assert_eq!(b.accounts.workflow(&wf.id).await.unwrap(), Some(both));

        assert!(matches!(
            b.accounts.update_workflow(&wf.id, WorkflowPatch { title: Some(" ".into()), public: None }).await,
            Err(AccountError::InvalidInput { field: "title", .. })
        ));
        assert!(matches!(
            b.accounts.update_workflow(&workflow_id("wf_unknown"), WorkflowPatch::default()).await,
            Err(AccountError::WorkflowNotFound(id)) if id == "wf_unknown"
        ));
        b.accounts.delete_workflow(&wf.id).await.unwrap();
        assert!(matches!(
            b.accounts.update_workflow(&wf.id, WorkflowPatch { title: None, public: Some(true) }).await,
            Err(AccountError::WorkflowNotFound(_))
        ));
    }

    pub async fn collaborators_are_set_changed_and_removed(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let cy = user(&b, "cy").await;
        let wf = b.accounts.create_workflow(&ada.id, "Plan", None).await.unwrap();
        assert!(b.accounts.collaborators(&wf.id).await.unwrap().is_empty());

        let added = b.accounts.set_collaborator(&wf.id, &bob.id, CollaboratorPermission::Read).await.unwrap();
        assert_eq!(
            (added.workflow_id.as_str(), added.user_id.as_str(), added.permission),
            (wf.id.as_str(), bob.id.as_str(), CollaboratorPermission::Read)
        );
        tick().await;
        b.accounts.set_collaborator(&wf.id, &cy.id, CollaboratorPermission::Write).await.unwrap();
        tick().await;
        // Changing a permission keeps the collaborator's place (and when they were added).
        let changed =
            b.accounts.set_collaborator(&wf.id, &bob.id, CollaboratorPermission::Write).await.unwrap();
        assert_eq!((changed.permission, changed.added_at), (CollaboratorPermission::Write, added.added_at));
        let listed: Vec<(UserId, CollaboratorPermission)> = b
            .accounts
            .collaborators(&wf.id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.user_id, c.permission))
            .collect();
        assert_eq!(
            listed,
            vec![
                (bob.id.clone(), CollaboratorPermission::Write),
                (cy.id.clone(), CollaboratorPermission::Write)
            ]
        );

        assert!(b.accounts.remove_collaborator(&wf.id, &bob.id).await.unwrap());
        assert!(!b.accounts.remove_collaborator(&wf.id, &bob.id).await.unwrap(), "already removed");
        assert!(!b.accounts.remove_collaborator(&workflow_id("wf_unknown"), &bob.id).await.unwrap());
        let remaining = b.accounts.collaborators(&wf.id).await.unwrap();
        assert_eq!(remaining.len(), 1);
        assert_eq!(remaining[0].user_id, cy.id);
        assert_eq!(b.accounts.room_access(Some(&bob.id), &wf.room).await.unwrap(), RoomAccess::Denied);
    }

    pub async fn collaborators_refuse_owner_and_unknowns(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let wf = b.accounts.create_workflow(&ada.id, "Plan", None).await.unwrap();
        assert!(matches!(
            b.accounts.set_collaborator(&wf.id, &ada.id, CollaboratorPermission::Read).await,
            Err(AccountError::OwnerCannotCollaborate)
        ));
        assert!(matches!(
            b.accounts.set_collaborator(&wf.id, &user_id("u_nobody"), CollaboratorPermission::Read).await,
            Err(AccountError::UserNotFound(id)) if id == "u_nobody"
        ));
        assert!(matches!(
            b.accounts.set_collaborator(&workflow_id("wf_unknown"), &bob.id, CollaboratorPermission::Read).await,
            Err(AccountError::WorkflowNotFound(id)) if id == "wf_unknown"
        ));
        assert!(matches!(
            b.accounts.collaborators(&workflow_id("wf_unknown")).await,
            Err(AccountError::WorkflowNotFound(_))
        ));
        assert!(b.accounts.collaborators(&wf.id).await.unwrap().is_empty());
        b.accounts.delete_workflow(&wf.id).await.unwrap();
        assert!(matches!(
            b.accounts.set_collaborator(&wf.id, &bob.id, CollaboratorPermission::Read).await,
            Err(AccountError::WorkflowNotFound(_))
        ));
        assert!(matches!(b.accounts.collaborators(&wf.id).await, Err(AccountError::WorkflowNotFound(_))));
    }

    pub async fn delete_workflow_is_soft(b: Stores) {
        let ada = user(&b, "ada").await;
        let wf = b.accounts.create_workflow(&ada.id, "Plan", Some(&room("plan"))).await.unwrap();
        b.accounts.delete_workflow(&wf.id).await.unwrap();
        assert!(matches!(
            b.accounts.delete_workflow(&wf.id).await,
            Err(AccountError::WorkflowNotFound(id)) if id == wf.id
        ));
        assert!(matches!(
            b.accounts.delete_workflow(&workflow_id("wf_unknown")).await,
            Err(AccountError::WorkflowNotFound(_))
        ));
        // The record remains: the room is still claimed, and denied even to its owner.
        assert_eq!(b.accounts.room_access(Some(&ada.id), &room("plan")).await.unwrap(), RoomAccess::Denied);
        assert!(b.accounts.list_workflows(&ada.id).await.unwrap().is_empty());
    }

    pub async fn room_access_matrix(b: Stores) {
        let owner = user(&b, "owner").await;
        let writer = user(&b, "writer").await;
        let reader = user(&b, "reader").await;
        let stranger = user(&b, "stranger").await;
        let private = b.accounts.create_workflow(&owner.id, "Private", Some(&room("private"))).await.unwrap();
        b.accounts.set_collaborator(&private.id, &writer.id, CollaboratorPermission::Write).await.unwrap();
        b.accounts.set_collaborator(&private.id, &reader.id, CollaboratorPermission::Read).await.unwrap();
        let public = b.accounts.create_workflow(&owner.id, "Public", Some(&room("public"))).await.unwrap();
        b.accounts
            .update_workflow(&public.id, WorkflowPatch { public: Some(true), ..Default::default() })
            .await
            .unwrap();
        b.accounts.set_collaborator(&public.id, &writer.id, CollaboratorPermission::Write).await.unwrap();
        let deleted = b.accounts.create_workflow(&owner.id, "Deleted", Some(&room("deleted"))).await.unwrap();
        b.accounts.set_collaborator(&deleted.id, &writer.id, CollaboratorPermission::Write).await.unwrap();
        b.accounts
            .update_workflow(&deleted.id, WorkflowPatch { public: Some(true), ..Default::default() })
            .await
            .unwrap();
        b.accounts.delete_workflow(&deleted.id).await.unwrap();

        let unknown = user_id("u_unknown");
        let cases: [(Option<&UserId>, &str, RoomAccess); 15] = [
            (Some(&owner.id), "private", RoomAccess::Admin),
            (Some(&writer.id), "private", RoomAccess::Write),
            (Some(&reader.id), "private", RoomAccess::Read),
            (Some(&stranger.id), "private", RoomAccess::Denied),
            (Some(&unknown), "private", RoomAccess::Denied),
            (None, "private", RoomAccess::Denied),
            (Some(&owner.id), "public", RoomAccess::Admin),
            (Some(&writer.id), "public", RoomAccess::Write),
            (Some(&stranger.id), "public", RoomAccess::Read),
            (None, "public", RoomAccess::Denied),
            (Some(&owner.id), "deleted", RoomAccess::Denied),
            (Some(&writer.id), "deleted", RoomAccess::Denied),
            (Some(&stranger.id), "deleted", RoomAccess::Denied),
            (Some(&owner.id), "no-such-room", RoomAccess::NoWorkflow),
            (None, "no-such-room", RoomAccess::NoWorkflow),
        ];
        for (who, name, expected) in cases {
            assert_eq!(
                b.accounts.room_access(who, &room(name)).await.unwrap(),
                expected,
                "{who:?} in {name}"
            );
        }
        assert_eq!(RoomAccess::Write.permission(), Some(Permission::Write));
        assert_eq!(RoomAccess::Denied.permission(), None);
    }

    pub async fn credits_grant_then_spend(b: Stores) {
        let ada = user(&b, "ada").await;
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 0);
        let granted = grant(&b, &ada.id, 100, "grant:1").await;
        assert_eq!(
            (granted.user_id.as_str(), granted.amount, granted.balance_after, granted.reason.as_str()),
            (ada.id.as_str(), 100, 100, "grant")
        );
        assert_eq!(granted.idempotency_key, "grant:1");
        let spent = b.accounts.apply_credits(&ada.id, -30, "run", "run:1:node:capture").await.unwrap();
        assert!(matches!(&spent, CreditOutcome::Applied(e) if e.amount == -30 && e.balance_after == 70));
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 70);
        assert_eq!(b.accounts.user(&ada.id).await.unwrap().map(|u| u.credits), Some(70));
        // Spending exactly the balance is allowed; zero amounts are recorded like any other.
        let all = b.accounts.apply_credits(&ada.id, -70, "run", "run:2").await.unwrap();
        assert_eq!(all.entry().balance_after, 0);
        let zero = b.accounts.apply_credits(&ada.id, 0, "release", "run:2:release").await.unwrap();
        assert_eq!(zero.into_entry().balance_after, 0);
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 0);
    }

    pub async fn overspend_is_refused_with_nothing_written(b: Stores) {
        let ada = user(&b, "ada").await;
        grant(&b, &ada.id, 10, "grant:1").await;
        match b.accounts.apply_credits(&ada.id, -11, "run", "run:1").await {
            Err(AccountError::InsufficientCredits { balance, requested }) => {
                assert_eq!((balance, requested), (10, 11))
            }
            other => panic!("expected insufficient credits, got {other:?}"),
        }
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 10);
        assert_eq!(b.accounts.ledger(&ada.id, 10).await.unwrap().len(), 1, "no entry for the refusal");
        // The refused key was not consumed: once there is enough, the same key applies.
        grant(&b, &ada.id, 5, "grant:2").await;
        let later = b.accounts.apply_credits(&ada.id, -11, "run", "run:1").await.unwrap();
        assert!(matches!(later, CreditOutcome::Applied(ref e) if e.balance_after == 4));
        // A grant that would overflow the balance is refused the same way.
        assert!(matches!(
            b.accounts.apply_credits(&ada.id, i64::MAX, "grant", "grant:huge").await,
            Err(AccountError::BalanceOverflow { balance: 4, amount: i64::MAX })
        ));
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 4);
    }

    pub async fn idempotency_key_applies_once(b: Stores) {
        let ada = user(&b, "ada").await;
        let first = grant(&b, &ada.id, 50, "stripe:evt_1").await;
        for accounts in [Arc::clone(&b.accounts), b.reopen().await.accounts] {
            let again = accounts.apply_credits(&ada.id, 50, "grant", "stripe:evt_1").await.unwrap();
            assert_eq!(again, CreditOutcome::AlreadyApplied(first.clone()));
        }
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 50);
        assert_eq!(b.accounts.ledger(&ada.id, 10).await.unwrap(), vec![first.clone()]);
        // A replay is answered even when the same spend could not be paid for again.
        let spend = b.accounts.apply_credits(&ada.id, -50, "run", "run:1").await.unwrap().into_entry();
        let replayed = b.accounts.apply_credits(&ada.id, -50, "run", "run:1").await.unwrap();
        assert_eq!(replayed, CreditOutcome::AlreadyApplied(spend));
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 0);
    }

    pub async fn idempotency_key_reused_differently_is_refused(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let first = grant(&b, &ada.id, 50, "key").await;
        for (user_id, amount) in [(&ada.id, 51), (&bob.id, 50), (&ada.id, -50)] {
            match b.accounts.apply_credits(user_id, amount, "grant", "key").await {
                Err(AccountError::IdempotencyKeyReused { key, existing }) => {
                    assert_eq!((key.as_str(), &*existing), ("key", &first));
                }
                other => panic!("expected a reused key, got {other:?}"),
            }
        }
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 50);
        assert_eq!(b.accounts.balance(&bob.id).await.unwrap(), 0);
        assert!(b.accounts.ledger(&bob.id, 10).await.unwrap().is_empty());
    }

    pub async fn concurrent_spends_never_overdraw(b: Stores) {
        let ada = user(&b, "ada").await;
        grant(&b, &ada.id, 10, "grant:1").await;
        // Two independent pools, like two server instances (or processes) spending at once.
        let second = b.reopen().await.accounts;
        let mut tasks = Vec::new();
        for i in 0..50 {
            let accounts = if i % 2 == 0 { Arc::clone(&b.accounts) } else { Arc::clone(&second) };
            let user_id = ada.id.clone();
            tasks.push(tokio::spawn(async move {
                accounts.apply_credits(&user_id, -1, "run", &format!("run:{i}:spend")).await
            }));
        }
        let (mut applied, mut refused) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(CreditOutcome::Applied(entry)) => {
                    assert!(entry.balance_after >= 0);
                    applied += 1;
                }
                Err(AccountError::InsufficientCredits { requested: 1, balance }) => {
                    assert!(balance < 1, "refused with {balance} left");
                    refused += 1;
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!((applied, refused), (10, 40));
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 0);
        let spends =
            b.accounts.ledger(&ada.id, 100).await.unwrap().into_iter().filter(|e| e.amount == -1).count();
        assert_eq!(spends, 10);
    }

    pub async fn concurrent_uses_of_one_key_apply_once(b: Stores) {
        let ada = user(&b, "ada").await;
        let second = b.reopen().await.accounts;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let accounts = if i % 2 == 0 { Arc::clone(&b.accounts) } else { Arc::clone(&second) };
            let user_id = ada.id.clone();
            tasks.push(tokio::spawn(async move {
                accounts.apply_credits(&user_id, 7, "stripe checkout", "stripe:evt_dup").await
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap().expect("applied or already applied"));
        }
        let applied = outcomes.iter().filter(|o| matches!(o, CreditOutcome::Applied(_))).count();
        assert_eq!(applied, 1);
        assert!(outcomes.iter().all(|o| o.entry() == outcomes[0].entry()), "every caller sees the one entry");
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 7);
        assert_eq!(b.accounts.ledger(&ada.id, 10).await.unwrap().len(), 1);
    }

    pub async fn ledger_explains_the_balance(b: Stores) {
        let ada = user(&b, "ada").await;
        let bob = user(&b, "bob").await;
        let amounts = [100, -10, -25, 40, -5, -100];
        for (i, amount) in amounts.iter().enumerate() {
            b.accounts.apply_credits(&ada.id, *amount, "mixed", &format!("ada:{i}")).await.unwrap();
        }
        grant(&b, &bob.id, 3, "bob:0").await;
        let ledger = b.accounts.ledger(&ada.id, 100).await.unwrap();
        assert_eq!(ledger.len(), amounts.len());
        assert!(ledger.iter().all(|e| e.user_id == ada.id), "only this user's entries");
        // Newest first; oldest to newest, each balance is the previous plus the amount.
        let oldest_first: Vec<&LedgerEntry> = ledger.iter().rev().collect();
        assert_eq!(oldest_first.iter().map(|e| e.amount).collect::<Vec<_>>(), amounts);
        let mut balance = 0;
        for entry in oldest_first {
            balance += entry.amount;
            assert_eq!(entry.balance_after, balance, "{entry:?}");
        }
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), balance);
        assert_eq!(ledger[0].balance_after, balance);
        let newest_two = b.accounts.ledger(&ada.id, 2).await.unwrap();
        assert_eq!(newest_two, ledger[..2].to_vec());
        assert!(b.accounts.ledger(&ada.id, 0).await.unwrap().is_empty());
    }

    pub async fn credits_refuse_unknown_users_and_bad_input(b: Stores) {
        let ada = user(&b, "ada").await;
        assert!(
            matches!(b.accounts.balance(&user_id("u_nobody")).await, Err(AccountError::UserNotFound(id)) if id == "u_nobody")
        );
        assert!(matches!(
            b.accounts.ledger(&user_id("u_nobody"), 10).await,
            Err(AccountError::UserNotFound(_))
        ));
        assert!(b.accounts.ledger(&ada.id, 10).await.unwrap().is_empty());
        for amount in [5, -5] {
            assert!(matches!(
                b.accounts.apply_credits(&user_id("u_nobody"), amount, "grant", &format!("k{amount}")).await,
                Err(AccountError::UserNotFound(_))
            ));
        }
        assert!(matches!(
            b.accounts.apply_credits(&ada.id, 5, "grant", "").await,
            Err(AccountError::InvalidInput { field: "idempotency_key", .. })
        ));
        assert!(matches!(
            b.accounts.apply_credits(&ada.id, 5, "grant", &"k".repeat(256)).await,
            Err(AccountError::InvalidInput { field: "idempotency_key", .. })
        ));
        assert!(matches!(
            b.accounts.apply_credits(&ada.id, 5, &"r".repeat(501), "k").await,
            Err(AccountError::InvalidInput { field: "reason", .. })
        ));
        assert!(matches!(
            b.accounts.apply_credits(&ada.id, i64::MIN, "spend", "k").await,
            Err(AccountError::InvalidInput { field: "amount", .. })
        ));
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 0);
        assert!(b.accounts.ledger(&ada.id, 10).await.unwrap().is_empty());
    }

    pub async fn database_refuses_negative_balances_and_ledger_edits(b: Stores) {
        let ada = user(&b, "ada").await;
        grant(&b, &ada.id, 5, "grant:1").await;
        // Whatever code runs against the database, not just ours.
        assert!(
            b.execute("UPDATE users SET credits = credits - 6 WHERE id = $1", &[ada.id.as_str()])
                .await
                .is_err()
        );
        assert!(
            b.execute("UPDATE credit_ledger SET amount = 500 WHERE user_id = $1", &[ada.id.as_str()])
                .await
                .is_err()
        );
        assert!(b.execute("DELETE FROM credit_ledger WHERE user_id = $1", &[ada.id.as_str()]).await.is_err());
        assert!(
            b.execute(
                "UPDATE workflow_collaborators SET permission = 'admin' WHERE user_id = $1",
                &[ada.id.as_str()]
            )
            .await
            .is_ok(),
            "no rows, no violation"
        );
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 5);
        assert_eq!(b.accounts.ledger(&ada.id, 10).await.unwrap()[0].amount, 5);
    }

    pub async fn abandoned_credit_operations_leave_the_pool_clean(b: Stores) {
        let ada = user(&b, "ada").await;
        grant(&b, &ada.id, 1_000, "grant:1").await;
        // Callers that give up at various points of the operation: each spend applies fully
        // (balance and ledger agree) or not at all, and the pool's connections stay usable. (The
        // stale-transaction failure `run_to_completion` prevents is rare; this does not
        // reproduce it on demand, it guards the atomicity around it.)
        for i in 0..40u64 {
            let key = format!("run:{i}");
            let spend = b.accounts.apply_credits(&ada.id, -1, "run", &key);
            let _ = tokio::time::timeout(Duration::from_micros(i * 50), spend).await;
        }
        // Let any operation still running finish, then check every pooled connection works.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..20 {
            b.accounts
                .apply_credits(&ada.id, 1, "grant", &format!("after:{i}"))
                .await
                .expect("pool is usable");
        }
        let ledger = b.accounts.ledger(&ada.id, 1_000).await.unwrap();
        let total: i64 = ledger.iter().map(|e| e.amount).sum();
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), total);
        assert_eq!(ledger[0].balance_after, total);
    }

    pub async fn stripe_checkout_credits_once_per_event(b: Stores) {
        let ada = user(&b, "ada").await;
        let payload = serde_json::json!({
            "id": "evt_1Q2w3E4r5T6y7U8i",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {"object": {
                "id": "cs_test_123",
                "object": "checkout.session",
                "client_reference_id": ada.id,
                "metadata": {"credits": "250"},
                "payment_status": "paid",
                "status": "complete"
            }}
        })
        .to_string();
        let now = 1_700_000_000;
        let header = stripe::sign(payload.as_bytes(), "whsec_secret", now);
        stripe::verify_signature(
            &header,
            payload.as_bytes(),
            "whsec_secret",
            now + 10,
            stripe::DEFAULT_TOLERANCE_S,
        )
        .expect("genuine delivery");
        let credit = stripe::parse_checkout_completed(payload.as_bytes()).unwrap().expect("a checkout");
        let first = stripe::credit_checkout(&*b.accounts, &credit).await.unwrap();
        assert!(
            matches!(&first, CreditOutcome::Applied(e) if e.amount == 250 && e.reason == stripe::CHECKOUT_REASON)
        );
        assert_eq!(first.entry().idempotency_key, "stripe:evt_1Q2w3E4r5T6y7U8i");
        // Stripe redelivers: nothing changes.
        let again = stripe::credit_checkout(&*b.accounts, &credit).await.unwrap();
        assert_eq!(again, CreditOutcome::AlreadyApplied(first.into_entry()));
        assert_eq!(b.accounts.balance(&ada.id).await.unwrap(), 250);
    }
}
