//! An editing client: a `yrs` document and awareness kept in sync with a room, as y-websocket's
//! provider (or Hocuspocus's) keeps them; the load generator's and the tests' client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dojo_sync_protocol::codec::{encode_message, encode_sync_step1, encode_update};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{Awareness, AwarenessUpdate, Message};
use yrs::{ClientID, Doc, ReadTxn, Transact, TransactionMut};

use crate::deferred::{CatchUp, SharedDeferred, lock_deferred};
use crate::framing::Framing;
use crate::hocuspocus;
use crate::peer::{ClientStatus, Peer, UpdateTap, read_loop, write_loop};
use crate::socket;

/// When a client applies the document updates it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Applying {
    /// Each update is applied to the document as it arrives, as an editor does.
    #[default]
    OnArrival,
    /// Updates are kept in arrival order and applied by [`SyncClient::catch_up`] (or once more
    /// than [`crate::MAX_DEFERRED_BYTES`] are waiting). For the load generator: it measures the server,
    /// so its thousands of clients should not spend the shared cores integrating every update
    /// while the server is being timed. Only for clients whose own edits do not depend on what
    /// others wrote (each edits its own node and its own stamp key): their documents may lag.
    /// The initial sync (step 2) is always applied at once.
    Deferred,
}

/// How a client handles what it receives, beyond speaking the protocol.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub applying: Applying,
    /// Sees every update received after the initial sync as it arrives (the load generator
    /// reads its latency stamps there).
    pub tap: Option<Arc<dyn UpdateTap>>,
    /// Send every awareness change the client applies back to the server, as y-websocket's
    /// provider does (its awareness `update` handler does not look at where a change came
    /// from): a stock client repeats the presence of every peer it hears of.
    pub echo_awareness: bool,
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
        let socket = socket::open(url, None).await?;
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
            tap: options.tap,
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
