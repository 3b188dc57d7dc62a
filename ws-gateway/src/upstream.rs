//! The game service, seen from the gateway: one shared gRPC channel (HTTP/2, multiplexed) to
//! `hangman.v1.HangmanService`, with connect and request timeouts, a W3C `traceparent` on every
//! call, and errors reduced to the stable reasons the channels reply with. Moves go on a few
//! long-lived `Play` streams over the same connections (`play`), or by `MakeMove` calls to a
//! game service without them; either way a move's tally comes back as a [`TallyWire`]
//! (`tally_wire`: read where it lies, for its JSON).

mod play;
pub mod tally_wire;
mod transport;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use hangman_proto::v1::hangman_service_client::HangmanServiceClient;
use hangman_proto::v1::watch_game_response::Presence;
use hangman_proto::v1::{
    CreateGameRequest, GetGameRequest, MakeMoveRequest, PresenceMember, Tally,
    UpdatePresenceRequest, WatchGameRequest, WatchGameResponse,
};
use play::{PlayStreams, Played};
use service_kit::trace_context::TRACEPARENT;
/// The trace every call carries: one per socket connection, a new span per call.
pub use service_kit::trace_context::TraceContext;
pub use tally_wire::TallyWire;
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
    GameNotFound,
    /// The game service refused the guess (not one letter a-z).
    #[error("invalid guess: {0}")]
    InvalidGuess(String),
    /// The game service refused another argument of the call (an empty game id, say): the
    /// gateway forwarded something it should not have, but the player's input is at fault.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the game service holds its maximum number of games")]
    GameLimit,
    /// The game's room holds the game service's maximum of members.
    #[error("the room is full")]
    RoomFull,
    /// The game service does not have the method: it is older than this gateway.
    #[error("the game service does not have this method: {0}")]
    Unsupported(String),
    /// The request was larger than the game service accepts. The gateway bounds what it
    /// forwards, so this means a bound was missed; it is still the client's input at fault,
    /// not an outage.
    #[error("request too large for the game service: {0}")]
    TooLarge(String),
    #[error("game service unavailable: {0}")]
    Unavailable(String),
}

impl UpstreamError {
    /// The stable `reason` clients see.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::GameNotFound => "not_found",
            UpstreamError::InvalidGuess(_) => "invalid_guess",
            UpstreamError::InvalidArgument(_) => "invalid_payload",
            UpstreamError::GameLimit => "game_limit",
            UpstreamError::RoomFull => "room_full",
            UpstreamError::Unsupported(_) => "unavailable",
            UpstreamError::TooLarge(_) => "invalid_payload",
            UpstreamError::Unavailable(_) => "unavailable",
        }
    }

    /// The error of a call of `method` that failed with `status`.
    fn from_status(method: &Method, status: &Status) -> Self {
        match status.code() {
            Code::NotFound => UpstreamError::GameNotFound,
            // INVALID_ARGUMENT is, per the contract, an empty game id, a guess that is not one
            // letter, or a fixed word outside test mode: only the guess is `invalid_guess`.
            Code::InvalidArgument
                if method.name == MAKE_MOVE.name && hangman_proto::is_guess_refusal(status) =>
            {
                UpstreamError::InvalidGuess(status.message().to_owned())
            }
            Code::InvalidArgument => UpstreamError::InvalidArgument(status.message().to_owned()),
            // gRPC answers a message over the receiver's limit with RESOURCE_EXHAUSTED (tonic
            // used OUT_OF_RANGE, which the game service uses for nothing else). Its other
            // RESOURCE_EXHAUSTED (games or watchers at their maximum) says nothing of a size.
            Code::OutOfRange => UpstreamError::TooLarge(status.message().to_owned()),
            Code::ResourceExhausted if is_too_large(status.message()) => {
                UpstreamError::TooLarge(status.message().to_owned())
            }
            Code::ResourceExhausted if method.name == UPDATE_PRESENCE.name => {
                UpstreamError::RoomFull
            }
            Code::ResourceExhausted => UpstreamError::GameLimit,
            Code::Unimplemented => UpstreamError::Unsupported(status.message().to_owned()),
            _ => UpstreamError::Unavailable(format!("{}: {}", status.code(), status.message())),
        }
    }
}

/// Whether a RESOURCE_EXHAUSTED message is about the message's size: tonic's "decoded message
/// length too large: found 60005 bytes, the limit is: 16384 bytes", or the game service's "the
/// request message is larger than this server accepts: ...".
fn is_too_large(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["too large", "too big", "larger than"]
        .iter()
        .any(|says| message.contains(says))
}

/// A gRPC method the gateway calls, with its latency histogram (looked up once, not per call).
struct Method {
    name: &'static str,
    seconds: OnceLock<metrics::Histogram>,
}

impl Method {
    const fn new(name: &'static str) -> Self {
        Method {
            name,
            seconds: OnceLock::new(),
        }
    }

    fn seconds(&self) -> &metrics::Histogram {
        self.seconds.get_or_init(
            || metrics::histogram!("ws_gateway_upstream_seconds", "method" => self.name),
        )
    }
}

static CREATE_GAME: Method = Method::new("CreateGame");
static GET_GAME: Method = Method::new("GetGame");
static MAKE_MOVE: Method = Method::new("MakeMove");
static WATCH_GAME: Method = Method::new("WatchGame");
static UPDATE_PRESENCE: Method = Method::new("UpdatePresence");
static HEALTH_CHECK: Method = Method::new("Health/Check");

/// A game service URL the gateway cannot use.
#[derive(Debug, thiserror::Error)]
#[error("invalid game service URL {0}")]
pub struct InvalidUrl(String);

/// Where and how patiently to reach the game service.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// An `http://host:port` URL, or several separated by commas (replicas at fixed
    /// addresses); each host name is resolved and every address it gives is used.
    pub url: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// HTTP/2 ping interval; an unanswered ping drops the connection.
    pub keep_alive: Duration,
    /// HTTP/2 connections the shared channel spreads calls over (at least one per address).
    pub connections: usize,
    /// How often host names are resolved again (also whenever a connection was closed).
    pub resolve_interval: Duration,
}

/// What a watch asks for besides the tallies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Also who is in the game's room: a [`WatchEvent::PresenceState`] first, then diffs.
    pub presence: bool,
    /// The version of the last tally the watcher saw: the first message then says what it
    /// missed since.
    pub since_version: Option<u64>,
}

/// The first message of a watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    /// The tally now.
    pub tally: Tally,
    /// What was missed since [`WatchOptions::since_version`]; `None` when none was given.
    pub recovery: Option<Recovery>,
}

/// Whether the changes a watcher missed could be given back.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// The tallies after the watcher's version and before [`Watched::tally`], oldest first.
    Recovered(Vec<Tally>),
    /// The game service cannot fill the gap (a version the game never had, or history it no
    /// longer keeps): only the tally now is known.
    Gap,
}

/// A change a watch streams after its first message.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// Someone moved.
    Tally(Tally),
    /// Everyone in the room: first, and again after the watcher fell behind.
    PresenceState(Vec<PresenceMember>),
    /// Who joined and left since the last presence message.
    PresenceDiff {
        joins: Vec<PresenceMember>,
        leaves: Vec<PresenceMember>,
    },
}

impl From<WatchGameResponse> for WatchEvent {
    fn from(message: WatchGameResponse) -> Self {
        match message.presence {
            Some(Presence::PresenceState(state)) => WatchEvent::PresenceState(state.members),
            Some(Presence::PresenceDiff(diff)) => WatchEvent::PresenceDiff {
                joins: diff.joins,
                leaves: diff.leaves,
            },
            None => WatchEvent::Tally(message.tally.unwrap_or_default()),
        }
    }
}

/// The shared client; cloning it shares its HTTP/2 connections and `Play` streams. One
/// pointer, since every joined channel holds a clone (the clients themselves are 336 bytes).
#[derive(Clone)]
pub struct Upstream {
    clients: Arc<Clients>,
}

struct Clients {
    games: HangmanServiceClient<H2Transport>,
    /// The streams moves go on: one per connection.
    plays: Option<Arc<PlayStreams>>,
    health: HealthClient<H2Transport>,
    request_timeout: Duration,
}

/// The `host:port` of each URL of `--game-service` (comma-separated), and the first URL, which
/// the calls name as their `:authority`.
fn targets(urls: &str) -> Result<(Vec<String>, Uri), InvalidUrl> {
    let mut targets = Vec::new();
    let mut first = None;
    for url in urls.split(',').map(str::trim) {
        let origin: Uri = url.parse().map_err(|e| InvalidUrl(format!("{url}: {e}")))?;
        match origin.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(InvalidUrl(format!(
                    "{url}: https needs TLS, which this build of ws-gateway does not have; \
                     give an http:// URL (h2c)"
                )));
            }
            _ => return Err(InvalidUrl(format!("{url}: give an http:// URL (h2c)"))),
        }
        let authority = origin
            .authority()
            .ok_or_else(|| InvalidUrl(format!("{url}: needs a host")))?;
        targets.push(format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        ));
        first.get_or_insert(origin);
    }
    let first = first.ok_or_else(|| InvalidUrl(format!("{urls}: no URL")))?;
    Ok((targets, first))
}

impl Upstream {
    /// Connects lazily: the gateway starts (and stays up) while the game service is down, and
    /// reconnects by itself when it returns.
    pub fn new(config: &UpstreamConfig) -> Result<Self, InvalidUrl> {
        let (targets, origin) = targets(&config.url)?;
        // A few HTTP/2 connections, round robin: one connection's I/O task becomes the
        // bottleneck under load long before the CPU does. They are spread over every address
        // of the game service (see `transport`).
        let transport = H2Transport::new(H2Config {
            targets,
            connect_timeout: config.connect_timeout,
            keep_alive: config.keep_alive,
            connections: config.connections,
            resolve_interval: config.resolve_interval,
        });
        let plays = PlayStreams::new(transport.clone(), &origin, config.request_timeout);
        let clients = Clients {
            games: HangmanServiceClient::with_origin(transport.clone(), origin.clone()),
            plays: plays.map(Arc::new),
            health: HealthClient::with_origin(transport, origin),
            request_timeout: config.request_timeout,
        };
        Ok(Upstream {
            clients: Arc::new(clients),
        })
    }

    pub async fn create_game(
        &self,
        trace: &TraceContext,
    ) -> Result<(String, Tally), UpstreamError> {
        let response = self
            .call(
                &CREATE_GAME,
                trace,
                CreateGameRequest::default(),
                |mut c, r| async move { c.create_game(r).await },
                &self.clients.games,
            )
            .await?;
        Ok((response.game_id, response.tally.unwrap_or_default()))
    }

    pub async fn get_game(
        &self,
        trace: &TraceContext,
        game_id: &str,
    ) -> Result<Tally, UpstreamError> {
        let request = GetGameRequest {
            game_id: game_id.to_owned(),
        };
        let response = self
            .call(
                &GET_GAME,
                trace,
                request,
                |mut c, r| async move { c.get_game(r).await },
                &self.clients.games,
            )
            .await?;
        Ok(response.tally.unwrap_or_default())
    }

    /// Plays a guess: on a `Play` stream, or by a `MakeMove` call when the game service has
    /// no such stream.
    pub async fn make_move(
        &self,
        trace: &TraceContext,
        game_id: &str,
        guess: &str,
    ) -> Result<TallyWire, UpstreamError> {
        if let Some(plays) = &self.clients.plays {
            let started = Instant::now();
            if let Played::Answer(answer) = plays.make_move(game_id, guess).await {
                let elapsed = started.elapsed();
                MAKE_MOVE.seconds().record(elapsed.as_secs_f64());
                if let Err(err) = &answer {
                    // The stream carries no per-move trace: the move's span is logged here.
                    let traceparent = trace.child();
                    tracing::info!(method = "Play", %traceparent, ?elapsed, %err, "move failed");
                }
                return answer;
            }
        }
        let request = MakeMoveRequest {
            game_id: game_id.to_owned(),
            guess: guess.to_owned(),
        };
        let response = self
            .call(
                &MAKE_MOVE,
                trace,
                request,
                |mut c, r| async move { c.make_move(r).await },
                &self.clients.games,
            )
            .await?;
        Ok(TallyWire::from(&response.tally.unwrap_or_default()))
    }

    /// Puts the members of `renew` in the game's room for another lease (a member new to it
    /// joins) and takes those of `leave` out; returns the lease the game service gives.
    pub async fn update_presence(
        &self,
        trace: &TraceContext,
        game_id: &str,
        renew: Vec<PresenceMember>,
        leave: Vec<String>,
    ) -> Result<Duration, UpstreamError> {
        let request = UpdatePresenceRequest {
            game_id: game_id.to_owned(),
            renew,
            leave,
        };
        let response = self
            .call(
                &UPDATE_PRESENCE,
                trace,
                request,
                |mut c, r| async move { c.update_presence(r).await },
                &self.clients.games,
            )
            .await?;
        Ok(Duration::from_millis(response.lease_ms))
    }

    /// Watches a game: its tally now (with what was missed since `options.since_version`),
    /// then a stream of every later change, and of who comes and goes in its room when
    /// `options.presence`. The stream has no timeout (it lasts as long as the game); only
    /// getting the first message does. It ends after its first error.
    pub async fn watch_game(
        &self,
        trace: &TraceContext,
        game_id: &str,
        options: WatchOptions,
    ) -> Result<
        (
            Watched,
            impl Stream<Item = Result<WatchEvent, UpstreamError>> + Send + 'static,
        ),
        UpstreamError,
    > {
        let request = WatchGameRequest {
            game_id: game_id.to_owned(),
            presence: options.presence,
            since_version: options.since_version,
        };
        let mut stream = self
            .call(
                &WATCH_GAME,
                trace,
                request,
                |mut c, r| async move { c.watch_game(r).await },
                &self.clients.games,
            )
            .await?;
        let first = tokio::time::timeout(self.clients.request_timeout, stream.message())
            .await
            .map_err(|_| UpstreamError::Unavailable("timed out".into()))?
            .map_err(|s| UpstreamError::from_status(&WATCH_GAME, &s))?
            .ok_or(UpstreamError::GameNotFound)?;
        let rest = futures::stream::unfold(stream, |mut stream| async move {
            match stream.message().await {
                Ok(Some(msg)) => Some((Ok(WatchEvent::from(msg)), stream)),
                Ok(None) => None,
                Err(status) => Some((
                    Err(UpstreamError::from_status(&WATCH_GAME, &status)),
                    stream,
                )),
            }
        })
        // Stop after the first error rather than polling a broken stream again.
        .scan(false, |failed, item| {
            let out = if *failed { None } else { Some(item) };
            *failed = out.as_ref().is_some_and(Result::is_err);
            futures::future::ready(out)
        });
        let recovery = first.recovered.map(|recovered| {
            if recovered {
                Recovery::Recovered(first.missed)
            } else {
                Recovery::Gap
            }
        });
        let watched = Watched {
            tally: first.tally.unwrap_or_default(),
            recovery,
        };
        Ok((watched, rest))
    }

    /// Whether the game service answers a gRPC health check with SERVING.
    pub async fn ready(&self) -> bool {
        let trace = TraceContext::new();
        let result = self
            .call(
                &HEALTH_CHECK,
                &trace,
                HealthCheckRequest::default(),
                |mut c, r| async move { c.check(r).await },
                &self.clients.health,
            )
            .await;
        matches!(result, Ok(r) if r.status == ServingStatus::Serving as i32)
    }

    /// One call with a deadline and a `traceparent`, timed into the upstream latency histogram.
    ///
    /// Each RPC's method above calls this with its own request, histogram and tonic method; they
    /// look alike because they are one call each. `send` is a closure because tonic's generated
    /// methods share no trait.
    async fn call<C: Clone, Req, Resp, Fut>(
        &self,
        method: &'static Method,
        trace: &TraceContext,
        message: Req,
        send: impl FnOnce(C, Request<Req>) -> Fut,
        client: &C,
    ) -> Result<Resp, UpstreamError>
    where
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        // Every call is a new span of the socket's trace, so the gateway's and the game
        // service's logs can be joined on the trace id.
        let traceparent = trace.child();
        let mut request = Request::new(message);
        if let Ok(mut value) = MetadataValue::try_from(&traceparent.traceparent_bytes()[..]) {
            // A new value every call: not worth an entry in the HPACK table.
            value.set_sensitive(true);
            request.metadata_mut().insert(TRACEPARENT, value);
        }
        let started = Instant::now();
        // Boxed: inline, the call's state (tonic's request, codec and HTTP/2 futures) would
        // be part of every joined channel's future, idle or not.
        let call = Box::pin(send(client.clone(), request));
        let result = tokio::time::timeout(self.clients.request_timeout, call).await;
        let elapsed = started.elapsed();
        method.seconds().record(elapsed.as_secs_f64());
        let result = match result {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(UpstreamError::from_status(method, &status)),
            Err(_) => Err(UpstreamError::Unavailable("timed out".into())),
        };
        let method = method.name;
        match &result {
            Ok(_) => tracing::debug!(method, %traceparent, ?elapsed, "game service call"),
            Err(err) => {
                tracing::info!(method, %traceparent, ?elapsed, %err, "game service call failed")
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_game_service_may_be_one_url_or_several() {
        let (one, origin) = targets("http://game-service:50051").unwrap();
        assert_eq!(one, ["game-service:50051"]);
        assert_eq!(origin.authority().unwrap().as_str(), "game-service:50051");
        let (several, origin) =
            targets("http://127.0.0.1:7001, http://[::1]:7002,http://b").unwrap();
        assert_eq!(several, ["127.0.0.1:7001", "[::1]:7002", "b:80"]);
        assert_eq!(origin.authority().unwrap().as_str(), "127.0.0.1:7001");
        for bad in [
            "",
            "http://a:1,",
            "https://a:1",
            "http://a:1,ftp://b:2",
            "a:1",
        ] {
            assert!(targets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_message_over_the_size_limit_is_the_clients_fault_not_an_outage() {
        let tonic_limit =
            "Error, decoded message length too large: found 60030 bytes, the limit is: 16384 bytes";
        let game_service = "the request message is larger than this server accepts: found 60030 bytes, the limit is: 16384 bytes";
        for status in [
            Status::out_of_range(tonic_limit),
            Status::resource_exhausted(tonic_limit),
            Status::resource_exhausted(game_service),
        ] {
            let err = UpstreamError::from_status(&MAKE_MOVE, &status);
            assert_eq!(err.reason(), "invalid_payload", "{status:?}");
        }
        let full = Status::resource_exhausted("the server holds its maximum of 10 games");
        assert_eq!(
            UpstreamError::from_status(&CREATE_GAME, &full).reason(),
            "game_limit"
        );
        let down = Status::unavailable("connection refused");
        assert_eq!(
            UpstreamError::from_status(&GET_GAME, &down).reason(),
            "unavailable"
        );
    }

    #[test]
    fn only_a_refused_guess_is_invalid_guess() {
        let guess = hangman_proto::invalid_field("guess", "a guess must be one letter a-z");
        let reason = |method, status: &Status| UpstreamError::from_status(method, status).reason();
        assert_eq!(reason(&MAKE_MOVE, &guess), "invalid_guess");
        let empty_id = hangman_proto::invalid_field("game_id", "the game id is empty");
        for method in [&MAKE_MOVE, &GET_GAME, &WATCH_GAME] {
            assert_eq!(
                reason(method, &empty_id),
                "invalid_payload",
                "{}",
                method.name
            );
        }
        let word = hangman_proto::invalid_field("word", "a fixed word needs --test-mode");
        assert_eq!(reason(&CREATE_GAME, &word), "invalid_payload");
    }
}
