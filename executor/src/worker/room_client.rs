//! A room's document reached over the WebSocket protocol, as a collaborator reaches it: the
//! worker's rooms, written through [`dojo_room_client::DurableRoom`] (which explains how a write
//! is acknowledged once stored, and how lost connections resync). Here: the worker's tokens,
//! the server's address and room names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dojo_auth::{Claims, Grants, Minter, Permission};
use dojo_ids::RoomName;
use dojo_room_client::{DurableRoom, RoomError, Tokens};

use super::document::{DocumentError, Edit, RoomDocument, RoomDocuments};

/// How long opening a room and each write may take.
pub use dojo_room_client::DurableSettings as RemoteSettings;

/// How the worker proves who it is to the server.
#[derive(Clone)]
pub enum TokenSource {
    /// Dev mode: the server checks nothing.
    None,
    /// A token minted beforehand (`dojo-server admin mint-token … --grant '*=write'`); it must
    /// outlive the worker, since a connection whose token expires is closed.
    Static(String),
    /// Tokens minted per connection with the server's HS256 secret: each good for one room
    /// only (a grant), for `ttl`.
    Mint { minter: Arc<Minter>, subject: String, ttl: Duration },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::None => f.write_str("None"),
            TokenSource::Static(_) => f.write_str("Static(<redacted>)"),
            TokenSource::Mint { subject, ttl, .. } => {
                f.debug_struct("Mint").field("subject", subject).field("ttl", ttl).finish_non_exhaustive()
            }
        }
    }
}

impl Tokens for TokenSource {
    fn token_for(&self, room: &str) -> Result<Option<String>, RoomError> {
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Static(token) => Ok(Some(token.clone())),
            TokenSource::Mint { minter, subject, ttl } => {
                let mut claims = Claims::new(subject.clone(), ttl.as_secs().max(60));
                claims.name = Some("Dojo worker".into());
                claims.grants = Some(Grants(BTreeMap::from([(room.to_owned(), Permission::Write)])));
                minter
                    .mint(&claims)
                    .map(Some)
                    .map_err(|e| RoomError::Unavailable(format!("minting a token: {e}")))
            }
        }
    }
}

/// Rooms of the `dojo-server` at one address.
pub struct RemoteRooms {
    /// `ws://host:port` or `wss://…`, without a trailing slash.
    base: String,
    tokens: Arc<TokenSource>,
    settings: RemoteSettings,
}

impl RemoteRooms {
    /// `server_url` is the server's HTTP or WebSocket origin (`http://127.0.0.1:8787`).
    pub fn new(
        server_url: &str,
        tokens: TokenSource,
        settings: RemoteSettings,
    ) -> Result<Self, DocumentError> {
        let url = server_url.trim().trim_end_matches('/');
        let base = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            url.to_owned()
        } else {
            return Err(DocumentError::unavailable(format!("{server_url:?} is not an http(s) or ws(s) URL")));
        };
        Ok(Self { base, tokens: Arc::new(tokens), settings })
    }
}

#[async_trait]
impl RoomDocuments for RemoteRooms {
    async fn open(&self, room: &str) -> Result<Arc<dyn RoomDocument>, DocumentError> {
        if RoomName::check(room).is_err() {
            return Err(DocumentError::unavailable(format!("{room:?} is not a room name")));
        }
        let url = room_url(&self.base, room)?;
        let room = DurableRoom::open(url, room, self.tokens.clone(), self.settings.clone()).await?;
        Ok(Arc::new(RemoteRoom(room)))
    }
}

/// `{base}/rooms/{room}` with the name percent-encoded as one path segment: names may hold
/// spaces, `/`, `?`, `#` and any letter, which the server decodes back.
fn room_url(base: &str, room: &str) -> Result<String, DocumentError> {
    let mut url =
        url::Url::parse(base).map_err(|error| DocumentError::unavailable(format!("{base:?}: {error}")))?;
    url.path_segments_mut()
        .map_err(|()| DocumentError::unavailable(format!("{base:?} cannot take a path")))?
        .pop_if_empty()
        .extend(["rooms", room]);
    Ok(url.into())
}

/// One room, open for a run. Dropping it closes the connection.
pub struct RemoteRoom(DurableRoom);

#[async_trait]
impl RoomDocument for RemoteRoom {
    async fn write(&self, edit: Edit<'_>) -> Result<(), DocumentError> {
        self.0.write(|txn| edit(txn).map_err(DocumentError::from)).await
    }
}

#[cfg(test)]
mod room_url_tests {
    use super::room_url;

    #[test]
    fn the_name_is_one_escaped_path_segment() {
        assert_eq!(room_url("ws://h:1", "plain").unwrap(), "ws://h:1/rooms/plain");
        assert_eq!(room_url("ws://h:1/", "plain").unwrap(), "ws://h:1/rooms/plain");
        assert_eq!(
            room_url("wss://h/base", "org/Café 1?#").unwrap(),
            "wss://h/base/rooms/org%2FCaf%C3%A9%201%3F%23"
        );
    }
}
