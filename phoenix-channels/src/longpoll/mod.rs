//! The long-poll transport, `GET`/`POST {mount}/longpoll`, as Phoenix's
//! `Phoenix.Transports.LongPoll` and the npm client's `LongPoll` speak it: for clients whose
//! network refuses WebSockets (the npm client falls back to it by itself with
//! `longPollFallbackMs`).
//!
//! - `GET` without a token opens a session (the same `vsn`, origin check, params, auth token
//!   and [`Connect`] hook as a WebSocket) and answers `{"status": 410, "token": ...}`.
//! - `GET` with the token waits up to the poll window for the socket's messages:
//!   `{"status": 200, "token", "messages": [...]}`, or `{"status": 204, ...}` with none.
//! - `POST` with the token carries the client's messages, one per line
//!   (`application/x-ndjson`); `{"status": 200}` once the socket has them.
//! - A token that is forged, for another key or mount, expired, or of a session that has
//!   ended: a `GET` opens a new session, as in Phoenix; a `POST` gets `{"status": 410,
//!   "reason"}`. Either way the client, holding a token, opens a new session and rejoins.
//!
//! Statuses travel in the body over HTTP 200, as the npm client reads them. The token goes in
//! the query (npm `phoenix` 1.8) or the `x-phoenix-longpoll-token` header (1.9).
//!
//! A session runs the very socket a WebSocket connection runs ([`crate::wire`]); this module
//! only adds the HTTP side, the sessions' registry and their limits. Modules:
//! - `session`: one session's buffer, polls and expiry;
//! - `token`: signed tokens;
//! - `forward`: requests for a session another replica holds.

mod forward;
mod session;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::transport::{Connect, ConnectInfo, Endpoint, Refusal};
use super::wire::Wire;
use forward::{FORWARDED, Forwarder};
pub(crate) use session::SessionWire;
use session::{Polled, Session};
pub use token::MIN_KEY_LEN;
use token::{Claims, Key, SessionId};

/// The header a 1.9 client sends its token in (1.8 sends it in the query, as `token`).
const TOKEN_HEADER: &str = "x-phoenix-longpoll-token";
/// The header the npm client sends its auth token in over long-poll.
const AUTH_TOKEN_HEADER: &str = "x-phoenix-authtoken";

/// The long-poll transport's settings.
#[derive(Debug, Clone)]
pub struct LongPollConfig {
    /// How long a poll waits for messages before answering 204 (Phoenix: 10 s). A poll's
    /// start and end are its session's signs of life for the socket's idle timeout, so the
    /// window must be shorter than that: the endpoint shortens it to half the idle timeout
    /// if it is not, with a warning.
    pub window: Duration,
    /// A session with no poll waiting ends once none has come for this long.
    pub expiry: Duration,
    /// Sessions open at once on this server; more get HTTP 503.
    pub max_sessions: usize,
    /// The largest POST body, in bytes; larger gets HTTP 413.
    pub max_body: usize,
    /// The most messages (lines) one POST carries; more gets HTTP 400.
    pub max_messages: usize,
    /// Messages a session keeps for its client between polls; a client that lets it fill is
    /// treated as a WebSocket client that stops reading.
    pub buffer: usize,
    /// The key tokens are signed with; `None`: a random one, this process's alone.
    pub key: Option<SigningKey>,
    /// The address (`host:port`) other replicas reach this one at. When set, the tokens
    /// this server makes name it, and a request for a session another replica holds is
    /// forwarded there; when not, such a request is answered 410.
    pub advertise: Option<String>,
}

/// Phoenix's window and expiry, ws-gateway's limits, a random key, no forwarding.
impl Default for LongPollConfig {
    fn default() -> Self {
        LongPollConfig {
            window: Duration::from_secs(10),
            expiry: Duration::from_secs(15),
            max_sessions: 10_000,
            max_body: 1024 * 1024,
            max_messages: 100,
            buffer: 256,
            key: None,
            advertise: None,
        }
    }
}

/// A secret to sign tokens with, at least [`MIN_KEY_LEN`] bytes. (Its `Debug` hides it.)
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

/// A signing key that is too short to resist guessing.
#[derive(Debug, thiserror::Error)]
#[error("the long-poll signing key must be at least {MIN_KEY_LEN} bytes")]
pub struct KeyTooShort;

impl SigningKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, KeyTooShort> {
        let secret = secret.into();
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyTooShort);
        }
        Ok(SigningKey(secret))
    }

    fn random() -> Self {
        SigningKey(rand::random::<[u8; 32]>().to_vec())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// An endpoint's long-poll sessions.
pub(crate) struct LongPoll {
    config: LongPollConfig,
    key: Key,
    /// The address tokens name as the holder (empty: none advertised).
    holder: String,
    sessions: Mutex<HashMap<SessionId, Arc<Session>>>,
    forwarder: Option<Forwarder>,
}

impl LongPoll {
    pub(crate) fn new(mut config: LongPollConfig, idle_timeout: Duration) -> Self {
        if config.window >= idle_timeout {
            let window = idle_timeout / 2;
            tracing::warn!(
                configured = ?config.window,
                ?window,
                "the long-poll window must be shorter than the idle timeout, or a client \
                 waiting in a poll would be taken for idle: shortened"
            );
            config.window = window;
        }
        let key = config.key.clone().unwrap_or_else(|| {
            tracing::warn!(
                "no long-poll signing key given: using a random one, so sessions do not \
                 survive a restart and no other replica can resume them"
            );
            SigningKey::random()
        });
        // A poll may take its window before the holder begins to answer.
        let forwarder = config
            .advertise
            .is_some()
            .then(|| Forwarder::new(config.window + Duration::from_secs(5)));
        LongPoll {
            key: Key::new(&key.0),
            holder: config.advertise.clone().unwrap_or_default(),
            sessions: Mutex::new(HashMap::new()),
            forwarder,
            config,
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<SessionId, Arc<Session>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sessions open right now.
    pub(crate) fn open_sessions(&self) -> usize {
        self.sessions().len()
    }

    /// How old a token may be. Every poll's answer carries a new one, so a live client's is
    /// never older than about two windows; past its session's expiry it resumes nothing, and
    /// an old token must not keep naming an address to forward to (a pod's IP is reused).
    fn token_max_age(&self) -> Duration {
        self.config.window * 2 + self.config.expiry
    }

    fn sign(&self, mount: &str, session: SessionId) -> String {
        let claims = Claims {
            session,
            holder: self.holder.clone(),
            issued_at: token::now(),
        };
        self.key.sign(mount, &claims)
    }

    /// Where a request's token leads.
    fn resume(&self, mount: &str, token: Option<&str>) -> Resumed {
        let Some(token) = token else {
            return Resumed::Nowhere("no session token: open a session with a GET first".into());
        };
        let claims = match self.key.verify(mount, token, self.token_max_age()) {
            Ok(claims) => claims,
            Err(invalid) => {
                tracing::debug!(%invalid, "long-poll token refused");
                return Resumed::Nowhere(invalid.to_string());
            }
        };
        if claims.holder != self.holder {
            return Resumed::Elsewhere(claims);
        }
        match self.sessions().get(&claims.session) {
            Some(session) => Resumed::Here(Arc::clone(session), claims.session),
            None => Resumed::Nowhere(
                "the session has ended (expired, closed, or the server restarted)".into(),
            ),
        }
    }
}

/// Keeps a session in its endpoint's registry, and counted, for as long as its socket runs.
struct SessionSlot<C: Connect> {
    endpoint: Arc<Endpoint<C>>,
    id: SessionId,
}

impl<C: Connect> Drop for SessionSlot<C> {
    fn drop(&mut self) {
        if let Some(longpoll) = &self.endpoint.longpoll {
            longpoll.sessions().remove(&self.id);
            self.endpoint.metrics.longpoll_sessions.decrement(1);
        }
    }
}

/// The state of one mount's route: its endpoint, and the mount its tokens are bound to.
pub(crate) type MountState<C> = (Arc<Endpoint<C>>, Arc<str>);

/// `GET`, `POST` and `OPTIONS` (CORS preflight) `{mount}/longpoll`.
pub(crate) async fn serve<C: Connect>(
    State((endpoint, mount)): State<MountState<C>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if !endpoint.config.allowed_origins.allows(&parts.headers) {
        return answer(
            StatusCode::OK,
            json!({"status": 403, "reason": "origin not allowed"}),
        );
    }
    let mut response = match parts.method {
        Method::GET | Method::POST => handle(&endpoint, &mount, &parts, body).await,
        Method::OPTIONS => preflight(),
        // axum answers HEAD with the GET route: it must open no session.
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    // An allowed origin other than the page's own may read the answer (CORS); with none,
    // the browser keeps it from the page.
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// A browser's preflight of a cross-origin poll or POST (its headers are not CORS-safe).
fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, x-phoenix-authtoken, x-phoenix-longpoll-token"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("3600"),
    );
    response
}

/// Where a request's token leads.
enum Resumed {
    /// A session of this server.
    Here(Arc<Session>, SessionId),
    /// A session another replica holds.
    Elsewhere(Claims),
    /// No session: no token, a token refused, or its session ended (said why).
    Nowhere(String),
}

async fn handle<C: Connect>(
    endpoint: &Arc<Endpoint<C>>,
    mount: &str,
    parts: &Parts,
    body: Body,
) -> Response {
    let longpoll = endpoint
        .longpoll
        .as_ref()
        .expect("routed only with long-poll on");
    let Ok(Query(params)) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"status": 400, "reason": "the query string cannot be read"}),
        );
    };
    let token = parts
        .headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(params.get("token").map(String::as_str))
        .filter(|t| !t.is_empty());
    let resumed = longpoll.resume(mount, token);
    if parts.method == Method::GET {
        // As Phoenix: a GET that resumes nothing opens a session. (A client holding a token
        // takes the answer's 410 as its session gone, and reconnects.)
        return match resumed {
            Resumed::Here(session, id) => poll(longpoll, mount, &session, id).await,
            Resumed::Elsewhere(claims) => {
                match forward(longpoll, &claims, parts, Bytes::new()).await {
                    Ok(answer) => answer,
                    Err(_) => open(endpoint, mount, params, &parts.headers),
                }
            }
            Resumed::Nowhere(_) => open(endpoint, mount, params, &parts.headers),
        };
    }
    if let Resumed::Nowhere(why) = &resumed {
        return gone(why);
    }
    // One POST of a session at a time, its body read within the window: a client that sends
    // more at once, or a body slowly, holds no more than that.
    let _posting = match &resumed {
        Resumed::Here(session, _) => match session.begin_post() {
            Some(posting) => Some(posting),
            None => {
                return answer(
                    StatusCode::CONFLICT,
                    json!({"status": 409, "reason": "another POST of this session is in flight"}),
                );
            }
        },
        _ => None,
    };
    let read = read_body(body, &parts.headers, longpoll.config.max_body);
    let body = match tokio::time::timeout(longpoll.config.window, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(refused)) => return refused,
        Err(_) => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                json!({"status": 408, "reason": "the body did not arrive within the poll window"}),
            );
        }
    };
    match &resumed {
        Resumed::Here(session, _) => publish(endpoint, session, &parts.headers, &body).await,
        Resumed::Elsewhere(claims) => forward(longpoll, claims, parts, body)
            .await
            .unwrap_or_else(|why| gone(&why)),
        Resumed::Nowhere(why) => gone(why),
    }
}

/// Opens a session, as a WebSocket upgrade opens a connection.
fn open<C: Connect>(
    endpoint: &Arc<Endpoint<C>>,
    mount: &str,
    params: HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let longpoll = endpoint.longpoll.as_ref().expect("long-poll on");
    let auth_token = headers
        .get(AUTH_TOKEN_HEADER)
        .map(|token| token.as_bytes().to_vec());
    let info = ConnectInfo { params, auth_token };
    let (serializer, assigns) = match endpoint.accept(&info) {
        Ok(accepted) => accepted,
        Err(Refusal::Forbidden(why)) => {
            tracing::info!(why, "long-poll session refused");
            return answer(StatusCode::OK, json!({"status": 403, "reason": why}));
        }
        Err(Refusal::Unavailable(why)) => return unavailable(why),
    };
    let id: SessionId = rand::random();
    let config = &longpoll.config;
    let (session, wire) = Session::new(
        config.buffer,
        config.expiry,
        config.window.min(config.expiry),
    );
    {
        let mut sessions = longpoll.sessions();
        if sessions.len() >= longpoll.config.max_sessions {
            return unavailable("too many long-poll sessions");
        }
        sessions.insert(id, session);
    }
    endpoint.metrics.longpoll_sessions.increment(1);
    let slot = SessionSlot {
        endpoint: Arc::clone(endpoint),
        id,
    };
    let connected = Box::pin(async move { Some(Wire::LongPoll(wire)) });
    endpoint.spawn_socket(serializer, assigns, connected, slot);
    let token = longpoll.sign(mount, id);
    answer(
        StatusCode::OK,
        json!({"status": 410, "token": token, "messages": []}),
    )
}

/// Waits for the session's messages; the answer carries a new token (the client keeps the
/// token of every answer).
async fn poll(longpoll: &LongPoll, mount: &str, session: &Session, id: SessionId) -> Response {
    let (status, messages) = match session.poll(longpoll.config.window).await {
        Polled::Messages(messages) => (200, messages),
        Polled::Nothing => (204, Vec::new()),
        Polled::Gone => return gone("the session has ended"),
    };
    let token = longpoll.sign(mount, id);
    let messages: Vec<&str> = messages.iter().map(|m| m.as_str()).collect();
    answer(
        StatusCode::OK,
        json!({"status": status, "token": token, "messages": messages}),
    )
}

/// Hands a POST's messages to the session's socket. Every line is checked before any is
/// handed over, so a refused body changes nothing.
async fn publish<C: Connect>(
    endpoint: &Endpoint<C>,
    session: &Session,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let longpoll = endpoint.longpoll.as_ref().expect("long-poll on");
    let messages = match client_messages(
        body,
        headers,
        longpoll.config.max_messages,
        endpoint.config.max_frame_size,
    ) {
        Ok(messages) => messages,
        Err((status, why)) => {
            return answer(status, json!({"status": status.as_u16(), "reason": why}));
        }
    };
    let deliver = async {
        for message in messages {
            session.deliver(message).await?;
        }
        Ok(())
    };
    match tokio::time::timeout(longpoll.config.window, deliver).await {
        Ok(Ok(())) => answer(StatusCode::OK, json!({"status": 200})),
        Ok(Err(session::Gone)) => gone("the session has ended"),
        Err(_) => answer(
            StatusCode::OK,
            json!({"status": 408, "reason": "the session took no message within the poll window"}),
        ),
    }
}

/// A POST body's messages: one per line of `application/x-ndjson` (empty lines skipped), the
/// whole body otherwise. A JSON line is a text message; any other is the base64 of a binary
/// one, as the npm client sends an `ArrayBuffer`. A line that is neither reaches the socket as
/// text, whose decoder answers it `invalid_message`, as it would a bad WebSocket frame.
fn client_messages(
    body: &[u8],
    headers: &HeaderMap,
    max_messages: usize,
    max_message_size: usize,
) -> Result<Vec<Message>, (StatusCode, String)> {
    let Ok(body) = std::str::from_utf8(body) else {
        return Err((StatusCode::BAD_REQUEST, "the body is not UTF-8".into()));
    };
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    let lines: Vec<&str> = if ndjson {
        body.lines().filter(|line| !line.is_empty()).collect()
    } else {
        vec![body]
    };
    if lines.len() > max_messages {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("more than {max_messages} messages in one request"),
        ));
    }
    if lines.iter().any(|line| line.len() > max_message_size) {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a message over {max_message_size} bytes"),
        ));
    }
    Ok(lines
        .into_iter()
        .map(|line| {
            let binary = (!line.starts_with(['[', '{']))
                .then(|| base64::engine::general_purpose::STANDARD.decode(line).ok())
                .flatten();
            match binary {
                Some(bytes) => Message::Binary(bytes.into()),
                None => Message::Text(line.to_owned().into()),
            }
        })
        .collect())
}

/// A POST's body, at most `max` bytes.
async fn read_body(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, Response> {
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"status": 413, "reason": format!("the body is over {max} bytes")}),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())
}

/// Sends a request for a session another replica holds to that replica; or says why not.
async fn forward(
    longpoll: &LongPoll,
    claims: &Claims,
    parts: &Parts,
    body: Bytes,
) -> Result<Response, String> {
    let Some(forwarder) = &longpoll.forwarder else {
        return Err("the session is held by another replica, and this one forwards nothing".into());
    };
    if parts.headers.contains_key(FORWARDED) {
        return Err("the session is not held here (request already forwarded once)".into());
    }
    forwarder
        .forward(&claims.holder, parts, body)
        .await
        .map_err(|err| {
            tracing::info!(%err, holder = %claims.holder, "long-poll request not forwarded");
            err.to_string()
        })
}

/// A session that is not (or no longer) here: the client opens a new one.
fn gone(reason: &str) -> Response {
    answer(StatusCode::OK, json!({"status": 410, "reason": reason}))
}

/// Refused for now (too many sessions, shutting down): HTTP 503 with a plain-text body, which
/// the npm client treats as a network error and retries with its backoff. (A status in a JSON
/// body it does not know would throw in its poll loop.)
fn unavailable(why: &str) -> Response {
    tracing::info!(why, "long-poll session refused");
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    // Polls must never come from a cache (Phoenix 1.9 says so too).
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        headers
    }

    #[test]
    fn a_batch_is_one_message_per_line_json_as_text_and_base64_as_binary() {
        let body = b"[null,\"1\",\"phoenix\",\"heartbeat\",{}]\n\nAAEC\r\n{\"topic\":\"t\"}";
        let messages = client_messages(body, &ndjson(), 10, 100).unwrap();
        assert_eq!(
            messages,
            [
                Message::Text("[null,\"1\",\"phoenix\",\"heartbeat\",{}]".into()),
                Message::Binary(vec![0, 1, 2].into()),
                Message::Text("{\"topic\":\"t\"}".into()),
            ]
        );
        let whole = client_messages(b"a\nb", &HeaderMap::new(), 10, 100).unwrap();
        assert_eq!(whole, [Message::Text("a\nb".into())]);
        // Neither JSON nor base64: text, for the decoder to refuse.
        let bad = client_messages(b"not json!", &ndjson(), 10, 100).unwrap();
        assert_eq!(bad, [Message::Text("not json!".into())]);
    }

    #[test]
    fn too_many_lines_a_line_too_long_or_no_utf8_refuse_the_whole_body() {
        let (status, _) = client_messages(b"[1]\n[2]\n[3]", &ndjson(), 2, 100).unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = client_messages(b"[1]\n[22222]", &ndjson(), 10, 4).unwrap_err();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _) = client_messages(b"[\xff]", &ndjson(), 10, 100).unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
