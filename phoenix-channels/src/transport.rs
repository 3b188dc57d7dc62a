//! The [`Endpoint`]: what both transports share (the connect step, the sockets and their
//! shutdown, the routes of each mount), and the WebSocket transport: `GET {mount}/websocket`
//! with `vsn` negotiation, the origin check, the auth-token subprotocol, the connection cap,
//! and the upgrade into a [`Socket`]. The long-poll transport is [`crate::longpoll`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::channel::Router;
use super::longpoll::{self, LongPoll, LongPollConfig, MountState};
use super::serializer::Serializer;
use super::socket::{Socket, SocketLimits};
use super::telemetry::Metrics;
use super::wire::Wire;

/// The subprotocol the npm client offers next to its auth token.
const PHOENIX_PROTOCOL: &str = "phoenix";
/// Prefix of the subprotocol that carries the auth token: base64 without padding, in the
/// standard alphabet as the npm client sends it or in the URL-safe one (see
/// [`decode_auth_token`]).
const TOKEN_PROTOCOL_PREFIX: &str = "base64url.bearer.phx.";
/// The read buffer a connection starts with, and the most one read takes from the kernel.
/// (1 KiB before: 770 bytes more of every idle connection.)
const READ_BUFFER: usize = 256;

/// The paths of a mount's transports, `[{mount}/websocket, {mount}/longpoll]`, the mount taken
/// without its trailing '/'s (`/socket/` is `/socket`, `/` is the root). An application that
/// has routes of its own checks them against these.
pub fn mount_paths(mount: &str) -> [String; 2] {
    let mount = mount.trim_end_matches('/');
    [format!("{mount}/websocket"), format!("{mount}/longpoll")]
}

/// What the connect hook learns about a connection attempt.
#[derive(Debug, Clone, Default)]
pub struct ConnectInfo {
    /// The query parameters (the npm client's `params`, plus `vsn`).
    pub params: HashMap<String, String>,
    /// The auth token: over a WebSocket, the `base64url.bearer.phx.…` subprotocol's, decoded
    /// (standard or URL-safe base64, padded or not); over long-poll, the `x-phoenix-authtoken`
    /// header as sent (the npm client decodes it before sending). The same bytes either way.
    pub auth_token: Option<Vec<u8>>,
}

/// A socket module's `connect/3`: accepts a connection (assigning it state) or refuses it (403).
pub trait Connect: Send + Sync + 'static {
    type Assigns: Send + Sync + 'static;
    fn connect(&self, info: &ConnectInfo) -> Result<Self::Assigns, ConnectRefused>;
}

/// A refused connection; the reason is logged, the client only sees 403.
#[derive(Debug, thiserror::Error)]
#[error("connection refused: {0}")]
pub struct ConnectRefused(pub String);

/// Which browser origins may open a socket, after Phoenix's `check_origin`. The Origin header
/// is the browser's word for which page opens the socket; the Host header is not evidence of
/// anything, since a DNS-rebinding page (evil.example resolving to this server) sends
/// `Host: evil.example` with `Origin: http://evil.example`. So besides the configured list
/// only hosts the page cannot choose are allowed: loopback (`localhost`, 127.0.0.0/8, `[::1]`)
/// and the host of the listen address, on any port, as Phoenix compares the origin's host with
/// the endpoint's configured host.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    /// `*`: any origin.
    pub any: bool,
    /// Origins (`https://example.com:8443`) or bare hosts (`example.com:8443`) also allowed.
    pub list: Vec<String>,
    /// The listen address's host, when it names one (not `0.0.0.0` or `::`).
    pub listen_host: Option<IpAddr>,
}

impl AllowedOrigins {
    /// From the comma-separated flag value and the listen address.
    pub fn new(list: &[String], listen: IpAddr) -> Self {
        let list: Vec<String> = list
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        AllowedOrigins {
            any: list.iter().any(|o| o == "*"),
            list,
            listen_host: (!listen.is_unspecified()).then_some(listen),
        }
    }

    /// Whether a request's Origin is allowed. None at all is (a non-browser client: the check
    /// protects browsers' users). More than one is refused, even with `*`: browsers never send
    /// two, and checking one of them would let the other through unchecked.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let Some(origin) = origins.next() else {
            return true;
        };
        if origins.next().is_some() {
            return false;
        }
        self.any || origin.to_str().is_ok_and(|o| self.allows_origin(o))
    }

    fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        // `null` (sandboxed frames, file: pages) and anything else without a scheme: refused.
        let Some((_, authority)) = origin.split_once("://") else {
            return false;
        };
        let host = host_of(authority);
        let ip = host.parse::<IpAddr>().ok();
        host == "localhost"
            || ip.is_some_and(|ip| ip.is_loopback() || Some(ip) == self.listen_host)
            || self
                .list
                .iter()
                .any(|allowed| *allowed == origin || allowed.trim_start_matches("//") == authority)
    }
}

/// The host of `host[:port]` or `[v6][:port]`, without brackets or port.
fn host_of(authority: &str) -> &str {
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed
            .split_once(']')
            .map_or(authority, |(host, _)| host);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Transport settings shared by every mount.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub allowed_origins: AllowedOrigins,
    pub max_frame_size: usize,
    pub max_connections: usize,
    pub limits: SocketLimits,
    /// The metrics recorded, under the names the user chose.
    pub metrics: Metrics,
    /// Whether `GET {mount}/websocket` upgrades. Off, it answers 404, and a client that can
    /// falls back to long-poll (a test of that fallback needs a server that refuses).
    pub websocket: bool,
    /// The long-poll transport at `{mount}/longpoll`, when on.
    pub longpoll: Option<LongPollConfig>,
}

/// Why a connection (or long-poll session) is refused: 403, or 503 for now.
pub(crate) enum Refusal {
    Forbidden(String),
    Unavailable(&'static str),
}

/// A Phoenix endpoint: a connect hook, a topic router and the transport settings.
pub struct Endpoint<C: Connect> {
    connect: C,
    router: Arc<Router<C::Assigns>>,
    pub(crate) config: TransportConfig,
    limits: Arc<SocketLimits>,
    pub(crate) metrics: Arc<Metrics>,
    connections: AtomicUsize,
    pub(crate) longpoll: Option<LongPoll>,
    shutdown: CancellationToken,
    sockets: TaskTracker,
}

impl<C: Connect> Endpoint<C> {
    pub fn new(connect: C, router: Router<C::Assigns>, mut config: TransportConfig) -> Arc<Self> {
        Arc::new(Endpoint {
            connect,
            router: Arc::new(router),
            limits: Arc::new(config.limits.clone()),
            metrics: Arc::new(config.metrics.clone()),
            // Moved, not copied: `LongPoll` keeps the settings it uses (a window it may have
            // shortened, the key), and nothing reads them from `config`.
            longpoll: config
                .longpoll
                .take()
                .map(|longpoll| LongPoll::new(longpoll, config.limits.idle_timeout)),
            config,
            connections: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            sockets: TaskTracker::new(),
        })
    }

    /// `GET {mount}/websocket` and, with long-poll on, `GET`/`POST {mount}/longpoll`, for each
    /// mount (the paths of [`mount_paths`]). Like axum's own routing, it panics on a mount that
    /// is not a plain path starting with '/', and on two mounts with the same paths: an
    /// application checks its mounts first.
    pub fn routes<S: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        mounts: &[String],
    ) -> axum::Router<S> {
        let mut router = axum::Router::new();
        for mount in mounts {
            let [websocket, longpoll_path] = mount_paths(mount);
            let mount = mount.trim_end_matches('/');
            router = if self.config.websocket {
                router.route(&websocket, get(upgrade::<C>).with_state(Arc::clone(self)))
            } else {
                let off = format!("the WebSocket transport is off here: use {longpoll_path}\n");
                router.route(
                    &websocket,
                    get(|| async move { (StatusCode::NOT_FOUND, off) }),
                )
            };
            if self.longpoll.is_some() {
                let state: MountState<C> = (Arc::clone(self), Arc::from(mount));
                let serve = get(longpoll::serve::<C>)
                    .post(longpoll::serve::<C>)
                    .options(longpoll::serve::<C>);
                router = router.route(&longpoll_path, serve.with_state(state));
            }
        }
        router
    }

    /// WebSocket connections open right now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Long-poll sessions open right now.
    pub fn longpoll_sessions(&self) -> usize {
        self.longpoll.as_ref().map_or(0, LongPoll::open_sessions)
    }

    /// The connect step both transports take: the serializer `vsn` asks for, and the
    /// [`Connect`] hook's assigns.
    pub(crate) fn accept(
        &self,
        info: &ConnectInfo,
    ) -> Result<(Serializer, Arc<C::Assigns>), Refusal> {
        let Some(serializer) = Serializer::for_vsn(info.params.get("vsn").map(String::as_str))
        else {
            return Err(Refusal::Forbidden(
                "unsupported vsn: this server speaks 1.0.0 and 2.0.0".into(),
            ));
        };
        let assigns = self
            .connect
            .connect(info)
            .map_err(|refused| Refusal::Forbidden(refused.to_string()))?;
        if self.shutdown.is_cancelled() {
            return Err(Refusal::Unavailable("server shutting down"));
        }
        Ok((serializer, Arc::new(assigns)))
    }

    /// Runs a socket over the wire `connected` gives, until it closes; `slot` (what counts
    /// it) is dropped last. The task is tracked from now: a shutdown waits for a connection
    /// still being handed over, too.
    pub(crate) fn spawn_socket(
        &self,
        serializer: Serializer,
        assigns: Arc<C::Assigns>,
        connected: Pin<Box<dyn Future<Output = Option<Wire>> + Send>>,
        slot: impl Send + 'static,
    ) {
        let (socket, outbox) = Socket::new(
            serializer,
            assigns,
            Arc::clone(&self.router),
            Arc::clone(&self.limits),
            Arc::clone(&self.metrics),
        );
        let run = socket.run(connected, outbox, self.shutdown.clone(), slot);
        tokio::spawn(self.sockets.track_future(run));
    }

    /// Closes every socket (with the configured 1001/1012 code) and waits for them to end.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.sockets.close();
        self.sockets.wait().await;
    }
}

/// Counts a connection for as long as it lives.
struct ConnectionSlot<C: Connect>(Arc<Endpoint<C>>);

impl<C: Connect> ConnectionSlot<C> {
    fn acquire(endpoint: &Arc<Endpoint<C>>) -> Option<Self> {
        let max = endpoint.config.max_connections;
        endpoint
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        endpoint.metrics.connections.increment(1);
        Some(ConnectionSlot(Arc::clone(endpoint)))
    }
}

impl<C: Connect> Drop for ConnectionSlot<C> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connections.decrement(1);
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    tracing::info!(%status, why, "websocket connection refused");
    (status, format!("{why}\n")).into_response()
}

/// An upgraded connection: tungstenite over the raw HTTP/1.1 connection. The upgrade is done
/// here rather than by axum's `WebSocketUpgrade` because axum's socket hides the raw stream, and
/// after a protocol error the socket must read (and discard) raw bytes: tungstenite's reader
/// is then unusable, possibly in the middle of a frame (see `Socket::run`).
pub(crate) type WsStream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The opening handshake of RFC 6455 §4.2.1, HTTP/1.1 only (the server does not offer
/// WebSockets over HTTP/2): what was wrong, or the client's key and the connection's upgrade.
fn handshake(
    request: &mut Request,
) -> Result<(HeaderValue, OnUpgrade), (StatusCode, &'static str)> {
    let headers = request.headers();
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if request.version() > Version::HTTP_11 {
        return Err((
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "WebSockets need HTTP/1.1",
        ));
    }
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint: Connection: upgrade and Upgrade: websocket needed",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13"));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key missing"));
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        ));
    };
    Ok((key, on_upgrade))
}

/// The subprotocols the client offers, in order (`Sec-WebSocket-Protocol`, comma-separated,
/// possibly over several headers).
fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

async fn upgrade<C: Connect>(
    State(endpoint): State<Arc<Endpoint<C>>>,
    Query(params): Query<HashMap<String, String>>,
    mut request: Request,
) -> Response {
    let (key, on_upgrade) = match handshake(&mut request) {
        Ok(handshake) => handshake,
        Err((status, why)) => return refuse(status, why),
    };
    let headers = request.headers();
    if !endpoint.config.allowed_origins.allows(headers) {
        return refuse(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let auth_token = match auth_token(headers) {
        Ok(token) => token,
        Err(why) => return refuse(StatusCode::FORBIDDEN, why),
    };
    let phoenix_offered = offered_protocols(headers).any(|p| p == PHOENIX_PROTOCOL);
    let info = ConnectInfo { params, auth_token };
    let (serializer, assigns) = match endpoint.accept(&info) {
        Ok(accepted) => accepted,
        Err(Refusal::Forbidden(why)) => return refuse(StatusCode::FORBIDDEN, &why),
        Err(Refusal::Unavailable(why)) => return refuse(StatusCode::SERVICE_UNAVAILABLE, why),
    };
    let Some(slot) = ConnectionSlot::acquire(&endpoint) else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
    };
    let max = endpoint.config.max_frame_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // Small buffers keep idle connections cheap. tungstenite keeps its read buffer for the
        // connection's life, so it starts at READ_BUFFER (a client's messages are a few dozen
        // bytes) and grows for a larger message, which is then read in READ_BUFFER pieces.
        // Frames are written when the socket flushes (a reply and its `tally` push leave in
        // one write), or as soon as 4 KiB are waiting; the write buffer is not allocated ahead.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(4096);
    // The socket's task is its `run` alone, handed the upgrade to await first (boxed, and
    // gone once done): a task around `run` would keep what it moved into `run` twice.
    let upgraded = Box::pin(async move {
        // hyper hands the connection over once the 101 below is written.
        match on_upgrade.await {
            Ok(upgraded) => Some(Wire::WebSocket(
                WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await,
            )),
            Err(err) => {
                tracing::debug!(%err, "websocket upgrade failed");
                None
            }
        }
    });
    endpoint.spawn_socket(serializer, assigns, upgraded, slot);

    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let accept = derive_accept_key(key.as_bytes());
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if phoenix_offered {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(PHOENIX_PROTOCOL),
        );
    }
    response
}

/// The token of the `base64url.bearer.phx.<token>` subprotocol, when the client offers one,
/// decoded by [`decode_auth_token`].
fn auth_token(headers: &HeaderMap) -> Result<Option<Vec<u8>>, &'static str> {
    let mut token = None;
    for protocol in offered_protocols(headers) {
        if let Some(encoded) = protocol.strip_prefix(TOKEN_PROTOCOL_PREFIX) {
            token = Some(decode_auth_token(encoded).ok_or("auth token is not base64")?);
        }
    }
    Ok(token)
}

/// Decodes the token of a `base64url.bearer.phx.<token>` subprotocol. The npm client encodes
/// it with `btoa(token).replace(/=/g, "")`, the *standard* alphabet ('+', '/') without padding
/// whatever the prefix says, and Phoenix decodes it so (`Base.decode64!(t, padding: false)`);
/// a client that follows the prefix's name sends the URL-safe alphabet ('-', '_'). Both are
/// taken, padded or not. (Over long-poll the npm client sends the token itself, decoded, in
/// `x-phoenix-authtoken`, which is taken as it is.)
fn decode_auth_token(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let unpadded = encoded.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origins: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for origin in origins {
            headers.append(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    fn allows(allowed: &AllowedOrigins, origin: &str) -> bool {
        allowed.allows(&headers(&[origin]))
    }

    #[test]
    fn by_default_only_loopback_and_the_listen_host() {
        let default = AllowedOrigins::new(&[], "0.0.0.0".parse().unwrap());
        assert!(default.allows(&headers(&[])), "no Origin header");
        for allowed in [
            "http://localhost:4000",
            "http://LOCALHOST",
            "http://127.0.0.1:4000",
            "http://127.1.2.3:5173/",
            "http://[::1]:4000",
        ] {
            assert!(allows(&default, allowed), "{allowed}");
        }
        for refused in [
            "http://evil.example",
            "http://0.0.0.0:4000",
            "http://192.168.1.5:4000",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "null",
            "localhost:4000",
        ] {
            assert!(!allows(&default, refused), "{refused}");
        }
        let on_lan = AllowedOrigins::new(&[], "192.168.1.5".parse().unwrap());
        assert!(allows(&on_lan, "http://192.168.1.5:4000"));
        assert!(!allows(&on_lan, "http://192.168.1.6:4000"));
    }

    #[test]
    fn configured_origins_and_hosts_are_allowed_too() {
        let list = AllowedOrigins::new(
            &["https://app.example/".into(), "other.example:8443".into()],
            "0.0.0.0".parse().unwrap(),
        );
        assert!(allows(&list, "https://app.example"));
        assert!(!allows(&list, "http://app.example"));
        assert!(allows(&list, "https://other.example:8443"));
        assert!(!allows(&list, "https://other.example"));
        assert!(allows(&list, "http://localhost:4000"));
        let any = AllowedOrigins::new(&["*".into()], "127.0.0.1".parse().unwrap());
        assert!(allows(&any, "http://any.where"));
    }

    #[test]
    fn two_origin_headers_are_refused() {
        let any = AllowedOrigins::new(&["*".into()], "127.0.0.1".parse().unwrap());
        let default = AllowedOrigins::new(&[], "127.0.0.1".parse().unwrap());
        for allowed in [&any, &default] {
            let two = headers(&["http://localhost:4000", "http://evil.example"]);
            assert!(!allowed.allows(&two));
        }
    }
}
