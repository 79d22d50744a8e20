//! One WebSocket connection: a reader that decodes frames and hands them to the room, and a
//! writer that drains the connection's outbox, sends keep-alive pings and, at the end, the close
//! frame. Both stop when the shared [`Disconnect`] fires, whoever fires it: the room (slow
//! client, bad update), the reader (bad frame, client gone, idle) or server shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::Bytes;
use dojo_sync_protocol::codec::{DecodeError, FrameLimits, decode_frame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yrs::sync::Message;

use crate::close::{CloseReason, Disconnect};
use crate::config::Limits;
use crate::metrics::{MessageKind, Metrics, ReasonLabel};
use crate::outbox::{self, OutboxReceiver, Outgoing};
use crate::presence_limits::{PresenceLimits, check_states};
use crate::room::{ConnId, Peer, PeerProtocol, RoomCommand, RoomHandle};
use crate::room_name::RoomName;
use crate::rooms::Rooms;

/// How long a close frame may take to go out before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Connection {
    pub id: ConnId,
    pub room: RoomHandle,
    pub room_name: RoomName,
    pub rooms: Arc<Rooms>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    /// Held for the connection's lifetime: the server-wide connection limit.
    pub permit: OwnedSemaphorePermit,
    /// Held for the connection's lifetime: the user's connection limit (none when anonymous).
    pub user_slot: Option<crate::user_connections::UserConnectionSlot>,
    /// The server-wide budget for bytes waiting to be sent.
    pub outbound: Arc<crate::outbound_budget::OutboundBudget>,
    /// False for read-only connections: their document changes are refused by the room.
    pub can_write: bool,
    /// What its updates may change besides the canvas (see `executor_maps.rs`).
    pub rules: dojo_sync_protocol::update::WriteRules<'static>,
    /// When the connection's token expires; the connection ends then (4401).
    pub expires_at: Option<Instant>,
    /// The signed-in user's frame budget, shared by their connections.
    pub rate: Option<UserRate>,
}

/// A per-user token bucket on incoming frames.
pub struct UserRate {
    pub limiter: Arc<crate::rate::UserLimiter>,
    pub user: String,
}

impl Connection {
    pub async fn run(mut self, socket: WebSocket) {
        self.metrics.connections_open.inc();
        let disconnect = Disconnect::default();
        let (outbox, inbox) = outbox::budgeted_channel(
            &self.outbound,
            self.id,
            &disconnect,
            self.limits.outbound_queue_frames,
            self.limits.outbound_queue_bytes,
        );
        let peer = Peer {
            conn: self.id,
            outbox,
            disconnect: disconnect.clone(),
            can_write: self.can_write,
            protocol: PeerProtocol::YWebsocket,
            rules: self.rules,
        };
        self.join(peer).await;
        let (sink, stream) = socket.split();
        tokio::join!(self.read(stream, &disconnect), self.write(sink, inbox, &disconnect));

        // The room may already have removed us (that is why we are closing); telling it again
        // is harmless and covers every other way out.
        let _ = self.room.send(RoomCommand::Leave { conn: self.id }).await;
        let reason = disconnect.reason().cloned().unwrap_or(CloseReason::PeerGone);
        self.metrics.disconnects.get_or_create(&ReasonLabel { reason: reason.label() }).inc();
        self.metrics.connections_open.dec();
        tracing::debug!(code = reason.code(), reason = %reason.text(), "connection closed");
        drop(self.permit);
        drop(self.user_slot);
    }

    /// Joins the room. A room that stopped between lookup and join (it failed to store, say)
    /// is looked up again: the registry then starts a fresh one.
    async fn join(&mut self, mut peer: Peer) {
        for _ in 0..3 {
            match self.room.send(RoomCommand::Join(peer)).await {
                Ok(()) => return,
                Err(RoomCommand::Join(returned)) => peer = returned,
                Err(_) => return, // only a Join was sent
            }
            match self.rooms.get_or_open(&self.room_name) {
                Ok(room) => self.room = room,
                Err(error) => {
                    peer.disconnect.trigger(CloseReason::Internal(error.to_string()));
                    return;
                }
            }
        }
        let reason = match self.rooms.quarantined(&self.room_name) {
            Some(_) => CloseReason::Quarantined,
            None => CloseReason::Internal("room unavailable".into()),
        };
        peer.disconnect.trigger(reason);
    }

    async fn read(&self, mut stream: SplitStream<WebSocket>, disconnect: &Disconnect) {
        let frame_limits =
            FrameLimits { max_frame_bytes: self.limits.max_frame_bytes, ..FrameLimits::default() };
        let idle = self.limits.idle_timeout();
        loop {
            let next = tokio::select! {
                () = disconnect.triggered() => return,
                () = self.shutdown.cancelled() => {
                    disconnect.trigger(CloseReason::ShuttingDown);
                    return;
                }
                () = sleep_until(self.expires_at) => {
                    disconnect.trigger(CloseReason::TokenExpired);
                    return;
                }
                next = tokio::time::timeout(idle, stream.next()) => next,
            };
            let frame = match next {
                Err(_) => Err(CloseReason::IdleTimeout),
                Ok(None) | Ok(Some(Ok(WsMessage::Close(_)))) => Err(CloseReason::PeerGone),
                Ok(Some(Err(error))) => Err(read_error_reason(error)),
                Ok(Some(Ok(WsMessage::Text(_)))) => Err(CloseReason::TextFrame),
                // Pongs to our pings are answered by tungstenite; both only count as liveness.
                Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                Ok(Some(Ok(WsMessage::Binary(frame)))) => Ok(frame),
            };
            if frame.is_ok() {
                self.throttle(disconnect).await;
            }
            let outcome = match frame {
                Ok(frame) => self.forward(&frame, &frame_limits, disconnect).await,
                Err(reason) => Err(reason),
            };
            if let Err(reason) = outcome {
                disconnect.trigger(reason);
                return;
            }
        }
    }

    /// Over its budget, a user's frames are read later rather than dropped: TCP back-pressure
    /// then slows the client down, and nothing it sent is lost.
    async fn throttle(&self, disconnect: &Disconnect) {
        let Some(rate) = &self.rate else { return };
        if let Err(not_until) = rate.limiter.check_key(&rate.user) {
            self.metrics.rate_limited.get_or_create(&ReasonLabel { reason: "websocket" }).inc();
            let wait = not_until.wait_time_from(governor::clock::Clock::now(rate.limiter.clock()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = disconnect.triggered() => {}
            }
        }
    }

    async fn forward(
        &self,
        frame: &Bytes,
        limits: &FrameLimits,
        disconnect: &Disconnect,
    ) -> Result<(), CloseReason> {
        let messages = decode_frame(frame, limits).map_err(|error| {
            tracing::info!(%error, "closing a connection that sent an invalid frame");
            decode_error_reason(error)
        })?;
        let presence = PresenceLimits::from(&*self.limits);
        for message in &messages {
            self.metrics.record_in(MessageKind::of(message), frame.len() / messages.len());
            // Refused here, before it waits in the room's queue; the room checks the
            // connection's total.
            if let Message::Awareness(update) = message {
                check_states(update, &presence).map_err(|error| {
                    self.metrics.presence_refused.inc();
                    tracing::info!(%error, "closing a connection that sent oversized presence");
                    CloseReason::Policy(error.to_string())
                })?;
            }
        }
        // Waits while the room holds its budget of queued bytes: back-pressure, nothing dropped.
        let reserved = tokio::select! {
            reserved = self.room.reserve(frame.len()) => reserved,
            () = disconnect.triggered() => return Ok(()),
        };
        let command = RoomCommand::Messages { conn: self.id, messages, reserved };
        tokio::select! {
            sent = self.room.send(command) => sent.map_err(|_| CloseReason::Internal("room unavailable".into())),
            // Someone else closed us while we waited for the room; the reason is already set.
            () = disconnect.triggered() => Ok(()),
        }
    }

    async fn write(
        &self,
        mut sink: SplitSink<WebSocket, WsMessage>,
        mut inbox: OutboxReceiver,
        disconnect: &Disconnect,
    ) {
        let mut ping = tokio::time::interval(self.limits.ping_interval());
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        // Frames handed to the socket but not flushed yet: they still count against the
        // outbound budgets (tungstenite holds a copy) until the flush returns.
        let mut writing = Vec::new();
        loop {
            writing.clear();
            let message = tokio::select! {
                biased;
                () = disconnect.triggered() => break,
                () = self.shutdown.cancelled() => {
                    disconnect.trigger(CloseReason::ShuttingDown);
                    break;
                }
                frame = inbox.recv() => match frame {
                    Some(frame) => {
                        let message = WsMessage::Binary(frame.frame().clone());
                        writing.push(frame);
                        message
                    }
                    None => {
                        disconnect.trigger(CloseReason::Internal("room closed".into()));
                        break;
                    }
                },
                _ = ping.tick() => WsMessage::Ping(Bytes::new()),
            };
            // A client that stops reading blocks this send; the room notices its full queue and
            // fires `disconnect`, which must win over the stuck send.
            tokio::select! {
                sent = send_batch(&mut sink, message, &mut inbox, &mut writing) => if sent.is_err() {
                    disconnect.trigger(CloseReason::PeerGone);
                    break;
                },
                () = disconnect.triggered() => break,
            }
        }
        // What was queued for this client is freed now, not after the close handshake: a client
        // closed for reading too slowly must give its memory back at once.
        drop(writing);
        drop(inbox);
        let reason = disconnect.reason().cloned().unwrap_or(CloseReason::PeerGone);
        if reason != CloseReason::PeerGone {
            let frame = CloseFrame { code: reason.code(), reason: reason.text().into() };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    }
}

/// Frames sent with one flush at most: enough to coalesce a burst, few enough that a ping or
/// a close is never far behind.
const MAX_FRAMES_PER_FLUSH: usize = 64;

/// Sends `first` and whatever else is already queued, then flushes once: a busy room's burst
/// costs one write to the socket instead of one per frame (per-frame flushes were ~15 % of the
/// server's CPU in the profile in BENCHMARKS.md).
async fn send_batch(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    first: WsMessage,
    inbox: &mut OutboxReceiver,
    writing: &mut Vec<Outgoing>,
) -> Result<(), axum::Error> {
    let more = matches!(first, WsMessage::Binary(_));
    sink.feed(first).await?;
    if more {
        for _ in 1..MAX_FRAMES_PER_FLUSH {
            let Some(frame) = inbox.try_recv() else { break };
            let message = WsMessage::Binary(frame.frame().clone());
            writing.push(frame);
            sink.feed(message).await?;
        }
    }
    sink.flush().await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn decode_error_reason(error: DecodeError) -> CloseReason {
    match error {
        DecodeError::TooLarge { .. } => CloseReason::TooBig,
        DecodeError::BadAwarenessJson { .. } => CloseReason::InvalidPayload(error.to_string()),
        other => CloseReason::Protocol(other.to_string()),
    }
}

pub(crate) fn read_error_reason(error: axum::Error) -> CloseReason {
    let too_big = error
        .into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    if too_big { CloseReason::TooBig } else { CloseReason::PeerGone }
}
