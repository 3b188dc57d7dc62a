//! The game service, seen from the gateway: one shared gRPC channel (HTTP/2, multiplexed) to
//! `hangman.v1.HangmanService`, with connect and request timeouts, a W3C `traceparent` on every
//! call, and errors reduced to the stable reasons the channels reply with.

mod transport;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hangman_proto::v1::hangman_service_client::HangmanServiceClient;
use hangman_proto::v1::{
    CreateGameRequest, CreateGameResponse, GetGameRequest, GetGameResponse, MakeMoveRequest,
    MakeMoveResponse, Tally, WatchGameRequest,
};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http_body_util::BodyExt;
use rand::Rng;
use tonic::metadata::MetadataValue;
use tonic::transport::Uri;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
pub use transport::{H2Config, H2Transport};

/// Why a call to the game service failed, as a channel reply `reason`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    #[error("game not found")]
    NotFound,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the game service holds its maximum number of games")]
    GameLimit,
    #[error("game service unavailable: {0}")]
    Unavailable(String),
}

impl UpstreamError {
    /// The stable `reason` clients see.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::NotFound => "not_found",
            UpstreamError::InvalidArgument(_) => "invalid_guess",
            UpstreamError::GameLimit => "game_limit",
            UpstreamError::Unavailable(_) => "unavailable",
        }
    }

    fn from_status(status: &Status) -> Self {
        match status.code() {
            Code::NotFound => UpstreamError::NotFound,
            Code::InvalidArgument => UpstreamError::InvalidArgument(status.message().to_owned()),
            Code::ResourceExhausted => UpstreamError::GameLimit,
            _ => UpstreamError::Unavailable(format!("{}: {}", status.code(), status.message())),
        }
    }
}

/// A W3C trace: one per socket connection; every call is a new span (parent id) in it, so the
/// gateway's and the game service's logs can be joined on the trace id.
#[derive(Debug, Clone, Copy)]
pub struct Trace {
    trace_id: u128,
}

impl Trace {
    pub fn new() -> Self {
        // An all-zero trace id is invalid in W3C Trace Context.
        Trace {
            trace_id: rand::rng().random::<u128>().max(1),
        }
    }

    /// The trace id as the 32 hex digits logs show.
    pub fn id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// A `traceparent` for one call: `00-<trace id>-<new span id>-01`.
    pub fn traceparent(&self) -> String {
        let span_id = rand::rng().random::<u64>().max(1);
        format!("00-{:032x}-{span_id:016x}-01", self.trace_id)
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

/// A gRPC method the gateway calls, with its latency histogram (looked up once, not per call).
struct Method {
    name: &'static str,
    /// `/package.Service/Method`.
    path: &'static str,
    seconds: OnceLock<metrics::Histogram>,
}

impl Method {
    const fn new(name: &'static str, path: &'static str) -> Self {
        Method {
            name,
            path,
            seconds: OnceLock::new(),
        }
    }

    fn seconds(&self) -> &metrics::Histogram {
        self.seconds.get_or_init(
            || metrics::histogram!("ws_gateway_upstream_seconds", "method" => self.name),
        )
    }
}

static CREATE_GAME: Method = Method::new("CreateGame", "/hangman.v1.HangmanService/CreateGame");
static GET_GAME: Method = Method::new("GetGame", "/hangman.v1.HangmanService/GetGame");
static MAKE_MOVE: Method = Method::new("MakeMove", "/hangman.v1.HangmanService/MakeMove");
static WATCH_GAME: Method = Method::new("WatchGame", "/hangman.v1.HangmanService/WatchGame");
static HEALTH_CHECK: Method = Method::new("Health/Check", "/grpc.health.v1.Health/Check");

/// A game service URL the gateway cannot use.
#[derive(Debug, thiserror::Error)]
#[error("invalid game service URL {0}")]
pub struct InvalidUrl(String);

/// Where and how patiently to reach the game service.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// HTTP/2 connections the shared channel spreads calls over.
    pub connections: usize,
}

/// The shared client; cloning it shares its HTTP/2 connections.
#[derive(Clone)]
pub struct Upstream {
    /// Unary calls are made directly on the transport ([`Upstream::unary`]); tonic's client
    /// serves the watch stream and the health check.
    transport: H2Transport,
    authority: Authority,
    games: HangmanServiceClient<H2Transport>,
    health: HealthClient<H2Transport>,
    request_timeout: Duration,
}

impl Upstream {
    /// Connects lazily: the gateway starts (and stays up) while the game service is down, and
    /// reconnects by itself when it returns.
    pub fn new(config: &UpstreamConfig) -> Result<Self, InvalidUrl> {
        let origin: Uri = config
            .url
            .parse()
            .map_err(|e| InvalidUrl(format!("{}: {e}", config.url)))?;
        if origin.scheme_str() != Some("http") {
            return Err(InvalidUrl(format!(
                "{}: only http:// (h2c) is supported",
                config.url
            )));
        }
        let url_authority = origin
            .authority()
            .ok_or_else(|| InvalidUrl(format!("{}: needs a host", config.url)))?
            .clone();
        let authority = format!(
            "{}:{}",
            url_authority.host(),
            url_authority.port_u16().unwrap_or(80)
        );
        // A few HTTP/2 connections, round robin: one connection's I/O task becomes the
        // bottleneck under load long before the CPU does.
        let transport = H2Transport::new(H2Config {
            authority,
            connect_timeout: config.connect_timeout,
            keep_alive: Duration::from_secs(30),
            connections: config.connections,
        });
        Ok(Upstream {
            games: HangmanServiceClient::with_origin(transport.clone(), origin.clone()),
            health: HealthClient::with_origin(transport.clone(), origin),
            transport,
            authority: url_authority,
            request_timeout: config.request_timeout,
        })
    }

    pub async fn create_game(&self, trace: &Trace) -> Result<(String, Tally), UpstreamError> {
        let traceparent = trace.traceparent();
        let request = CreateGameRequest::default();
        let call = self.unary(&CREATE_GAME, &request, &traceparent);
        let response: CreateGameResponse = self.call(&CREATE_GAME, &traceparent, call).await?;
        Ok((response.game_id, response.tally.unwrap_or_default()))
    }

    pub async fn get_game(&self, trace: &Trace, game_id: &str) -> Result<Tally, UpstreamError> {
        let request = GetGameRequest {
            game_id: game_id.to_owned(),
        };
        let traceparent = trace.traceparent();
        let call = self.unary(&GET_GAME, &request, &traceparent);
        let response: GetGameResponse = self.call(&GET_GAME, &traceparent, call).await?;
        Ok(response.tally.unwrap_or_default())
    }

    pub async fn make_move(
        &self,
        trace: &Trace,
        game_id: &str,
        guess: &str,
    ) -> Result<Tally, UpstreamError> {
        let request = MakeMoveRequest {
            game_id: game_id.to_owned(),
            guess: guess.to_owned(),
        };
        let traceparent = trace.traceparent();
        let call = self.unary(&MAKE_MOVE, &request, &traceparent);
        let response: MakeMoveResponse = self.call(&MAKE_MOVE, &traceparent, call).await?;
        Ok(response.tally.unwrap_or_default())
    }

    /// Watches a game: its tally now, then a stream of every later tally. The stream has no
    /// timeout (it lasts as long as the game); only getting the first tally does.
    pub async fn watch_game(
        &self,
        trace: &Trace,
        game_id: &str,
    ) -> Result<
        (
            Tally,
            impl futures::Stream<Item = Result<Tally, UpstreamError>> + Send + 'static,
        ),
        UpstreamError,
    > {
        use futures::StreamExt;
        let request = WatchGameRequest {
            game_id: game_id.to_owned(),
        };
        let traceparent = trace.traceparent();
        let mut client = self.games.clone();
        let call = client.watch_game(traced(request, &traceparent));
        let mut stream = self
            .call(&WATCH_GAME, &traceparent, call)
            .await?
            .into_inner();
        let first = tokio::time::timeout(self.request_timeout, stream.message())
            .await
            .map_err(|_| UpstreamError::Unavailable("timed out".into()))?
            .map_err(|s| UpstreamError::from_status(&s))?
            .ok_or(UpstreamError::NotFound)?;
        let rest = futures::stream::unfold(stream, |mut stream| async move {
            match stream.message().await {
                Ok(Some(msg)) => Some((Ok(msg.tally.unwrap_or_default()), stream)),
                Ok(None) => None,
                Err(status) => Some((Err(UpstreamError::from_status(&status)), stream)),
            }
        })
        // Stop after the first error rather than polling a broken stream again.
        .scan(false, |failed, item| {
            let out = if *failed { None } else { Some(item) };
            *failed = out.as_ref().is_some_and(Result::is_err);
            futures::future::ready(out)
        });
        Ok((first.tally.unwrap_or_default(), rest))
    }

    /// Whether the game service answers a gRPC health check with SERVING.
    pub async fn ready(&self) -> bool {
        let trace = Trace::new();
        let traceparent = trace.traceparent();
        let mut client = self.health.clone();
        let call = client.check(traced(HealthCheckRequest::default(), &traceparent));
        let result = self.call(&HEALTH_CHECK, &traceparent, call).await;
        matches!(result, Ok(r) if r.get_ref().status == ServingStatus::Serving as i32)
    }

    /// One call (already carrying `traceparent`) with a deadline, timed into the upstream
    /// latency histogram and logged.
    async fn call<Resp>(
        &self,
        method: &'static Method,
        traceparent: &str,
        call: impl Future<Output = Result<Resp, Status>>,
    ) -> Result<Resp, UpstreamError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.request_timeout, call).await;
        let elapsed = started.elapsed();
        method.seconds().record(elapsed.as_secs_f64());
        let method = method.name;
        let result = match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(status)) => Err(UpstreamError::from_status(&status)),
            Err(_) => Err(UpstreamError::Unavailable("timed out".into())),
        };
        match &result {
            Ok(_) => tracing::debug!(method, %traceparent, ?elapsed, "game service call"),
            Err(err) => {
                tracing::info!(method, %traceparent, ?elapsed, %err, "game service call failed")
            }
        }
        result
    }

    /// A unary call made directly on the HTTP/2 transport: one length-prefixed message out,
    /// one back, the status in the trailers (or in the headers of a trailers-only error).
    /// tonic's generic client costs the gateway a request body stream, 8 KiB encode and
    /// decode buffers and a copy of the trailers per call.
    async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &Method,
        message: &Req,
        traceparent: &str,
    ) -> Result<Resp, Status> {
        let len = message.encoded_len();
        let mut body = BytesMut::with_capacity(GRPC_HEADER + len);
        body.put_u8(0); // not compressed
        body.put_u32(u32::try_from(len).map_err(|_| Status::internal("request too large"))?);
        message
            .encode(&mut body)
            .map_err(|e| Status::internal(e.to_string()))?;
        let uri = http::Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_static(method.path))
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut request = http::Request::post(uri).body(()).expect("valid parts");
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        if let Ok(mut value) = HeaderValue::from_str(traceparent) {
            // A new value every call: not worth an entry in the HPACK table.
            value.set_sensitive(true);
            headers.insert("traceparent", value);
        }
        let response = self
            .transport
            .send(request, body.freeze())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        // A trailers-only response (every error of the game service) has its status here.
        if let Some(status) = failed(response.headers()) {
            return Err(status);
        }
        if response.status() != http::StatusCode::OK {
            return Err(Status::unavailable(format!(
                "HTTP status {}",
                response.status()
            )));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let trailers = body
            .trailers()
            .ok_or_else(|| Status::internal("no gRPC status in the reply"))?;
        if let Some(status) = failed(trailers) {
            return Err(status);
        }
        if trailers.get(Status::GRPC_STATUS).is_none() {
            return Err(Status::internal("no gRPC status in the reply"));
        }
        decode_one(body.to_bytes())
    }
}

/// The 5-byte prefix of a gRPC message: compressed flag, then the length (big endian).
const GRPC_HEADER: usize = 5;

/// A tonic request carrying `traceparent`.
fn traced<T>(message: T, traceparent: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(mut value) = MetadataValue::try_from(traceparent) {
        // A new value every call: not worth an entry in the HPACK table.
        value.set_sensitive(true);
        request.metadata_mut().insert("traceparent", value);
    }
    request
}

/// The call's status when `headers` carry a `grpc-status` other than OK.
fn failed(headers: &http::HeaderMap) -> Option<Status> {
    let code = headers.get(Status::GRPC_STATUS)?;
    if code == "0" {
        return None;
    }
    Some(Status::from_header_map(headers).unwrap_or_else(|| Status::unknown("bad grpc-status")))
}

/// The one message of a unary reply.
fn decode_one<Resp: prost::Message + Default>(mut body: Bytes) -> Result<Resp, Status> {
    if body.len() < GRPC_HEADER {
        return Err(Status::internal("the reply holds no message"));
    }
    let header = body.split_to(GRPC_HEADER);
    if header[0] != 0 {
        return Err(Status::internal("compressed reply (none was asked for)"));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if body.len() != len {
        return Err(Status::internal(format!(
            "reply message of {} bytes, announced {len}",
            body.len()
        )));
    }
    Resp::decode(body).map_err(|e| Status::internal(format!("undecodable reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangman_proto::v1::GameState;
    use prost::Message;

    fn framed(message: &impl Message) -> Bytes {
        let mut body = BytesMut::new();
        body.put_u8(0);
        body.put_u32(message.encoded_len() as u32);
        message.encode(&mut body).unwrap();
        body.freeze()
    }

    #[test]
    fn a_reply_decodes_from_its_frame() {
        let reply = MakeMoveResponse {
            game_id: "g1".into(),
            tally: Some(Tally {
                game_state: GameState::GoodGuess as i32,
                turns_left: 7,
                letters: vec!["_".into(), "e".into()],
                used: vec!["e".into()],
                word: None,
            }),
        };
        let decoded: MakeMoveResponse = decode_one(framed(&reply)).unwrap();
        assert_eq!(decoded, reply);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let reply = framed(&GetGameResponse::default());
        assert!(decode_one::<GetGameResponse>(Bytes::from_static(&[0, 0])).is_err());
        let mut compressed = reply.to_vec();
        compressed[0] = 1;
        assert!(decode_one::<GetGameResponse>(compressed.into()).is_err());
        let mut long = reply.to_vec();
        long.push(0);
        assert!(decode_one::<GetGameResponse>(long.into()).is_err());
        assert!(decode_one::<GetGameResponse>(reply).is_ok());
    }

    #[test]
    fn a_status_other_than_ok_fails_the_call() {
        let mut headers = http::HeaderMap::new();
        assert!(failed(&headers).is_none());
        headers.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
        assert!(failed(&headers).is_none());
        headers.insert(Status::GRPC_STATUS, HeaderValue::from_static("5"));
        headers.insert(
            Status::GRPC_MESSAGE,
            HeaderValue::from_static("no%20such%20game"),
        );
        let status = failed(&headers).unwrap();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no such game");
        assert_eq!(UpstreamError::from_status(&status), UpstreamError::NotFound);
    }
}
