//! The `hangman.v1.HangmanService` gRPC API over a [`GameStore`].
//!
//! This module only translates: proto messages to store calls and back,
//! store errors to gRPC status codes. The rules live in `rules`; the `Play` stream's
//! bookkeeping in `play`.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, stream};
use hangman_proto::v1::{
    self as pb, CreateGameRequest, CreateGameResponse, EndGameRequest, EndGameResponse,
    GetGameRequest, GetGameResponse, MakeMoveRequest, MakeMoveResponse, PlayRequest, PresenceDiff,
    PresenceMember, PresenceState, UpdatePresenceRequest, UpdatePresenceResponse, WatchGameRequest,
    WatchGameResponse, hangman_service_server::HangmanService, watch_game_response::Presence,
};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::{
    play::Plays,
    rules::{GameState, Tally},
    store::{Change, GameStore, Limits, Member, Recovery, StoreError, WatchOptions},
};

/// The gRPC service: a handle on the shared store plus the server's mode.
pub struct HangmanApi<S> {
    store: Arc<S>,
    test_mode: bool,
    /// Told to presence clients, so that they renew in time.
    presence_lease: Duration,
    max_members_per_game: usize,
    /// Moves in flight on one `Play` stream at most.
    max_moves_in_flight_per_stream: usize,
    /// Cancelled when the server shuts down, so that watch streams end and
    /// graceful shutdown does not wait for them forever.
    shutdown: CancellationToken,
}

impl<S> HangmanApi<S> {
    pub fn new(
        store: Arc<S>,
        test_mode: bool,
        limits: &Limits,
        shutdown: CancellationToken,
    ) -> Self {
        HangmanApi {
            store,
            test_mode,
            presence_lease: limits.presence_lease,
            max_members_per_game: limits.max_members_per_game,
            max_moves_in_flight_per_stream: 1024,
            shutdown,
        }
    }

    /// Sets the most moves in flight on one `Play` stream (1024 unless set).
    pub fn max_moves_in_flight_per_stream(mut self, max: usize) -> Self {
        self.max_moves_in_flight_per_stream = max;
        self
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

    type PlayStream = Plays<S>;

    async fn play(
        &self,
        request: Request<Streaming<PlayRequest>>,
    ) -> Result<Response<Plays<S>>, Status> {
        Ok(Response::new(Plays::new(
            Arc::clone(&self.store),
            request.into_inner(),
            self.max_moves_in_flight_per_stream,
            self.shutdown.clone(),
        )))
    }

    type WatchGameStream = WatchStream;

    async fn watch_game(
        &self,
        request: Request<WatchGameRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let WatchGameRequest {
            game_id,
            presence,
            since_version,
        } = request.into_inner();
        let options = WatchOptions {
            presence,
            since_version,
        };
        let subscription = self.store.watch(&game_id, options).await?;
        let (recovered, missed) = match subscription.recovery {
            Recovery::NotAsked => (None, Vec::new()),
            Recovery::Recovered(missed) => (Some(true), missed.into_iter().map(to_proto).collect()),
            Recovery::Gap => (Some(false), Vec::new()),
        };
        let first = WatchGameResponse {
            game_id: game_id.clone(),
            tally: Some(to_proto(subscription.tally)),
            recovered,
            missed,
            presence: None,
        };
        let message = move |change| {
            let (tally, presence) = match change {
                Change::Tally(tally) => (Some(to_proto(tally)), None),
                Change::PresenceState(members) => (
                    None,
                    Some(Presence::PresenceState(PresenceState {
                        members: members.into_iter().map(member_to_proto).collect(),
                    })),
                ),
                Change::PresenceDiff { joins, leaves } => (
                    None,
                    Some(Presence::PresenceDiff(PresenceDiff {
                        joins: joins.into_iter().map(member_to_proto).collect(),
                        leaves: leaves.into_iter().map(member_to_proto).collect(),
                    })),
                ),
            };
            Ok(WatchGameResponse {
                game_id: game_id.clone(),
                tally,
                recovered: None,
                missed: Vec::new(),
                presence,
            })
        };
        // Dropping the stream drops `changes`, which is how the watcher leaves.
        let changes = stream::unfold(subscription.changes, |mut changes| async move {
            changes.next().await.map(|change| (change, changes))
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
        let stream = stream::once(async { Ok(first) })
            .chain(changes.map(message))
            .take_until(self.shutdown.clone().cancelled_owned())
            .chain(stopped);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn update_presence(
        &self,
        request: Request<UpdatePresenceRequest>,
    ) -> Result<Response<UpdatePresenceResponse>, Status> {
        let UpdatePresenceRequest {
            game_id,
            renew,
            leave,
        } = request.into_inner();
        let max = self.max_members_per_game;
        if renew.len() + leave.len() > max {
            return Err(StoreError::TooManyMembers { max }.into());
        }
        let renew = renew
            .into_iter()
            .map(|member| {
                let member = Member {
                    key: member.key,
                    name: member.name,
                    online_at: 0,
                };
                member.check().map(|()| member)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.store.update_presence(&game_id, renew, leave).await?;
        Ok(Response::new(UpdatePresenceResponse {
            lease_ms: u64::try_from(self.presence_lease.as_millis()).unwrap_or(u64::MAX),
        }))
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
        match refused_field(&error) {
            Some(field) => hangman_proto::invalid_field(field, message),
            None => Status::new(status_code(&error), message),
        }
    }
}

/// The request field an INVALID_ARGUMENT names (its `google.rpc.BadRequest` detail in a
/// status, `PlayError.field` on the `Play` stream).
pub(crate) fn refused_field(error: &StoreError) -> Option<&'static str> {
    match error {
        StoreError::EmptyId => Some("game_id"),
        StoreError::InvalidGuess(_) => Some("guess"),
        StoreError::InvalidWord(_) => Some("word"),
        StoreError::InvalidMember(_) => Some("renew"),
        _ => None,
    }
}

/// The gRPC status code of a store error.
pub(crate) fn status_code(error: &StoreError) -> Code {
    match error {
        StoreError::NotFound => Code::NotFound,
        StoreError::EmptyId
        | StoreError::InvalidGuess(_)
        | StoreError::InvalidWord(_)
        | StoreError::InvalidMember(_) => Code::InvalidArgument,
        StoreError::Full { .. }
        | StoreError::TooManyWatchers { .. }
        | StoreError::TooManyWatchStreams { .. }
        | StoreError::TooManyMembers { .. }
        | StoreError::TooManyMembersInAll { .. }
        | StoreError::StoreFull(_) => Code::ResourceExhausted,
        StoreError::Contention => Code::Aborted,
        StoreError::Unavailable(_) => Code::Unavailable,
        StoreError::Corrupt(_) | StoreError::Config(_) => Code::Internal,
    }
}

pub fn to_proto(tally: Tally) -> pb::Tally {
    pb::Tally {
        game_state: proto_state(tally.game_state) as i32,
        turns_left: tally.turns_left.into(),
        letters: tally.letters.iter().map(char::to_string).collect(),
        used: tally.used.iter().map(char::to_string).collect(),
        word: tally.word,
        version: tally.version,
    }
}

fn member_to_proto(member: Member) -> PresenceMember {
    PresenceMember {
        key: member.key,
        name: member.name,
        online_at: member.online_at,
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
