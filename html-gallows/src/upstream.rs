//! The game service, as html-gallows uses it: a tonic client over one lazily
//! connected channel (shared by every request, reconnecting on its own when the
//! service comes back), every call carrying the request's `traceparent`.
//!
//! Reading a game goes through the [`TallyCache`] first; the watch streams that
//! keep it current run on a second channel, so they never take the stream
//! slots that players' calls need.
//!
//! Each channel has a connection to every address of the game service and
//! balances calls over them (tonic's `balance_channel`, tower's power of two
//! choices): a Kubernetes ClusterIP Service balances connections, not calls, so
//! behind one a single long-lived connection would pin html-gallows to one
//! replica, whereas a headless Service's name resolves to every ready pod.
//! `follow` resolves the names again every `--grpc-resolve-interval` and
//! inserts and removes the addresses that came and went. A name with one
//! address, or an IP address, gives one connection per channel, as before.
//!
//! Only the addresses that serve get calls. The balancer alone would keep choosing
//! an address with nothing behind it (a replica that crashed, or that shut down
//! ahead of the next resolution), and a share of the players' pages would fail.
//! So `follow` asks each address's health check, with every resolution and at once
//! when a call finds an address down ([`Routing::recheck`]), and keeps in the
//! channels only those that answer `SERVING`; or every address, when none does, so
//! that calls fail fast (503 pages) rather than wait for a replica.
//!
//! A call that certainly never reached the service is made again, once: the
//! transparent retry of gRPC's design (A6). It covers a connection that the
//! service retires (`--max-connection-age`) just as a call is put on it, so a
//! retirement never costs a player a page.
//!
//! ws-gateway's `upstream` module makes the same calls with a client of its
//! own, and that is on purpose: the two front ends share the contract
//! (`hangman-proto`) and nothing else, and each turns the service's answers
//! into what its own users see (pages here, channel replies there).

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use hangman_proto::v1::{
    CreateGameRequest, GetGameRequest, MakeMoveRequest, Tally, WatchGameRequest,
    hangman_service_client::HangmanServiceClient,
};
use tonic::{
    Code, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint, Uri, channel::Change},
};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{config::Config, metrics, tally_cache::TallyCache, trace_context::TraceContext};

/// The gRPC service name the readiness check asks about.
const HANGMAN_SERVICE: &str = "hangman.v1.HangmanService";

/// Why a game-service call did not give a tally.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The game is unknown: it never existed, was ended, or expired.
    #[error("no such game")]
    GameNotFound,
    /// The service refused the guess (not one letter a–z). Its other
    /// INVALID_ARGUMENT answers (an empty game id, say) are not the player's:
    /// they are [`UpstreamError::Failed`].
    #[error("invalid guess: {0}")]
    InvalidGuess(String),
    /// The service holds as many games as it may.
    #[error("the game service is full")]
    Full,
    /// The service could not be reached or did not answer in time.
    #[error("the game service is unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug on one side or the other.
    #[error("the game service failed: {0}")]
    Failed(String),
}

impl UpstreamError {
    fn from_status(call: &'static str, status: Status) -> Self {
        metrics::upstream_error(call, status.code());
        match status.code() {
            Code::NotFound => Self::GameNotFound,
            Code::InvalidArgument
                if call == "make_move" && hangman_proto::is_guess_refusal(&status) =>
            {
                Self::InvalidGuess(status.message().to_owned())
            }
            Code::ResourceExhausted => Self::Full,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                let cause = status.source();
                tracing::warn!(call, %status, ?cause, "game service unavailable");
                Self::Unavailable(status.message().to_owned())
            }
            _ => {
                tracing::error!(call, %status, "game service call failed");
                Self::Failed(status.to_string())
            }
        }
    }
}

/// A game as the service returned it.
#[derive(Debug, Clone)]
pub struct Game {
    pub game_id: String,
    pub tally: Tally,
}

/// A cheap-to-clone handle on the game service.
#[derive(Debug, Clone)]
pub struct GameService {
    hangman: HangmanServiceClient<Channel>,
    health: HealthClient<Channel>,
    /// On a connection of its own: the watches that feed `tallies`.
    watches: HangmanServiceClient<Channel>,
    tallies: TallyCache,
    routing: Routing,
}

impl GameService {
    /// A client that connects on first use (so html-gallows starts, and answers
    /// 503 pages, while the game service is down).
    pub fn connect_lazy(config: &Config) -> Result<Self, tonic::transport::Error> {
        let targets = config
            .game_service_urls()
            .map(|url| Ok(Endpoint::from_shared(url.to_owned())?.uri().clone()))
            .collect::<Result<Vec<Uri>, tonic::transport::Error>>()?;
        let (channel, calls) = Channel::balance_channel::<SocketAddr>(CHANGES_QUEUED);
        let (watches, watch_changes) = Channel::balance_channel::<SocketAddr>(CHANGES_QUEUED);
        let endpoints = Endpoints {
            connect_timeout: config.grpc_connect_timeout,
            request_timeout: config.grpc_request_timeout,
        };
        let (routing, rounds) = Routing::new(&endpoints);
        tokio::spawn(follow(
            targets,
            endpoints,
            config.grpc_resolve_interval,
            [
                Balancer::new(calls, true),
                Balancer::new(watch_changes, false),
            ],
            rounds,
        ));
        Ok(Self {
            hangman: HangmanServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            watches: HangmanServiceClient::new(watches),
            tallies: TallyCache::new(config.tally_cache_limits()),
            routing,
        })
    }

    pub async fn create_game(&self, trace: &TraceContext) -> Result<Game, UpstreamError> {
        let request = CreateGameRequest::default();
        let response = self
            .call("create_game", request, trace, async |hangman, request| {
                hangman.create_game(request).await
            })
            .await?;
        Ok(Game {
            tally: require_tally("create_game", response.tally)?,
            game_id: response.game_id,
        })
    }

    /// The game's tally: from the cache when it holds the game, otherwise from
    /// the service (and the game is watched from then on, if there is room).
    pub async fn get_game(
        &self,
        game_id: &str,
        trace: &TraceContext,
    ) -> Result<Arc<Tally>, UpstreamError> {
        if let Some(tally) = self.tallies.get(game_id) {
            metrics::tally_cache_read(true);
            return Ok(tally);
        }
        metrics::tally_cache_read(false);
        let request = GetGameRequest {
            game_id: game_id.to_owned(),
        };
        let tally = self
            .call("get_game", request, trace, async |hangman, request| {
                hangman.get_game(request).await
            })
            .await
            .and_then(|response| require_tally("get_game", response.tally));
        let tally = self.note(game_id, tally)?;
        self.tallies.watch(game_id, &self.watches, || {
            let watch = WatchGameRequest {
                game_id: game_id.to_owned(),
                ..Default::default()
            };
            traced(watch, trace)
        });
        Ok(Arc::new(tally))
    }

    pub async fn make_move(
        &self,
        game_id: &str,
        guess: &str,
        trace: &TraceContext,
    ) -> Result<Tally, UpstreamError> {
        let request = MakeMoveRequest {
            game_id: game_id.to_owned(),
            guess: guess.to_owned(),
        };
        let tally = self
            .call("make_move", request, trace, async |hangman, request| {
                hangman.make_move(request).await
            })
            .await
            .and_then(|response| require_tally("make_move", response.tally));
        self.note(game_id, tally)
    }

    /// Makes the players' call `name` (`rpc` on a client of the players' channel)
    /// with `request` carrying the trace, made again once if the first try never
    /// reached the service (after the addresses are probed); a failure is told as an
    /// [`UpstreamError`] and counted under `name`, and an `UNAVAILABLE` one has the
    /// addresses probed.
    async fn call<Q: Clone, A>(
        &self,
        name: &'static str,
        request: Q,
        trace: &TraceContext,
        rpc: impl AsyncFn(
            &mut HangmanServiceClient<Channel>,
            tonic::Request<Q>,
        ) -> Result<tonic::Response<A>, Status>,
    ) -> Result<A, UpstreamError> {
        let attempt = || async {
            let mut hangman = self.hangman.clone();
            rpc(&mut hangman, traced(request.clone(), trace)).await
        };
        let answer = match attempt().await {
            // The transparent retry of gRPC's design (A6): a call that certainly never
            // reached the service cannot have been played, so it is safe to make again, moves
            // too; after the addresses are probed, so that it goes to one that serves.
            Err(status) if service_kit::unsent::never_reached_the_server(&status) => {
                tracing::debug!(%status, "call made again: the first try was never sent");
                self.routing.recheck().await;
                attempt().await
            }
            answer => answer,
        };
        if answer
            .as_ref()
            .is_err_and(|status| status.code() == Code::Unavailable)
        {
            self.routing.recheck_soon();
        }
        answer
            .map(tonic::Response::into_inner)
            .map_err(|status| UpstreamError::from_status(name, status))
    }

    /// Tells the cache what the service just said about a game.
    fn note(
        &self,
        game_id: &str,
        answer: Result<Tally, UpstreamError>,
    ) -> Result<Tally, UpstreamError> {
        match &answer {
            Ok(tally) => self.tallies.confirm(game_id, tally),
            Err(UpstreamError::GameNotFound) => self.tallies.forget(game_id),
            Err(_) => {}
        }
        answer
    }

    /// Whether the game service answers its health check as serving: asked again, once the
    /// addresses are probed, if the replica asked first does not.
    pub async fn is_serving(&self, trace: &TraceContext) -> bool {
        if self.asks_serving(trace).await {
            return true;
        }
        self.routing.recheck().await;
        self.asks_serving(trace).await
    }

    async fn asks_serving(&self, trace: &TraceContext) -> bool {
        let request = HealthCheckRequest {
            service: HANGMAN_SERVICE.to_owned(),
        };
        match self.health.clone().check(traced(request, trace)).await {
            Ok(response) => response.into_inner().status == ServingStatus::Serving as i32,
            Err(status) => {
                tracing::warn!(%status, "game service health check failed");
                false
            }
        }
    }
}

/// Wraps a message in a request carrying the trace context.
fn traced<T>(message: T, trace: &TraceContext) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    // A traceparent is plain ASCII hex and dashes, so it is always valid metadata.
    if let Ok(value) = MetadataValue::try_from(&trace.traceparent_bytes()[..]) {
        request
            .metadata_mut()
            .insert(crate::trace_context::TRACEPARENT, value);
    }
    request
}

fn require_tally(call: &'static str, tally: Option<Tally>) -> Result<Tally, UpstreamError> {
    tally.ok_or_else(|| {
        UpstreamError::from_status(call, Status::internal("the response carries no tally"))
    })
}

/// How the endpoint of one address of the game service is set up.
struct Endpoints {
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Endpoints {
    /// The endpoint of `addr`, one of the addresses `target` resolves to: calls name the
    /// target as their `:authority`. `timeout` for calls, none for watches (a watch is meant
    /// to stay open).
    fn of(&self, target: &Uri, addr: SocketAddr, timeout: bool) -> Option<Endpoint> {
        let scheme = target.scheme_str().unwrap_or("http");
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .ok()?
            .origin(target.clone())
            .connect_timeout(self.connect_timeout);
        Some(if timeout {
            endpoint.timeout(self.request_timeout)
        } else {
            endpoint
        })
    }
}

type Changes = tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>;

/// The changes a balanced channel's queue holds. A channel reads its queue only when a call
/// goes through it, so the queue holds what changed since the last call: an address coming,
/// going, or turning serving or not. When it is full, `follow` keeps the rest for a later round,
/// and the first call after a long quiet spell may go by a state that is out of date.
const CHANGES_QUEUED: usize = 1024;

/// The least time between the starts of two probe rounds: while every call fails (the game
/// service down), each asks for a round, and each round opens a connection to every address.
const MIN_ROUND_GAP: Duration = Duration::from_millis(250);

/// What one balanced channel was told: its queue of changes, and the addresses it was sent.
struct Balancer {
    changes: Changes,
    routed: BTreeSet<SocketAddr>,
    /// Whether its calls have the request timeout (a watch has none: it is meant to stay open).
    timeout: bool,
}

impl Balancer {
    fn new(changes: Changes, timeout: bool) -> Balancer {
        Balancer {
            changes,
            routed: BTreeSet::new(),
            timeout,
        }
    }

    /// Sends the differences between `wanted` and what it was sent, as many as its queue
    /// takes now, additions first (so that it is never left empty). A balanced channel reads
    /// its queue only when a call goes through it (tower's `Balance` behind a `Buffer`): the
    /// watches' may go without one for long, and a wait for room there would stop `follow`.
    /// What does not fit goes with a later round.
    fn update(&mut self, wanted: &BTreeMap<SocketAddr, Uri>, endpoints: &Endpoints) {
        for (addr, target) in wanted {
            if self.routed.contains(addr) {
                continue;
            }
            let Some(endpoint) = endpoints.of(target, *addr, self.timeout) else {
                continue;
            };
            if self
                .changes
                .try_send(Change::Insert(*addr, endpoint))
                .is_err()
            {
                return;
            }
            self.routed.insert(*addr);
        }
        let gone: Vec<SocketAddr> = self
            .routed
            .iter()
            .filter(|addr| !wanted.contains_key(addr))
            .copied()
            .collect();
        for addr in gone {
            if self.changes.try_send(Change::Remove(addr)).is_err() {
                return;
            }
            self.routed.remove(&addr);
        }
    }
}

/// How calls ask `follow` to probe the addresses now: a wake-up, and the count of probe
/// rounds begun and ended.
#[derive(Debug, Clone)]
struct Routing {
    wake: Arc<Notify>,
    rounds: watch::Receiver<ProbeRounds>,
    /// How long a call waits for a round: what a connection may take (a health check on it
    /// is quick; a round that takes longer is not waited for).
    patience: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct ProbeRounds {
    begun: u64,
    ended: u64,
}

impl Routing {
    fn new(endpoints: &Endpoints) -> (Routing, (Arc<Notify>, watch::Sender<ProbeRounds>)) {
        let wake = Arc::new(Notify::new());
        let (rounds, rounds_receiver) = watch::channel(ProbeRounds::default());
        let routing = Routing {
            wake: wake.clone(),
            rounds: rounds_receiver,
            patience: endpoints.connect_timeout,
        };
        (routing, (wake, rounds))
    }

    /// Has the addresses probed now, and waits until a round begun after this call has
    /// ended (or `patience` has passed): a round under way may have asked before the
    /// failure that brought the caller here.
    async fn recheck(&self) {
        let mut rounds = self.rounds.clone();
        let begun = rounds.borrow_and_update().begun;
        self.wake.notify_one();
        let _ = tokio::time::timeout(
            self.patience,
            rounds.wait_for(|rounds| rounds.ended > begun),
        )
        .await;
    }

    /// Has the addresses probed now, without waiting.
    fn recheck_soon(&self) {
        self.wake.notify_one();
    }
}

/// Keeps the calls' and the watches' channels on the addresses the targets resolve to that
/// serve (every one, when none does), one endpoint per address: resolving and probing them
/// every `interval`, and when woken (at most once every [`MIN_ROUND_GAP`]), until the
/// channels are dropped.
async fn follow(
    targets: Vec<Uri>,
    endpoints: Endpoints,
    interval: Duration,
    mut balancers: [Balancer; 2],
    (wake, rounds): (Arc<Notify>, watch::Sender<ProbeRounds>),
) {
    let mut found = BTreeMap::new();
    let mut in_use = BTreeSet::new();
    loop {
        let begun = tokio::time::Instant::now();
        rounds.send_modify(|rounds| rounds.begun += 1);
        match resolve(&targets).await {
            Ok(resolved) => found = resolved,
            // The known addresses stay in use.
            Err(error) => tracing::warn!(%error, "cannot resolve the game service"),
        }
        let mut probes = tokio::task::JoinSet::new();
        for (addr, target) in &found {
            let (addr, endpoint) = (*addr, endpoints.of(target, *addr, true));
            probes.spawn(async move { (addr, serves(endpoint).await) });
        }
        let serving: BTreeSet<SocketAddr> = probes
            .join_all()
            .await
            .into_iter()
            .filter_map(|(addr, serves)| serves.then_some(addr))
            .collect();
        let wanted: BTreeMap<SocketAddr, Uri> = if serving.is_empty() {
            found.clone()
        } else {
            found
                .iter()
                .filter(|(addr, _)| serving.contains(addr))
                .map(|(addr, target)| (*addr, target.clone()))
                .collect()
        };
        for addr in wanted.keys().filter(|addr| !in_use.contains(*addr)) {
            tracing::info!(%addr, "game service address in use");
        }
        for addr in in_use.iter().filter(|addr| !wanted.contains_key(addr)) {
            tracing::info!(%addr, "game service address left out: gone, or not serving");
        }
        in_use = wanted.keys().copied().collect();
        for balancer in &mut balancers {
            balancer.update(&wanted, &endpoints);
        }
        rounds.send_modify(|rounds| rounds.ended += 1);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = wake.notified() => {
                tokio::time::sleep_until(begun + MIN_ROUND_GAP).await;
            }
            () = balancers[0].changes.closed() => return,
        }
    }
}

/// Whether the game service at `endpoint` answers its health check as serving, on a
/// connection of the probe's own (the endpoint's connect and call timeouts bound it).
async fn serves(endpoint: Option<Endpoint>) -> bool {
    let Some(endpoint) = endpoint else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let request = HealthCheckRequest {
        service: HANGMAN_SERVICE.to_owned(),
    };
    HealthClient::new(channel)
        .check(request)
        .await
        .is_ok_and(|response| response.into_inner().status == ServingStatus::Serving as i32)
}

/// Every address the targets resolve to, with the target it belongs to; an error only when
/// none resolves to any.
async fn resolve(targets: &[Uri]) -> Result<BTreeMap<SocketAddr, Uri>, String> {
    let mut found = BTreeMap::new();
    let mut failure = String::from("no address");
    for target in targets {
        let Some(authority) = target.authority() else {
            continue;
        };
        let default_port = if target.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let host_port = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(default_port)
        );
        match tokio::net::lookup_host(&host_port).await {
            Ok(addrs) => found.extend(addrs.map(|addr| (addr, target.clone()))),
            Err(error) => failure = format!("{host_port}: {error}"),
        }
    }
    if found.is_empty() {
        return Err(failure);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_guess_is_an_invalid_guess() {
        let guess = || hangman_proto::invalid_field("guess", "a guess must be one letter a-z");
        assert!(matches!(
            UpstreamError::from_status("make_move", guess()),
            UpstreamError::InvalidGuess(_)
        ));
        for (call, status) in [
            (
                "make_move",
                hangman_proto::invalid_field("game_id", "empty"),
            ),
            ("get_game", hangman_proto::invalid_field("game_id", "empty")),
            // Without the detail, even a guess's words are not a refused guess.
            (
                "make_move",
                Status::invalid_argument("a guess must be one letter"),
            ),
            ("get_game", guess()),
        ] {
            assert!(
                matches!(
                    UpstreamError::from_status(call, status),
                    UpstreamError::Failed(_)
                ),
                "{call}"
            );
        }
    }

    #[test]
    fn only_a_call_the_server_never_saw_is_made_again() {
        let refused = Status::from_error(Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)));
        assert!(
            service_kit::unsent::never_reached_the_server(&refused),
            "{refused:?}"
        );
        // A stream reset for any other reason may have been played.
        let reset = Status::from_error(Box::new(h2::Error::from(h2::Reason::INTERNAL_ERROR)));
        assert!(
            !service_kit::unsent::never_reached_the_server(&reset),
            "{reset:?}"
        );
        assert!(!service_kit::unsent::never_reached_the_server(
            &Status::unavailable("down")
        ));
        assert!(!service_kit::unsent::never_reached_the_server(
            &Status::deadline_exceeded("slow")
        ));
    }

    #[tokio::test]
    async fn every_address_of_every_target_is_found() {
        let targets: Vec<Uri> = ["http://127.0.0.2:7", "http://localhost:7"]
            .iter()
            .map(|url| url.parse().unwrap())
            .collect();
        let found = resolve(&targets).await.unwrap();
        let ip = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(found[&ip("127.0.0.2:7")], targets[0]);
        assert_eq!(found[&ip("127.0.0.1:7")], targets[1]);
        let nowhere = ["http://no-such-host.invalid:7".parse().unwrap()];
        assert!(resolve(&nowhere).await.is_err());
    }

    #[test]
    fn an_address_endpoint_calls_the_target_by_its_name() {
        let endpoints = test_endpoints();
        let target: Uri = "http://game-service:50051".parse().unwrap();
        let endpoint = endpoints
            .of(&target, "10.0.0.5:50051".parse().unwrap(), true)
            .unwrap();
        assert_eq!(
            endpoint.uri(),
            &"http://10.0.0.5:50051".parse::<Uri>().unwrap()
        );
    }

    fn test_endpoints() -> Endpoints {
        Endpoints {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_balancer_whose_queue_is_full_gets_the_rest_of_its_changes_with_a_later_round() {
        let endpoints = test_endpoints();
        let target: Uri = "http://game-service:50051".parse().unwrap();
        let wanted = |ports: &[u16]| -> BTreeMap<SocketAddr, Uri> {
            let addr = |port| SocketAddr::from(([10, 0, 0, 5], port));
            ports
                .iter()
                .map(|port| (addr(*port), target.clone()))
                .collect()
        };
        let (changes, mut queue) = tokio::sync::mpsc::channel(2);
        let mut balancer = Balancer::new(changes, true);
        let mut drained = || {
            let mut seen = Vec::new();
            while let Ok(change) = queue.try_recv() {
                seen.push(match change {
                    Change::Insert(addr, _) => format!("+{}", addr.port()),
                    Change::Remove(addr) => format!("-{}", addr.port()),
                });
            }
            seen
        };
        // Three additions, room for two: the third waits, and nothing waits on the queue.
        balancer.update(&wanted(&[1, 2, 3]), &endpoints);
        assert_eq!(drained(), ["+1", "+2"]);
        // The next round sends what is left of the difference, additions before removals.
        balancer.update(&wanted(&[2, 3, 4]), &endpoints);
        assert_eq!(drained(), ["+3", "+4"]);
        balancer.update(&wanted(&[2, 3, 4]), &endpoints);
        assert_eq!(drained(), ["-1"]);
        balancer.update(&wanted(&[2, 3, 4]), &endpoints);
        assert!(drained().is_empty(), "nothing left to send");
    }
}
