//! The plain HTTP routes: health, readiness, version, metrics and the SPA's files.

mod common;

use common::{http_get, system};
use serde_json::{Value, json};

#[tokio::test]
async fn health_readiness_and_version() {
    let sys = system(&["--mount", "/v1/socket"]).await;
    let base = sys.gateway.url();
    assert_eq!(http_get(&base, "/healthz").await.0, 200);
    assert_eq!(http_get(&base, "/readyz").await.0, 200);
    let (status, content_type, body) = http_get(&base, "/version").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let version: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version["protocols"], json!(["1.0.0", "2.0.0"]));
    assert_eq!(version["mounts"], json!(["/v1/socket"]));
    // The routes a --static-path may not take are these.
    for route in ws_gateway::config::GATEWAY_ROUTES {
        assert_eq!(http_get(&base, route).await.0, 200, "{route}");
    }
}

#[tokio::test]
async fn metrics_count_connections_channels_and_frame_errors() {
    // In its own process: the in-process game service owns this process's metrics recorder.
    let games = common::game_service().await;
    let gateway = common::GatewayProcess::spawn(&games.url(), &[]).await;
    let mut client = common::Client::connect(&gateway.socket_url()).await;
    client.send_text("not json").await;
    client.recv().await;
    client.join_ok("hangman:game", json!({})).await;
    let (status, content_type, body) = http_get(&gateway.url(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    for name in [
        "ws_gateway_connections",
        "ws_gateway_channels",
        "ws_gateway_frame_errors_total",
        "ws_gateway_upstream_seconds",
        "ws_gateway_messages_total",
    ] {
        assert!(body.contains(name), "{name} missing from\n{body}");
    }
    assert_eq!(gateway.metric("ws_gateway_connections").await, 1.0);
    assert_eq!(gateway.metric("ws_gateway_channels").await, 1.0);

    // A closed socket takes its channel and its count along.
    drop(client);
    let mut channels = 1.0;
    for _ in 0..100 {
        channels = gateway.metric("ws_gateway_channels").await;
        if channels == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(channels, 0.0);
}

#[tokio::test]
async fn a_missing_spa_gets_a_page_saying_how_to_build_it() {
    let missing = std::env::temp_dir().join("ws-gateway-no-such-dist");
    let sys = system(&["--static-dir", missing.to_str().unwrap()]).await;
    let (status, content_type, body) = http_get(&sys.gateway.url(), "/").await;
    assert_eq!(status, 503);
    assert!(content_type.starts_with("text/html"));
    assert!(body.contains("The SPA is not built yet"), "{body}");
    assert!(body.contains("npm ci &amp;&amp; npm run build"), "{body}");
}

#[tokio::test]
async fn the_spa_is_served_at_its_path_and_other_paths_are_sent_to_its_root() {
    let dist = std::env::temp_dir().join(format!("ws-gateway-dist-{}", std::process::id()));
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>spa</title>").unwrap();
    std::fs::write(dist.join("assets/app.js"), "console.log('spa')").unwrap();

    let sys = system(&["--static-dir", dist.to_str().unwrap()]).await;
    let base = sys.gateway.url();
    assert_eq!(
        http_get(&base, "/").await.2,
        "<!doctype html><title>spa</title>"
    );
    let (status, content_type, body) = http_get(&base, "/assets/app.js").await;
    assert_eq!((status, body.as_str()), (200, "console.log('spa')"));
    assert!(content_type.contains("javascript"));
    // The SPA has no client-side routes, and its page loads its assets by relative URLs:
    // any other path without an extension is sent to the root (relatively, so that it holds
    // behind a proxy that strips a prefix), where the page finds them.
    for (path, location) in [
        ("/game", "./"),
        ("/some/client/route", "../../"),
        ("/game/?id=abc", "../?id=abc"),
    ] {
        assert_redirected(&base, path, location).await;
    }
    assert_eq!(
        http_get(&base, "/some/client/route").await.2,
        "<!doctype html><title>spa</title>"
    );
    // Vite's assets are named by their content: kept for a year. The page is asked again
    // every time, so that a new version is seen at once.
    for (path, cache) in [
        ("/assets/app.js", "public, max-age=31536000, immutable"),
        ("/", "no-cache"),
        ("/index.html", "no-cache"),
    ] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.headers()["cache-control"], cache, "{path}");
    }
    // A missing file is a 404, not the page.
    for path in ["/assets/nope.js", "/nope.css", "/some/client/route/x.png"] {
        let (status, content_type, body) = http_get(&base, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!content_type.contains("html"), "{path}: {content_type}");
        assert!(!body.contains("<title>spa</title>"), "{path}");
    }

    let sys = versioned_gateway(&dist).await;
    let base = sys.gateway.url();
    assert_eq!(
        http_get(&base, "/ws/v1/").await.2,
        "<!doctype html><title>spa</title>"
    );
    assert_eq!(
        http_get(&base, "/ws/v1/assets/app.js").await.2,
        "console.log('spa')"
    );
    assert_eq!(http_get(&base, "/ws/v1/assets/nope.js").await.0, 404);
    assert_redirected(&base, "/ws/v1/game/42", "../").await;
    assert_eq!(
        http_get(&base, "/ws/v1/game/42").await,
        (
            200,
            "text/html".to_owned(),
            "<!doctype html><title>spa</title>".to_owned()
        )
    );
    let mut client = common::Client::connect(&format!(
        "{}/ws/v1/socket/websocket?vsn=2.0.0",
        sys.gateway.ws_url()
    ))
    .await;
    client.join_ok("hangman:game", json!({})).await;
}

/// `path` answers a temporary redirect to `location`.
async fn assert_redirected(base: &str, path: &str, location: &str) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 307, "{path}");
    assert_eq!(response.headers()["location"], location, "{path}");
}

#[tokio::test]
async fn a_transport_path_is_never_the_spa_even_when_the_transport_is_off() {
    let dist = std::env::temp_dir().join(format!("ws-gateway-dist-mount-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>spa</title>").unwrap();
    // Long-poll turned off: its path is nobody's, not the SPA's.
    let sys = system(&[
        "--static-dir",
        dist.to_str().unwrap(),
        "--transports",
        "websocket",
    ])
    .await;
    let base = sys.gateway.url();
    for path in ["/socket/longpoll?vsn=2.0.0", "/socket/longpoll/x"] {
        let (status, _, body) = http_get(&base, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("<title>spa</title>"), "{path}");
    }
    assert_eq!(http_get(&base, "/").await.0, 200);
}

/// A gateway as Kubernetes runs version 1: the SPA at `/ws/v1/`, the socket at `/ws/v1/socket`.
async fn versioned_gateway(dist: &std::path::Path) -> common::System {
    system(&[
        "--static-dir",
        dist.to_str().unwrap(),
        "--static-path",
        "/ws/v1/",
        "--mount",
        "/ws/v1/socket",
    ])
    .await
}

#[tokio::test]
async fn the_spa_prefix_without_its_slash_redirects_to_it() {
    let dist =
        std::env::temp_dir().join(format!("ws-gateway-dist-redirect-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>spa</title>").unwrap();
    let sys = versioned_gateway(&dist).await;
    let base = sys.gateway.url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, location) in [
        ("/ws/v1", "/ws/v1/"),
        ("/ws/v1?game=abc&x=1", "/ws/v1/?game=abc&x=1"),
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 308, "{path}");
        assert_eq!(response.headers()["location"], location, "{path}");
    }
    // Followed, the redirect lands on the page.
    assert_eq!(
        http_get(&base, "/ws/v1").await,
        (
            200,
            "text/html".to_owned(),
            "<!doctype html><title>spa</title>".to_owned()
        )
    );
}
