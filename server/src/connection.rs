//! One y-websocket connection: a reader that decodes frames and hands them to the room, and
//! the shared writer (`socket_writer.rs`) that drains the connection's send queue, sends
//! keep-alive pings and, at the end, the close frame. Both stop when the shared [`Disconnect`]
//! fires, whoever fires it: the room (slow client, bad update), the reader (bad frame, client
//! gone, idle) or server shutdown.

use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use dojo_sync_protocol::codec::{DecodeError, FrameLimits, decode_frame};
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use yrs::sync::Message;

use crate::admission::Admitted;
use crate::close::{CloseReason, Disconnect};
use crate::config::Limits;
use crate::metrics::{MessageKind, Metrics, ReasonLabel};
use crate::presence_limits::{PresenceLimits, check_states};
use crate::room::{ConnId, Peer, PeerProtocol, RoomCommand};
use crate::room_registry::Rooms;
use crate::send_queue::{self, SendQueueReceiver};
use crate::socket_reader::{Deadlines, next_frame};
use crate::state::AppState;

pub(crate) struct Connection {
    id: ConnId,
    admitted: Admitted,
    rooms: Arc<Rooms>,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    /// Held for the connection's lifetime: the server-wide connection limit.
    permit: OwnedSemaphorePermit,
    /// The server-wide budget for bytes waiting to be sent.
    outbound: Arc<crate::outbound_budget::OutboundBudget>,
}

impl Connection {
    pub(crate) fn new(
        state: &AppState,
        id: ConnId,
        admitted: Admitted,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            id,
            admitted,
            rooms: state.rooms().clone(),
            limits: state.limits().clone(),
            metrics: state.metrics().clone(),
            shutdown: state.shutdown_token().clone(),
            permit,
            outbound: state.outbound().clone(),
        }
    }

    /// Serves the socket until it closes. Split before the future is built: an async fn keeps
    /// its arguments' space for its whole life, and the unsplit socket is large (BENCHMARKS.md,
    /// idle memory). Boxed: axum's upgrade task keeps the closure that made this future (and so
    /// whatever it captured) beside it for the connection's life.
    pub(crate) fn run(self: Box<Self>, socket: WebSocket) -> impl Future<Output = ()> + Send {
        let (sink, stream) = socket.split();
        self.serve(sink, stream)
    }

    async fn serve(
        mut self: Box<Self>,
        sink: SplitSink<WebSocket, WsMessage>,
        stream: SplitStream<WebSocket>,
    ) {
        self.metrics.connections_open.inc();
        let disconnect = Disconnect::default();
        let (queue, inbox) = send_queue::budgeted_channel(
            &self.outbound,
            self.id,
            &disconnect,
            self.limits.outbound_queue_frames,
            self.limits.outbound_queue_bytes,
        );
        let peer = Peer {
            conn: self.id,
            queue,
            disconnect: disconnect.clone(),
            can_write: self.admitted.can_write(),
            protocol: PeerProtocol::YWebsocket,
            rules: self.admitted.rules,
        };
        let room = self.admitted.room.clone();
        match crate::admission::join(&self.rooms, &self.admitted.name, room, peer).await {
            Ok(room) => self.admitted.room = room,
            Err(reason) => disconnect.trigger(reason),
        }
        let writer = crate::socket_writer::write(
            sink,
            Frames(inbox),
            &disconnect,
            &self.shutdown,
            self.limits.ping_interval(),
        );
        tokio::join!(self.read(stream, &disconnect), writer);

        // The room may already have removed us (that is why we are closing); telling it again
        // is harmless and covers every other way out.
        let _ = self.admitted.room.send(RoomCommand::Leave { conn: self.id }).await;
        let reason = disconnect.reason().cloned().unwrap_or(CloseReason::PeerGone);
        self.metrics.disconnects.get_or_create(&ReasonLabel { reason: reason.label() }).inc();
        self.metrics.connections_open.dec();
        tracing::debug!(code = reason.code(), reason = %reason.text(), "connection closed");
        drop(self.permit);
        drop(self.admitted);
    }

    async fn read(&self, mut stream: SplitStream<WebSocket>, disconnect: &Disconnect) {
        let frame_limits =
            FrameLimits { max_frame_bytes: self.limits.max_frame_bytes, ..FrameLimits::default() };
        let deadlines = Deadlines {
            idle: self.limits.idle_timeout(),
            token_expires: self.admitted.expires_at,
            authenticate_by: None,
        };
        while let Some(frame) = next_frame(&mut stream, disconnect, &self.shutdown, &deadlines).await {
            if let Some(rate) = &self.admitted.rate {
                rate.throttle(&self.metrics, disconnect).await;
            }
            if let Err(reason) = self.forward(&frame, &frame_limits, disconnect).await {
                disconnect.trigger(reason);
                return;
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
            reserved = self.admitted.room.reserve(frame.len()) => reserved,
            () = disconnect.triggered() => return Ok(()),
        };
        let command = RoomCommand::Messages { conn: self.id, messages, reserved };
        tokio::select! {
            sent = self.admitted.room.send(command) => sent.map_err(|_| CloseReason::Internal("room unavailable".into())),
            // Someone else closed us while we waited for the room; the reason is already set.
            () = disconnect.triggered() => Ok(()),
        }
    }
}

/// The writer takes this connection's frames from its one send queue.
struct Frames(SendQueueReceiver);

impl crate::socket_writer::FrameSource for Frames {
    async fn next(&mut self) -> Option<crate::socket_writer::Queued> {
        self.0.recv().await.map(crate::socket_writer::Queued::Counted)
    }

    fn ready(&mut self) -> Option<crate::socket_writer::Queued> {
        self.0.try_recv().map(crate::socket_writer::Queued::Counted)
    }
}

fn decode_error_reason(error: DecodeError) -> CloseReason {
    match error {
        DecodeError::TooLarge { .. } => CloseReason::TooBig,
        DecodeError::BadAwarenessJson { .. } => CloseReason::InvalidPayload(error.to_string()),
        other => CloseReason::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::future_size;

    /// Every connection's task holds this future for its whole life (BENCHMARKS.md, idle
    /// memory): 2,568 bytes when it still held the unsplit socket and three timers; 2,072 after.
    #[test]
    fn a_connection_stays_small() {
        let size = future_size(&super::Connection::serve);
        assert!(size <= 2_304, "a connection's future holds {size} bytes");
    }
}
