//! A room's document written durably over the WebSocket protocol, as a collaborator writes it:
//! how a `dojo-worker` process writes node states into rooms served by `dojo-server` instances.
//!
//! The client keeps a replica of the document. A write edits the replica and sends only the
//! difference as a y-protocols update, followed by a sync step 1. The server answers that step
//! 1 with a step 2 only once everything it received before it is stored (its step 2 replies
//! wait behind unstored changes), and it handles one connection's messages in order, so that
//! step 2 is the write's durable acknowledgement.
//!
//! A lost connection is reopened (with a fresh token) and resynced the standard way: the
//! server's step 1 is answered with a step 2 holding whatever it lacks, which carries any write
//! not yet acknowledged, and a new step 1 acknowledges them all. The replica never holds
//! anything but the room's state and this client's writes, so every update it sends has its
//! dependencies at the server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dojo_sync_protocol::codec::{
    FrameLimits, decode_frame, encode_sync_step1, encode_sync_step2, encode_update,
};
use dojo_sync_protocol::update::apply_client_update;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, TransactionMut};

use crate::socket::{self, ConnectError, NO_STATUS, Socket, close_parts, refused_our_bytes};

/// Largest frame accepted from the server (a whole document arrives as one sync step 2).
const MAX_SERVER_FRAME: usize = 256 * 1024 * 1024;
/// Writes waiting to be sent on one room's connection.
const WRITE_QUEUE: usize = 64;
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait for one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a writer's tokens come from: asked again for every connection, so a token minted per
/// connection never expires under a long run.
pub trait Tokens: Send + Sync {
    /// The token to join `room` with (`None`: none is needed). An error is final: the room
    /// is refused.
    fn token_for(&self, room: &str) -> Result<Option<String>, RoomError>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RoomError {
    #[error("the room is not available: {0}")]
    Unavailable(String),
    #[error("the room refused the change: {0}")]
    Refused(String),
}

#[derive(Debug, Clone)]
pub struct DurableSettings {
    /// How long opening a room may take (connecting and the first sync).
    pub open_timeout: Duration,
    /// How long one write may wait for the room's acknowledgement, reconnections included.
    pub write_timeout: Duration,
}

impl Default for DurableSettings {
    fn default() -> Self {
        Self { open_timeout: Duration::from_secs(15), write_timeout: Duration::from_secs(60) }
    }
}

type Ack = oneshot::Sender<Result<(), RoomError>>;

enum Command {
    /// An update made on the replica; acknowledged once the room stored it.
    Write { update: Vec<u8>, done: Ack },
    /// Acknowledged once the replica holds everything the room held when it was sent.
    Sync { done: Ack },
}

/// One room, open for a run. Dropping it closes the connection.
pub struct DurableRoom {
    room: String,
    replica: Arc<Mutex<Doc>>,
    commands: mpsc::Sender<Command>,
    settings: DurableSettings,
}

fn lock(replica: &Mutex<Doc>) -> std::sync::MutexGuard<'_, Doc> {
    // The document is only ever replaced or transacted whole under the lock, so a panic
    // elsewhere cannot leave it half-changed.
    replica.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DurableRoom {
    /// Joins `room` at `url` (`ws://host:port/rooms/{room}`) and returns once the replica holds
    /// the room's document, at most `settings.open_timeout` later. The connection is kept
    /// (reconnected, resynced) until the room is dropped.
    pub async fn open(
        url: String,
        room: &str,
        tokens: Arc<dyn Tokens>,
        settings: DurableSettings,
    ) -> Result<Self, RoomError> {
        let replica = Arc::new(Mutex::new(Doc::new()));
        let (commands, receiver) = mpsc::channel(WRITE_QUEUE);
        let connection = Connection {
            url,
            room: room.to_owned(),
            tokens,
            replica: replica.clone(),
            commands: receiver,
            stashed: VecDeque::new(),
            unconfirmed: Vec::new(),
            refused: None,
        };
        // Ends by itself once this room is dropped (its command channel closes).
        tokio::spawn(connection.run());
        let opened = Self { room: room.to_owned(), replica, commands, settings };
        let (done, answer) = oneshot::channel();
        opened.send(Command::Sync { done }, answer, opened.settings.open_timeout).await?;
        Ok(opened)
    }

    /// Makes `edit` on the replica and returns once the room stored what it changed, at most
    /// `settings.write_timeout` later (reconnections included). The edit may be made again on
    /// a fresh replica after a refusal, so it must describe the desired state, never a delta.
    pub async fn write<E: From<RoomError>>(
        &self,
        edit: impl FnOnce(&mut TransactionMut<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let update = {
            let replica = lock(&self.replica);
            let before = replica.transact().state_vector();
            {
                let mut txn = replica.transact_mut();
                edit(&mut txn)?;
            }
            replica.transact().encode_state_as_update_v1(&before)
        };
        // No structs and no deletions: nothing changed.
        if update == [0, 0] {
            return Ok(());
        }
        let (done, answer) = oneshot::channel();
        Ok(self.send(Command::Write { update, done }, answer, self.settings.write_timeout).await?)
    }

    async fn send(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<(), RoomError>>,
        timeout: Duration,
    ) -> Result<(), RoomError> {
        let waited = tokio::time::timeout(timeout, async {
            self.commands
                .send(command)
                .await
                .map_err(|_| RoomError::Unavailable("the room connection ended".into()))?;
            answer.await.map_err(|_| RoomError::Unavailable("the room connection ended".into()))?
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(RoomError::Unavailable(format!(
                "room {} did not acknowledge within {:.0} s",
                self.room,
                timeout.as_secs_f64()
            )))
        })
    }
}

/// The task behind one [`DurableRoom`]: connects, resyncs and reconnects until the room is
/// dropped.
struct Connection {
    url: String,
    room: String,
    tokens: Arc<dyn Tokens>,
    replica: Arc<Mutex<Doc>>,
    commands: mpsc::Receiver<Command>,
    /// Commands that arrived while no connection was open, sent first on the next one.
    stashed: VecDeque<Command>,
    /// Writes sent on a connection that ended before acknowledging them.
    unconfirmed: Vec<Ack>,
    /// Set when the server refused this worker for good (401/403, or permission denied).
    refused: Option<String>,
}

/// How one connection ended.
enum Ended {
    /// The room was dropped: nothing more to do.
    Dropped,
    /// The connection failed or was closed; try again.
    Lost(String),
}

impl Connection {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(reason) = self.refused.clone() {
                self.refuse_all(&reason).await;
                return;
            }
            match self.connect().await {
                Ok(socket) => {
                    backoff = Duration::from_millis(100);
                    match self.session(socket).await {
                        Ended::Dropped => return,
                        Ended::Lost(reason) => {
                            tracing::info!(room = %self.room, %reason, "lost the room connection; reconnecting");
                        }
                    }
                }
                Err(ConnectError::Refused(reason)) => {
                    tracing::error!(room = %self.room, %reason, "the server refused the worker");
                    self.refused = Some(reason);
                    continue;
                }
                Err(ConnectError::Retry(reason)) => {
                    tracing::warn!(room = %self.room, %reason, "could not reach the room; retrying");
                }
            }
            // Wait before the next attempt, keeping what arrives meanwhile (up to the queue's
            // size; beyond it writers wait); a dropped room ends the wait.
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    command = self.commands.recv(), if self.stashed.len() < WRITE_QUEUE => match command {
                        Some(command) => self.stashed.push_back(command),
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Answers everything with the refusal until the room is dropped.
    async fn refuse_all(&mut self, reason: &str) {
        for done in self.unconfirmed.drain(..) {
            let _ = done.send(Err(RoomError::Refused(reason.to_owned())));
        }
        for command in std::mem::take(&mut self.stashed) {
            let (Command::Write { done, .. } | Command::Sync { done }) = command;
            let _ = done.send(Err(RoomError::Refused(reason.to_owned())));
        }
        while let Some(command) = self.commands.recv().await {
            let (Command::Write { done, .. } | Command::Sync { done }) = command;
            let _ = done.send(Err(RoomError::Refused(reason.to_owned())));
        }
    }

    async fn connect(&self) -> Result<Socket, ConnectError> {
        let url = match self.tokens.token_for(&self.room).map_err(|e| ConnectError::Refused(e.to_string()))? {
            Some(token) => format!("{}?token={token}", self.url),
            None => self.url.clone(),
        };
        socket::open_within(&url, Some(MAX_SERVER_FRAME), CONNECT_TIMEOUT).await
    }

    async fn session(&mut self, socket: Socket) -> Ended {
        let (mut sink, mut stream) = socket.split();
        // Replies to our step 1s, in the order they were sent, each with the writes it
        // acknowledges. The first (the handshake's) acknowledges nothing: the server computes it
        // before it sees the step 2 that carries our unacknowledged writes.
        let mut barriers: VecDeque<Vec<Ack>> = VecDeque::new();
        let state_vector = lock(&self.replica).transact().state_vector();
        if let Err(error) = sink.send(WsMessage::binary(encode_sync_step1(&state_vector))).await {
            return self.lose(barriers, format!("sending sync step 1: {error}"));
        }
        barriers.push_back(Vec::new());
        // Writes made while disconnected are in the replica already: the step 2 that answers
        // the server's step 1 carries them, like every unacknowledged write.
        for command in self.stashed.drain(..) {
            let (Command::Write { done, .. } | Command::Sync { done }) = command;
            self.unconfirmed.push(done);
        }
        let limits = FrameLimits { max_frame_bytes: MAX_SERVER_FRAME, max_messages_per_frame: 64 };
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(first) = command else {
                        let _ = sink.send(WsMessage::Close(None)).await;
                        return Ended::Dropped;
                    };
                    // Everything queued goes out together, acknowledged by one step 1.
                    let mut batch = vec![first];
                    while batch.len() < WRITE_QUEUE {
                        match self.commands.try_recv() {
                            Ok(command) => batch.push(command),
                            Err(_) => break,
                        }
                    }
                    let mut waiting = Vec::with_capacity(batch.len());
                    for command in batch {
                        match command {
                            Command::Write { update, done } => {
                                waiting.push(done);
                                if let Err(error) = sink.feed(WsMessage::binary(encode_update(&update))).await {
                                    barriers.push_back(waiting);
                                    return self.lose(barriers, format!("sending an update: {error}"));
                                }
                            }
                            Command::Sync { done } => waiting.push(done),
                        }
                    }
                    let state_vector = lock(&self.replica).transact().state_vector();
                    barriers.push_back(waiting);
                    if let Err(error) = sink.send(WsMessage::binary(encode_sync_step1(&state_vector))).await {
                        return self.lose(barriers, format!("sending sync step 1: {error}"));
                    }
                }
                message = stream.next() => {
                    let frame = match message {
                        Some(Ok(WsMessage::Binary(frame))) => frame,
                        Some(Ok(WsMessage::Close(close))) => {
                            let (code, reason) = close.map(close_parts).unwrap_or((NO_STATUS, String::new()));
                            if refused_our_bytes(code) {
                                // The server refused bytes we sent. Sending them again would be
                                // refused again: start over from the room's own state.
                                tracing::error!(room = %self.room, code, %reason, "the room refused the worker's update; resyncing from scratch");
                                *lock(&self.replica) = Doc::new();
                                let error = RoomError::Refused(format!("closed with {code}: {reason}"));
                                for done in barriers.drain(..).flatten().chain(self.unconfirmed.drain(..)) {
                                    let _ = done.send(Err(RoomError::Refused(error.to_string())));
                                }
                            }
                            return self.lose(barriers, format!("closed with {code} {reason}"));
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return self.lose(barriers, error.to_string()),
                        None => return self.lose(barriers, "the server closed the connection".into()),
                    };
                    let messages = match decode_frame(&frame, &limits) {
                        Ok(messages) => messages,
                        Err(error) => return self.lose(barriers, format!("undecodable frame from the server: {error}")),
                    };
                    for message in messages {
                        match message {
                            Message::Sync(SyncMessage::SyncStep1(state_vector)) => {
                                let diff = lock(&self.replica).transact().encode_state_as_update_v1(&state_vector);
                                let state_vector: StateVector = lock(&self.replica).transact().state_vector();
                                let sent = async {
                                    sink.feed(WsMessage::binary(encode_sync_step2(&diff))).await?;
                                    sink.send(WsMessage::binary(encode_sync_step1(&state_vector))).await
                                };
                                if let Err(error) = sent.await {
                                    return self.lose(barriers, format!("answering sync step 1: {error}"));
                                }
                                barriers.push_back(std::mem::take(&mut self.unconfirmed));
                            }
                            Message::Sync(SyncMessage::SyncStep2(update)) => {
                                self.apply(&update);
                                if let Some(acknowledged) = barriers.pop_front() {
                                    for done in acknowledged {
                                        let _ = done.send(Ok(()));
                                    }
                                }
                            }
                            Message::Sync(SyncMessage::Update(update)) => self.apply(&update),
                            Message::Auth(Some(reason)) => {
                                self.refused = Some(format!("permission denied: {reason}"));
                                self.unconfirmed.extend(barriers.drain(..).flatten());
                                return Ended::Lost(format!("permission denied: {reason}"));
                            }
                            // Presence, presence queries and anything else: not ours to answer.
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Applies what the room sent; an update that does not apply is ignored (it came from the
    /// server, which validated it, and the next resync repairs the replica).
    fn apply(&self, update: &[u8]) {
        if yrs::Update::decode_v1(update).is_err() {
            tracing::warn!(room = %self.room, "ignoring an undecodable update from the server");
            return;
        }
        if let Err(error) = apply_client_update(&lock(&self.replica), update) {
            tracing::warn!(room = %self.room, %error, "ignoring an update from the server that does not apply");
        }
    }

    /// The connection ended: writes it did not acknowledge wait for the next one.
    fn lose(&mut self, barriers: VecDeque<Vec<Ack>>, reason: String) -> Ended {
        self.unconfirmed.extend(barriers.into_iter().flatten());
        Ended::Lost(reason)
    }
}
