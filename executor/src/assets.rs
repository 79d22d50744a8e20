//! Where node outputs and uploads live.
//!
//! [`AssetStore`] is the seam: the engine and the built-in nodes only put and get bytes. The
//! implementation, [`ObjectAssetStore`], is content-addressed (the id is the SHA-256 of the
//! bytes) on any `object_store` backend: a local directory by default, S3 or an S3-compatible
//! service (MinIO, R2…) in production, memory in tests. Each asset is two objects,
//! `<first two hex digits>/<sha256>` (the bytes) and `<…>.type` (the content type, written
//! last, so a crash between the two leaves an asset that reads as missing and is rewritten by
//! the next put, never a half-described one). The local backend writes each object to a
//! staging file and renames it, so readers see all of an object or nothing.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use dojo_ids::AssetId;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::value::AssetRef;

/// Default largest asset accepted (a 4096×4096 RGBA PNG is at most ~64 MiB uncompressed).
pub const DEFAULT_MAX_ASSET_BYTES: u64 = 80 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("asset {0} not found")]
    NotFound(AssetId),
    #[error("{0:?} is not an asset id")]
    InvalidId(String),
    #[error("{0:?} is not an accepted content type")]
    InvalidContentType(String),
    #[error("asset of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: u64, max: u64 },
    #[error("asset {id} is already stored as {existing}, not {requested}")]
    ContentTypeConflict { id: AssetId, existing: String, requested: String },
    #[error("asset storage is misconfigured: {0}")]
    Config(String),
    #[error("asset storage is misconfigured: {url:?}: {source}")]
    BadUrl { url: String, source: url::ParseError },
    #[error("asset storage failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("asset storage failed: {0}")]
    Storage(#[from] object_store::Error),
}

/// An asset's bytes and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub reference: AssetRef,
    pub bytes: Vec<u8>,
}

#[async_trait]
pub trait AssetStore: Send + Sync {
    /// Stores `bytes`; storing the same bytes again returns the same reference.
    async fn put(&self, bytes: Vec<u8>, content_type: &str) -> Result<AssetRef, AssetError>;
    async fn get(&self, id: &AssetId) -> Result<Asset, AssetError>;
}

/// Content-addressed assets on an `object_store` backend.
#[derive(Debug, Clone)]
pub struct ObjectAssetStore {
    store: Arc<dyn ObjectStore>,
    max_bytes: u64,
    /// Where the assets are, for logs (never with credentials).
    location: String,
}

impl ObjectAssetStore {
    /// A local directory (created if missing): the embedded default.
    pub fn local(root: impl AsRef<Path>) -> Result<Self, AssetError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root)?;
        let store = LocalFileSystem::new_with_prefix(root)?;
        Ok(Self::with_store(Arc::new(store), root.display().to_string()))
    }

    /// A store named by URL: `s3://bucket/prefix` (options: `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_region`, `aws_endpoint` for S3-compatible services,
    /// `aws_allow_http`…, as `object_store` names them), `file:///absolute/dir`, `memory://`.
    pub fn from_url<I, K, V>(url: &str, options: I) -> Result<Self, AssetError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let parsed =
            reqwest::Url::parse(url).map_err(|source| AssetError::BadUrl { url: url.to_owned(), source })?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| AssetError::Config(format!("{url:?} is not a directory")))?;
            return Self::local(dir);
        }
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)?;
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        let mut location = parsed;
        let _ = location.set_password(None);
        let _ = location.set_username("");
        Ok(Self::with_store(store, location.to_string()))
    }

    /// The store at `url` when one is given, with its credentials, region and endpoint from
    /// the standard `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`…); else
    /// the local directory `local_dir`.
    pub fn open(local_dir: &Path, url: Option<&str>) -> Result<Self, AssetError> {
        match url {
            Some(url) => Self::from_url(url, std::env::vars().filter(|(key, _)| key.starts_with("AWS_"))),
            None => Self::local(local_dir),
        }
    }

    /// In memory: for tests.
    pub fn in_memory() -> Self {
        Self::with_store(Arc::new(InMemory::new()), "memory://".into())
    }

    pub fn with_store(store: Arc<dyn ObjectStore>, location: String) -> Self {
        Self { store, max_bytes: DEFAULT_MAX_ASSET_BYTES, location }
    }

    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn paths(id: &str) -> (ObjectPath, ObjectPath) {
        let dir = &id[..2];
        (ObjectPath::from(format!("{dir}/{id}")), ObjectPath::from(format!("{dir}/{id}.type")))
    }

    /// The stored content type of `id`, if its description has been written.
    async fn content_type_of(&self, path: &ObjectPath) -> Result<Option<String>, AssetError> {
        match self.store.get(path).await {
            Ok(result) => {
                // A content type is at most 100 bytes; anything longer is not ours.
                if result.meta.size > 256 {
                    return Err(AssetError::Config(format!("{path} is not an asset description")));
                }
                let bytes = result.bytes().await?;
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

impl ObjectAssetStore {
    /// Removes `id`'s bytes and description (an account deletion, once no record links to it).
    /// The description goes first: without it the asset reads as missing, whatever is left.
    pub async fn delete(&self, id: &AssetId) -> Result<(), AssetError> {
        check_id(id.as_str())?;
        let (data_path, type_path) = Self::paths(id.as_str());
        for path in [type_path, data_path] {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

/// Ids are lowercase hex SHA-256 digests; checking that keeps `../` and friends out of paths.
fn check_id(id: &str) -> Result<(), AssetError> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(AssetError::InvalidId(id.chars().take(80).collect()))
    }
}

fn check_content_type(content_type: &str) -> Result<(), AssetError> {
    // type/subtype of token characters: enough for what nodes produce, and it keeps header
    // injection out of `GET /assets/{id}`.
    let token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    match content_type.split_once('/') {
        Some((kind, sub)) if content_type.len() <= 100 && token(kind) && token(sub) => Ok(()),
        _ => Err(AssetError::InvalidContentType(content_type.chars().take(100).collect())),
    }
}

#[async_trait]
impl AssetStore for ObjectAssetStore {
    async fn put(&self, bytes: Vec<u8>, content_type: &str) -> Result<AssetRef, AssetError> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Err(AssetError::TooLarge { size, max: self.max_bytes });
        }
        check_content_type(content_type)?;
        // Hashing up to the size limit is blocking work.
        let (hash, bytes) = tokio::task::spawn_blocking(move || (hex::encode(Sha256::digest(&bytes)), bytes))
            .await
            .map_err(|e| AssetError::Io(std::io::Error::other(e)))?;
        let (data_path, type_path) = Self::paths(&hash);
        let reference = AssetRef {
            id: AssetId::from(hash.as_str()),
            content_hash: hash.clone(),
            content_type: content_type.to_owned(),
            size,
        };
        match self.content_type_of(&type_path).await? {
            Some(existing) if existing != content_type => {
                return Err(AssetError::ContentTypeConflict {
                    id: reference.id,
                    existing,
                    requested: content_type.to_owned(),
                });
            }
            // Same bytes and type already stored (the type is written last, so the data is
            // complete): nothing to do.
            Some(_) => return Ok(reference),
            None => {}
        }
        self.store.put(&data_path, PutPayload::from(bytes)).await?;
        self.store.put(&type_path, PutPayload::from(content_type.as_bytes().to_vec())).await?;
        Ok(reference)
    }

    async fn get(&self, id: &AssetId) -> Result<Asset, AssetError> {
        check_id(id.as_str())?;
        let (data_path, type_path) = Self::paths(id.as_str());
        let content_type =
            self.content_type_of(&type_path).await?.ok_or_else(|| AssetError::NotFound(id.clone()))?;
        let result = match self.store.get(&data_path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(AssetError::NotFound(id.clone())),
            Err(error) => return Err(error.into()),
        };
        if result.meta.size > self.max_bytes {
            return Err(AssetError::TooLarge { size: result.meta.size, max: self.max_bytes });
        }
        let bytes = result.bytes().await?.to_vec();
        let reference =
            AssetRef { id: id.clone(), content_hash: id.to_string(), content_type, size: bytes.len() as u64 };
        Ok(Asset { reference, bytes })
    }
}
