//! The clients of a run: where each connects, connecting them all, and waiting until every
//! room's clients hold the same document.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dojo_room_client::{Applying, CatchUp, ClientOptions, Framing, SyncClient};
use dojo_sync_protocol::canvas::{self, CanvasNode, Position};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use yrs::{ReadTxn, StateVector, Transact};

use crate::bench::{BenchClock, SharedReceived, StampSink};
use crate::config::{Config, room_url};
use crate::context::Context;

/// Longest wait for one client's WebSocket handshake, and then for its initial sync.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait, after editing stops, for every room's clients to hold the same state.
pub(crate) const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection errors logged one by one; the rest are only counted.
pub(crate) const ERRORS_LOGGED: usize = 10;

/// Where one room's clients connect, and how they frame their messages.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub url: String,
    pub framing: Framing,
}

impl Target {
    pub fn new(config: &Config, prefix: &str, room: u32) -> Self {
        Self::for_slot(config, prefix, room, 0)
    }

    /// Client `slot` of the room: with `--also-url`, a room's clients are spread over the
    /// servers in turn (slot 0 on `--url`), so every room spans several instances.
    pub fn for_slot(config: &Config, prefix: &str, room: u32, slot: u32) -> Self {
        let servers = 1 + config.also_url.len();
        let base = match slot as usize % servers {
            0 => &config.url,
            i => &config.also_url[i - 1],
        };
        let document = format!("{prefix}-{room}");
        let framing = config.protocol.framing(&document);
        let url = match framing {
            Framing::YWebsocket => room_url(base, prefix, room),
            // Hocuspocus names the document in every frame; the path is not looked at.
            Framing::Hocuspocus { .. } => base.clone(),
        };
        Self { url, framing }
    }
}

/// One connected client and what it knows about itself.
pub(crate) struct Member {
    pub room: u32,
    pub slot: u32,
    pub target: Target,
    pub client: SyncClient,
    pub node_id: String,
    pub received: SharedReceived,
    /// Edits sent over the whole run (stamps carry this number, so it never restarts).
    pub edits: u64,
}

/// Connects `--rooms` × `--clients`, gives every client a node of its own and waits until every
/// room holds all its nodes (so that editing starts from the same document everywhere, also on a
/// server that keeps no state). Returns the clients, the connection failures and the seconds spent.
pub(crate) async fn connect_and_prepare(config: &Config, context: &Context) -> (Vec<Member>, u64, f64) {
    let (rooms, clients) = (config.rooms(), config.clients());
    tracing::info!(
        url = %config.url, prefix = %context.prefix, rooms, clients,
        "connecting {} clients", u64::from(rooms) * u64::from(clients)
    );
    let started = Instant::now();
    let slots: Vec<(u32, u32)> =
        (0..rooms).flat_map(|room| (0..clients).map(move |slot| (room, slot))).collect();
    let (members, failures) = connect_all(config, context, &slots, config.connect_concurrency).await;
    let nodes_failed = create_nodes(&members).await;
    if nodes_failed > 0 {
        tracing::warn!(nodes_failed, "clients could not write their node");
    }
    let by_room = group_by_room(&members, rooms);
    let converged = wait_converged(&members, &by_room, CONVERGE_TIMEOUT).await;
    let behind = converged.iter().filter(|ok| !**ok).count();
    if behind > 0 {
        tracing::warn!(rooms = behind, "rooms did not converge before editing started");
    }
    let connect_s = started.elapsed().as_secs_f64();
    tracing::info!(connected = members.len(), failed = failures, "connected in {connect_s:.2} s");
    (members, failures, connect_s)
}

/// Connects one client per `(room, slot)`, at most `concurrency` at a time. Returns the clients
/// that connected and synced (ordered by room, then slot) and how many did not.
pub(crate) async fn connect_all(
    config: &Config,
    context: &Context,
    slots: &[(u32, u32)],
    concurrency: u32,
) -> (Vec<Member>, u64) {
    let permits = Arc::new(Semaphore::new(concurrency as usize));
    let mut tasks = JoinSet::new();
    for &(room, slot) in slots {
        let target = Target::for_slot(config, &context.prefix, room, slot);
        let (permits, clock, applying) = (permits.clone(), context.clock, config.applying());
        tasks.spawn(async move {
            // The semaphore is never closed, so a permit always comes.
            let _permit = permits.acquire_owned().await;
            let url = target.url.clone();
            connect_one(target, room, slot, clock, applying)
                .await
                .map_err(|e| format!("{url} (room {room}): {e}"))
        });
    }
    let mut members = Vec::new();
    let mut failures = 0u64;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(member)) => members.push(member),
            Ok(Err(error)) => {
                failures += 1;
                if failures as usize <= ERRORS_LOGGED {
                    tracing::warn!("connection failed: {error}");
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!("connection task failed: {error}");
            }
        }
    }
    members.sort_by_key(|m| (m.room, m.slot));
    (members, failures)
}

/// Connects one editing client (it times what others send it) and waits for its initial sync.
async fn connect_one(
    target: Target,
    room: u32,
    slot: u32,
    clock: BenchClock,
    applying: Applying,
) -> Result<Member, String> {
    let doc = yrs::Doc::new();
    let stamps = StampSink::new(clock, doc.client_id().get());
    let received = stamps.received.clone();
    let options = ClientOptions { applying, tap: Some(Arc::new(stamps)), ..ClientOptions::default() };
    let client = connect_client_with(&target, doc, options).await?;
    let node_id = format!("lt-node-{}", client.client_id());
    Ok(Member { room, slot, target, client, node_id, received, edits: 0 })
}

/// Connects a client for `doc` and waits for its initial sync (each within [`CONNECT_TIMEOUT`]).
pub(crate) async fn connect_client(target: &Target, doc: yrs::Doc) -> Result<SyncClient, String> {
    connect_client_with(target, doc, ClientOptions::default()).await
}

/// [`connect_client`] with options.
pub(crate) async fn connect_client_with(
    target: &Target,
    doc: yrs::Doc,
    options: ClientOptions,
) -> Result<SyncClient, String> {
    let client = tokio::time::timeout(
        CONNECT_TIMEOUT,
        SyncClient::connect_with(&target.url, doc, target.framing.clone(), options),
    )
    .await
    .map_err(|_| format!("no WebSocket handshake within {} s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| e.to_string())?;
    if let Err(error) = client.wait_synced(CONNECT_TIMEOUT).await {
        let status = client.status();
        return Err(match (status.denied, status.close) {
            (Some(reason), _) => format!("permission denied: {reason}"),
            (None, Some((code, reason))) => format!("closed by the server: {code} {reason}"),
            (None, None) => error.to_string(),
        });
    }
    Ok(client)
}

/// Gives every client a canvas node of its own to edit. Returns how many could not.
pub(crate) async fn create_nodes(members: &[Member]) -> u64 {
    let writes = members.iter().map(|member| async move {
        let node = CanvasNode {
            id: member.node_id.clone(),
            node_type: "flux-schnell".into(),
            position: Position { x: f64::from(member.slot) * 240.0, y: 0.0 },
            data: BTreeMap::from([("prompt".into(), json!("a red fox"))]),
        };
        matches!(member.client.edit(|txn| canvas::write_node(txn, &node)).await, Ok(Ok(())))
    });
    futures_util::future::join_all(writes).await.into_iter().filter(|ok| !ok).count() as u64
}

/// Closes every client politely.
pub(crate) async fn close_all(members: Vec<Member>) {
    tracing::info!("closing {} clients", members.len());
    futures_util::future::join_all(members.into_iter().map(|m| m.client.close())).await;
}

/// Indexes into `members` per room.
pub(crate) fn group_by_room(members: &[Member], rooms: u32) -> Vec<Vec<usize>> {
    let mut by_room = vec![Vec::new(); rooms as usize];
    for (index, member) in members.iter().enumerate() {
        if let Some(room) = by_room.get_mut(member.room as usize) {
            room.push(index);
        }
    }
    by_room
}

pub(crate) fn warn_unconverged(prefix: &str, by_room: &[Vec<usize>], converged: &[bool]) {
    for (room, ok) in converged.iter().enumerate().filter(|(_, ok)| !**ok).take(ERRORS_LOGGED) {
        let _ = ok;
        let connected = by_room[room].len();
        tracing::warn!(room = %format!("{prefix}-{room}"), connected, "room did not converge");
    }
}

/// Polls until every room has converged or `timeout` passed; whether each room converged.
///
/// A room has converged when all its clients are still connected and hold the same state vector
/// (they have seen the same updates). A room none of whose clients connected, or one of whose
/// clients lost its connection, never will: it is not waited for.
pub(crate) async fn wait_converged(
    members: &[Member],
    by_room: &[Vec<usize>],
    timeout: Duration,
) -> Vec<bool> {
    let mut deadline = Instant::now() + timeout;
    loop {
        // Applying what the clients received is the generator's own work, not time spent waiting
        // for the server: it does not count against the timeout.
        let applying = Instant::now();
        catch_up_all(members).await;
        deadline += applying.elapsed();
        let states: Vec<RoomState> = by_room.iter().map(|room| room_state(members, room)).collect();
        if !states.contains(&RoomState::Pending) || Instant::now() >= deadline {
            return states.into_iter().map(|state| state == RoomState::Converged).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Applies every client's deferred updates, on as many blocking threads as there are cores.
pub(crate) async fn catch_up_all(members: &[Member]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut work: Vec<Vec<CatchUp>> = (0..threads).map(|_| Vec::new()).collect();
    for (index, member) in members.iter().enumerate() {
        work[index % threads].push(member.client.take_deferred());
    }
    let tasks = work
        .into_iter()
        .map(|share| tokio::task::spawn_blocking(move || share.into_iter().for_each(CatchUp::apply)));
    for outcome in futures_util::future::join_all(tasks).await {
        if let Err(error) = outcome {
            tracing::error!("applying received updates failed: {error}");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoomState {
    Converged,
    Pending,
    /// No clients, or one of them is disconnected.
    Broken,
}

fn room_state(members: &[Member], room: &[usize]) -> RoomState {
    if room.is_empty() || room.iter().any(|&i| members[i].client.status().ended) {
        return RoomState::Broken;
    }
    // A read transaction waits for a reader applying an update; none is held across an await.
    let states: Vec<StateVector> =
        room.iter().map(|&i| members[i].client.doc().transact().state_vector()).collect();
    if all_equal(&states) { RoomState::Converged } else { RoomState::Pending }
}

fn all_equal<T: PartialEq>(items: &[T]) -> bool {
    items.windows(2).all(|pair| pair[0] == pair[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_of_state_vectors() {
        assert!(all_equal::<u8>(&[]));
        assert!(all_equal(&[1]));
        assert!(all_equal(&[1, 1, 1]));
        assert!(!all_equal(&[1, 1, 2]));
    }
}
