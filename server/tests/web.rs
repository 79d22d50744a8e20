//! The built web editor is served at `/` with cache headers that suit a hashed bundle.

mod common;

use common::TestServer;

#[tokio::test]
async fn serves_the_editor_bundle_with_cache_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("static")).expect("static dir");
    std::fs::write(dir.path().join("index.html"), "<!doctype html><div id=root></div>").expect("index");
    std::fs::write(dir.path().join("static/app-3f2a.js"), "console.log(1)").expect("bundle");
    std::fs::write(dir.path().join("favicon.svg"), "<svg/>").expect("icon");
    let web_dir = dir.path().to_owned();
    let server = TestServer::start_with(move |config| config.http.web_dir = web_dir).await;
    let http = reqwest::Client::new();

    let get = |path: &str| http.get(server.http(path)).send();
    let index = get("/").await.expect("GET /");
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["cache-control"], "no-cache");
    assert!(index.text().await.expect("body").contains("id=root"));

    let bundle = get("/static/app-3f2a.js").await.expect("GET bundle");
    assert_eq!(bundle.status(), 200);
    assert_eq!(bundle.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(bundle.text().await.expect("body"), "console.log(1)");

    let icon = get("/favicon.svg").await.expect("GET icon");
    assert_eq!(icon.headers()["cache-control"], "no-cache");
    assert_eq!(icon.text().await.expect("body"), "<svg/>");

    // The editor's own routes get the shell; the server's never do.
    let deep = get("/w/wf_123").await.expect("GET deep link");
    assert_eq!(deep.status(), 200);
    assert!(deep.text().await.expect("body").contains("id=root"));
    assert_eq!(get("/api/no-such-thing").await.expect("GET api").status(), 404);
    assert_eq!(get("/static/missing.js").await.expect("GET missing").status(), 404);
    assert_eq!(get("/healthz").await.expect("GET healthz").text().await.expect("body"), "ok");
    server.stop().await;
}

#[tokio::test]
async fn without_a_built_editor_the_root_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let web_dir = dir.path().join("missing");
    let server = TestServer::start_with(move |config| config.http.web_dir = web_dir).await;
    let response = reqwest::get(server.http("/")).await.expect("GET /");
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("body").contains("scripts/run.sh"));
    server.stop().await;
}
