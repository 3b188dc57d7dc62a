//! `Play`: many moves over one long-lived stream (the contract, `hangman.proto`, says what a
//! client may rely on).
//!
//! One stream is one [`Plays`], polled by the task that already serves the call: it reads
//! requests while fewer than the limit are in flight, plays each game's moves one after the
//! other (moves on different games at once, each through [`GameStore::make_move`] as
//! `MakeMove`), and yields each reply as its move finishes. There is no task per move or per
//! stream besides the call's own, and no HTTP/2 stream, header block or routing per move:
//! that is what the stream saves over a `MakeMove` call each. On shutdown it stops reading,
//! answers every move it has read, then ends with UNAVAILABLE: a move without a reply then
//! was not played.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use hangman_proto::v1::{PlayError, PlayRequest, PlayResponse, play_response::Outcome};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Code, Status, Streaming};

use crate::rules::Tally;
use crate::service::{refused_field, status_code, to_proto};
use crate::store::{GameStore, StoreError};

/// A move being played: its request id and game, and what came of it.
type Move = BoxFuture<'static, (u64, String, Result<Tally, StoreError>)>;

/// The replies of one `Play` stream, as the stream of its response.
pub struct Plays<S> {
    store: Arc<S>,
    /// The client's requests; `None` once it half-closed its side.
    requests: Option<Streaming<PlayRequest>>,
    /// At most one move per game: the game's next waits in `queued`.
    running: FuturesUnordered<Move>,
    /// Per game with a move running, the moves (request id, guess) received after it.
    queued: HashMap<String, VecDeque<(u64, String)>>,
    /// The ids of every move running or queued.
    pending: HashSet<u64>,
    /// Replies ready at once: requests refused for reusing a pending id.
    refused: VecDeque<PlayResponse>,
    max_in_flight: usize,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The server is shutting down: nothing more is read, what was read is answered, then
    /// the stream ends with UNAVAILABLE.
    draining: bool,
    finished: bool,
}

impl<S: GameStore> Plays<S> {
    pub fn new(
        store: Arc<S>,
        requests: Streaming<PlayRequest>,
        max_in_flight: usize,
        shutdown: CancellationToken,
    ) -> Self {
        Plays {
            store,
            requests: Some(requests),
            running: FuturesUnordered::new(),
            queued: HashMap::new(),
            pending: HashSet::new(),
            refused: VecDeque::new(),
            max_in_flight: max_in_flight.max(1),
            shutdown: Box::pin(shutdown.cancelled_owned()),
            draining: false,
            finished: false,
        }
    }

    fn in_flight(&self) -> usize {
        self.pending.len() + self.refused.len()
    }

    /// Starts the move, or queues it behind the move running on its game.
    fn accept(&mut self, request: PlayRequest) {
        let PlayRequest {
            request_id,
            game_id,
            guess,
        } = request;
        if !self.pending.insert(request_id) {
            let message = format!("request id {request_id} is already pending on this stream");
            self.refused.push_back(PlayResponse {
                request_id,
                game_id,
                outcome: Some(Outcome::Error(PlayError {
                    code: Code::InvalidArgument as i32,
                    message,
                    field: "request_id".to_owned(),
                })),
            });
            return;
        }
        match self.queued.get_mut(&game_id) {
            Some(queue) => queue.push_back((request_id, guess)),
            None => {
                self.queued.insert(game_id.clone(), VecDeque::new());
                self.running.push(self.play(request_id, game_id, guess));
            }
        }
    }

    fn play(&self, request_id: u64, game_id: String, guess: String) -> Move {
        let store = Arc::clone(&self.store);
        Box::pin(async move {
            let result = store.make_move(&game_id, &guess).await;
            (request_id, game_id, result)
        })
    }

    /// The reply to a move played; the game's next move starts.
    fn finish(
        &mut self,
        request_id: u64,
        game_id: String,
        result: Result<Tally, StoreError>,
    ) -> PlayResponse {
        self.pending.remove(&request_id);
        if let Some(queue) = self.queued.get_mut(&game_id) {
            match queue.pop_front() {
                Some((next, guess)) => {
                    let next = self.play(next, game_id.clone(), guess);
                    self.running.push(next);
                }
                None => {
                    self.queued.remove(&game_id);
                }
            }
        }
        let outcome = match result {
            Ok(tally) => {
                metrics::counter!("hangman_moves_total", "state" => tally.game_state.name())
                    .increment(1);
                Outcome::Tally(to_proto(tally))
            }
            Err(error) => Outcome::Error(PlayError {
                code: status_code(&error) as i32,
                field: refused_field(&error).unwrap_or_default().to_owned(),
                message: error.to_string(),
            }),
        };
        PlayResponse {
            request_id,
            game_id,
            outcome: Some(outcome),
        }
    }
}

/// The stream's end when reading the client's side failed. Bytes that are not a stream of
/// `PlayRequest`s (a message that does not decode, a bad frame header) tonic reports as
/// INTERNAL with no underlying error, which would blame the server: they are the client's
/// INVALID_ARGUMENT. A transport failure (an HTTP/2 error, which tonic keeps as the source)
/// stays as it is.
fn request_error(status: Status) -> Status {
    match status.code() {
        Code::Internal if std::error::Error::source(&status).is_none() => {
            Status::invalid_argument(format!(
                "a message on the Play stream is not a PlayRequest: {}",
                status.message()
            ))
        }
        _ => status,
    }
}

impl<S: GameStore> Stream for Plays<S> {
    type Item = Result<PlayResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if !this.draining && this.shutdown.as_mut().poll(cx).is_ready() {
            this.draining = true;
            this.requests = None;
        }
        // Read while there is room; past the limit the client's HTTP/2 window fills and its
        // writes wait: that is the back-pressure.
        while this.in_flight() < this.max_in_flight
            && let Some(requests) = this.requests.as_mut()
        {
            match Pin::new(requests).poll_next(cx) {
                Poll::Ready(Some(Ok(request))) => this.accept(request),
                Poll::Ready(Some(Err(status))) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(request_error(status))));
                }
                Poll::Ready(None) => this.requests = None,
                Poll::Pending => break,
            }
        }
        if let Some(reply) = this.refused.pop_front() {
            return Poll::Ready(Some(Ok(reply)));
        }
        if let Poll::Ready(Some((request_id, game_id, result))) = this.running.poll_next_unpin(cx) {
            return Poll::Ready(Some(Ok(this.finish(request_id, game_id, result))));
        }
        if this.requests.is_none() && this.pending.is_empty() {
            this.finished = true;
            if this.draining {
                return Poll::Ready(Some(Err(Status::unavailable(
                    "the game service is shutting down; the moves without a reply were not played",
                ))));
            }
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}
