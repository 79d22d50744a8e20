//! One suite, run against every backend: each case in `cases` takes the [`Stores`] of a fresh
//! database and must pass on SQLite and PostgreSQL (`dojo_test_support::each_backend!`).
//!
//! PostgreSQL: `DOJO_TEST_POSTGRES_URL` names a server and a user allowed to create databases
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dojo_store::{DocumentStore, NewSnapshot, PostgresOptions, PostgresStore, StoreError};
use dojo_test_support::Stores;

dojo_test_support::each_backend!(cases:
    unknown_room_is_empty,
    concurrent_appends_to_many_rooms_each_keep_their_own_order,
    appends_get_increasing_seqs_and_load_in_order,
    empty_append_writes_nothing,
    concurrent_appends_get_distinct_contiguous_seqs,
    rooms_are_isolated,
    compaction_replaces_covered_updates,
    compaction_keeps_k_versions,
    compacting_the_same_state_twice_is_harmless,
    racing_compactions_of_the_same_state,
    racing_compactions_of_different_states,
    compacting_an_unwritten_room_moves_the_sequence_on,
    big_batch_loads_back,
    big_batch_is_all_or_nothing,
    reopened_store_sees_the_data,
    migrate_is_idempotent,
    ping_answers,
);

mod cases {
    use super::*;

    fn snapshot(data: &[u8], covers_seq: i64, keep: usize) -> NewSnapshot<'_> {
        NewSnapshot { data, state_vector: b"sv", covers_seq, keep }
    }

    /// Appends `count` one-update batches `"<prefix><i>"`, returning the last seq.
    async fn append_numbered(store: &dyn DocumentStore, room: &str, prefix: &str, count: usize) -> i64 {
        let mut last = 0;
        for i in 0..count {
            last = store.append(room, &[format!("{prefix}{i}").as_bytes()]).await.expect("append");
        }
        last
    }

    fn seqs(doc: &dojo_store::StoredDocument) -> Vec<i64> {
        doc.updates.iter().map(|u| u.seq).collect()
    }

    pub async fn unknown_room_is_empty(b: Stores) {
        let doc = b.documents.load("nobody").await.expect("load");
        assert_eq!(doc, dojo_store::StoredDocument::default());
        assert_eq!(doc.last_seq(), 0);
        assert!(b.documents.versions("nobody").await.expect("versions").is_empty());
        assert_eq!(b.documents.version("nobody", 1).await.expect("version"), None);
    }

    /// Many rooms appending at once (SQLite commits them together): every append is stored,
    /// once, under its own room, and each room's sequences have no gap.
    pub async fn concurrent_appends_to_many_rooms_each_keep_their_own_order(b: Stores) {
        let mut tasks = tokio::task::JoinSet::new();
        for room in 0..20 {
            for i in 0..10 {
                let store = b.documents.clone();
                tasks.spawn(async move {
                    let data = format!("room{room}-update{i}").into_bytes();
                    store.append(&format!("r{room}"), &[data.as_slice()]).await.expect("append")
                });
            }
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("task");
        }
        for room in 0..20 {
            let doc = b.documents.load(&format!("r{room}")).await.expect("load");
            assert_eq!(seqs(&doc), (1..=10).collect::<Vec<_>>(), "room {room}");
            let mut data: Vec<String> =
                doc.updates.iter().map(|u| String::from_utf8_lossy(&u.data).into_owned()).collect();
            data.sort();
            let mut expected: Vec<String> = (0..10).map(|i| format!("room{room}-update{i}")).collect();
            expected.sort();
            assert_eq!(data, expected, "room {room}");
        }
    }

    pub async fn appends_get_increasing_seqs_and_load_in_order(b: Stores) {
        let binary: Vec<u8> = (0..=255).collect();
        assert_eq!(b.documents.append("r", &[b"first", b"second"]).await.expect("append"), 2);
        assert_eq!(b.documents.append("r", &[&binary]).await.expect("append"), 3);
        // An empty update is stored as such (not as NULL, not dropped).
        assert_eq!(b.documents.append("r", &[b"", b"\0last\xff"]).await.expect("append"), 5);
        let doc = b.documents.load("r").await.expect("load");
        assert_eq!(doc.snapshot, None);
        assert_eq!(seqs(&doc), vec![1, 2, 3, 4, 5]);
        let data: Vec<&[u8]> = doc.updates.iter().map(|u| u.data.as_slice()).collect();
        assert_eq!(data, vec![&b"first"[..], b"second", &binary, b"", b"\0last\xff"]);
        assert_eq!(doc.last_seq(), 5);
    }

    pub async fn empty_append_writes_nothing(b: Stores) {
        assert_eq!(b.documents.append("r", &[]).await.expect("append nothing to a new room"), 0);
        assert_eq!(b.documents.load("r").await.expect("load"), dojo_store::StoredDocument::default());
        b.documents.append("r", &[b"a", b"b", b"c"]).await.expect("append");
        assert_eq!(b.documents.append("r", &[]).await.expect("append nothing"), 3);
        b.documents.compact("r", snapshot(b"abc", 3, 2)).await.expect("compact");
        assert_eq!(b.documents.append("r", &[]).await.expect("append nothing after compaction"), 3);
        assert_eq!(b.documents.append("r", &[b"d"]).await.expect("append"), 4);
    }

    pub async fn concurrent_appends_get_distinct_contiguous_seqs(b: Stores) {
        const TASKS: usize = 20;
        const APPENDS: usize = 10;
        const BATCH: usize = 3;
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = b.documents.clone();
                tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    for append in 0..APPENDS {
                        let batch: Vec<Vec<u8>> =
                            (0..BATCH).map(|i| format!("{task}/{append}/{i}").into_bytes()).collect();
                        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                        let last = store.append("busy", &refs).await.expect("concurrent append");
                        acknowledged.push((last, batch));
                    }
                    acknowledged
                })
            })
            .collect();
        let mut expected = std::collections::BTreeMap::new();
        for task in tasks {
            let mut previous = 0;
            for (last, batch) in task.await.expect("append task") {
                assert!(last > previous, "one task's appends get increasing seqs");
                previous = last;
                // The batch occupies last - BATCH + 1 ..= last, in order.
                for (i, data) in batch.into_iter().enumerate() {
                    let seq = last - (BATCH - 1 - i) as i64;
                    assert!(expected.insert(seq, data).is_none(), "seq {seq} handed out twice");
                }
            }
        }
        let total = (TASKS * APPENDS * BATCH) as i64;
        assert_eq!(expected.keys().copied().collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
        let doc = b.documents.load("busy").await.expect("load");
        let loaded: Vec<(i64, Vec<u8>)> = doc.updates.into_iter().map(|u| (u.seq, u.data)).collect();
        assert_eq!(loaded, expected.into_iter().collect::<Vec<_>>());
    }

    pub async fn rooms_are_isolated(b: Stores) {
        b.documents.append("a", &[b"a1"]).await.expect("append");
        assert_eq!(b.documents.append("b", &[b"b1"]).await.expect("append"), 1, "each room counts from 1");
        b.documents.append("a", &[b"a2"]).await.expect("append");
        b.documents.append("b", &[b"b2", b"b3"]).await.expect("append");
        b.documents.compact("a", snapshot(b"A", 2, 3)).await.expect("compact");
        let a = b.documents.load("a").await.expect("load a");
        let bb = b.documents.load("b").await.expect("load b");
        assert_eq!(a.snapshot.as_ref().map(|s| s.data.as_slice()), Some(&b"A"[..]));
        assert!(a.updates.is_empty());
        assert_eq!(bb.snapshot, None);
        assert_eq!(seqs(&bb), vec![1, 2, 3]);
        assert!(b.documents.versions("b").await.expect("versions").is_empty());
        let a_id = a.snapshot.map(|s| s.id).expect("snapshot");
        assert_eq!(b.documents.version("b", a_id).await.expect("version"), None, "another room's version");
        // Room names are data, not SQL.
        let odd = "x'; DROP TABLE documents; --\u{1F600}";
        assert_eq!(b.documents.append(odd, &[b"ok"]).await.expect("append"), 1);
        assert_eq!(seqs(&b.documents.load(odd).await.expect("load")), vec![1]);
    }

    pub async fn compaction_replaces_covered_updates(b: Stores) {
        append_numbered(&*b.documents, "r", "u", 10).await;
        let outcome = b.documents.compact("r", snapshot(b"state@6", 6, 3)).await.expect("compact");
        assert_eq!(outcome.deleted_updates, 6);
        assert_eq!(outcome.deleted_snapshots, 0);
        let doc = b.documents.load("r").await.expect("load");
        let snap = doc.snapshot.as_ref().expect("snapshot");
        assert_eq!((snap.covers_seq, snap.data.as_slice()), (6, &b"state@6"[..]));
        assert!(snap.created_at > 0);
        assert_eq!(seqs(&doc), vec![7, 8, 9, 10]);
        assert_eq!(doc.updates[0].data, b"u6");
        assert_eq!(doc.last_seq(), 10);
        // The log keeps counting after the snapshot.
        assert_eq!(b.documents.append("r", &[b"u10"]).await.expect("append"), 11);
        // Covering everything leaves only the snapshot.
        let outcome = b.documents.compact("r", snapshot(b"state@11", 11, 3)).await.expect("compact");
        assert_eq!(outcome.deleted_updates, 5);
        let doc = b.documents.load("r").await.expect("load");
        assert!(doc.updates.is_empty());
        assert_eq!(doc.last_seq(), 11);
        assert_eq!(b.documents.append("r", &[b"u11"]).await.expect("append"), 12);
    }

    pub async fn compaction_keeps_k_versions(b: Stores) {
        let mut ids = Vec::new();
        for round in 1..=4i64 {
            append_numbered(&*b.documents, "r", "u", 2).await;
            let data = vec![b'v'; round as usize * 10];
            let outcome = b.documents.compact("r", snapshot(&data, round * 2, 2)).await.expect("compact");
            assert_eq!(outcome.deleted_updates, 2);
            assert_eq!(outcome.deleted_snapshots, u64::from(round > 2), "round {round}");
            let newest = b.documents.load("r").await.expect("load").snapshot.expect("snapshot");
            assert_eq!(newest.covers_seq, round * 2);
            ids.push(newest.id);
        }
        let versions = b.documents.versions("r").await.expect("versions");
        let listed: Vec<(i64, i64, i64)> =
            versions.iter().map(|v| (v.id, v.covers_seq, v.size_bytes)).collect();
        assert_eq!(listed, vec![(ids[3], 8, 40), (ids[2], 6, 30)], "newest first, with sizes");
        assert!(versions.iter().all(|v| v.created_at > 0));
        let v = b.documents.version("r", ids[2]).await.expect("version").expect("kept version");
        assert_eq!((v.id, v.covers_seq, v.data), (ids[2], 6, vec![b'v'; 30]));
        assert_eq!(b.documents.version("r", ids[0]).await.expect("version"), None, "trimmed version");
        assert_eq!(b.documents.version("other", ids[3]).await.expect("version"), None, "another room");
        // keep = 0 still keeps the snapshot just written.
        b.documents.compact("r", snapshot(b"last", 8, 0)).await.expect("compact");
        let versions = b.documents.versions("r").await.expect("versions");
        assert_eq!(versions.iter().map(|v| v.id).collect::<Vec<_>>(), vec![ids[3]]);
    }

    pub async fn compacting_the_same_state_twice_is_harmless(b: Stores) {
        append_numbered(&*b.documents, "r", "u", 5).await;
        let first = b.documents.compact("r", snapshot(b"state@3", 3, 5)).await.expect("compact");
        let second = b.documents.compact("r", snapshot(b"state@3", 3, 5)).await.expect("compact again");
        assert_eq!(first.deleted_updates, 3);
        assert_eq!(second.deleted_updates, 0);
        assert_eq!(second.deleted_snapshots, 0);
        assert_eq!(b.documents.versions("r").await.expect("versions").len(), 1);
        // A late compaction of an older state deletes nothing the newest snapshot does not cover.
        let late = b.documents.compact("r", snapshot(b"state@2", 2, 1)).await.expect("late compact");
        assert_eq!(late.deleted_updates, 0);
        let doc = b.documents.load("r").await.expect("load");
        assert_eq!(doc.snapshot.clone().map(|s| (s.covers_seq, s.data)), Some((3, b"state@3".to_vec())));
        assert_eq!(seqs(&doc), vec![4, 5]);
        let versions = b.documents.versions("r").await.expect("versions");
        assert_eq!(versions.iter().map(|v| v.covers_seq).collect::<Vec<_>>(), vec![3]);
    }

    pub async fn racing_compactions_of_the_same_state(b: Stores) {
        append_numbered(&*b.documents, "r", "u", 12).await;
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let store = b.documents.clone();
                tokio::spawn(async move { store.compact("r", snapshot(b"state@8", 8, 3)).await })
            })
            .collect();
        let mut deleted = 0;
        for racer in racers {
            deleted += racer.await.expect("compaction task").expect("compact").deleted_updates;
        }
        assert_eq!(deleted, 8, "each covered update deleted exactly once");
        let doc = b.documents.load("r").await.expect("load");
        assert_eq!(doc.snapshot.clone().map(|s| (s.covers_seq, s.data)), Some((8, b"state@8".to_vec())));
        assert_eq!(seqs(&doc), vec![9, 10, 11, 12]);
        assert_eq!(b.documents.versions("r").await.expect("versions").len(), 1);
    }

    pub async fn racing_compactions_of_different_states(b: Stores) {
        append_numbered(&*b.documents, "r", "u", 20).await;
        let mut racers = Vec::new();
        for covers in [3i64, 9, 5, 12, 7, 12, 1] {
            let store = b.documents.clone();
            racers.push(tokio::spawn(async move {
                let data = format!("state@{covers}").into_bytes();
                store.compact("r", snapshot(&data, covers, 2)).await.map(|_| ())
            }));
        }
        // Appends keep arriving meanwhile.
        let appender = {
            let store = b.documents.clone();
            tokio::spawn(async move { append_numbered(&*store, "r", "late", 10).await })
        };
        for racer in racers {
            racer.await.expect("compaction task").expect("compact");
        }
        assert_eq!(appender.await.expect("append task"), 30);
        let doc = b.documents.load("r").await.expect("load");
        let snap = doc.snapshot.clone().expect("snapshot");
        assert_eq!((snap.covers_seq, snap.data), (12, b"state@12".to_vec()), "the newest state wins");
        // Every update the newest snapshot does not cover is still there, in order.
        assert_eq!(seqs(&doc), (13..=30).collect::<Vec<_>>());
        let versions = b.documents.versions("r").await.expect("versions");
        assert!(!versions.is_empty() && versions.len() <= 2, "{versions:?}");
        assert_eq!(versions[0].covers_seq, 12);
        assert!(versions.windows(2).all(|w| w[0].covers_seq > w[1].covers_seq));
    }

    pub async fn compacting_an_unwritten_room_moves_the_sequence_on(b: Stores) {
        // E.g. a document imported as a snapshot: later appends must not reuse covered seqs.
        b.documents.compact("fresh", snapshot(b"imported", 5, 2)).await.expect("compact");
        assert_eq!(b.documents.load("fresh").await.expect("load").last_seq(), 5);
        assert_eq!(b.documents.append("fresh", &[]).await.expect("append nothing"), 5);
        assert_eq!(b.documents.append("fresh", &[b"next"]).await.expect("append"), 6);
        let doc = b.documents.load("fresh").await.expect("load");
        assert_eq!(doc.snapshot.clone().map(|s| s.data), Some(b"imported".to_vec()));
        assert_eq!(seqs(&doc), vec![6]);
    }

    /// More rows than fit in one statement's bind parameters, on either backend (4 per row).
    const BIG: usize = 20_000;

    fn big_batch(tag: u8) -> Vec<Vec<u8>> {
        (0..BIG).map(|i| [&[tag][..], &(i as u32).to_le_bytes(), &vec![b'x'; i % 50]].concat()).collect()
    }

    pub async fn big_batch_loads_back(b: Stores) {
        b.documents.append("r", &[b"before"]).await.expect("append");
        let batch = big_batch(1);
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        assert_eq!(b.documents.append("r", &refs).await.expect("big append"), 1 + BIG as i64);
        let doc = b.documents.load("r").await.expect("load");
        assert_eq!(seqs(&doc), (1..=1 + BIG as i64).collect::<Vec<_>>());
        assert!(doc.updates[1..].iter().map(|u| &u.data).eq(batch.iter()));
        assert_eq!(b.documents.append("r", &[b"after"]).await.expect("append"), 2 + BIG as i64);
    }

    pub async fn big_batch_is_all_or_nothing(b: Stores) {
        let batch = big_batch(2);
        // Readers never see part of a batch.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, done) = (b.documents.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeSet::new();
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let count = store.load("r").await.expect("load").updates.len();
                    assert!(count == 0 || count == BIG, "saw {count} of {BIG} updates");
                    seen.insert(count);
                    tokio::task::yield_now().await;
                }
                seen
            })
        };
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        b.documents.append("r", &refs).await.expect("big append");
        done.store(true, std::sync::atomic::Ordering::Release);
        reader.await.expect("reader");
        // An append whose caller stops waiting at any point (its future dropped, as when a
        // client disconnects) still stores all of it or none, leaves no gap in the sequence,
        // and does not break the connection it used for whoever takes it next.
        let owned = Arc::new(big_batch(3));
        let abandoned_rows = |doc: &dojo_store::StoredDocument| {
            doc.updates.iter().filter(|u| u.data.first() == Some(&3)).count()
        };
        let mut acknowledged = 0;
        for delay_ms in [0, 1, 5, 20, 60, 2_000] {
            let (store, owned) = (b.documents.clone(), owned.clone());
            let abandoned = tokio::spawn(async move {
                let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
                store.append("r", &refs).await
            });
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            abandoned.abort();
            if matches!(abandoned.await, Ok(Ok(_))) {
                acknowledged += 1;
            }
            let next = b.documents.append("r", &[b"next"]).await.expect("append after an abandoned one");
            // Loads on the connections the abandoned appends used must work, and at every
            // moment show whole batches only.
            for _ in 0..5 {
                let doc = b.documents.load("r").await.expect("load after an abandoned append");
                let stored = abandoned_rows(&doc);
                assert_eq!(stored % BIG, 0, "saw {stored} rows of abandoned batches of {BIG}");
                assert!(stored >= acknowledged * BIG, "an acknowledged append was lost");
                let last = seqs(&doc).last().copied().unwrap_or(0);
                assert!(last >= next);
                assert_eq!(seqs(&doc), (1..=last).collect::<Vec<_>>(), "gap in the sequence");
            }
        }
        // The longest delay lets the append finish.
        assert!(acknowledged >= 1);
    }

    pub async fn reopened_store_sees_the_data(b: Stores) {
        append_numbered(&*b.documents, "r", "u", 4).await;
        b.documents.compact("r", snapshot(b"state@2", 2, 2)).await.expect("compact");
        let before = b.documents.load("r").await.expect("load");
        let reopened = b.reopen().await.documents;
        assert_eq!(reopened.load("r").await.expect("load after reopen"), before);
        assert_eq!(reopened.versions("r").await.expect("versions").len(), 1);
        // Both stores share one sequence.
        assert_eq!(reopened.append("r", &[b"u4"]).await.expect("append"), 5);
        assert_eq!(b.documents.append("r", &[b"u5"]).await.expect("append"), 6);
        assert_eq!(seqs(&reopened.load("r").await.expect("load")), vec![3, 4, 5, 6]);
    }

    pub async fn migrate_is_idempotent(b: Stores) {
        b.documents.append("r", &[b"kept"]).await.expect("append");
        b.documents.migrate().await.expect("migrate again");
        b.documents.migrate().await.expect("and again");
        // Instances starting together migrate concurrently.
        let (x, y) = (b.reopen(), b.reopen());
        let (x, y) = tokio::join!(x, y);
        x.documents.migrate().await.expect("migrate from another pool");
        y.documents.ping().await.expect("ping");
        assert_eq!(seqs(&b.documents.load("r").await.expect("load")), vec![1]);
    }

    pub async fn ping_answers(b: Stores) {
        b.documents.ping().await.expect("ping");
    }
}

#[tokio::test]
async fn open_rejects_unsupported_urls() {
    for url in ["mysql://x", "", "sqlite", "http://localhost/db"] {
        match dojo_store::open(url).await {
            Err(StoreError::UnsupportedUrl(got)) => assert_eq!(got, url),
            Err(other) => panic!("{url:?}: expected UnsupportedUrl, got {other}"),
            Ok(_) => panic!("{url:?}: expected UnsupportedUrl, got a store"),
        }
    }
}

#[tokio::test]
async fn unreachable_postgres_fails_fast() {
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        dojo_store::open("postgres://postgres@127.0.0.1:1/dojo"),
    )
    .await;
    let elapsed = started.elapsed();
    match result {
        Ok(Err(StoreError::Database(_))) => {}
        Ok(Err(other)) => panic!("expected a database error, got {other}"),
        Ok(Ok(_)) => panic!("connected to port 1?"),
        Err(_) => panic!("open hung for 30 s"),
    }
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn silent_postgres_times_out() {
    // Accepts connections and never answers, like a hung server or a black-holed route.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let connect = format!("postgres://postgres@127.0.0.1:{port}/dojo").parse().expect("URL");
    let options = PostgresOptions { acquire_timeout: Duration::from_secs(1), ..PostgresOptions::default() };
    let started = Instant::now();
    let result =
        tokio::time::timeout(Duration::from_secs(30), PostgresStore::connect_with(connect, options)).await;
    assert!(matches!(result, Ok(Err(StoreError::Database(_)))), "expected a database error");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    silent.abort();
}

#[tokio::test]
async fn sqlite_creates_the_data_directory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("a").join("b").join("dojo.db");
    let store = dojo_store::open(&format!("sqlite://{}", path.display())).await.expect("open");
    store.append("r", &[b"x"]).await.expect("append");
    assert!(path.exists());
}

#[tokio::test]
async fn sqlite_reports_an_unusable_data_directory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").expect("write file");
    let result = dojo_store::open(&format!("sqlite:{}", file.join("dojo.db").display())).await;
    assert!(matches!(result, Err(StoreError::DataDir { .. })), "{:?}", result.err());
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = dojo_store::open("sqlite::memory:").await.expect("open");
    assert_eq!(store.append("r", &[b"a", b"b"]).await.expect("append"), 2);
    assert_eq!(store.load("r").await.expect("load").updates.len(), 2);
}

#[tokio::test]
async fn open_database_shares_one_pool_with_its_document_store() {
    // In memory there is exactly one connection: seeing the append through the pool proves the
    // pool other crates get is the store's own, on a migrated database.
    let db = dojo_store::open_database("sqlite::memory:").await.expect("open");
    let dojo_store::Database::Sqlite(store) = &db else { panic!("expected SQLite") };
    db.documents().append("r", &[b"x"]).await.expect("append");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM document_updates")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(count, 1);
    assert!(matches!(dojo_store::open_database("mysql://x").await, Err(StoreError::UnsupportedUrl(_))));
}

/// The SQLite log is stored by (room, seq) (migration 0021): a room's rows sit together, so
/// compaction's delete of a room's covered rows dirties a few pages, not one per row.
#[tokio::test]
async fn sqlite_stores_the_update_log_clustered_by_room() {
    let db = dojo_store::open_database("sqlite::memory:").await.expect("open");
    let dojo_store::Database::Sqlite(store) = &db else { panic!("expected SQLite") };
    let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'document_updates'")
        .fetch_one(store.pool())
        .await
        .expect("the log's schema");
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
    // Same key and cascade as before the rebuild.
    assert!(sql.contains("PRIMARY KEY (room, seq)") && sql.contains("ON DELETE CASCADE"), "{sql}");
    for room in ["a", "b", "a", "c", "a"] {
        db.documents().append(room, &[room.as_bytes()]).await.expect("append");
    }
    assert_eq!(db.documents().load("a").await.expect("load").updates.len(), 3);
    let snapshot = NewSnapshot { data: b"s", state_vector: b"sv", covers_seq: 2, keep: 1 };
    db.documents().compact("a", snapshot).await.expect("compact");
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT room, seq FROM document_updates ORDER BY room, seq")
            .fetch_all(store.pool())
            .await
            .expect("rows");
    assert_eq!(rows, [("a".to_owned(), 3), ("b".to_owned(), 1), ("c".to_owned(), 1)]);
}
