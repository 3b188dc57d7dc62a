//! Plain HTTP routes: `/healthz`, `/readyz`, `/version`, `/metrics` and the SPA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::upstream::Upstream;
use phoenix_channels::serializer::Serializer;

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .expect("static bucket list is not empty");
    service_kit::metrics::install(builder, service_kit::metrics::UPKEEP_INTERVAL).clone()
}

#[derive(Clone)]
struct HttpState {
    upstream: Upstream,
    mounts: Arc<[String]>,
    metrics: PrometheusHandle,
}

/// The operational routes.
pub fn routes(upstream: Upstream, mounts: &[String]) -> Router {
    let state = HttpState {
        upstream,
        mounts: mounts.into(),
        metrics: metrics_handle(),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route(
            "/metrics",
            get(|State(s): State<HttpState>| async move { s.metrics.render() }),
        )
        .with_state(state)
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.upstream.ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "game service unreachable\n",
        )
            .into_response()
    }
}

async fn version(State(state): State<HttpState>) -> Json<serde_json::Value> {
    Json(json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "protocols": [Serializer::V1.vsn(), Serializer::V2.vsn()],
        "mounts": &*state.mounts,
    }))
}

/// Serves the SPA from `dir` at `path`, and a page explaining how to build it when it is not
/// built. The SPA has no client-side routes, and its page loads its assets by relative URLs
/// (one build serves every versioned path): any other path without a file extension (a deep
/// link, a typo) is redirected to the SPA's root, since the page served there would look for
/// its assets in the wrong directory and stay blank. The redirect is relative too, so that it
/// holds behind a proxy that strips a prefix. A missing file is a 404, and so are the paths of
/// the socket `mounts`' transports (`{mount}/longpoll` when long-poll is off, say): never the
/// SPA's.
pub fn spa(router: Router, dir: &Path, path: &str, mounts: &[String]) -> Router {
    let dir: Arc<PathBuf> = Arc::new(dir.to_owned());
    // The transports' paths, served or not (a transport turned off is still its path).
    let transports: Arc<[String]> = mounts
        .iter()
        .flat_map(|mount| phoenix_channels::transport::mount_paths(mount))
        .collect();
    let service = move |request: Request| {
        let dir = Arc::clone(&dir);
        let transports = Arc::clone(&transports);
        async move {
            let full_path = match request.extensions().get::<OriginalUri>() {
                Some(OriginalUri(uri)) => uri.path(),
                None => request.uri().path(),
            };
            let a_transports_path = transports.iter().any(|transport| {
                full_path
                    .strip_prefix(transport.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            });
            if a_transports_path {
                return StatusCode::NOT_FOUND.into_response();
            }
            let index = dir.join("index.html");
            if !index.is_file() {
                return not_built(&dir);
            }
            let path = request.uri().path();
            if path != "/" && !names_a_file(path) {
                return Redirect::temporary(&to_the_root(path, request.uri().query()))
                    .into_response();
            }
            let cache = if path.starts_with("/assets/") {
                ASSET_CACHE
            } else {
                PAGE_CACHE
            };
            // A missing asset is a 404, not the page (a browser would run HTML as script).
            match ServeDir::new(&*dir).oneshot(request).await {
                Ok(mut response) => {
                    if matches!(response.status(), StatusCode::OK | StatusCode::NOT_MODIFIED) {
                        response
                            .headers_mut()
                            .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
                    }
                    response.into_response()
                }
                Err(never) => match never {},
            }
        }
    };
    let prefix = path.trim_end_matches('/');
    if prefix.is_empty() {
        router.fallback(service)
    } else {
        let prefix_owned: Arc<str> = prefix.into();
        router.nest_service(
            prefix,
            tower::service_fn(move |request: Request| {
                let service = service.clone();
                let prefix = Arc::clone(&prefix_owned);
                async move {
                    // `/ws/v1` would resolve the page's relative URLs against `/ws/`: send the
                    // browser to `/ws/v1/` instead.
                    if let Some(OriginalUri(uri)) = request.extensions().get::<OriginalUri>()
                        && uri.path() == &*prefix
                    {
                        let location = match uri.query() {
                            Some(query) => format!("{prefix}/?{query}"),
                            None => format!("{prefix}/"),
                        };
                        return Ok::<_, std::convert::Infallible>(
                            Redirect::permanent(&location).into_response(),
                        );
                    }
                    Ok(service(request).await)
                }
            }),
        )
    }
}

/// Whether the path's last segment has a file extension (`/assets/app.js`, not `/games/42`).
/// How long a browser may keep the SPA's assets: Vite names each by its content
/// (`assets/index-<hash>.js`), so a name never comes back with other bytes.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";
/// The page, and whatever else is not under `assets/`: asked again every time (a 304 when
/// unchanged), so that a new version's page, naming its new assets, is seen at once.
const PAGE_CACHE: &str = "no-cache";

/// The relative URL of the SPA's root from `path` (within the SPA): `./` from `/game`,
/// `../` from `/game/42` or `/game/`, with the query kept.
fn to_the_root(path: &str, query: Option<&str>) -> String {
    let up = path.matches('/').count().saturating_sub(1);
    let root = if up == 0 {
        "./".to_owned()
    } else {
        "../".repeat(up)
    };
    match query {
        Some(query) => format!("{root}?{query}"),
        None => root,
    }
}

fn names_a_file(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    Path::new(last).extension().is_some()
}

fn not_built(dir: &Path) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>SPA not built</title></head>\
         <body><h1>The SPA is not built yet</h1>\
         <p>The gateway serves the web client from <code>{}</code>, which has no <code>index.html</code>.</p>\
         <p>Build it: run <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>, then reload.</p>\
         <p>The WebSocket endpoint works without it.</p></body></html>",
        html_escape(&dir.display().to_string())
    );
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
