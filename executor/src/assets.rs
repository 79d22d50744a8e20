//! Where node outputs and uploads live.
//!
//! [`AssetStore`] is the seam: the engine and the built-in nodes only put and get bytes. The
//! implementation here, [`LocalAssetStore`], is a content-addressed directory (the id is the
//! SHA-256 of the bytes), written atomically (temporary file, fsync, rename), so a crash never
//! leaves a half-written asset under a valid id. The `object_store` crate (S3-compatible storage
//! in production) is the intended second implementation; it is not built yet.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::value::AssetRef;

/// Default largest asset accepted (a 4096×4096 RGBA PNG is at most ~64 MiB uncompressed).
pub const DEFAULT_MAX_ASSET_BYTES: u64 = 80 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("asset {0} not found")]
    NotFound(String),
    #[error("{0:?} is not an asset id")]
    InvalidId(String),
    #[error("{0:?} is not an accepted content type")]
    InvalidContentType(String),
    #[error("asset of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: u64, max: u64 },
    #[error("asset {id} is already stored as {existing}, not {requested}")]
    ContentTypeConflict { id: String, existing: String, requested: String },
    #[error("asset storage failed: {0}")]
    Io(#[from] std::io::Error),
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
    async fn get(&self, id: &str) -> Result<Asset, AssetError>;
}

/// A content-addressed directory: `<root>/<first two hex digits>/<sha256>` holds the bytes and
/// `<…>.type` beside it the content type.
#[derive(Debug, Clone)]
pub struct LocalAssetStore {
    root: PathBuf,
    max_bytes: u64,
}

impl LocalAssetStore {
    /// Uses (and creates) `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, AssetError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root, max_bytes: DEFAULT_MAX_ASSET_BYTES })
    }

    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn paths(&self, id: &str) -> (PathBuf, PathBuf) {
        let dir = self.root.join(&id[..2]);
        (dir.join(id), dir.join(format!("{id}.type")))
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
    // injection out of a future `GET /assets/{id}`.
    let token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    match content_type.split_once('/') {
        Some((kind, sub)) if content_type.len() <= 100 && token(kind) && token(sub) => Ok(()),
        _ => Err(AssetError::InvalidContentType(content_type.chars().take(100).collect())),
    }
}

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename, so readers
/// see either nothing or the whole file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[async_trait]
impl AssetStore for LocalAssetStore {
    async fn put(&self, bytes: Vec<u8>, content_type: &str) -> Result<AssetRef, AssetError> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Err(AssetError::TooLarge { size, max: self.max_bytes });
        }
        check_content_type(content_type)?;
        let store = self.clone();
        let content_type = content_type.to_owned();
        // Hashing and fsync are blocking work.
        tokio::task::spawn_blocking(move || {
            let hash = hex::encode(Sha256::digest(&bytes));
            let (data_path, type_path) = store.paths(&hash);
            if let Some(dir) = data_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            match std::fs::read_to_string(&type_path) {
                Ok(existing) if existing != content_type => {
                    return Err(AssetError::ContentTypeConflict {
                        id: hash,
                        existing,
                        requested: content_type,
                    });
                }
                // Same bytes and type already stored (the type is written last, so the data
                // is complete): nothing to do.
                Ok(_) if data_path.exists() => {}
                _ => {
                    write_atomically(&data_path, &bytes)?;
                    write_atomically(&type_path, content_type.as_bytes())?;
                }
            }
            Ok(AssetRef { id: hash.clone(), content_hash: hash, content_type, size })
        })
        .await
        .map_err(|e| AssetError::Io(std::io::Error::other(e)))?
    }

    async fn get(&self, id: &str) -> Result<Asset, AssetError> {
        check_id(id)?;
        let (data_path, type_path) = self.paths(id);
        let id = id.to_owned();
        let max = self.max_bytes;
        tokio::task::spawn_blocking(move || {
            let not_found = |e: std::io::Error| match e.kind() {
                std::io::ErrorKind::NotFound => AssetError::NotFound(id.clone()),
                _ => AssetError::Io(e),
            };
            let content_type = std::fs::read_to_string(&type_path).map_err(not_found)?;
            let size = std::fs::metadata(&data_path).map_err(not_found)?.len();
            if size > max {
                return Err(AssetError::TooLarge { size, max });
            }
            let bytes = std::fs::read(&data_path).map_err(not_found)?;
            let reference =
                AssetRef { id: id.clone(), content_hash: id.clone(), content_type, size: bytes.len() as u64 };
            Ok(Asset { reference, bytes })
        })
        .await
        .map_err(|e| AssetError::Io(std::io::Error::other(e)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assets_round_trip_by_content_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalAssetStore::new(dir.path()).unwrap();
        let a = store.put(b"hello".to_vec(), "text/plain").await.unwrap();
        assert_eq!(a.id, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(a.content_hash, a.id);
        assert_eq!(a.size, 5);
        let again = store.put(b"hello".to_vec(), "text/plain").await.unwrap();
        assert_eq!(again, a);
        let got = store.get(&a.id).await.unwrap();
        assert_eq!(got.bytes, b"hello");
        assert_eq!(got.reference, a);
        // No temporary files are left behind.
        let files: Vec<_> = std::fs::read_dir(dir.path().join("2c")).unwrap().collect();
        assert_eq!(files.len(), 2);
    }

    #[tokio::test]
    async fn bad_ids_types_and_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalAssetStore::new(dir.path()).unwrap().with_max_bytes(4);
        assert!(matches!(store.get("../../etc/passwd").await, Err(AssetError::InvalidId(_))));
        assert!(matches!(store.get(&"0".repeat(64)).await, Err(AssetError::NotFound(_))));
        assert!(matches!(store.put(vec![0; 5], "image/png").await, Err(AssetError::TooLarge { .. })));
        assert!(matches!(
            store.put(vec![0; 2], "image/png\r\nX: y").await,
            Err(AssetError::InvalidContentType(_))
        ));
        store.put(vec![1], "image/png").await.unwrap();
        assert!(matches!(
            store.put(vec![1], "text/plain").await,
            Err(AssetError::ContentTypeConflict { .. })
        ));
    }
}
