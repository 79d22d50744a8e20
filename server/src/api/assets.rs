//! Assets: images people upload (for `image-input` nodes) and the outputs runs produce. Bytes
//! live in the content-addressed asset store; who may read them is in the database: the
//! uploader, and the people who may read a room the asset was produced or uploaded for.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dojo_auth::Permission;
use dojo_executor::upload_check::{ImageLimits, UploadRefusal, check_png_upload};
use dojo_executor::{AssetError, AssetStore};
use dojo_ids::AssetId;
use dojo_records::{AccountError, AssetLink, AssetRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiBytes, ApiPath, ApiQuery};
use super::responses::{BadRequest, ErrorBody, Forbidden, NotFound, TooManyRequests, Unauthorized};
use super::{ApiError, Authenticated};
use crate::execution::now_millis;
use crate::room_name::RoomName;
use crate::services::access;
use crate::state::AppState;

/// What uploads may be: the built-in image nodes read PNG.
const UPLOAD_TYPES: [&str; 1] = ["image/png"];
/// Links read to decide whether a caller may download an asset.
const MAX_LINKS_CHECKED: u32 = 64;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
// Said outright: utoipa infers it only from axum's own `Query`, not from `ApiQuery`.
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The room the upload is for: its readers may download it too.
    pub room: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uploaded {
    pub id: String,
    /// Where to download it: `/assets/{id}`.
    pub url: String,
    pub content_type: String,
    pub size: u64,
    pub content_hash: String,
}

/// An image's bytes, in the request's `Content-Type`.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // a description only: the body is raw bytes
pub struct ImageBytes(Vec<u8>);

/// Uploads an image (the body, with its `Content-Type`): a PNG up to the configured size, that
/// decodes whole within the configured dimensions, within the uploader's storage quota.
#[utoipa::path(post, path = "/api/assets", tag = "assets", operation_id = "uploadAsset", params(UploadQuery),
    request_body(content = ImageBytes, content_type = "image/png"),
    responses((status = 201, description = "Stored", body = Uploaded),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 413, description = "`body_too_large` (the body) or `storage_quota_exceeded`", body = ErrorBody),
        (status = 415, description = "Not a PNG (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "`invalid_image` or `image_too_large`", body = ErrorBody),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let user = caller.user()?.clone();
    let room = match &query.room {
        Some(room) => {
            let access = access::room_for(&state, &caller.0, room, Permission::Write).await?;
            Some(access.room().as_str().to_owned())
        }
        None => None,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !UPLOAD_TYPES.contains(&content_type.as_str()) {
        // The client's own header, cut short: it is only there to say what was wrong.
        let sent: String = content_type.chars().take(64).collect();
        return Err(ApiError::UnsupportedMediaType(format!(
            "uploads must be one of {UPLOAD_TYPES:?}, not {sent:?}"
        )));
    }
    let settings = &state.config().executor;
    let quota = i64::try_from(settings.user_storage_bytes).unwrap_or(i64::MAX);
    let quota = if quota == 0 { i64::MAX } else { quota };
    let executor = state.executor();
    // Cheap refusal first; `record_upload` below decides exactly, under the user's row lock.
    let used = executor.runs().storage_used(&user.id).await?;
    let size = i64::try_from(body.len()).unwrap_or(i64::MAX);
    if used.saturating_add(size) > quota {
        return Err(quota_refusal(used.saturating_add(size), quota));
    }
    let limits = ImageLimits { max_side: settings.max_image_side, max_pixels: settings.max_image_pixels };
    if let Err(refused) = check_image(body.clone(), limits).await? {
        let message = refused.to_string();
        return Err(match refused {
            UploadRefusal::NotPng => ApiError::UnsupportedMediaType(message),
            UploadRefusal::TooLarge { .. } => ApiError::ImageTooLarge(message),
            _ => ApiError::InvalidImage(message),
        });
    }
    let stored = match executor.assets().put(body.to_vec(), &content_type).await {
        Ok(stored) => stored,
        Err(AssetError::TooLarge { size, max }) => {
            return Err(ApiError::BodyTooLarge(format!(
                "the upload has {size} bytes; at most {max} are accepted"
            )));
        }
        Err(error) => return Err(ApiError::Internal(error.to_string())),
    };
    let record = AssetRecord {
        id: stored.id.clone(),
        content_type: stored.content_type.clone(),
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
        created_at: now_millis(),
    };
    let link = AssetLink { owner_id: user.id.clone(), room, run_id: None, node_id: None };
    match executor.runs().record_upload(&record, &link, quota).await {
        Ok(()) => {}
        Err(AccountError::StorageQuotaExceeded { used, quota }) => return Err(quota_refusal(used, quota)),
        Err(error) => return Err(error.into()),
    }
    let body = Uploaded {
        url: format!("/assets/{}", stored.id),
        id: stored.id.into_string(),
        content_type: stored.content_type,
        size: stored.size,
        content_hash: stored.content_hash,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// An asset's bytes. Ids are content hashes, so the bytes never change: cached for a year.
/// The token may come as `?token=` (an `<img src>` cannot send headers).
#[utoipa::path(get, path = "/assets/{id}", tag = "assets", operation_id = "downloadAsset",
    params(("id" = String, Path, description = "Asset id (hex SHA-256)")),
    responses((status = 200, description = "The bytes", content_type = "image/png", body = ImageBytes),
        (status = 401, response = Unauthorized), (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests)),
    security(("bearer" = [])))]
pub async fn download(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no asset {id:?}"));
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let executor = state.executor();
    let asset_id = AssetId::from(id.as_str());
    if executor.runs().asset(&asset_id).await?.is_none() {
        return Err(not_found());
    }
    if !may_read(&state, &caller, &id).await? {
        // Like a missing asset: a stranger cannot probe which ids exist.
        return Err(not_found());
    }
    let asset = match executor.assets().get(&asset_id).await {
        Ok(asset) => asset,
        Err(AssetError::NotFound(_) | AssetError::InvalidId(_)) => return Err(not_found()),
        Err(error) => return Err(ApiError::Internal(error.to_string())),
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&asset.reference.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{id}\"")) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

async fn may_read(state: &AppState, caller: &Authenticated, id: &str) -> Result<bool, ApiError> {
    if state.auth().dev_mode() && caller.0.user().is_none() {
        return Ok(true);
    }
    let links = state.executor().runs().asset_links(&AssetId::from(id), MAX_LINKS_CHECKED).await?;
    if let Some(user) = caller.0.user()
        && links.iter().any(|l| l.owner_id == user.id)
    {
        return Ok(true);
    }
    for room in links.iter().filter_map(|l| l.room.as_deref()) {
        // Links keep their room as text; they are only ever written from a checked name.
        let Ok(room) = RoomName::parse(room) else { continue };
        if state.auth().require(&caller.0, &room, Permission::Read).await.is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Decoding a large PNG takes a core and up to [`ImageLimits::max_alloc`] bytes: at most this
/// many run at once, so concurrent uploads cannot multiply that.
const CONCURRENT_IMAGE_CHECKS: usize = 2;

/// [`check_png_upload`] on the blocking pool, a few at a time.
async fn check_image(body: Bytes, limits: ImageLimits) -> Result<Result<(), UploadRefusal>, ApiError> {
    static PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_IMAGE_CHECKS);
    let permit = PERMITS.acquire().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    // The permit goes with the decode: a client that hangs up does not free it early.
    let decode = move || {
        let _permit = permit;
        check_png_upload(&body, limits).map(|_| ())
    };
    match tokio::task::spawn_blocking(decode).await {
        Ok(checked) => Ok(checked),
        // A panic inside the decoder on a hostile file refuses that file, not the server.
        Err(error) if error.is_panic() => Ok(Err(UploadRefusal::Corrupt("the decoder failed".into()))),
        Err(error) => Err(ApiError::Internal(error.to_string())),
    }
}

fn quota_refusal(used: i64, quota: i64) -> ApiError {
    ApiError::StorageQuotaExceeded(format!(
        "this upload would bring your stored assets to {used} bytes; your quota is {quota} bytes"
    ))
}
