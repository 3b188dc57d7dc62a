//! Starting and stopping the HTTP server.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use service_kit::ConnectionLimits;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{
    config::{Config, KeySource},
    metrics,
    routes::{AppState, app},
    session::CookieSettings,
    upstream::GameService,
};

/// A running html-gallows.
pub struct Server {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    serving: JoinHandle<()>,
    grace: Duration,
}

/// Binds the listener and serves in the background. The game service is
/// connected on first use, so this succeeds while it is down (but not when
/// `--game-service` is not an http(s) URL with a host).
pub async fn start(config: Config) -> anyhow::Result<Server> {
    config.validate_game_service()?;
    let (key, key_source) = config.cookie_key()?;
    if key_source == KeySource::Generated {
        tracing::warn!(
            "no --cookie-key or --cookie-key-file given: using a fresh random key, \
             so sessions end when this process does"
        );
    }
    let games = GameService::connect_lazy(&config)
        .with_context(|| format!("invalid game service URL {:?}", config.game_service))?;
    let state = AppState {
        games,
        cookies: CookieSettings {
            key,
            secure: config.secure_cookies,
        },
    };
    // Installed now rather than on the first scrape, so this recorder (and not
    // some later one in the same process) receives the metrics.
    metrics::handle();
    let app = app(state, &config);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(game_service = %config.game_service, "game service client ready");
    // Alone in its message, so `listening on (\S+)` finds just the address.
    tracing::info!(target: service_kit::logging::LISTENING, "listening on {addr}");

    let (shutdown, stop_requested) = oneshot::channel();
    let limits = ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        max_pending: config.max_pending_connections,
        max_open: config.max_open_connections,
    };
    let serving = tokio::spawn(service_kit::http::serve(listener, app, limits, async {
        stop_requested.await.ok();
    }));
    Ok(Server {
        addr,
        shutdown,
        serving,
        grace: config.shutdown_timeout,
    })
}

impl Server {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits (up to the shutdown grace) for the
    /// requests in flight.
    pub async fn stop(self) {
        self.shutdown.send(()).ok();
        let mut serving = self.serving;
        match tokio::time::timeout(self.grace, &mut serving).await {
            Ok(Ok(())) => tracing::info!("stopped"),
            Ok(Err(error)) => tracing::error!(%error, "server task failed"),
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "requests still running after the grace period; stopping anyway");
                serving.abort();
            }
        }
    }
}
