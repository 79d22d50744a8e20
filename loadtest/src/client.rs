//! A y-websocket-compatible client: a `yrs` document and awareness kept in sync with a room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::bench::StampSink;
use crate::hocuspocus::{self, HocusMessage, Incoming};
use dojo_sync_protocol::codec::{
    FrameLimits, decode_frame, encode_message, encode_sync_step1, encode_update,
};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Doc, ReadTxn, Transact, TransactionMut, Update};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The wire protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// y-websocket: one room per WebSocket URL, `type • payload` frames (Dojo, `@y/websocket-server`).
    #[default]
    YWebsocket,
    /// Hocuspocus: every frame prefixed with the document name, an auth message first.
    Hocuspocus,
}

/// How this client's frames are framed on the wire.
#[derive(Debug, Clone)]
pub enum Framing {
    YWebsocket,
    /// Hocuspocus, for one document on this socket.
    Hocuspocus {
        document: Arc<str>,
    },
}

impl Framing {
    pub fn new(protocol: Protocol, document: &str) -> Self {
        match protocol {
            Protocol::YWebsocket => Self::YWebsocket,
            Protocol::Hocuspocus => Self::Hocuspocus { document: document.into() },
        }
    }

    /// Wraps a y-websocket frame (`type • payload`) for the wire.
    fn wrap(&self, inner: Vec<u8>) -> Vec<u8> {
        match self {
            Self::YWebsocket => inner,
            Self::Hocuspocus { document } => hocuspocus::encode_frame(document, &inner),
        }
    }
}

/// When a client applies the document updates it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Applying {
    /// Each update is applied to the document as it arrives, as an editor does.
    #[default]
    OnArrival,
    /// Updates are kept in arrival order and applied by [`SyncClient::catch_up`] (or once more
    /// than [`MAX_DEFERRED_BYTES`] are waiting). For the load generator: it measures the server,
    /// so its thousands of clients should not spend the shared cores integrating every update
    /// while the server is being timed. Only for clients whose own edits do not depend on what
    /// others wrote (each edits its own node and its own stamp key): their documents may lag.
    /// The initial sync (step 2) is always applied at once.
    Deferred,
}

/// Most bytes of updates a deferring client keeps before it applies them anyway.
pub const MAX_DEFERRED_BYTES: usize = 4 * 1024 * 1024;

/// How a client handles what it receives, beyond speaking the protocol.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub applying: Applying,
    /// Where the timestamps of other clients' edits are recorded as each update arrives.
    pub stamps: Option<StampSink>,
    /// Send every awareness change the client applies back to the server, as y-websocket's
    /// provider does (its awareness `update` handler does not look at where a change came
    /// from): a stock client repeats the presence of every peer it hears of.
    pub echo_awareness: bool,
}

/// A client's deferred updates, taken out to be applied ([`SyncClient::take_deferred`]).
pub struct CatchUp {
    doc: Doc,
    updates: Vec<Vec<u8>>,
}

impl CatchUp {
    /// Applies them (blocking: the document's lock is held meanwhile). Updates that do not apply
    /// are logged: the server sent something invalid.
    pub fn apply(self) {
        let failed = apply_all(&self.doc, self.updates);
        if failed > 0 {
            tracing::warn!(failed, "received updates that do not apply");
        }
    }
}

/// Updates received but not applied yet ([`Applying::Deferred`]).
#[derive(Debug, Default)]
struct Deferred {
    updates: Vec<Vec<u8>>,
    bytes: usize,
}

type SharedDeferred = Arc<Mutex<Deferred>>;

fn lock_deferred(deferred: &SharedDeferred) -> MutexGuard<'_, Deferred> {
    deferred.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Applies `updates` to `doc` in one transaction; returns how many did not apply.
fn apply_all(doc: &Doc, updates: Vec<Vec<u8>>) -> u64 {
    if updates.is_empty() {
        return 0;
    }
    let mut failed = 0;
    let mut txn = doc.transact_mut();
    for update in updates {
        let applied =
            Update::decode_v1(&update).map_err(|_| ()).and_then(|u| txn.apply_update(u).map_err(|_| ()));
        failed += u64::from(applied.is_err());
    }
    failed
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the connection is closed")]
    Closed,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// What the client has seen so far; waiters are woken on every change.
#[derive(Debug, Clone, Default)]
pub struct ClientStatus {
    /// Received the server's sync step 2: the document holds everything the server had.
    pub synced: bool,
    /// Frames received.
    pub frames: u64,
    /// The server's close frame, if it sent one, and whether the socket has ended.
    pub close: Option<(u16, String)>,
    pub ended: bool,
    /// Frames the client could not decode or apply (the server sent something invalid).
    pub bad_frames: u64,
    /// Hocuspocus only: the server refused the document (permission denied), with its reason.
    pub denied: Option<String>,
}

pub struct SyncClient {
    framing: Framing,
    doc: Doc,
    awareness: Arc<Mutex<Awareness>>,
    outgoing: mpsc::Sender<WsMessage>,
    status: watch::Receiver<ClientStatus>,
    deferred: SharedDeferred,
    tasks: Vec<JoinHandle<()>>,
}

impl SyncClient {
    /// Connects to `url` (e.g. `ws://127.0.0.1:8787/rooms/demo`), sends sync step 1 and starts
    /// answering the server the way y-websocket's provider does.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with_doc(url, Doc::new()).await
    }

    /// Like [`SyncClient::connect`], with an existing document (offline edits, reconnects).
    pub async fn connect_with_doc(url: &str, doc: Doc) -> Result<Self, ClientError> {
        Self::connect_framed(url, doc, Framing::YWebsocket).await
    }

    /// Connects with the given framing. With Hocuspocus framing `url` is the server's endpoint
    /// (the document is named in every frame); the auth message (an empty token) goes first.
    pub async fn connect_framed(url: &str, doc: Doc, framing: Framing) -> Result<Self, ClientError> {
        Self::connect_with(url, doc, framing, ClientOptions::default()).await
    }

    /// Connects with the given framing and options (the load generator's clients).
    pub async fn connect_with(
        url: &str,
        doc: Doc,
        framing: Framing,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        // Nagle's algorithm off, as browsers have it: a small update is sent at once instead of
        // waiting for the previous one's ACK (up to 40 ms with delayed ACKs), which would show
        // up as latency that no real client sees.
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
        let (sink, stream) = socket.split();
        let (outgoing, outgoing_rx) = mpsc::channel::<WsMessage>(1024);
        let (status_tx, status) = watch::channel(ClientStatus::default());
        let awareness = Arc::new(Mutex::new(Awareness::new(doc.clone())));
        let deferred = SharedDeferred::default();

        let writer = tokio::spawn(write_loop(sink, outgoing_rx));
        let peer = Peer {
            doc: doc.clone(),
            awareness: awareness.clone(),
            framing: framing.clone(),
            deferred: (options.applying == Applying::Deferred).then(|| deferred.clone()),
            stamps: options.stamps,
            echo_awareness: options.echo_awareness,
        };
        let reader = tokio::spawn(read_loop(stream, peer, outgoing.clone(), status_tx));
        let client =
            Self { framing, doc, awareness, outgoing, status, deferred, tasks: vec![writer, reader] };

        if let Framing::Hocuspocus { document } = &client.framing {
            // As HocuspocusProvider.onOpen does: the token first, then sync step 1.
            client.send_raw(hocuspocus::encode_auth(document, "")).await?;
        }
        // As y-websocket's provider does: our step 1 first; the server answers with step 2.
        let step1 = encode_sync_step1(&client.doc.transact().state_vector());
        client.send_message(step1).await?;
        Ok(client)
    }

    /// The document. A client that defers updates may not hold all it received: call
    /// [`SyncClient::catch_up`] first.
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Applies the updates received but not applied yet ([`Applying::Deferred`]).
    pub fn catch_up(&self) {
        self.take_deferred().apply();
    }

    /// The updates received but not applied yet, to apply elsewhere (on a blocking thread).
    pub fn take_deferred(&self) -> CatchUp {
        let updates = std::mem::take(&mut *lock_deferred(&self.deferred)).updates;
        CatchUp { doc: self.doc.clone(), updates }
    }

    pub fn client_id(&self) -> ClientID {
        self.doc.client_id()
    }

    pub fn status(&self) -> ClientStatus {
        self.status.borrow().clone()
    }

    /// Runs `f` in a transaction and sends what it changed to the server.
    pub async fn edit<R>(&self, f: impl FnOnce(&mut TransactionMut) -> R) -> Result<R, ClientError> {
        let (result, update) = {
            let mut txn = self.doc.transact_mut();
            let result = f(&mut txn);
            (result, txn.encode_update_v1())
        };
        self.send_message(encode_update(&update)).await?;
        Ok(result)
    }

    /// Sets this client's presence (a JSON object) and announces it.
    pub async fn set_presence(&self, state: &serde_json::Value) -> Result<(), ClientError> {
        let frame = {
            let mut awareness = self.awareness();
            awareness.set_local_state_raw(state.to_string());
            let update =
                awareness.update_with_clients([self.doc.client_id()]).map_err(|_| ClientError::Closed)?;
            encode_message(&Message::Awareness(update))
        };
        self.send_message(frame).await
    }

    /// Everyone's presence as this client sees it, by client id.
    pub fn presence(&self) -> Vec<(ClientID, serde_json::Value)> {
        let awareness = self.awareness();
        let mut states: Vec<_> = awareness
            .iter()
            .filter_map(|(id, state)| Some((id, serde_json::from_str(state.data.as_deref()?).ok()?)))
            .collect();
        states.sort_by_key(|(id, _)| id.get());
        states
    }

    /// Everyone's live presence as `(client id, clock, last renewed)`, where "last renewed" is
    /// when this client last accepted a newer clock for it, in milliseconds since the Unix
    /// epoch: y-protocols' `meta`, by which stock clients drop a peer not renewed for 30 s.
    pub fn presence_meta(&self) -> Vec<(ClientID, u32, u64)> {
        let awareness = self.awareness();
        let mut states: Vec<_> = awareness
            .iter()
            .filter(|(_, state)| state.data.is_some())
            .map(|(id, state)| (id, state.clock, state.last_updated))
            .collect();
        states.sort_by_key(|(id, ..)| id.get());
        states
    }

    /// Drops the peers not renewed for `timeout` and tells the server, at each one's clock, as
    /// y-protocols' periodic check does (removed for timing out, which y-websocket's provider
    /// sends like any other awareness change). Returns the peers dropped.
    pub async fn time_out_presence(&self, timeout: Duration) -> Result<Vec<ClientID>, ClientError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let timeout = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let own = self.doc.client_id();
        let outdated: HashMap<ClientID, AwarenessUpdateEntry> = self
            .presence_meta()
            .into_iter()
            .filter(|(id, _, renewed)| *id != own && now.saturating_sub(*renewed) >= timeout)
            .map(|(id, clock, _)| (id, AwarenessUpdateEntry { clock, json: "null".into() }))
            .collect();
        if outdated.is_empty() {
            return Ok(Vec::new());
        }
        let dropped: Vec<ClientID> = outdated.keys().copied().collect();
        // The same clock with a null state: removed here, and wherever that clock is current.
        let removal = AwarenessUpdate { clients: outdated };
        let _ = self.awareness().apply_update(removal.clone());
        self.send_message(encode_message(&Message::Awareness(removal))).await?;
        Ok(dropped)
    }

    /// Sends one y-websocket message (`type • payload`), framed for this client's protocol.
    pub async fn send_message(&self, frame: Vec<u8>) -> Result<(), ClientError> {
        self.send_raw(self.framing.wrap(frame)).await
    }

    /// Sends raw bytes as one binary frame (for tests of malformed input).
    pub async fn send_raw(&self, frame: Vec<u8>) -> Result<(), ClientError> {
        self.outgoing.send(WsMessage::Binary(frame.into())).await.map_err(|_| ClientError::Closed)
    }

    /// Sends a raw WebSocket message of any kind (text frames, say).
    pub async fn send_ws(&self, message: WsMessage) -> Result<(), ClientError> {
        self.outgoing.send(message).await.map_err(|_| ClientError::Closed)
    }

    /// Waits until `predicate` holds for the status, at most `timeout`.
    pub async fn wait_for(
        &self,
        what: &'static str,
        timeout: Duration,
        mut predicate: impl FnMut(&ClientStatus) -> bool,
    ) -> Result<ClientStatus, ClientError> {
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if predicate(&status.borrow_and_update()) {
                    return Ok(status.borrow().clone());
                }
                if status.changed().await.is_err() {
                    // The reader finished; the final status is all there will ever be.
                    let last = status.borrow().clone();
                    return if predicate(&last) { Ok(last) } else { Err(ClientError::Closed) };
                }
            }
        });
        waited.await.map_err(|_| ClientError::Timeout(what))?
    }

    /// Waits until the client has received the server's sync step 2.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), ClientError> {
        self.wait_for("sync step 2", timeout, |s| s.synced).await.map(|_| ())
    }

    /// Waits until `predicate` holds for the document (checked after every received frame).
    pub async fn wait_doc(
        &self,
        what: &'static str,
        timeout: Duration,
        mut predicate: impl FnMut(&Doc) -> bool,
    ) -> Result<(), ClientError> {
        let doc = self.doc.clone();
        self.wait_for(what, timeout, move |_| predicate(&doc)).await.map(|_| ())
    }

    /// Waits until the server closes the connection; returns its close code and reason.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<Option<(u16, String)>, ClientError> {
        self.wait_for("the connection to close", timeout, |s| s.ended).await.map(|s| s.close)
    }

    /// Closes politely, with a close frame.
    pub async fn close(self) {
        let _ = self.outgoing.send(WsMessage::Close(None)).await;
        let _ = self.wait_closed(Duration::from_secs(5)).await;
        self.abort();
    }

    /// Drops the TCP connection without a close frame, as a crashed browser tab would.
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    fn awareness(&self) -> MutexGuard<'_, Awareness> {
        // A poisoned lock only means a test thread panicked mid-update; the state is still usable.
        self.awareness.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for SyncClient {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn write_loop(mut sink: SplitSink<Socket, WsMessage>, mut outgoing: mpsc::Receiver<WsMessage>) {
    while let Some(message) = outgoing.recv().await {
        let closing = matches!(message, WsMessage::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
}

/// What the reader needs to answer the server.
struct Peer {
    doc: Doc,
    awareness: Arc<Mutex<Awareness>>,
    framing: Framing,
    /// Where updates wait to be applied, when the client defers them.
    deferred: Option<SharedDeferred>,
    stamps: Option<StampSink>,
    echo_awareness: bool,
}

impl Peer {
    /// An update received after the initial sync: timed, then applied or kept for later.
    fn receive_update(&self, update: Vec<u8>) -> Result<(), ()> {
        if let Some(stamps) = &self.stamps {
            stamps.record(&update);
        }
        let Some(deferred) = &self.deferred else { return apply_one(&self.doc, &update) };
        let overflow = {
            let mut deferred = lock_deferred(deferred);
            deferred.bytes += update.len();
            deferred.updates.push(update);
            if deferred.bytes > MAX_DEFERRED_BYTES {
                Some(std::mem::take(&mut *deferred).updates)
            } else {
                None
            }
        };
        match overflow.map(|updates| apply_all(&self.doc, updates)) {
            Some(failed) if failed > 0 => Err(()),
            _ => Ok(()),
        }
    }
}

fn apply_one(doc: &Doc, update: &[u8]) -> Result<(), ()> {
    let update = Update::decode_v1(update).map_err(|_| ())?;
    doc.transact_mut().apply_update(update).map_err(|_| ())
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<Socket>,
    peer: Peer,
    outgoing: mpsc::Sender<WsMessage>,
    status: watch::Sender<ClientStatus>,
) {
    while let Some(Ok(message)) = stream.next().await {
        match message {
            WsMessage::Binary(frame) => {
                let outcome = match &peer.framing {
                    Framing::YWebsocket => handle_frame(&frame, &peer),
                    Framing::Hocuspocus { .. } => handle_hocuspocus_frame(&frame, &peer),
                };
                for reply in outcome.replies {
                    let _ = outgoing.send(WsMessage::Binary(reply.into())).await;
                }
                status.send_modify(|s| {
                    s.frames += 1;
                    s.synced |= outcome.synced;
                    s.bad_frames += u64::from(outcome.bad);
                    if outcome.denied.is_some() {
                        s.denied = outcome.denied;
                    }
                });
            }
            WsMessage::Close(frame) => {
                let close = frame.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string()));
                status.send_modify(|s| s.close = close);
            }
            _ => {}
        }
    }
    status.send_modify(|s| s.ended = true);
}

/// What one received frame did.
#[derive(Default)]
struct Outcome {
    /// Frames to send back, ready for the wire.
    replies: Vec<Vec<u8>>,
    synced: bool,
    bad: bool,
    denied: Option<String>,
}

/// A y-websocket frame (possibly several messages); replies come back framed for `peer`.
fn handle_frame(frame: &[u8], peer: &Peer) -> Outcome {
    let limits = FrameLimits { max_frame_bytes: usize::MAX, max_messages_per_frame: usize::MAX };
    let mut outcome = Outcome::default();
    match decode_frame(frame, &limits) {
        Ok(messages) => {
            for message in messages {
                match handle(message, peer) {
                    Ok(Handled::Reply(reply)) => outcome.replies.push(peer.framing.wrap(reply)),
                    Ok(Handled::Synced) => outcome.synced = true,
                    Ok(Handled::Nothing) => {}
                    Err(()) => outcome.bad = true,
                }
            }
        }
        Err(_) => outcome.bad = true,
    }
    outcome
}

fn handle_hocuspocus_frame(frame: &[u8], peer: &Peer) -> Outcome {
    let message = match hocuspocus::decode_frame(frame) {
        Ok(Incoming::Ping) => {
            return Outcome { replies: vec![hocuspocus::encode_pong()], ..Outcome::default() };
        }
        Ok(Incoming::Message { message, .. }) => message,
        Err(_) => return Outcome { bad: true, ..Outcome::default() },
    };
    match message {
        HocusMessage::Sync(inner) | HocusMessage::Awareness(inner) => handle_frame(&inner, peer),
        HocusMessage::PermissionDenied { reason } => Outcome { denied: Some(reason), ..Outcome::default() },
        HocusMessage::TokenRequest => {
            let Framing::Hocuspocus { document } = &peer.framing else { return Outcome::default() };
            Outcome { replies: vec![hocuspocus::encode_auth(document, "")], ..Outcome::default() }
        }
        HocusMessage::QueryAwareness => {
            let awareness = peer.awareness.lock().unwrap_or_else(|p| p.into_inner());
            match awareness.update() {
                Ok(update) => Outcome {
                    replies: vec![peer.framing.wrap(encode_message(&Message::Awareness(update)))],
                    ..Outcome::default()
                },
                Err(_) => Outcome::default(),
            }
        }
        HocusMessage::Authenticated { .. }
        | HocusMessage::Stateless(_)
        | HocusMessage::Close { .. }
        | HocusMessage::SyncStatus { .. }
        | HocusMessage::Other(_) => Outcome::default(),
    }
}

enum Handled {
    Reply(Vec<u8>),
    Synced,
    Nothing,
}

fn handle(message: Message, peer: &Peer) -> Result<Handled, ()> {
    match message {
        Message::Sync(SyncMessage::SyncStep1(sv)) => {
            // Everything deferred came from the server, so it has it; the answer needs only
            // what this document holds.
            let update = peer.doc.transact().encode_state_as_update_v1(&sv);
            Ok(Handled::Reply(dojo_sync_protocol::codec::encode_sync_step2(&update)))
        }
        Message::Sync(SyncMessage::SyncStep2(update)) => {
            apply_one(&peer.doc, &update).map(|()| Handled::Synced)
        }
        Message::Sync(SyncMessage::Update(update)) => peer.receive_update(update).map(|()| Handled::Nothing),
        Message::Awareness(update) => {
            let mut awareness = peer.awareness.lock().unwrap_or_else(|p| p.into_inner());
            let summary = awareness.apply_update_summary(update).map_err(|_| ())?;
            let echo = summary.filter(|_| peer.echo_awareness).map(|s| s.all_changes());
            match echo.and_then(|changed| awareness.update_with_clients(changed).ok()) {
                Some(update) => Ok(Handled::Reply(encode_message(&Message::Awareness(update)))),
                None => Ok(Handled::Nothing),
            }
        }
        Message::AwarenessQuery | Message::Auth(_) | Message::Custom(..) => Ok(Handled::Nothing),
    }
}
