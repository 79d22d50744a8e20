//! Serves the built web editor (`web/dist`) at `/`.
//!
//! Vite names bundle files by content hash under `/static/`, so they are cached forever;
//! every other file (the HTML shell above all) is revalidated, so a deploy shows at once.
//! Paths the editor routes itself (`/w/{id}`…) get `index.html`; paths of the API, rooms and
//! assets never do, so a mistyped API call is a 404, not a page.

use std::convert::Infallible;
use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
/// Prefixes that belong to the server, never to the editor's own routing.
const SERVER_PREFIXES: [&str; 5] = ["/api/", "/rooms/", "/assets/", "/collab", "/static/"];

pub fn routes<S>(dir: &Path) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let index = dir.join("index.html");
    if !index.is_file() {
        tracing::info!(dir = %dir.display(), "no built web editor; `scripts/run.sh` builds it");
        return Router::new().route("/", get(not_built));
    }
    tracing::info!(dir = %dir.display(), "serving the web editor at /");
    let bundle = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)))
        .service(ServeDir::new(dir.join("static")));
    let pages = ServeDir::new(dir).fallback(ServeFile::new(index));
    Router::new().nest_service("/static", bundle).fallback(move |request: Request| {
        let pages = pages.clone();
        async move { page(pages, request).await }
    })
}

async fn page(pages: ServeDir<ServeFile>, request: Request) -> Response {
    let path = request.uri().path();
    if SERVER_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let result: Result<_, Infallible> = tower::ServiceExt::oneshot(pages, request).await;
    let mut response = match result {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    response
}

async fn not_built() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Dojo</title><h1>Dojo is running</h1>\
         <p>The web editor is not built. Run <code>scripts/run.sh</code> (it builds <code>web/</code> \
         with npm), or point <code>DOJO_WEB_DIR</code> at a built editor.</p>",
    )
}
