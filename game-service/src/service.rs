//! The `hangman.v1.HangmanService` gRPC API over a [`GameStore`].
//!
//! This module only translates: proto messages to store calls and back,
//! store errors to gRPC status codes. The rules live in `rules`.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt, stream};
use hangman_proto::v1::{
    self as pb, CreateGameRequest, CreateGameResponse, EndGameRequest, EndGameResponse,
    GetGameRequest, GetGameResponse, MakeMoveRequest, MakeMoveResponse, WatchGameRequest,
    WatchGameResponse, hangman_service_server::HangmanService,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    rules::{GameState, Tally},
    store::{GameStore, StoreError},
};

/// The gRPC service: a handle on the shared store plus the server's mode.
pub struct HangmanApi<S> {
    store: Arc<S>,
    test_mode: bool,
    /// Cancelled when the server shuts down, so that watch streams end and
    /// graceful shutdown does not wait for them forever.
    shutdown: CancellationToken,
}

impl<S> HangmanApi<S> {
    pub fn new(store: Arc<S>, test_mode: bool, shutdown: CancellationToken) -> Self {
        HangmanApi {
            store,
            test_mode,
            shutdown,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchGameResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: GameStore> HangmanService for HangmanApi<S> {
    async fn create_game(
        &self,
        request: Request<CreateGameRequest>,
    ) -> Result<Response<CreateGameResponse>, Status> {
        // Logged with the new game: at the default level there is no per-call span to carry it.
        let traceparent = request.metadata().get("traceparent").cloned();
        let word = request.into_inner().word;
        if word.is_some() && !self.test_mode {
            return Err(hangman_proto::invalid_field(
                "word",
                "a fixed word is accepted only when the server runs in test mode (--test-mode)",
            ));
        }
        let (game_id, tally) = self.store.create(word.as_deref()).await?;
        metrics::counter!("hangman_games_created_total").increment(1);
        let traceparent = traceparent.as_ref().and_then(|v| v.to_str().ok());
        tracing::info!(%game_id, traceparent = %traceparent.unwrap_or(""), "game created");
        Ok(Response::new(CreateGameResponse {
            game_id: game_id.to_string(),
            tally: Some(to_proto(tally)),
        }))
    }

    async fn get_game(
        &self,
        request: Request<GetGameRequest>,
    ) -> Result<Response<GetGameResponse>, Status> {
        let game_id = request.into_inner().game_id;
        let tally = self.store.get(&game_id).await?;
        Ok(Response::new(GetGameResponse {
            game_id,
            tally: Some(to_proto(tally)),
        }))
    }

    async fn make_move(
        &self,
        request: Request<MakeMoveRequest>,
    ) -> Result<Response<MakeMoveResponse>, Status> {
        let MakeMoveRequest { game_id, guess } = request.into_inner();
        let tally = self.store.make_move(&game_id, &guess).await?;
        metrics::counter!("hangman_moves_total", "state" => tally.game_state.name()).increment(1);
        Ok(Response::new(MakeMoveResponse {
            game_id,
            tally: Some(to_proto(tally)),
        }))
    }

    type WatchGameStream = WatchStream;

    async fn watch_game(
        &self,
        request: Request<WatchGameRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let game_id = request.into_inner().game_id;
        let subscription = self.store.watch(&game_id).await?;
        let message = move |tally| {
            Ok(WatchGameResponse {
                game_id: game_id.clone(),
                tally: Some(to_proto(tally)),
            })
        };
        // Dropping the stream drops `changes`, which is how the watcher leaves.
        let changes = stream::unfold(subscription.changes, |mut changes| async move {
            changes.next().await.map(|tally| (tally, changes))
        });
        // On shutdown the stream ends with UNAVAILABLE, not cleanly: a clean end means the
        // game ended, while here the game goes on (in Redis, on another replica) and the
        // watcher should watch again.
        let shutdown = self.shutdown.clone();
        let stopped =
            stream::once(async move { shutdown.is_cancelled() }).filter_map(|stopped| async move {
                stopped.then(|| {
                    Err(Status::unavailable(
                        "the game service is shutting down; watch the game again",
                    ))
                })
            });
        let stream = stream::once(async { subscription.tally })
            .chain(changes)
            .map(message)
            .take_until(self.shutdown.clone().cancelled_owned())
            .chain(stopped);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn end_game(
        &self,
        request: Request<EndGameRequest>,
    ) -> Result<Response<EndGameResponse>, Status> {
        self.store.end(&request.into_inner().game_id).await?;
        Ok(Response::new(EndGameResponse {}))
    }
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Status {
        let message = error.to_string();
        match error {
            StoreError::NotFound => Status::not_found(message),
            StoreError::EmptyId => hangman_proto::invalid_field("game_id", message),
            StoreError::InvalidGuess(_) => hangman_proto::invalid_field("guess", message),
            StoreError::InvalidWord(_) => hangman_proto::invalid_field("word", message),
            StoreError::Full { .. }
            | StoreError::TooManyWatchers { .. }
            | StoreError::TooManyWatchStreams { .. }
            | StoreError::StoreFull(_) => Status::resource_exhausted(message),
            StoreError::Contention => Status::aborted(message),
            StoreError::Unavailable(_) => Status::unavailable(message),
            StoreError::Corrupt(_) | StoreError::Config(_) => Status::internal(message),
        }
    }
}

pub fn to_proto(tally: Tally) -> pb::Tally {
    pb::Tally {
        game_state: proto_state(tally.game_state) as i32,
        turns_left: tally.turns_left.into(),
        letters: tally.letters.iter().map(char::to_string).collect(),
        used: tally.used.iter().map(char::to_string).collect(),
        word: tally.word,
    }
}

fn proto_state(state: GameState) -> pb::GameState {
    match state {
        GameState::Initializing => pb::GameState::Initializing,
        GameState::GoodGuess => pb::GameState::GoodGuess,
        GameState::BadGuess => pb::GameState::BadGuess,
        GameState::AlreadyUsed => pb::GameState::AlreadyUsed,
        GameState::Won => pb::GameState::Won,
        GameState::Lost => pb::GameState::Lost,
    }
}
