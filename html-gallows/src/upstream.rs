//! The game service, as html-gallows uses it: a tonic client over one lazily
//! connected channel (shared by every request, reconnecting on its own when the
//! service comes back), every call carrying the request's `traceparent`.

use hangman_proto::v1::{
    CreateGameRequest, GetGameRequest, MakeMoveRequest, Tally,
    hangman_service_client::HangmanServiceClient,
};
use tonic::{
    Code, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{config::Config, trace_context::TraceContext};

/// The gRPC service name the readiness check asks about.
const HANGMAN_SERVICE: &str = "hangman.v1.HangmanService";

/// Why a game-service call did not give a tally.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The game is unknown: it never existed, was ended, or expired.
    #[error("no such game")]
    GameNotFound,
    /// The service refused the guess (not one letter a–z).
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
        metrics::counter!(
            "gallows_upstream_errors_total",
            "call" => call,
            "code" => format!("{:?}", status.code()),
        )
        .increment(1);
        match status.code() {
            Code::NotFound => Self::GameNotFound,
            Code::InvalidArgument => Self::InvalidGuess(status.message().to_owned()),
            Code::ResourceExhausted => Self::Full,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                tracing::warn!(call, %status, "game service unavailable");
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
}

impl GameService {
    /// A client that connects on first use (so html-gallows starts, and answers
    /// 503 pages, while the game service is down).
    pub fn connect_lazy(config: &Config) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(config.game_service.clone())?
            .connect_timeout(config.grpc_connect_timeout)
            .timeout(config.grpc_request_timeout)
            .connect_lazy();
        Ok(Self {
            hangman: HangmanServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        })
    }

    pub async fn create_game(&self, trace: &TraceContext) -> Result<Game, UpstreamError> {
        let response = self
            .hangman
            .clone()
            .create_game(traced(CreateGameRequest::default(), trace))
            .await
            .map_err(|status| UpstreamError::from_status("create_game", status))?
            .into_inner();
        Ok(Game {
            tally: require_tally("create_game", response.tally)?,
            game_id: response.game_id,
        })
    }

    pub async fn get_game(
        &self,
        game_id: &str,
        trace: &TraceContext,
    ) -> Result<Tally, UpstreamError> {
        let request = GetGameRequest {
            game_id: game_id.to_owned(),
        };
        let response = self
            .hangman
            .clone()
            .get_game(traced(request, trace))
            .await
            .map_err(|status| UpstreamError::from_status("get_game", status))?
            .into_inner();
        require_tally("get_game", response.tally)
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
        let response = self
            .hangman
            .clone()
            .make_move(traced(request, trace))
            .await
            .map_err(|status| UpstreamError::from_status("make_move", status))?
            .into_inner();
        require_tally("make_move", response.tally)
    }

    /// Whether the game service answers its health check as serving.
    pub async fn is_serving(&self, trace: &TraceContext) -> bool {
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
