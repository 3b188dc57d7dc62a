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
//! - A token that is forged, for another key or mount, or of a session that has ended:
//!   `{"status": 410, "reason"}`; the client then opens a new session and rejoins.
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

/// `GET` and `POST {mount}/longpoll`.
pub(crate) async fn serve<C: Connect>(
    State((endpoint, mount)): State<MountState<C>>,
    request: Request,
) -> Response {
    let longpoll = endpoint
        .longpoll
        .as_ref()
        .expect("routed only with long-poll on");
    let (parts, body) = request.into_parts();
    if !endpoint.config.allowed_origins.allows(&parts.headers) {
        return answer(
            StatusCode::OK,
            json!({"status": 403, "reason": "origin not allowed"}),
        );
    }
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
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let Some(token) = token else {
        return match parts.method {
            Method::GET => open(&endpoint, &mount, params, &parts.headers),
            _ => gone("no session token: open a session with a GET first"),
        };
    };
    let claims = match longpoll.key.verify(&mount, &token) {
        Ok(claims) => claims,
        Err(invalid) => {
            tracing::debug!(%invalid, "long-poll token refused");
            return gone(&invalid.to_string());
        }
    };
    let body = match read_body(parts.method == Method::POST, body, &parts.headers, longpoll).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    if claims.holder != longpoll.holder {
        return forward(longpoll, &claims, &parts, body).await;
    }
    let Some(session) = longpoll.sessions().get(&claims.session).cloned() else {
        return gone("the session has ended (expired, closed, or the server restarted)");
    };
    match parts.method {
        Method::GET => poll(&session, longpoll.config.window, &token).await,
        _ => publish(&endpoint, &session, &parts.headers, &body).await,
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
    let (session, wire) = Session::new(longpoll.config.buffer, longpoll.config.expiry);
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
    let token = longpoll.key.sign(
        mount,
        &Claims {
            session: id,
            holder: longpoll.holder.clone(),
        },
    );
    answer(
        StatusCode::OK,
        json!({"status": 410, "token": token, "messages": []}),
    )
}

async fn poll(session: &Session, window: Duration, token: &str) -> Response {
    let (status, messages) = match session.poll(window).await {
        Polled::Messages(messages) => (200, messages),
        Polled::Nothing => (204, Vec::new()),
        Polled::Gone => return gone("the session has ended"),
    };
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

/// A POST's body, at most `max_body` bytes; a GET's is ignored.
async fn read_body(
    post: bool,
    body: Body,
    headers: &HeaderMap,
    longpoll: &LongPoll,
) -> Result<Bytes, Response> {
    if !post {
        return Ok(Bytes::new());
    }
    let max = longpoll.config.max_body;
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

/// Sends a request for a session another replica holds to that replica.
async fn forward(longpoll: &LongPoll, claims: &Claims, parts: &Parts, body: Bytes) -> Response {
    let Some(forwarder) = &longpoll.forwarder else {
        return gone("the session is held by another replica, and this one forwards nothing");
    };
    if parts.headers.contains_key(FORWARDED) {
        return gone("the session is not held here (request already forwarded once)");
    }
    match forwarder.forward(&claims.holder, parts, body).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::info!(%err, holder = %claims.holder, "long-poll request not forwarded");
            gone(&err.to_string())
        }
    }
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
