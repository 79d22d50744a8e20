//! Several instances serving the same rooms, through Redis pub/sub.
//!
//! Each instance publishes what its rooms store and the presence changes of its own clients on
//! the room's channel (`dojo:room:{room}`), and subscribes only to the channels of rooms it
//! holds, so a room open on one instance costs the others nothing. Pub/sub, not streams: the
//! store (PostgreSQL) is already the durable, ordered log of updates; Redis only has to carry
//! them fast. Every published update carries its store sequence numbers, so a receiver that
//! misses one (Redis restarted, a slow subscriber, a dropped publish) sees the gap and catches
//! up from the store, which it also does for every room after re-subscribing and, as a
//! backstop, on a timer. Nothing is lost when Redis fails; it only gets slower.
//!
//! Liveness: each instance refreshes its score in the sorted set `dojo:instances` every few
//! seconds (any message heard from an instance also counts). Presence received from an instance
//! that stopped refreshing is removed.
//!
//! Presence is not in the store, so a room cannot catch up on it: once Redis confirms a room's
//! subscription (again, after a reconnect), the room publishes its own clients' presence and a
//! `PresenceQuery`, which every instance holding the room answers with its own clients'.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::room_name::RoomName;

/// Identifies one server process for the life of the process.
pub type InstanceId = u64;

const INSTANCES_KEY: &str = "dojo:instances";
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// An instance whose heartbeat is older than this counts as dead.
pub const INSTANCE_TIMEOUT: Duration = Duration::from_secs(15);
/// Messages waiting to be published; beyond, they are dropped (receivers catch up from the
/// store, and presence is renewed every 15 s by clients).
const PUBLISH_QUEUE: usize = 4096;
/// Subscribe/unsubscribe requests waiting for the subscriber task.
const CONTROL_QUEUE: usize = 4096;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

const KIND_UPDATES: u8 = 1;
const KIND_AWARENESS: u8 = 2;
const KIND_PERMISSIONS_CHANGED: u8 = 3;
const KIND_PRESENCE_QUERY: u8 = 4;

/// What the subscriber tells a room.
#[derive(Debug)]
pub enum ClusterEvent {
    /// A message another instance published on the room's channel.
    Message(ClusterMessage),
    /// Messages may have been missed (the subscription was lost, or the room's queue was full):
    /// the room catches up from the store.
    CatchUp,
    /// The room's channel is live (again): what is published from now on reaches it.
    Subscribed,
}

/// Where the subscriber delivers a room's events: implemented by the room's address, so this
/// module knows nothing of rooms (no `room` ↔ `cluster` cycle). Never waits; `false` when the
/// event was not queued (the room is gone or its queue is full).
pub trait RoomInbox: Send + Sync {
    fn deliver(&self, event: ClusterEvent) -> bool;
}

/// What instances tell each other about a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterMessage {
    /// Changes stored with sequences `first_seq..=last_seq`, in order.
    Updates { origin: InstanceId, first_seq: i64, last_seq: i64, changes: Vec<Vec<u8>> },
    /// A y-protocols awareness message (as sent to clients) about the origin's own clients.
    Awareness { origin: InstanceId, frame: Bytes },
    /// The room's access rules changed: its connections everywhere reconnect and are checked
    /// again.
    PermissionsChanged { origin: InstanceId },
    /// The origin just subscribed to the room's channel and may have missed presence published
    /// before: every instance holding the room answers with its own clients' presence (an
    /// `Awareness` message).
    PresenceQuery { origin: InstanceId },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed cluster message: {0}")]
pub struct MalformedMessage(&'static str);

impl ClusterMessage {
    pub fn origin(&self) -> InstanceId {
        match self {
            ClusterMessage::Updates { origin, .. }
            | ClusterMessage::Awareness { origin, .. }
            | ClusterMessage::PermissionsChanged { origin }
            | ClusterMessage::PresenceQuery { origin } => *origin,
        }
    }

    /// `kind • origin (u64 LE) • body`; updates: `first (i64 LE) • last • count (u32 LE) • (len u32 LE • bytes)*`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            ClusterMessage::Updates { origin, first_seq, last_seq, changes } => {
                out.push(KIND_UPDATES);
                out.extend_from_slice(&origin.to_le_bytes());
                out.extend_from_slice(&first_seq.to_le_bytes());
                out.extend_from_slice(&last_seq.to_le_bytes());
                out.extend_from_slice(&(changes.len() as u32).to_le_bytes());
                for change in changes {
                    out.extend_from_slice(&(change.len() as u32).to_le_bytes());
                    out.extend_from_slice(change);
                }
            }
            ClusterMessage::Awareness { origin, frame } => {
                out.push(KIND_AWARENESS);
                out.extend_from_slice(&origin.to_le_bytes());
                out.extend_from_slice(frame);
            }
            ClusterMessage::PermissionsChanged { origin } => {
                out.push(KIND_PERMISSIONS_CHANGED);
                out.extend_from_slice(&origin.to_le_bytes());
            }
            ClusterMessage::PresenceQuery { origin } => {
                out.push(KIND_PRESENCE_QUERY);
                out.extend_from_slice(&origin.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MalformedMessage> {
        let mut reader = Reader(bytes);
        let kind = reader.take(1)?[0];
        let origin = u64::from_le_bytes(reader.array()?);
        match kind {
            KIND_UPDATES => {
                let first_seq = i64::from_le_bytes(reader.array()?);
                let last_seq = i64::from_le_bytes(reader.array()?);
                let count = u32::from_le_bytes(reader.array()?) as usize;
                // Each change takes at least its 4-byte length: a lying count cannot reserve
                // more than the message could hold.
                if count > reader.0.len() / 4 {
                    return Err(MalformedMessage("more changes than bytes"));
                }
                let mut changes = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = u32::from_le_bytes(reader.array()?) as usize;
                    changes.push(reader.take(len)?.to_vec());
                }
                if !reader.0.is_empty() {
                    return Err(MalformedMessage("trailing bytes"));
                }
                if last_seq - first_seq + 1 != count as i64 {
                    return Err(MalformedMessage("sequence range does not match the changes"));
                }
                Ok(ClusterMessage::Updates { origin, first_seq, last_seq, changes })
            }
            KIND_AWARENESS => {
                Ok(ClusterMessage::Awareness { origin, frame: Bytes::copy_from_slice(reader.0) })
            }
            KIND_PERMISSIONS_CHANGED if reader.0.is_empty() => {
                Ok(ClusterMessage::PermissionsChanged { origin })
            }
            KIND_PRESENCE_QUERY if reader.0.is_empty() => Ok(ClusterMessage::PresenceQuery { origin }),
            KIND_PERMISSIONS_CHANGED | KIND_PRESENCE_QUERY => Err(MalformedMessage("trailing bytes")),
            _ => Err(MalformedMessage("unknown kind")),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MalformedMessage> {
        if self.0.len() < n {
            return Err(MalformedMessage("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MalformedMessage> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

fn channel(room: &str) -> String {
    format!("dojo:room:{room}")
}

enum Control {
    Subscribe(RoomName, u64, Arc<dyn RoomInbox>),
    /// Only if the channel still belongs to that generation of the room: a room that unloads
    /// and reopens must not lose its new subscription to the old one's goodbye.
    Unsubscribe(RoomName, u64),
}

/// This instance's link to the others.
pub struct Cluster {
    instance: InstanceId,
    publish: mpsc::Sender<(String, Vec<u8>)>,
    control: mpsc::Sender<Control>,
    live: Arc<RwLock<HashSet<InstanceId>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid REDIS_URL: {0}")]
    Url(redis::RedisError),
    #[error("cannot reach Redis: {0}")]
    Connect(redis::RedisError),
}

impl Cluster {
    /// Connects (failing fast if Redis cannot be reached now) and starts the publisher, the
    /// subscriber and the heartbeat, which run until `shutdown` and reconnect on their own.
    pub async fn start(
        url: &str,
        metrics: Arc<crate::metrics::Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        let client = redis::Client::open(url).map_err(ClusterError::Url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(RECONNECT_MAX);
        let connection = redis::aio::ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(ClusterError::Connect)?;
        let instance: InstanceId = rand::random();
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let live = Arc::new(RwLock::new(HashSet::from([instance])));
        tokio::spawn(run_publisher(connection.clone(), publish_rx, shutdown.clone()));
        tokio::spawn(run_heartbeat(connection, instance, live.clone(), shutdown.clone()));
        let heard = Heard { instance, live: live.clone() };
        tokio::spawn(run_subscriber(client, heard, control_rx, metrics.clone(), shutdown));
        tracing::info!(instance = format!("{instance:016x}"), "joined the cluster through Redis");
        Ok(Arc::new(Self { instance, publish, control, live, metrics }))
    }

    pub fn instance(&self) -> InstanceId {
        self.instance
    }

    /// Whether `instance` refreshed its heartbeat recently (this instance always is).
    pub fn is_live(&self, instance: InstanceId) -> bool {
        self.live.read().map(|live| live.contains(&instance)).unwrap_or(true)
    }

    /// Queues a message for the room's channel; never waits. Dropped when the queue is full:
    /// receivers then catch up from the store.
    pub fn publish(&self, room: &RoomName, message: &ClusterMessage) {
        if self.publish.try_send((channel(room.as_str()), message.encode())).is_err() {
            self.metrics.cluster_publish_dropped.inc();
        }
    }

    /// Starts delivering the room's channel to `inbox` (as `ClusterEvent::Message`).
    pub fn subscribe(&self, room: &RoomName, generation: u64, handle: Arc<dyn RoomInbox>) {
        if self.control.try_send(Control::Subscribe(room.clone(), generation, handle)).is_err() {
            tracing::warn!(%room, "cluster control queue full: the room relies on store catch-up");
        }
    }

    pub fn unsubscribe(&self, room: &RoomName, generation: u64) {
        let _ = self.control.try_send(Control::Unsubscribe(room.clone(), generation));
    }
}

async fn run_publisher(
    mut connection: redis::aio::ConnectionManager,
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
    shutdown: CancellationToken,
) {
    loop {
        let (channel, payload) = tokio::select! {
            next = queue.recv() => match next { Some(next) => next, None => return },
            () = shutdown.cancelled() => return,
        };
        // On failure the message is lost for the others; they notice the sequence gap or catch
        // up on their timer. Retrying here would reorder messages.
        if let Err(error) = connection.publish::<_, _, ()>(&channel, payload).await {
            tracing::debug!(%error, "publish to Redis failed");
        }
    }
}

async fn run_heartbeat(
    mut connection: redis::aio::ConnectionManager,
    instance: InstanceId,
    live: Arc<RwLock<HashSet<InstanceId>>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => {
                // Leaving on purpose: others may drop our presence entries at once.
                let _ = connection.zrem::<_, _, ()>(INSTANCES_KEY, instance.to_string()).await;
                return;
            }
        }
        let now = unix_millis();
        let cutoff = now - INSTANCE_TIMEOUT.as_millis() as i64;
        let beat = async {
            connection.zadd::<_, _, _, ()>(INSTANCES_KEY, instance.to_string(), now).await?;
            // Survivors clean up after the dead: whoever sees a stale entry removes it.
            connection.zrembyscore::<_, _, _, ()>(INSTANCES_KEY, "-inf", cutoff).await?;
            connection.zrangebyscore::<_, _, _, Vec<String>>(INSTANCES_KEY, cutoff, "+inf").await
        };
        match beat.await {
            Ok(members) => {
                let mut set: HashSet<InstanceId> = members.iter().filter_map(|m| m.parse().ok()).collect();
                set.insert(instance);
                if let Ok(mut live) = live.write() {
                    *live = set;
                }
            }
            Err(error) => tracing::debug!(%error, "heartbeat failed"),
        }
    }
}

/// What the subscriber knows about who is talking.
struct Heard {
    instance: InstanceId,
    live: Arc<RwLock<HashSet<InstanceId>>>,
}

impl Heard {
    /// A message is proof of life. An instance that just started is not in our copy of the
    /// heartbeat set until our next heartbeat, and its clients' presence must not expire as if
    /// it were dead meanwhile.
    fn alive(&self, origin: InstanceId) {
        if self.live.read().is_ok_and(|live| live.contains(&origin)) {
            return;
        }
        if let Ok(mut live) = self.live.write() {
            live.insert(origin);
        }
    }
}

async fn run_subscriber(
    client: redis::Client,
    heard: Heard,
    mut control: mpsc::Receiver<Control>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: CancellationToken,
) {
    let rooms: DashMap<String, (u64, Arc<dyn RoomInbox>)> = DashMap::new();
    let mut delay = RECONNECT_MIN;
    let mut first = true;
    loop {
        let pubsub = tokio::select! {
            pubsub = client.get_async_pubsub() => pubsub,
            () = shutdown.cancelled() => return,
        };
        let (mut sink, mut stream) = match pubsub {
            Ok(pubsub) => pubsub.split(),
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to Redis; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        let channels: Vec<String> = rooms.iter().map(|entry| entry.key().clone()).collect();
        if !channels.is_empty() && sink.subscribe(&channels).await.is_err() {
            continue;
        }
        if !first {
            // Whatever was published while we were away is in the store: every room catches up.
            metrics.cluster_resubscribes.inc();
            tracing::info!(rooms = channels.len(), "re-subscribed to Redis; rooms catch up from the store");
            for entry in rooms.iter() {
                let _ = entry.value().1.deliver(ClusterEvent::CatchUp);
            }
        }
        // Presence published while we were away is not in the store: ask for it again.
        for entry in rooms.iter() {
            subscribed(&entry.value().1);
        }
        first = false;
        delay = RECONNECT_MIN;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Some(handle) = rooms.get(message.get_channel_name()).map(|h| h.1.clone()) else { continue };
                    match ClusterMessage::decode(message.get_payload_bytes()) {
                        Ok(decoded) if decoded.origin() == heard.instance => {}
                        Ok(decoded) => {
                            heard.alive(decoded.origin());
                            // A full room queue loses the message: the room must catch up.
                            if !handle.deliver(ClusterEvent::Message(decoded)) {
                                metrics.cluster_receive_dropped.inc();
                                let _ = handle.deliver(ClusterEvent::CatchUp);
                            }
                        }
                        Err(error) => tracing::warn!(%error, "ignored a malformed message from Redis"),
                    }
                }
                request = control.recv() => {
                    let Some(request) = request else { return };
                    let result = match request {
                        Control::Subscribe(room, generation, handle) => {
                            let name = channel(room.as_str());
                            rooms.insert(name.clone(), (generation, handle.clone()));
                            let result = sink.subscribe(name).await;
                            if result.is_ok() {
                                subscribed(&handle);
                            }
                            result
                        }
                        Control::Unsubscribe(room, generation) => {
                            let name = channel(room.as_str());
                            if rooms.remove_if(&name, |_, (current, _)| *current == generation).is_some() {
                                sink.unsubscribe(name).await
                            } else {
                                Ok(())
                            }
                        }
                    };
                    if result.is_err() {
                        break;
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
        tracing::warn!("lost the Redis subscription; reconnecting");
    }
}

/// Tells a room that its channel is live (Redis confirmed the subscription): whatever is
/// published from now on reaches it, so it can ask the others for what it missed before.
fn subscribed(handle: &Arc<dyn RoomInbox>) {
    if !handle.deliver(ClusterEvent::Subscribed) {
        tracing::debug!("a room's queue is full: its presence relies on its clients' renewals");
    }
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let updates = ClusterMessage::Updates {
            origin: 7,
            first_seq: 3,
            last_seq: 4,
            changes: vec![vec![1, 2], vec![]],
        };
        assert_eq!(ClusterMessage::decode(&updates.encode()), Ok(updates));
        let awareness = ClusterMessage::Awareness { origin: u64::MAX, frame: Bytes::from_static(&[1, 2, 3]) };
        assert_eq!(ClusterMessage::decode(&awareness.encode()), Ok(awareness));
        let changed = ClusterMessage::PermissionsChanged { origin: 3 };
        assert_eq!(ClusterMessage::decode(&changed.encode()), Ok(changed));
        let query = ClusterMessage::PresenceQuery { origin: 4 };
        assert_eq!(ClusterMessage::decode(&query.encode()), Ok(query.clone()));
        let mut trailing = query.encode();
        trailing.push(0);
        assert!(ClusterMessage::decode(&trailing).is_err());
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good =
            ClusterMessage::Updates { origin: 1, first_seq: 1, last_seq: 2, changes: vec![vec![9], vec![8]] }
                .encode();
        for cut in 0..good.len() {
            assert!(ClusterMessage::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = good.clone();
        lying[25..29].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(ClusterMessage::decode(&lying).is_err());
        assert!(ClusterMessage::decode(&[9; 20]).is_err());
    }
}
