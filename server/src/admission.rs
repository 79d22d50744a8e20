//! Admission: whether a client may join a room, and on what terms. Both WebSocket endpoints
//! admit through here, with the same checks in the same order and the same limits:
//!
//! 1. [`authorize`]: the room name (`room_name.rs`), the token (`auth::Auth::authenticate`)
//!    and the caller's permission for the room (read-only or read-write);
//! 2. the socket's slot: [`connection_permit`] (`DOJO_MAX_CONNECTIONS`), or for a Hocuspocus
//!    socket without a token yet, [`preauth_slot`] (the pre-authentication pool, per address);
//! 3. [`Authorized::admit`]: one of the user's connection slots, then the room, opened if need
//!    be within the user's share of rooms (`room_openers.rs`);
//! 4. [`join`]: the peer joins the room.
//!
//! `/rooms` (y-websocket) admits before the upgrade, so a refused client costs no socket; a
//! `/collab` (Hocuspocus) socket admits each document when its token message arrives, and a
//! refusal then closes nothing but that document. [`configure_upgrade`] gives both sockets the
//! same frame, message and buffer limits. Refusals are one typed [`Refusal`], counted in
//! `dojo_rejected_total` by reason and answered as HTTP (`/rooms`) or as the text of a
//! PermissionDenied message (`/collab`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::OnFailedUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dojo_auth::Permission;
use dojo_ids::UserId;
use dojo_sync_protocol::update::WriteRules;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::api::ApiError;
use crate::caller::{AuthError, Caller};
use crate::close::{CloseReason, Disconnect};
use crate::config::Limits;
use crate::error_code::ErrorCode;
use crate::metrics::{Metrics, ReasonLabel};
use crate::preauth::{PoolFull, PreauthSlot};
use crate::rate::UserLimiter;
use crate::room::{Peer, RoomCommand, RoomHandle};
use crate::room_name::{RoomName, RoomNameError};
use crate::room_registry::{OpenRefused, Rooms};
use crate::state::AppState;
use crate::user_connections::{TooManyConnections, UserConnectionSlot};

/// Bytes tungstenite may buffer for writing beyond one frame; past it a send fails rather than
/// growing memory (its default is unbounded).
const WRITE_BUFFER_SLACK: usize = 1024 * 1024;

/// tungstenite's read buffer per connection (its default is 128 KiB, allocated up front and kept
/// for the connection's life): most frames are tens of bytes, and bigger ones are still read
/// whole (tungstenite reserves a frame's length once it has read its header), at most this many
/// bytes per read. With the default an idle connection cost ~135 KiB, with 4 KiB ~7.3 KiB
/// (BENCHMARKS.md, idle memory). 512 B still holds a typical edit's frame (tens to hundreds of
/// bytes) in one read.
pub const READ_BUFFER_BYTES: usize = 512;

/// Bytes tungstenite gathers before writing to the socket without a flush. Our writer flushes
/// after each batch of frames, so this only caps how much one batch holds before it is written.
pub const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Why a client may not join (or, for a socket, connect).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("{0}")]
    BadRoomName(#[from] RoomNameError),
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("{0}")]
    Forbidden(AuthError),
    #[error("server shutting down")]
    ShuttingDown,
    /// Every `DOJO_MAX_CONNECTIONS` slot is taken.
    #[error("too many connections")]
    TooManyConnections,
    #[error("too many unauthenticated connections")]
    PreauthPoolFull,
    #[error("too many unauthenticated connections from this address")]
    PreauthShareFull,
    #[error("{0}")]
    UserConnections(#[from] TooManyConnections),
    #[error("{0}")]
    Rooms(#[from] OpenRefused),
}

impl Refusal {
    /// The `reason` label of `dojo_rejected_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::BadRoomName(_) => "bad_room_name",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::ShuttingDown => "shutting_down",
            Self::TooManyConnections => "too_many_connections",
            Self::PreauthPoolFull => "too_many_unauthenticated",
            Self::PreauthShareFull => "too_many_unauthenticated_per_ip",
            Self::UserConnections(_) => "too_many_user_connections",
            Self::Rooms(OpenRefused::UserQuota(_)) => "room_quota",
            Self::Rooms(OpenRefused::TooManyRooms(_)) => "too_many_rooms",
        }
    }

    /// Counts the refusal and answers it over HTTP (before an upgrade).
    pub(crate) fn respond(self, metrics: &Metrics) -> Response {
        count(metrics, self.reason());
        self.into_response()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let text = |status: StatusCode, message: String| (status, message).into_response();
        match self {
            Self::Unauthorized(error) | Self::Forbidden(error) => ApiError::from(error).into_response(),
            Self::Rooms(error @ OpenRefused::UserQuota(_)) => ApiError::from(error).into_response(),
            Self::UserConnections(error) => {
                crate::error_body::json_error(ErrorCode::TooManyConnections, error.to_string())
            }
            error @ Self::BadRoomName(_) => text(StatusCode::BAD_REQUEST, error.to_string()),
            error @ Self::PreauthShareFull => text(StatusCode::TOO_MANY_REQUESTS, error.to_string()),
            error @ (Self::ShuttingDown
            | Self::TooManyConnections
            | Self::PreauthPoolFull
            | Self::Rooms(OpenRefused::TooManyRooms(_))) => {
                text(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
        }
    }
}

/// One more refusal in `dojo_rejected_total`.
pub(crate) fn count(metrics: &Metrics, reason: &'static str) {
    metrics.rejected.get_or_create(&ReasonLabel { reason }).inc();
}

/// A caller allowed into a room, before it holds any slot.
pub(crate) struct Authorized {
    pub caller: Caller,
    pub name: RoomName,
    pub permission: Permission,
}

/// The room name, the token's caller and their permission for the room.
pub(crate) async fn authorize(
    state: &AppState,
    room: &str,
    token: Option<&str>,
) -> Result<Authorized, Refusal> {
    let name = RoomName::parse(room)?;
    let caller = authenticate(state, token).await?;
    let permission = state.auth().room_permission(&caller, &name).await.map_err(Refusal::Forbidden)?;
    Ok(Authorized { caller, name, permission })
}

/// The token's caller (anonymous without one, in dev mode only).
pub(crate) async fn authenticate(state: &AppState, token: Option<&str>) -> Result<Caller, Refusal> {
    state.auth().authenticate(token).await.map_err(Refusal::Unauthorized)
}

/// One of the `DOJO_MAX_CONNECTIONS` slots, held for the socket's lifetime.
pub(crate) fn connection_permit(state: &AppState) -> Result<OwnedSemaphorePermit, Refusal> {
    state.try_connection_permit().ok_or(Refusal::TooManyConnections)
}

/// A slot of the pre-authentication pool for a socket that has not authenticated yet, within
/// its address's share (`client` is `public_rate::client_key`).
pub(crate) fn preauth_slot(state: &AppState, client: String) -> Result<PreauthSlot, Refusal> {
    state.preauth().try_slot(client).map_err(|full| match full {
        PoolFull::Server => Refusal::PreauthPoolFull,
        PoolFull::Client => Refusal::PreauthShareFull,
    })
}

/// Refuses new sockets once shutdown has begun.
pub(crate) fn accepting(state: &AppState) -> Result<(), Refusal> {
    if state.shutdown_token().is_cancelled() { Err(Refusal::ShuttingDown) } else { Ok(()) }
}

impl Authorized {
    /// Takes one of the user's connection slots, then the room (opened if need be, within the
    /// user's share of rooms): a user at their limit opens no room.
    pub(crate) fn admit(self, state: &AppState) -> Result<Admitted, Refusal> {
        let user_slot = state.user_connection_slot(&self.caller)?;
        let opener = self.caller.user().map(|user| user.id.as_str());
        let room = state.rooms().get_or_open_for(&self.name, opener)?;
        let expires_at = self
            .caller
            .identity()
            .map(|identity| Instant::now() + Duration::from_secs(identity.seconds_left()));
        let rate = self
            .caller
            .user()
            .map(|user| UserRate { limiter: state.ws_limiter().clone(), user: user.id.clone() });
        // `user.entered` on a signed-in user's first connection to the room, `user.left` when
        // the last one's `Admitted` drops.
        // The executor's service identity (a `dojo-worker` writing a run's states) is not a
        // person entering the room.
        let service =
            crate::executor_maps::is_executor(&self.caller, &state.config().executor.executor_subject);
        // Presence is optional usage data: a user who opted out of it is not reported
        // (docs/data-rights.md).
        let presence = crate::services::data_rights::usage_id(self.caller.user())
            .filter(|_| !service)
            .map(|user| state.webhooks().user_connected(&self.name, user));
        let usage_logged = crate::services::data_rights::usage_id(self.caller.user()).is_some();
        Ok(Admitted {
            _presence: presence,
            rules: crate::executor_maps::write_rules(&self.caller, state.config()),
            name: self.name,
            permission: self.permission,
            room,
            _user_slot: user_slot,
            expires_at,
            rate,
            usage_logged,
        })
    }
}

/// A client admitted to a room: what its connection holds and obeys.
pub(crate) struct Admitted {
    pub name: RoomName,
    pub permission: Permission,
    pub room: RoomHandle,
    /// Held, never read, for the connection's lifetime: the user's connection limit (none
    /// when anonymous).
    pub _user_slot: Option<UserConnectionSlot>,
    /// When the token expires; the connection ends then (4401).
    pub expires_at: Option<Instant>,
    /// The signed-in user's frame budget, shared by all their connections (none when anonymous).
    pub rate: Option<UserRate>,
    /// What its updates may change besides the canvas (see `executor_maps.rs`).
    pub rules: WriteRules<'static>,
    /// Held, never read: the user's presence in the room for `user.entered` / `user.left`.
    pub _presence: Option<crate::webhooks::PresenceGuard>,
    /// Whether logs may name the user (false when they opted out of usage collection).
    pub usage_logged: bool,
}

impl Admitted {
    /// False for read-only connections: their document changes are refused by the room.
    pub(crate) fn can_write(&self) -> bool {
        self.permission.can_write()
    }

    /// The user as usage logs may name them: their id, or `opted-out`, or empty when anonymous.
    pub(crate) fn logged_user(&self) -> &str {
        if self.usage_logged || self.rate.is_none() { self.user() } else { "opted-out" }
    }

    /// The signed-in user's id, empty when anonymous.
    pub(crate) fn user(&self) -> &str {
        self.rate.as_ref().map_or("", |rate| rate.user.as_str())
    }
}

/// A per-user token bucket on incoming frames.
pub(crate) struct UserRate {
    pub limiter: Arc<UserLimiter>,
    pub user: UserId,
}

impl UserRate {
    /// Over the user's budget, frames are read later rather than dropped: TCP back-pressure
    /// then slows the client down, and nothing it sent is lost.
    pub(crate) async fn throttle(&self, metrics: &Metrics, disconnect: &Disconnect) {
        if let Err(not_until) = self.limiter.check_key(&self.user) {
            metrics.rate_limited.get_or_create(&ReasonLabel { reason: "websocket" }).inc();
            let wait = not_until.wait_time_from(governor::clock::Clock::now(self.limiter.clock()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = disconnect.triggered() => {}
            }
        }
    }
}

/// The socket limits both endpoints upgrade with: frame and message size, and tungstenite's
/// buffers (its defaults are 64 MiB messages and an unbounded write buffer).
pub(crate) fn configure_upgrade(
    upgrade: WebSocketUpgrade,
    limits: &Limits,
) -> WebSocketUpgrade<impl OnFailedUpgrade> {
    upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(limits.max_frame_bytes.saturating_add(WRITE_BUFFER_SLACK))
        .on_failed_upgrade(|error| tracing::debug!(%error, "websocket upgrade failed"))
}

/// Joins `peer` to the admitted room. A room that stopped between admission and join (it
/// failed to store, say) is looked up again: the registry then starts a fresh one.
pub(crate) async fn join(
    rooms: &Rooms,
    name: &RoomName,
    mut room: RoomHandle,
    mut peer: Peer,
) -> Result<RoomHandle, CloseReason> {
    for _ in 0..3 {
        match room.send(RoomCommand::Join(Box::new(peer))).await {
            Ok(()) => return Ok(room),
            Err(RoomCommand::Join(returned)) => peer = *returned,
            Err(_) => break, // only a Join was sent
        }
        room = rooms.get_or_open(name).map_err(|error| CloseReason::Internal(error.to_string()))?;
    }
    Err(match rooms.quarantined(name) {
        Some(_) => CloseReason::Quarantined,
        None => CloseReason::Internal("room unavailable".into()),
    })
}
