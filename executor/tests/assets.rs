//! One conformance suite for the asset store on each `object_store` backend it is used with: a
//! local directory (the embedded default), memory, and S3 over HTTP (moto's S3-compatible
//! server, a real socket and the real S3 protocol, standing in for S3 or MinIO).

use dojo_executor::{AssetError, AssetStore, ObjectAssetStore};
use dojo_ids::AssetId;
use dojo_test_support::S3StandIn;

const HELLO_ID: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

async fn round_trip_by_content_hash(store: &ObjectAssetStore) {
    let a = store.put(b"hello".to_vec(), "text/plain").await.expect("put");
    assert_eq!(a.id, HELLO_ID);
    assert_eq!(a.content_hash, a.id.as_str());
    assert_eq!((a.size, a.content_type.as_str()), (5, "text/plain"));
    let again = store.put(b"hello".to_vec(), "text/plain").await.expect("put again");
    assert_eq!(again, a, "the same bytes are the same asset");
    let got = store.get(&a.id).await.expect("get");
    assert_eq!(got.bytes, b"hello");
    assert_eq!(got.reference, a);
    let png = store.put(vec![0x89, b'P', b'N', b'G'], "image/png").await.expect("put");
    assert_ne!(png.id, a.id);
    assert_eq!(store.get(&png.id).await.expect("get").reference.content_type, "image/png");
}

async fn refuses_bad_ids_types_and_sizes(store: ObjectAssetStore) {
    let store = store.with_max_bytes(4);
    assert!(matches!(store.get(&AssetId::from("../../etc/passwd")).await, Err(AssetError::InvalidId(_))));
    assert!(matches!(store.get(&AssetId::from("A".repeat(64))).await, Err(AssetError::InvalidId(_))));
    assert!(matches!(store.get(&AssetId::from("0".repeat(64))).await, Err(AssetError::NotFound(_))));
    assert!(matches!(store.put(vec![0; 5], "image/png").await, Err(AssetError::TooLarge { .. })));
    assert!(matches!(
        store.put(vec![0; 2], "image/png\r\nX: y").await,
        Err(AssetError::InvalidContentType(_))
    ));
    store.put(vec![1], "image/png").await.expect("put");
    assert!(matches!(store.put(vec![1], "text/plain").await, Err(AssetError::ContentTypeConflict { .. })));
}

#[tokio::test]
async fn a_local_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let store = ObjectAssetStore::local(dir.path()).expect("store");
    round_trip_by_content_hash(&store).await;
    // Laid out as documented, with no staging files left behind.
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("2c"))
        .expect("the 2c directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [HELLO_ID.to_owned(), format!("{HELLO_ID}.type")]);
    // A second store on the same directory (another process) sees the same assets.
    let other = ObjectAssetStore::from_url(
        &format!("file://{}", dir.path().display()),
        Vec::<(String, String)>::new(),
    )
    .expect("store by file URL");
    assert_eq!(other.get(&AssetId::from(HELLO_ID)).await.expect("get").bytes, b"hello");
    refuses_bad_ids_types_and_sizes(
        ObjectAssetStore::local(tempfile::tempdir().expect("dir").path()).expect("store"),
    )
    .await;
}

#[tokio::test]
async fn memory() {
    round_trip_by_content_hash(&ObjectAssetStore::in_memory()).await;
    refuses_bad_ids_types_and_sizes(ObjectAssetStore::in_memory()).await;
}

#[tokio::test]
async fn s3_over_http() {
    let s3 = S3StandIn::start().await;
    let store = ObjectAssetStore::from_url(&s3.url("assets"), s3.options()).expect("store");
    assert!(!store.location().contains("testing"), "no credentials in the location: {}", store.location());
    round_trip_by_content_hash(&store).await;
    let mut keys = s3.keys();
    keys.sort();
    assert!(keys.contains(&format!("assets/2c/{HELLO_ID}")), "{keys:?}");
    assert!(keys.contains(&format!("assets/2c/{HELLO_ID}.type")), "{keys:?}");
    // Another store on the same bucket (another worker) reads what this one wrote.
    let other = ObjectAssetStore::from_url(&s3.url("assets"), s3.options()).expect("store");
    assert_eq!(other.get(&AssetId::from(HELLO_ID)).await.expect("get").bytes, b"hello");
    refuses_bad_ids_types_and_sizes(
        ObjectAssetStore::from_url(&s3.url("strict"), s3.options()).expect("store"),
    )
    .await;
}

#[test]
fn bad_urls_are_configuration_errors() {
    assert!(matches!(
        ObjectAssetStore::from_url("not a url", Vec::<(String, String)>::new()),
        Err(AssetError::BadUrl { .. })
    ));
    assert!(ObjectAssetStore::from_url("ftp://example.com/x", Vec::<(String, String)>::new()).is_err());
}
