//! Moves on a few long-lived `Play` streams instead of a `MakeMove` call each.
//!
//! One stream per connection slot of the transport (a lane: at least one per address of the
//! game service), opened when the lane's first move comes. A move takes an id, puts a one-shot
//! reply slot in the lane's pending map, and queues its request for the lane's writer task,
//! which sends everything queued in one HTTP/2 DATA frame; the lane's reader task reads the
//! replies (`replies`) and hands each to its slot. So a move costs a message on an open stream:
//! no HTTP/2 stream, header block or call future of its own, on either side.
//!
//! - Deadline: a move not answered within the request timeout fails `unavailable` (as a unary
//!   call that times out) and leaves the pending map; its reply, if it comes, is dropped. A
//!   waiting move has no timer of its own (a timer costs two turns of the runtime's timer lock):
//!   each stream's sweeper fails the moves past their deadline every tenth of the timeout, so a
//!   move fails between its deadline and a tenth of the timeout after it.
//! - Back-pressure: the writer's queue is bounded and the writer waits for the stream's HTTP/2
//!   window, which the game service stops opening past its moves in flight per stream; a move
//!   waiting for room waits within its deadline.
//! - A stream that breaks (the game service gone, its connection cut, the stream ended) fails
//!   every move pending on it with `unavailable`, none played again (the game service may have
//!   applied it), and the lane opens a new stream for its next move.
//! - A connection retired by the game service (its GOAWAY, `--max-connection-age`): the writer
//!   sees it and the lane opens a new stream, on a new connection, for its next move; the old
//!   stream gets its pending replies, then its end.
//! - A game service without `Play` (older than this gateway) answers UNIMPLEMENTED: moves go
//!   by unary `MakeMove` for a while ([`UNSUPPORTED_FOR`]), then the stream is tried again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use h2::client::SendRequest;
use hangman_proto::v1::PlayRequest;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as Deadline;
use tokio_util::sync::CancellationToken;
use tonic::transport::Uri;
use tonic::{Code, Status};

mod replies;

use super::tally_wire::TallyWire;
use super::{H2Transport, MAKE_MOVE, UpstreamError};
use replies::{Answer, Replies};

/// How long a game service that answered UNIMPLEMENTED gets moves by unary calls before the
/// stream is tried again (it may have been upgraded meanwhile).
pub const UNSUPPORTED_FOR: Duration = Duration::from_secs(60);

/// Moves queued for a lane's writer at most; a move past it waits for room.
const QUEUED: usize = 1024;

/// Moves the writer sends in one DATA frame at most.
const BATCH: usize = 64;

/// A move's answer, or word that it must go by unary call.
pub enum Played {
    Answer(Result<TallyWire, UpstreamError>),
    /// The game service does not have `Play`.
    Unsupported,
}

/// The lanes, shared by every clone of the gateway's `Upstream`.
pub struct PlayStreams {
    transport: H2Transport,
    path: Uri,
    /// One per connection slot; more are added when the slots grow (more replicas).
    lanes: RwLock<Vec<Arc<Lane>>>,
    next_lane: AtomicUsize,
    next_id: AtomicU64,
    /// Until when (milliseconds since `epoch`) moves go by unary calls; 0: use the stream.
    unsupported_until: AtomicU64,
    epoch: Instant,
    request_timeout: Duration,
}

#[derive(Default)]
struct Lane {
    /// The lane's open stream, if any.
    stream: Mutex<Option<Arc<Open>>>,
    /// Held while opening, so that concurrent moves wait for one stream.
    opening: tokio::sync::Mutex<()>,
}

/// An open `Play` stream: where moves are queued, and who waits for which reply.
struct Open {
    moves: mpsc::Sender<PlayRequest>,
    pending: Arc<Pending>,
}

/// Where a move's answer goes.
type Reply = oneshot::Sender<Result<TallyWire, UpstreamError>>;

#[derive(Default)]
struct Pending {
    /// The moves sent and not answered yet, with their deadlines.
    replies: Mutex<HashMap<u64, (Deadline, Reply)>>,
    /// Cancelled when the stream broke or ended: no reply will come for what is pending.
    ended: CancellationToken,
    /// Set when the stream's connection is being retired: new moves go on a new stream.
    retiring: AtomicBool,
}

impl Pending {
    /// Waits for the reply to `request_id` from now until `deadline`; `false` if the stream has
    /// ended.
    fn expect(&self, request_id: u64, deadline: Deadline, reply: Reply) -> bool {
        let mut replies = self.replies.lock().expect("pending lock");
        // Checked under the lock that `end` takes, so no move is left waiting on a dead stream.
        if self.ended.is_cancelled() {
            return false;
        }
        replies.insert(request_id, (deadline, reply));
        true
    }

    /// Fails the moves whose deadline is past `now`; their replies, if they come, are dropped.
    fn expire(&self, now: Deadline) {
        let expired: Vec<_> = self
            .replies
            .lock()
            .expect("pending lock")
            .extract_if(|_, (deadline, _)| *deadline <= now)
            .collect();
        for (_, (_, waiting)) in expired {
            let _ = waiting.send(Err(timed_out()));
        }
    }

    fn forget(&self, request_id: u64) {
        self.replies
            .lock()
            .expect("pending lock")
            .remove(&request_id);
    }

    fn answer(&self, (request_id, answer): Answer) {
        let waiting = self
            .replies
            .lock()
            .expect("pending lock")
            .remove(&request_id);
        // None: its move gave up at its deadline; the late reply is dropped.
        if let Some((_, waiting)) = waiting {
            let _ = waiting.send(answer);
        }
    }

    /// The stream is over: every move still pending fails with `why`.
    fn end(&self, why: &UpstreamError) {
        let pending = {
            let mut replies = self.replies.lock().expect("pending lock");
            self.ended.cancel();
            std::mem::take(&mut *replies)
        };
        if !pending.is_empty() {
            tracing::info!(moves = pending.len(), %why, "moves pending on a broken Play stream fail");
        }
        for (_, (_, waiting)) in pending {
            let _ = waiting.send(Err(why.clone()));
        }
    }
}

fn timed_out() -> UpstreamError {
    UpstreamError::Unavailable("timed out".into())
}

fn stream_ended() -> UpstreamError {
    UpstreamError::Unavailable("the Play stream ended".into())
}

/// Takes the reply slot of a move out of the pending map if the move gives up (its deadline,
/// or its caller gone) before the reply came.
struct Waiting {
    pending: Arc<Pending>,
    request_id: u64,
    answered: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.answered {
            self.pending.forget(self.request_id);
        }
    }
}

impl PlayStreams {
    /// A stream per connection slot of `transport`, to the game service at `origin`.
    pub fn new(transport: H2Transport, origin: &Uri, request_timeout: Duration) -> Option<Self> {
        let path = format!("{origin}").trim_end_matches('/').to_owned()
            + "/hangman.v1.HangmanService/Play";
        Some(PlayStreams {
            transport,
            path: path.parse().ok()?,
            lanes: RwLock::default(),
            next_lane: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            unsupported_until: AtomicU64::new(0),
            epoch: Instant::now(),
            request_timeout,
        })
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Plays one move on a stream, within the request timeout.
    pub async fn make_move(&self, game_id: &str, guess: &str) -> Played {
        let until = self.unsupported_until.load(Ordering::Relaxed);
        if until != 0 && self.millis() < until {
            return Played::Unsupported;
        }
        let request = PlayRequest {
            request_id: self.next_id.fetch_add(1, Ordering::Relaxed),
            game_id: game_id.to_owned(),
            guess: guess.to_owned(),
        };
        let deadline = Deadline::now() + self.request_timeout;
        // Finding the lane's stream and room in its queue waits only for a stream's first move
        // or a full queue: a timer (two turns of the runtime's timer lock) only then.
        let queuing = self.queue(request, deadline);
        tokio::pin!(queuing);
        let queued = match (&mut queuing).now_or_never() {
            Some(queued) => queued,
            None => match tokio::time::timeout_at(deadline, queuing).await {
                Ok(queued) => queued,
                Err(_) => return Played::Answer(Err(timed_out())),
            },
        };
        let (mut waiting, answered) = match queued {
            Ok(queued) => queued,
            Err(played) => return played,
        };
        // No timer here either: the stream's sweeper answers the move at its deadline.
        let answer = answered.await.unwrap_or_else(|_| Err(stream_ended()));
        waiting.answered = true;
        Played::Answer(answer)
    }

    /// Queues the move on a lane's stream: where its answer will come.
    async fn queue(
        &self,
        request: PlayRequest,
        deadline: Deadline,
    ) -> Result<(Waiting, oneshot::Receiver<Result<TallyWire, UpstreamError>>), Played> {
        let slots = match self.transport.slot_count().await {
            Ok(slots) => slots,
            Err(err) => {
                return Err(Played::Answer(Err(UpstreamError::Unavailable(
                    err.to_string(),
                ))));
            }
        };
        let lane = self.next_lane.fetch_add(1, Ordering::Relaxed) % slots;
        let open = match self.open(lane).await {
            Ok(open) => open,
            Err(Played::Unsupported) => {
                let until = self.millis() + UNSUPPORTED_FOR.as_millis() as u64;
                self.unsupported_until.store(until, Ordering::Relaxed);
                return Err(Played::Unsupported);
            }
            Err(answer) => return Err(answer),
        };
        let request_id = request.request_id;
        let (reply, answered) = oneshot::channel();
        if !open.pending.expect(request_id, deadline, reply) {
            return Err(Played::Answer(Err(stream_ended())));
        }
        let waiting = Waiting {
            pending: Arc::clone(&open.pending),
            request_id,
            answered: false,
        };
        if open.moves.send(request).await.is_err() {
            return Err(Played::Answer(Err(stream_ended())));
        }
        Ok((waiting, answered))
    }

    /// The lane's stream, opened if it has none that takes moves.
    async fn open(&self, index: usize) -> Result<Arc<Open>, Played> {
        let lane = self.lane(index);
        let lane = &*lane;
        if let Some(open) = usable(lane) {
            return Ok(open);
        }
        let _opening = lane.opening.lock().await;
        if let Some(open) = usable(lane) {
            return Ok(open);
        }
        let open = Arc::new(self.start(index).await?);
        *lane.stream.lock().expect("lane lock") = Some(Arc::clone(&open));
        Ok(open)
    }

    fn lane(&self, index: usize) -> Arc<Lane> {
        if let Some(lane) = self.lanes.read().expect("lanes lock").get(index) {
            return Arc::clone(lane);
        }
        let mut lanes = self.lanes.write().expect("lanes lock");
        while lanes.len() <= index {
            lanes.push(Arc::default());
        }
        Arc::clone(&lanes[index])
    }

    /// Opens a stream on connection slot `index` and starts its writer and reader.
    async fn start(&self, index: usize) -> Result<Open, Played> {
        let unavailable = |why: String| Played::Answer(Err(UpstreamError::Unavailable(why)));
        let request = http::Request::post(self.path.clone())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("a valid request head");
        let (connection, body, response) = self
            .transport
            .open_stream(index, request)
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        // A refusal comes at once, "trailers-only": the status in the response's head.
        if let Some(status) = Status::from_header_map(response.headers()) {
            return Err(match status.code() {
                Code::Unimplemented => {
                    tracing::info!(
                        "the game service has no Play stream; moves go by MakeMove calls"
                    );
                    Played::Unsupported
                }
                _ => Played::Answer(Err(UpstreamError::from_status(&MAKE_MOVE, &status))),
            });
        }
        if response.status() != http::StatusCode::OK {
            return Err(unavailable(format!(
                "the Play stream was answered {}",
                response.status()
            )));
        }
        let (moves, queued) = mpsc::channel(QUEUED);
        let pending = Arc::new(Pending::default());
        tokio::spawn(write(queued, body, connection, Arc::clone(&pending)));
        tokio::spawn(read(response.into_body(), Arc::clone(&pending)));
        tokio::spawn(sweep(Arc::clone(&pending), self.request_timeout / 10));
        Ok(Open { moves, pending })
    }
}

/// The lane's stream if it still takes moves (not ended, its connection not retiring).
fn usable(lane: &Lane) -> Option<Arc<Open>> {
    let stream = lane.stream.lock().expect("lane lock");
    stream
        .as_ref()
        .filter(|open| {
            !open.pending.ended.is_cancelled() && !open.pending.retiring.load(Ordering::Relaxed)
        })
        .cloned()
}

/// The writer: what is queued goes out in one DATA frame, within the stream's window. It ends
/// the stream's sending side once every move handle is gone (the lane replaced the stream).
async fn write(
    mut queued: mpsc::Receiver<PlayRequest>,
    mut body: h2::SendStream<Bytes>,
    connection: SendRequest<Bytes>,
    pending: Arc<Pending>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut frames = BytesMut::new();
    loop {
        let received = tokio::select! {
            received = queued.recv_many(&mut batch, BATCH) => received,
            () = pending.ended.cancelled() => return,
        };
        if received == 0 {
            let _ = body.send_data(Bytes::new(), true);
            return;
        }
        // One turn of the runtime for the moves on their way (other sockets' frames read in
        // the meantime) to join this frame: without it nearly every frame carries one move.
        if received < BATCH {
            tokio::task::yield_now().await;
            while batch.len() < BATCH {
                match queued.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
        }
        for request in batch.drain(..) {
            // The gRPC frame: not compressed, the length, the message.
            frames.put_u8(0);
            frames.put_u32(request.encoded_len() as u32);
            request.encode(&mut frames).expect("the buffer grows");
        }
        // The game service retires this connection (GOAWAY): this stream goes on until its
        // moves are answered, and the lane's next move opens a stream on a new connection.
        if matches!(connection.clone().ready().now_or_never(), Some(Err(_))) {
            pending.retiring.store(true, Ordering::Relaxed);
        }
        if let Err(err) = send(&mut body, frames.split().freeze()).await {
            pending.end(&UpstreamError::Unavailable(format!(
                "the Play stream broke: {err}"
            )));
            return;
        }
    }
}

/// The sweeper: every `tick` (a tenth of the request timeout), fails the moves past their
/// deadline, until the stream ends.
async fn sweep(pending: Arc<Pending>, tick: Duration) {
    let mut ticks = tokio::time::interval(tick.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => pending.expire(Deadline::now()),
            () = pending.ended.cancelled() => return,
        }
    }
}

/// Sends `data` once the stream has window for it (as hyper does: some room, then the whole).
async fn send(body: &mut h2::SendStream<Bytes>, data: Bytes) -> Result<(), h2::Error> {
    body.reserve_capacity(data.len());
    while body.capacity() == 0 {
        match std::future::poll_fn(|cx| body.poll_capacity(cx)).await {
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err),
            None => return Err(h2::Error::from(h2::Reason::STREAM_CLOSED)),
        }
    }
    body.send_data(data, false)
}

/// The reader: hands each reply to its move; when the stream ends, fails what is pending.
async fn read(mut replies: h2::RecvStream, pending: Arc<Pending>) {
    let mut read = Replies::default();
    let why = loop {
        match replies.data().await {
            Some(Ok(data)) => {
                let _ = replies.flow_control().release_capacity(data.len());
                if let Err(why) = read.feed(data, |answer| pending.answer(answer)) {
                    break why;
                }
            }
            Some(Err(err)) => break format!("the Play stream broke: {err}"),
            None => {
                break match replies.trailers().await {
                    Ok(Some(trailers)) => match Status::from_header_map(&trailers) {
                        Some(status) if status.code() != Code::Ok => format!(
                            "the Play stream ended: {}: {}",
                            status.code(),
                            status.message()
                        ),
                        _ => "the Play stream ended".to_owned(),
                    },
                    Ok(None) => "the Play stream ended without a status".to_owned(),
                    Err(err) => format!("the Play stream broke: {err}"),
                };
            }
        }
    };
    pending.end(&UpstreamError::Unavailable(why));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(
        pending: &Pending,
        request_id: u64,
        deadline: Deadline,
    ) -> oneshot::Receiver<Result<TallyWire, UpstreamError>> {
        let (reply, answer) = oneshot::channel();
        assert!(pending.expect(request_id, deadline, reply));
        answer
    }

    #[test]
    fn the_sweep_fails_the_moves_past_their_deadline_and_only_those() {
        let pending = Pending::default();
        let now = Deadline::now();
        let mut past = waiting(&pending, 1, now);
        let mut future = waiting(&pending, 2, now + Duration::from_secs(1));
        pending.expire(now);
        let Ok(Err(UpstreamError::Unavailable(why))) = past.try_recv() else {
            panic!("the move past its deadline is answered");
        };
        assert_eq!(why, "timed out");
        assert!(future.try_recv().is_err(), "the other one still waits");
        // Its reply, when it comes, is still its own.
        pending.answer((2, Ok(TallyWire::from(&Default::default()))));
        assert!(matches!(future.try_recv(), Ok(Ok(_))));
    }
}
