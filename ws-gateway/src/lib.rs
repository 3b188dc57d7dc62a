//! ws-gateway: a Phoenix Channels server that plays Hangman through the `hangman.v1` gRPC API.
//!
//! - [`hangman`]: the connect hook, the `hangman:game` and `game:<id>` channels, and the room
//!   members this process carries.
//! - [`upstream`]: the shared gRPC client of the game service (timeouts, `traceparent`).
//! - [`http`]: `/healthz`, `/readyz`, `/version`, `/metrics` and the SPA's files.
//! - [`config`]: flags and their environment twins.
//!
//! The Phoenix Channels protocol itself (transport, serializers, socket, channels, presence's
//! wire format) is the [`phoenix_channels`] crate, which has no Hangman in it.
//!
//! [`start`] wires them into a running server; `main.rs` only adds telemetry and signals.

pub mod config;
pub mod hangman;
pub mod http;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use config::Config;
use config::Transport;
use hangman::members::Members;
use hangman::rooms::{RoomLimits, Rooms};
use phoenix_channels::longpoll::LongPollConfig;
use phoenix_channels::socket::SocketLimits;
use phoenix_channels::telemetry::Metrics;
use phoenix_channels::transport::{AllowedOrigins, Endpoint, TransportConfig};
use service_kit::ConnectionLimits;
use upstream::{Upstream, UpstreamConfig};

/// The prefix of the protocol layer's metrics: `ws_gateway_connections`, `ws_gateway_channels`,
/// `ws_gateway_messages_total`, `ws_gateway_frame_errors_total{kind}`.
pub const METRICS_PREFIX: &str = "ws_gateway";

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    GameServiceUrl(#[from] upstream::InvalidUrl),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Path(#[from] config::PathError),
    #[error("invalid --longpoll-advertise {0:?}: it must be host:port")]
    Advertise(String),
}

/// A running gateway.
pub struct Server {
    addr: SocketAddr,
    endpoint: Arc<Endpoint<hangman::HangmanSocket>>,
    stop_http: CancellationToken,
    serve: JoinHandle<()>,
    /// Stops the task that renews the room members and sends their leaves (also when the
    /// server is dropped unstopped).
    stop_renewals: DropGuard,
    renewals: JoinHandle<()>,
    drain: Duration,
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

    /// `ws://ADDR`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// WebSocket connections open right now.
    pub fn connections(&self) -> usize {
        self.endpoint.connections()
    }

    /// Long-poll sessions open right now.
    pub fn longpoll_sessions(&self) -> usize {
        self.endpoint.longpoll_sessions()
    }

    /// Graceful stop: sockets are closed with the shutdown close code (1001 by default), the
    /// leaves of their room members are sent, then HTTP stops; waits at most the drain time.
    pub async fn stop(self) {
        let Server {
            endpoint,
            stop_http,
            serve,
            stop_renewals,
            renewals,
            drain,
            ..
        } = self;
        let graceful = async move {
            endpoint.shutdown().await;
            // The sockets' channels have ended: their leaves are queued, and go out now.
            stop_renewals.disarm().cancel();
            let _ = renewals.await;
            stop_http.cancel();
            let _ = serve.await;
        };
        if tokio::time::timeout(drain, graceful).await.is_err() {
            tracing::warn!(
                ?drain,
                "connections still open after the drain time; exiting anyway"
            );
        }
    }
}

/// Binds, logs `listening on ADDR` and serves until [`Server::stop`].
pub async fn start(config: Config) -> Result<Server, StartError> {
    config.check_paths()?;
    let upstream = Upstream::new(&UpstreamConfig {
        url: config.game_service.clone(),
        connect_timeout: config.grpc_connect_timeout,
        request_timeout: config.grpc_request_timeout,
        keep_alive: config.grpc_keep_alive,
        connections: config.grpc_connections,
        resolve_interval: config.grpc_resolve_interval,
    })?;
    let listen_error = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    // Bound first: the long-poll advertise address may stand for the port bound.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let longpoll = config
        .transports
        .contains(&Transport::Longpoll)
        .then(|| longpoll_config(&config, addr.port()))
        .transpose()?;
    let transport = TransportConfig {
        allowed_origins: AllowedOrigins::new(&config.allowed_origins, config.listen.ip()),
        max_frame_size: config.max_frame_size,
        max_connections: config.max_connections,
        limits: SocketLimits {
            idle_timeout: config.idle_timeout,
            max_channels: config.max_channels,
            channel_inbox: config.channel_inbox,
            messages_per_second: config.max_pushes_per_second,
            shutdown_close_code: config.shutdown_close_code,
            close_timeout: config.close_timeout,
        },
        // The recorder first: the endpoint takes its metric handles from it once, here.
        metrics: {
            http::metrics_handle();
            Metrics::with_prefix(METRICS_PREFIX)
        },
        websocket: config.transports.contains(&Transport::Websocket),
        longpoll,
    };
    let members = Members::new(upstream.clone(), config.presence_renew_interval);
    let rooms = Rooms::new(
        upstream.clone(),
        RoomLimits {
            presence_wait: config.grpc_request_timeout,
            presence_batch: config.presence_batch_interval,
            member_backlog: config.room_member_backlog,
        },
    );
    let router = hangman::router(upstream.clone(), members.clone(), rooms);
    let endpoint = Endpoint::new(hangman::HangmanSocket, router, transport);
    let app = endpoint
        .routes(&config.mounts)
        .merge(http::routes(upstream, &config.mounts));
    let app = http::spa(app, &config.static_dir, &config.static_path, &config.mounts);

    tracing::info!(target: service_kit::logging::LISTENING, mounts = ?config.mounts, transports = ?config.transports, game_service = %config.game_service, "listening on {addr}");

    let stop_renewals = CancellationToken::new();
    let renewals = members.run(stop_renewals.clone());
    let stop_http = CancellationToken::new();
    let limits = ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        max_pending: config.max_pending_connections,
        max_open: config.max_open_connections,
    };
    let serve = tokio::spawn(service_kit::http::serve(
        listener,
        app,
        limits,
        stop_http.clone().cancelled_owned(),
    ));
    Ok(Server {
        addr,
        endpoint,
        stop_http,
        serve,
        stop_renewals: stop_renewals.drop_guard(),
        renewals,
        drain: config.shutdown_timeout,
    })
}

/// The long-poll settings from the flags; the advertise address's port 0 becomes `port`.
fn longpoll_config(config: &Config, port: u16) -> Result<LongPollConfig, StartError> {
    let advertise = match config.longpoll_advertise.as_deref() {
        None | Some("") => None,
        Some(advertise) => {
            let (host, advertised_port) = advertise
                .rsplit_once(':')
                .filter(|(host, _)| !host.is_empty())
                .ok_or_else(|| StartError::Advertise(advertise.to_owned()))?;
            let advertised_port: u16 = advertised_port
                .parse()
                .map_err(|_| StartError::Advertise(advertise.to_owned()))?;
            let port = if advertised_port == 0 {
                port
            } else {
                advertised_port
            };
            Some(format!("{host}:{port}"))
        }
    };
    Ok(LongPollConfig {
        window: config.longpoll_window,
        expiry: config.longpoll_expiry,
        max_sessions: config.longpoll_max_sessions,
        max_body: config.longpoll_max_body,
        max_messages: config.longpoll_max_messages,
        buffer: config.longpoll_buffer,
        key: config.longpoll_secret.clone(),
        advertise,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn advertised(flag: &str) -> Result<Option<String>, StartError> {
        let config = Config::try_parse_from(["ws-gateway", "--longpoll-advertise", flag]).unwrap();
        longpoll_config(&config, 4100).map(|longpoll| longpoll.advertise)
    }

    #[test]
    fn the_advertised_address_is_host_and_port_and_port_0_is_the_port_bound() {
        assert_eq!(
            advertised("10.1.2.3:4000").unwrap().as_deref(),
            Some("10.1.2.3:4000")
        );
        assert_eq!(
            advertised("gw-0.gw:0").unwrap().as_deref(),
            Some("gw-0.gw:4100")
        );
        assert_eq!(advertised("").unwrap(), None);
        for bad in ["10.1.2.3", ":4000", "host:port", "host:70000"] {
            let err = advertised(bad).unwrap_err();
            assert!(matches!(err, StartError::Advertise(_)), "{bad}: {err}");
        }
    }
}
