//! The scenarios that are not steady editing: cold load (seed, then measure after a restart),
//! reconnect storm, and the idle-memory census.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dojo_room_client::SyncClient;
use dojo_sync_protocol::canvas::{self, CanvasNode, Position};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use yrs::{Any, Doc, Map, Number, Out, ReadTxn, StateVector, Transact, TransactionMut, WriteTxn};

use crate::bench::{self, SharedReceived};
use crate::clients::{
    ERRORS_LOGGED, Member, Target, close_all, connect_all, connect_and_prepare, connect_client,
    group_by_room, wait_converged, warn_unconverged,
};
use crate::config::Config;
use crate::context::Context;
use crate::report::{
    ColdLoadReport, IdleReport, LatencySummary, ScenarioReport, SeedReport, StormReport, kib_to_mib,
    per_second, round3,
};

/// The root map where seeding counts its updates: `cold.n` = updates written so far.
const COLD: &str = "cold";
/// Longest wait for a room's seeded history to arrive at a client (a server may load it from
/// its store after answering the handshake, as @y/websocket-server does).
const CONTENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between a seeding client leaving and the verifying client joining.
const SEED_VERIFY_PAUSE: Duration = Duration::from_millis(500);
/// Longest wait for every room to converge after a reconnect storm.
const STORM_CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many seeded updates `doc` holds (the counter the last one wrote).
pub fn seeded_count(doc: &Doc) -> u64 {
    let txn = doc.transact();
    match txn.get_map(COLD).and_then(|map| map.get(&txn, "n")) {
        Some(Out::Any(Any::Number(Number::Int(n)))) => u64::try_from(n).unwrap_or(0),
        Some(Out::Any(Any::Number(Number::Float(n)))) if n >= 0.0 => n as u64,
        _ => 0,
    }
}

/// Seeding's `n`th update (from 1): the first writes the room's node, the others alternate
/// between moving it and changing its prompt, as the editing scenarios do; each also counts.
fn seed_edit(txn: &mut TransactionMut, n: u64) {
    let node_id = "seed-node";
    if n == 1 {
        let node = CanvasNode {
            id: node_id.into(),
            node_type: "flux-schnell".into(),
            position: Position { x: 0.0, y: 0.0 },
            data: BTreeMap::from([("prompt".into(), json!("a red fox"))]),
        };
        let _ = canvas::write_node(txn, &node);
    } else if n.is_multiple_of(2) {
        let _ = canvas::move_node(txn, node_id, Position { x: (n % 1000) as f64, y: (n % 700) as f64 });
    } else {
        let _ = canvas::set_node_param(txn, node_id, "prompt", &json!(format!("a red fox, take {n}")));
    }
    let cold = txn.get_or_insert_map(COLD);
    cold.insert(txn, "n", n as f64);
}

/// Cold load, first half: writes `--history` updates into each room, through the server, then
/// checks with a fresh client that every room holds them all.
pub(crate) async fn seed(config: &Config, context: &Context) -> SeedReport {
    let (rooms, history) = (config.rooms(), u64::from(config.history));
    tracing::info!(rooms, history, "seeding {} updates", u64::from(rooms) * history);
    let mark = context.meter.mark();
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(config.connect_concurrency as usize));
    let mut tasks = JoinSet::new();
    for room in 0..rooms {
        let target = Target::new(config, &context.prefix, room);
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            seed_room(&target, history).await.map_err(|e| format!("{} (room {room}): {e}", target.url))
        });
    }
    let (mut verified, mut failed, mut sent, mut document_bytes) = (0u64, 0u64, 0u64, None);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((updates, bytes))) => {
                verified += 1;
                sent += updates;
                document_bytes = Some(bytes);
            }
            Ok(Err(error)) => {
                failed += 1;
                if failed as usize <= ERRORS_LOGGED {
                    tracing::warn!("seeding failed: {error}");
                }
            }
            Err(error) => {
                failed += 1;
                tracing::warn!("seeding task failed: {error}");
            }
        }
    }
    let seed_s = started.elapsed().as_secs_f64();
    let mut report = SeedReport {
        meta: context.meta(config, "cold-seed"),
        rooms,
        history: config.history,
        updates_sent: sent,
        seed_s: round3(seed_s),
        updates_per_s: per_second(sent, seed_s),
        rooms_verified: verified,
        rooms_failed: failed,
        document_bytes,
        server: context.meter.sample(Some(&mark)),
        ok: false,
    };
    report.ok = report.failures().is_empty();
    report
}

/// Writes `history` updates into one room, closes, and reads them back with a fresh client.
/// Returns the updates sent and the document's size.
async fn seed_room(target: &Target, history: u64) -> Result<(u64, u64), String> {
    let writer = connect_client(target, Doc::new()).await?;
    for n in 1..=history {
        writer.edit(|txn| seed_edit(txn, n)).await.map_err(|e| format!("update {n}: {e}"))?;
    }
    writer.close().await;
    // A server that unloads a room when its last client leaves gets time to finish: with
    // LevelDB persistence, @y/websocket-server 0.1.1 served an empty document, for good, to most
    // clients that joined within milliseconds of the writer leaving (never after 300 ms).
    tokio::time::sleep(SEED_VERIFY_PAUSE).await;
    let reader = connect_client(target, Doc::new()).await?;
    let complete =
        reader.wait_doc("the seeded history", CONTENT_TIMEOUT, |doc| seeded_count(doc) >= history).await;
    let bytes = reader.doc().transact().encode_state_as_update_v1(&StateVector::default()).len() as u64;
    let found = seeded_count(reader.doc());
    reader.close().await;
    complete.map_err(|_| format!("a fresh client found {found} of {history} updates"))?;
    Ok((history, bytes))
}

/// Cold load, second half (after a server restart): opens every seeded room and times each
/// client's first sync and the arrival of the whole history.
pub(crate) async fn cold_load(config: &Config, context: &Context) -> ColdLoadReport {
    let (rooms, clients, history) = (config.rooms(), config.clients(), u64::from(config.history));
    tracing::info!(rooms, clients, "opening {} seeded rooms", rooms);
    let mark = context.meter.mark();
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(config.connect_concurrency as usize));
    let mut tasks = JoinSet::new();
    for room in 0..rooms {
        for slot in 0..clients {
            let target = Target::for_slot(config, &context.prefix, room, slot);
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let began = Instant::now();
                let client = connect_client(&target, Doc::new()).await?;
                let synced = began.elapsed();
                let complete = client
                    .wait_doc("the seeded history", CONTENT_TIMEOUT, |doc| seeded_count(doc) >= history)
                    .await;
                Ok::<_, String>((client, synced, complete.is_ok().then(|| began.elapsed())))
            });
        }
    }
    let mut first_sync = bench::latency_histogram();
    let mut content = bench::latency_histogram();
    let (mut failures, mut complete, mut incomplete) = (0u64, 0u64, 0u64);
    let mut open = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((client, synced, full))) => {
                first_sync.saturating_record(micros(synced));
                match full {
                    Some(after) => {
                        complete += 1;
                        content.saturating_record(micros(after));
                    }
                    None => incomplete += 1,
                }
                open.push(client);
            }
            Ok(Err(error)) => {
                failures += 1;
                if failures as usize <= ERRORS_LOGGED {
                    tracing::warn!("opening failed: {error}");
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!("opening task failed: {error}");
            }
        }
    }
    let open_all_s = started.elapsed().as_secs_f64();
    let server = context.meter.sample(Some(&mark));
    futures_util::future::join_all(open.into_iter().map(SyncClient::close)).await;
    // Rooms are counted per client: with several clients per room, each must see it complete.
    let per_room = u64::from(clients.max(1));
    let mut report = ColdLoadReport {
        meta: context.meta(config, "cold-load"),
        rooms,
        clients_per_room: clients,
        history: config.history,
        connect_concurrency: config.connect_concurrency,
        open_all_s: round3(open_all_s),
        rooms_per_s: per_second(u64::from(rooms), open_all_s),
        first_sync_ms: LatencySummary::from_micros(&first_sync),
        content_ms: LatencySummary::from_micros(&content),
        connect_failures: failures,
        rooms_complete: complete / per_room,
        rooms_incomplete: incomplete.div_ceil(per_room),
        server,
        ok: false,
    };
    report.ok = report.failures().is_empty();
    report
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Reconnect storm: every client drops its connection at once (no close frame), makes one edit
/// offline, and reconnects with its document; times each resync and checks that every room
/// converges, offline edits included.
pub(crate) async fn storm(config: &Config, context: &Context) -> StormReport {
    let rooms = config.rooms();
    let (members, connect_failures, _) = connect_and_prepare(config, context).await;
    let concurrency = config.reconnect_concurrency.unwrap_or(members.len().max(1) as u32);
    tracing::info!(clients = members.len(), concurrency, "dropping every connection at once");

    // What the clients were sent while connecting is in their documents before they go offline.
    crate::clients::catch_up_all(&members).await;
    let mark = context.meter.mark();
    let dropped_at = Instant::now();
    let offline: Vec<Offline> = members
        .into_iter()
        .map(|member| {
            let doc = member.client.doc().clone();
            member.client.abort();
            Offline {
                room: member.room,
                slot: member.slot,
                target: member.target,
                doc,
                node_id: member.node_id,
                received: member.received,
                edits: member.edits,
            }
        })
        .collect();
    let dropped = offline.len() as u64;
    for client in &offline {
        let mut txn = client.doc.transact_mut();
        let _ = canvas::move_node(&mut txn, &client.node_id, Position { x: -1.0, y: f64::from(client.slot) });
    }

    let permits = Arc::new(Semaphore::new(concurrency as usize));
    let mut tasks = JoinSet::new();
    for client in offline {
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = connect_client(&client.target, client.doc.clone()).await;
            (client, result, dropped_at.elapsed())
        });
    }
    let mut resync = bench::latency_histogram();
    let mut members = Vec::new();
    let (mut failures, mut last) = (0u64, Duration::ZERO);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((offline, Ok(client), after)) => {
                resync.saturating_record(micros(after));
                last = last.max(after);
                members.push(offline.reconnected(client));
            }
            Ok((offline, Err(error), _)) => {
                failures += 1;
                if failures as usize <= ERRORS_LOGGED {
                    tracing::warn!(
                        "room {} client {}: reconnecting failed: {error}",
                        offline.room,
                        offline.slot
                    );
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!("reconnect task failed: {error}");
            }
        }
    }
    members.sort_by_key(|m| (m.room, m.slot));
    tracing::info!(resynced = members.len(), failures, "all reconnected after {:.2} s", last.as_secs_f64());

    let by_room = group_by_room(&members, rooms);
    let converge_started = Instant::now();
    let converged = wait_converged(&members, &by_room, STORM_CONVERGE_TIMEOUT).await;
    let convergence_wait_s = converge_started.elapsed().as_secs_f64();
    warn_unconverged(&context.prefix, &by_room, &converged);
    let server = context.meter.sample(Some(&mark));
    let rooms_converged = converged.iter().filter(|ok| **ok).count() as u64;
    let resynced = members.len() as u64;
    close_all(members).await;

    let mut report = StormReport {
        meta: context.meta(config, "reconnect-storm"),
        rooms,
        clients_per_room: config.clients(),
        clients_connected: dropped,
        connect_failures,
        reconnect_concurrency: concurrency,
        dropped,
        resynced,
        resync_failures: failures,
        all_resynced_s: round3(last.as_secs_f64()),
        resync_ms: LatencySummary::from_micros(&resync),
        rooms_converged,
        rooms_not_converged: u64::from(rooms) - rooms_converged,
        convergence_wait_s: round3(convergence_wait_s),
        server,
        ok: false,
    };
    report.ok = report.failures().is_empty();
    report
}

/// A client between dropping its connection and reconnecting.
struct Offline {
    room: u32,
    slot: u32,
    target: Target,
    doc: Doc,
    node_id: String,
    received: SharedReceived,
    edits: u64,
}

impl Offline {
    fn reconnected(self, client: SyncClient) -> Member {
        Member {
            room: self.room,
            slot: self.slot,
            target: self.target,
            client,
            node_id: self.node_id,
            received: self.received,
            edits: self.edits,
        }
    }
}

/// Idle memory: the server's resident memory before any connection, with every room open and
/// quiet, and after `--extra-connections` more clients joined open rooms.
pub(crate) async fn idle(config: &Config, context: &Context) -> IdleReport {
    let (rooms, clients) = (config.rooms(), config.clients());
    let settle = Duration::from_secs_f64(config.settle);
    let rss_before = context.meter.server_rss_kib().unwrap_or_default();
    let (mut members, mut failures, connect_s) = connect_and_prepare(config, context).await;
    let connections = members.len() as u64;
    tracing::info!(connections, "settling for {} s", config.settle);
    tokio::time::sleep(settle).await;
    let rss_open = context.meter.server_rss_kib().unwrap_or_default();

    let extra = u64::from(config.extra_connections);
    let (mut rss_extra, mut extra_connected) = (None, 0u64);
    if extra > 0 {
        let slots: Vec<(u32, u32)> = (0..extra)
            .map(|i| ((i % u64::from(rooms)) as u32, clients + (i / u64::from(rooms)) as u32))
            .collect();
        tracing::info!(extra, "adding connections to open rooms");
        let (more, more_failures) = connect_all(config, context, &slots, config.connect_concurrency).await;
        failures += more_failures;
        extra_connected = more.len() as u64;
        members.extend(more);
        tokio::time::sleep(settle).await;
        rss_extra = context.meter.server_rss_kib();
    }
    let peak_rss_mib = context.meter.sample(None).and_then(|s| s.peak_rss_mib);
    close_all(members).await;

    let open_delta = rss_open.saturating_sub(rss_before) as f64;
    let per_room_kib = open_delta / f64::from(rooms.max(1));
    let per_connection_kib = open_delta / connections.max(1) as f64;
    let per_extra = rss_extra
        .filter(|_| extra_connected > 0)
        // Signed: a server that gives memory back (trimming freed pages) can hold less after the
        // extra connections than before them, and that is what it measured.
        .map(|rss| (rss as f64 - rss_open as f64) / extra_connected as f64);
    let mut report = IdleReport {
        meta: context.meta(config, "idle-memory"),
        rooms,
        clients_per_room: clients,
        connections,
        connect_failures: failures,
        connect_s: round3(connect_s),
        settle_s: config.settle,
        rss_before_mib: kib_to_mib(rss_before),
        rss_open_mib: kib_to_mib(rss_open),
        per_room_kib: round3(per_room_kib),
        per_connection_kib: round3(per_connection_kib),
        extra_connections: extra_connected,
        rss_extra_mib: rss_extra.map(kib_to_mib),
        per_extra_connection_kib: per_extra.map(round3),
        per_room_alone_kib: per_extra.map(|per| round3(per_room_kib - f64::from(clients) * per)),
        peak_rss_mib,
        ok: false,
    };
    report.ok = report.failures().is_empty();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::Update;
    use yrs::updates::decoder::Decode;

    #[test]
    fn seeding_counts_its_updates_and_a_copy_sees_the_count() {
        let writer = Doc::new();
        assert_eq!(seeded_count(&writer), 0);
        let reader = Doc::new();
        for n in 1..=5 {
            let update = {
                let mut txn = writer.transact_mut();
                seed_edit(&mut txn, n);
                txn.encode_update_v1()
            };
            reader.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
        }
        assert_eq!((seeded_count(&writer), seeded_count(&reader)), (5, 5));
        let txn = reader.transact();
        let graph = canvas::read_graph(&txn).unwrap();
        assert_eq!(graph.nodes.len(), 1);
    }

    #[test]
    fn a_foreign_counter_reads_as_zero() {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let cold = txn.get_or_insert_map(COLD);
            cold.insert(&mut txn, "n", "many");
        }
        assert_eq!(seeded_count(&doc), 0);
    }

    #[test]
    fn durations_become_whole_microseconds() {
        assert_eq!(micros(Duration::from_millis(3)), 3_000);
        assert_eq!(micros(Duration::ZERO), 1);
    }
}
