//! One connection's state machine: decodes frames, answers heartbeats, routes joins, leaves
//! and events to channels, and enforces the per-connection limits (idle timeout, channel cap,
//! message rate).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::task::AtomicWaker;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_util::sync::CancellationToken;

use super::channel::{ChannelHandle, ChannelMsg, ChannelRun, JoinRequest, Router, ToSocket};
use super::close_code;
use super::mailbox;
use super::message::{Message, Outbound, Payload, Status, events};
use super::rate_limit::{Rate, RateLimiter};
use super::serializer::{DecodeError, DecodeErrorKind, Frame, Serializer};
use super::telemetry::{FrameError, Metrics};
use super::wire::Wire;

/// How many outbound messages may queue from channels before they wait for the client.
const OUTBOX: usize = 64;

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// A connection that sends nothing (not even a heartbeat) for this long is closed.
    pub idle_timeout: Duration,
    /// Channels one connection may have joined at once.
    pub max_channels: usize,
    /// Client events that may wait for one busy channel; more get `overloaded` replies.
    pub channel_inbox: usize,
    /// Messages per second one connection may send (a burst of as many is allowed).
    pub messages_per_second: u32,
    /// The close code sent on server shutdown (1001 or 1012).
    pub shutdown_close_code: u16,
    /// After the server sends a close frame, how long it keeps reading (and discarding) the
    /// client's frames, waiting for its close (after a protocol error: raw bytes, waiting for
    /// the end of the stream): dropping a connection with unread data makes the kernel reset
    /// it, and the client would lose the replies and the close frame sent.
    pub close_timeout: Duration,
}

/// Why the socket loop stopped.
enum Stop {
    /// The connection broke: nothing left to send.
    Gone,
    /// The client sent a close frame: the library's reply (echoing its code) is flushed.
    ClientClosed,
    /// The server closes the connection with this code and reason.
    Close(u16, &'static str),
    /// The client broke the WebSocket protocol (RFC 6455 "fails the connection"): the server
    /// closes with this code and reason, and tungstenite can read no further.
    Fail(u16, &'static str),
}

/// What the socket does next, once its loop has learnt what happened.
enum Next {
    Nothing,
    Stop(Stop),
    /// Send what the channels queued.
    SendQueued(ToSocket),
    /// Send one message to the client. (Boxed, as the join: this stays small, and it is
    /// kept while the socket awaits what it calls for.)
    Send(Box<Outbound>),
    /// Join a channel (awaiting its `join`), then reply.
    Join(Box<Message>),
}

/// A connected socket, from upgrade until close.
pub(crate) struct Socket<A> {
    serializer: Serializer,
    assigns: Arc<A>,
    router: Arc<Router<A>>,
    limits: Arc<SocketLimits>,
    metrics: Arc<Metrics>,
    channels: HashMap<String, ChannelHandle>,
    /// The joined channels' futures, polled by this socket's task.
    running: FuturesUnordered<ChannelRun>,
    outbox: mailbox::Sender<ToSocket>,
    rate: RateLimiter,
}

impl<A: Send + Sync + 'static> Socket<A> {
    pub(crate) fn new(
        serializer: Serializer,
        assigns: Arc<A>,
        router: Arc<Router<A>>,
        limits: Arc<SocketLimits>,
        metrics: Arc<Metrics>,
    ) -> (Self, mailbox::Receiver<ToSocket>) {
        let (outbox, outbox_rx) = mailbox::bounded(OUTBOX);
        let rate = RateLimiter::new(limits.messages_per_second);
        let socket = Socket {
            serializer,
            assigns,
            router,
            limits,
            metrics,
            channels: HashMap::new(),
            running: FuturesUnordered::new(),
            outbox,
            rate,
        };
        (socket, outbox_rx)
    }

    /// Serves the connection once `connected` gives it, until it closes; channels end with it,
    /// and `connection` (what counts it) is dropped last.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub(crate) fn run(
        mut self,
        connected: Pin<Box<dyn Future<Output = Option<Wire>> + Send>>,
        mut from_channels: mailbox::Receiver<ToSocket>,
        shutdown: CancellationToken,
        connection: impl Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        // An async block rather than an async fn: an async fn's future keeps its arguments
        // twice (as passed, then moved into the body's locals), 500 bytes of every socket.
        async move {
            let Some(mut ws) = connected.await else {
                return;
            };
            let idle_timeout = self.limits.idle_timeout;
            let mut last_activity = Instant::now();
            // One timer per connection, moved only when it fires before the connection has been
            // idle long enough: a new deadline on every frame cost two timer-wheel updates per
            // message.
            let idle = sleep_until(last_activity + idle_timeout);
            tokio::pin!(idle);
            // Likewise one wait for shutdown, not a waiter registered and removed per message.
            let shutting_down = shutdown.cancelled();
            tokio::pin!(shutting_down);
            let reads = ReadGate::new();
            let stop = loop {
                // The select only learns what happened; the work it calls for is awaited after it,
                // so that the state every idle socket's task keeps is the largest of these awaits,
                // not the select's futures plus all of them.
                let next = tokio::select! {
                    () = &mut shutting_down => Next::Stop(Stop::Close(self.limits.shutdown_close_code, "server shutting down")),
                    () = &mut idle => {
                        let deadline = last_activity + idle_timeout;
                        if Instant::now() >= deadline {
                            Next::Stop(Stop::Close(close_code::GOING_AWAY, "idle timeout"))
                        } else {
                            idle.as_mut().reset(deadline);
                            Next::Nothing
                        }
                    }
                    // A channel ended (left, crashed, or its socket-side handle was dropped).
                    Some(()) = self.running.next(), if !self.running.is_empty() => Next::Nothing,
                    Some(msg) = from_channels.recv() => Next::SendQueued(msg),
                    frame = std::future::poll_fn(|cx| reads.poll_next(&mut ws, cx)) => {
                        // One clock read per frame, for the idle timer and the rate limit.
                        last_activity = Instant::now();
                        match frame {
                            None => Next::Stop(Stop::Gone),
                            Some(Ok(WsMessage::Close(_))) => Next::Stop(Stop::ClientClosed),
                            Some(Err(err)) => Next::Stop(read_error(&err, &self.metrics)),
                            Some(Ok(WsMessage::Text(text))) => self.on_frame(self.serializer.decode_text(text.as_str()), last_activity),
                            Some(Ok(WsMessage::Binary(bytes))) => self.on_frame(self.serializer.decode_binary(&bytes), last_activity),
                            // Pings are answered by the WebSocket library; they still count as activity.
                            // (Raw frames are only ever written, never read.)
                            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => Next::Nothing,
                        }
                    }
                };
                let step = match next {
                    Next::Nothing => Ok(()),
                    Next::Stop(stop) => Err(stop),
                    Next::SendQueued(msg) => {
                        let write = self.send_queued(&mut ws, msg, &mut from_channels);
                        within_idle_timeout(idle_timeout, write).await
                    }
                    Next::Send(out) => self.send(&mut ws, &out).await,
                    // Boxed, as the rare paths below: inline, a join's future would be part of
                    // every idle socket's task. (In a statement of its own, so that the unboxed
                    // future is no temporary of the statement that awaits.)
                    Next::Join(msg) => {
                        let joining = Box::pin(self.join(&mut ws, *msg));
                        joining.await
                    }
                };
                if let Err(stop) = step {
                    break stop;
                }
            };
            let closing = Box::pin(close(&mut ws, stop, &self.limits));
            closing.await;
            // Dropping the handles ends every channel; the ones still busy (a call to the game
            // service in flight) finish, and run `terminate`, in a task of their own.
            self.channels.clear();
            drop(from_channels);
            let mut running = std::mem::take(&mut self.running);
            if !running.is_empty() {
                tokio::spawn(async move { while running.next().await.is_some() {} });
            }
            drop(connection);
        }
    }

    /// Sends what the channels queued, every message already waiting in one write.
    async fn send_queued(
        &mut self,
        ws: &mut Wire,
        first: ToSocket,
        queue: &mut mailbox::Receiver<ToSocket>,
    ) -> Result<(), Stop> {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                ToSocket::Send(out) => self.feed(ws, &out).await?,
                ToSocket::Exited(exit) => {
                    let (topic, join_ref) = *exit;
                    if self
                        .channels
                        .get(&topic)
                        .is_some_and(|c| c.join_ref == join_ref)
                    {
                        self.channels.remove(&topic);
                    }
                }
            }
            next = queue.try_recv();
        }
        ws.flush().await.map_err(|_| Stop::Gone)
    }

    /// What a client's frame, read at `now`, calls for.
    fn on_frame(&mut self, decoded: Result<Message, DecodeError>, now: Instant) -> Next {
        match self.rate.check(now) {
            Rate::Allowed => {}
            Rate::Abusive => {
                self.metrics.frame_error(FrameError::RateAbuse);
                return Next::Stop(Stop::Close(
                    close_code::POLICY_VIOLATION,
                    "message rate limit exceeded repeatedly",
                ));
            }
            Rate::Refused => {
                self.metrics.frame_error(FrameError::RateLimited);
                let (join_ref, msg_ref, topic) = match decoded {
                    Ok(m) => (m.join_ref, m.msg_ref, Some(m.topic)),
                    Err(e) => (e.join_ref, e.msg_ref, e.topic),
                };
                let reply =
                    error_reply(join_ref, msg_ref, topic, json!({"reason": "rate_limited"}));
                return Next::Send(Box::new(reply));
            }
        }
        match decoded {
            Ok(msg) => self.on_message(msg),
            Err(err) => {
                let reason = err.kind.reason();
                self.metrics.frame_error(match err.kind {
                    DecodeErrorKind::Message => FrameError::InvalidMessage,
                    DecodeErrorKind::Payload => FrameError::InvalidPayload,
                });
                tracing::debug!(detail = %err.reason, reason, "invalid message");
                Next::Send(Box::new(error_reply(
                    err.join_ref,
                    err.msg_ref,
                    err.topic,
                    json!({"reason": reason, "detail": err.reason}),
                )))
            }
        }
    }

    /// What a client's message calls for: an event is handed to its channel here.
    fn on_message(&mut self, msg: Message) -> Next {
        self.metrics.messages.increment(1);
        if msg.topic == events::PHOENIX_TOPIC && msg.event == events::HEARTBEAT {
            return Next::Send(Box::new(Outbound::Reply {
                join_ref: None,
                msg_ref: msg.msg_ref,
                topic: msg.topic,
                status: Status::Ok,
                response: Payload::Json(json!({})),
            }));
        }
        if msg.event == events::JOIN {
            return Next::Join(Box::new(msg));
        }
        let Some(channel) = self.channels.get(&msg.topic) else {
            let (status, response) = if msg.event == events::LEAVE {
                (Status::Ok, json!({}))
            } else {
                (Status::Error, json!({"reason": "unmatched topic"}))
            };
            return Next::Send(Box::new(Outbound::Reply {
                join_ref: msg.join_ref,
                msg_ref: msg.msg_ref,
                topic: msg.topic,
                status,
                response: Payload::Json(response),
            }));
        };
        if msg
            .join_ref
            .as_ref()
            .is_some_and(|jr| *jr != channel.join_ref)
        {
            tracing::debug!(topic = %msg.topic, "dropping message with a stale join_ref");
            return Next::Nothing;
        }
        let (inbox, join_ref) = (channel.inbox.clone(), channel.join_ref.clone());
        let to_channel = if msg.event == events::LEAVE {
            self.channels.remove(&msg.topic);
            ChannelMsg::Leave {
                msg_ref: msg.msg_ref.clone(),
            }
        } else {
            ChannelMsg::Event {
                event: msg.event,
                msg_ref: msg.msg_ref.clone(),
                payload: msg.payload,
            }
        };
        if inbox.try_send(Box::new(to_channel)).is_err() {
            // The channel is busy with a backlog (or just ended): refuse rather than wait.
            return Next::Send(Box::new(error_reply(
                Some(join_ref),
                msg.msg_ref,
                Some(msg.topic),
                json!({"reason": "overloaded"}),
            )));
        }
        Next::Nothing
    }

    async fn join(&mut self, ws: &mut Wire, msg: Message) -> Result<(), Stop> {
        let Message {
            join_ref,
            msg_ref,
            topic,
            payload,
            ..
        } = msg;
        if let Some(old) = self.channels.remove(&topic) {
            tracing::debug!(%topic, "duplicate join: closing the existing channel");
            self.send(
                ws,
                &Outbound::lifecycle(&old.join_ref, &topic, events::CLOSE, json!({})),
            )
            .await?;
        }
        if self.channels.len() >= self.limits.max_channels {
            let reply = error_reply(
                join_ref,
                msg_ref,
                Some(topic),
                json!({"reason": "too many channels joined"}),
            );
            return self.send(ws, &reply).await;
        }
        // The client's join_ref names this join; a client that sends none gets its ref.
        let Some(channel_ref) = join_ref.clone().or_else(|| msg_ref.clone()) else {
            let reply = error_reply(
                None,
                None,
                Some(topic),
                json!({"reason": "invalid_message", "detail": "phx_join needs a join_ref or a ref"}),
            );
            return self.send(ws, &reply).await;
        };
        let request = JoinRequest {
            topic: &topic,
            join_ref: &channel_ref,
            payload,
            assigns: &*self.assigns,
            outbox: &self.outbox,
            inbox_capacity: self.limits.channel_inbox,
            channels: &self.metrics.channels,
        };
        let (status, response, reply_join_ref) = match self.router.join(request).await {
            None => (Status::Error, json!({"reason": "unmatched topic"}), None),
            Some(Err(response)) => (Status::Error, response, join_ref),
            Some(Ok((handle, response, run))) => {
                self.channels.insert(topic.clone(), handle);
                self.running.push(run);
                (Status::Ok, response, join_ref)
            }
        };
        let reply = Outbound::Reply {
            join_ref: reply_join_ref,
            msg_ref,
            topic,
            status,
            response: Payload::Json(response),
        };
        self.send(ws, &reply).await
    }

    /// Sends one message now.
    async fn send(&mut self, ws: &mut Wire, out: &Outbound) -> Result<(), Stop> {
        let idle_timeout = self.limits.idle_timeout;
        let write = async {
            self.feed(ws, out).await?;
            ws.flush().await.map_err(|_| Stop::Gone)
        };
        within_idle_timeout(idle_timeout, write).await
    }

    /// Queues one message in the connection's write buffer; a flush sends it.
    async fn feed(&mut self, ws: &mut Wire, out: &Outbound) -> Result<(), Stop> {
        let frame = match self.serializer.encode(out) {
            Some(Frame::Text(text)) => WsMessage::Text(text.into()),
            Some(Frame::Binary(bytes)) => WsMessage::Binary(bytes.into()),
            None => {
                tracing::warn!(
                    ?out,
                    "message cannot be encoded for this connection; dropped"
                );
                return Ok(());
            }
        };
        // A large message goes in WebSocket fragments, so the write buffer never grows to its
        // size.
        for frame in ws.frames(frame) {
            ws.feed(frame).await.map_err(|_| Stop::Gone)?;
        }
        Ok(())
    }
}

/// Polls the connection's read side only when it may give something: at first, after it gave a
/// frame (more may be buffered), and once its waker fired. The socket's loop goes round its
/// select about four times a move (the frame, the channel handling it, its reply queued, the
/// replies sent), and a read with nothing to give still cost tungstenite and the I/O layers
/// under it several hundred instructions each time: about a twentieth of the gateway's
/// user-space instructions on a move. (An `Arc` and a `Waker` per connection, about 90 bytes.)
struct ReadGate {
    /// The waker the read is polled with: it marks the read due and wakes the socket's task.
    waker: Waker,
    wake: Arc<ReadWake>,
}

struct ReadWake {
    due: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl ReadGate {
    fn new() -> Self {
        let wake = Arc::new(ReadWake {
            due: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        ReadGate {
            waker: Waker::from(Arc::clone(&wake)),
            wake,
        }
    }

    /// The connection's next frame, as `ws.next()` gives it.
    fn poll_next(
        &self,
        ws: &mut Wire,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<WsMessage, WsError>>> {
        self.wake.task.register(cx.waker());
        // Cleared before the read: a wake during it makes the read due again.
        if !self.wake.due.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let read = ws.poll_next_unpin(&mut Context::from_waker(&self.waker));
        if read.is_ready() {
            self.wake.due.store(true, Ordering::Release);
        }
        read
    }
}

/// Ends the connection the way `stop` says.
async fn close(ws: &mut Wire, stop: Stop, limits: &SocketLimits) {
    match stop {
        Stop::Gone => {}
        Stop::ClientClosed => {
            // The reply to the client's close is queued; send it before dropping.
            let _ = ws.flush().await;
        }
        Stop::Close(code, reason) => {
            tracing::debug!(code, reason, "closing socket");
            let patience = limits.close_timeout;
            let sent = tokio::time::timeout(patience, ws.send(close_frame(code, reason))).await;
            if let Ok(Ok(())) = sent {
                drain_until_closed(ws, patience).await;
            }
        }
        Stop::Fail(code, reason) => {
            tracing::debug!(code, reason, "failing the websocket connection");
            fail_connection(ws, code, reason, limits.close_timeout).await;
        }
    }
}

/// A write the client does not take within the idle timeout means it stopped reading (while
/// perhaps still sending): the connection is dropped rather than held, with its task and its
/// buffers, for as long as the client likes. Meanwhile the socket's loop waits on the write,
/// so its own idle timer cannot fire.
///
/// The timer starts when the write first has to wait. Nearly every write completes at once
/// (the kernel takes the bytes), and a tokio timer costs the runtime's timer lock when dropped,
/// even one never started: that was a lock per message sent. The write is boxed, and the
/// timer too once it starts, so that what every socket's task keeps for this await is two
/// pointers, not the write and a timer.
fn within_idle_timeout<'a>(
    idle_timeout: Duration,
    write: impl Future<Output = Result<(), Stop>> + Send + 'a,
) -> impl Future<Output = Result<(), Stop>> + Send + 'a {
    let mut write = Box::pin(write);
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(written) = write.as_mut().poll(cx) {
            return Poll::Ready(written);
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle_timeout)));
        ready!(timer.as_mut().poll(cx));
        tracing::debug!("the client took nothing for the idle timeout; dropping it");
        Poll::Ready(Err(Stop::Gone))
    })
}

/// Reads and discards the client's frames until its close frame or the end of the stream,
/// for at most `patience`.
async fn drain_until_closed(ws: &mut Wire, patience: Duration) {
    let drain = async {
        while let Some(Ok(frame)) = ws.next().await {
            if matches!(frame, WsMessage::Close(_)) {
                break;
            }
        }
    };
    if tokio::time::timeout(patience, drain).await.is_err() {
        tracing::debug!("client did not answer the close in time");
    }
}

fn close_frame(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Ends a connection whose client broke the protocol, so that the client still reads the
/// close frame and its code.
///
/// tungstenite's reader cannot go on after an error: its stream has ended, and it may stand in
/// the middle of a frame (a frame over the size limit is refused from its header, the payload
/// still in flight). But dropping the connection with unread bytes in the kernel's receive
/// buffer makes the kernel answer with a reset instead of an orderly close, and a reset can
/// discard the close frame in the client's receive buffer before the client reads it: the
/// client then sees 1006 (no close frame) instead of the code. So the close frame is written
/// through tungstenite (whose writer is intact), then the server's side of the TCP connection
/// is closed (the client reads the close frame, then the end), and the client's bytes are read
/// raw and discarded until it closes its side, all within `patience` (`--close-timeout`). By
/// then nothing unread is left to provoke a reset, unless the client kept sending all along.
async fn fail_connection(ws: &mut Wire, code: u16, reason: &'static str, patience: Duration) {
    // The send is bounded too: a client that reads nothing would hold it forever.
    let fail = async {
        if ws.send(close_frame(code, reason)).await.is_ok() {
            ws.discard_until_end().await;
        }
    };
    if tokio::time::timeout(patience, fail).await.is_err() {
        tracing::debug!("client did not take the close frame or end its side in time");
    }
}

fn error_reply(
    join_ref: Option<String>,
    msg_ref: Option<String>,
    topic: Option<String>,
    response: Value,
) -> Outbound {
    Outbound::Reply {
        join_ref,
        msg_ref,
        topic: topic.unwrap_or_else(|| events::PHOENIX_TOPIC.to_owned()),
        status: Status::Error,
        response: Payload::Json(response),
    }
}

/// What a read error means: RFC 6455 §7.4.1's close code for a client that broke the protocol,
/// or a connection that is simply gone.
///
/// The error is this crate's own tokio-tungstenite's (the transport upgrades the connection
/// itself, see `transport::WsStream`), so it is matched as a type, with no downcast from
/// axum's WebSocket error that would silently stop matching if the two tungstenite versions
/// drifted apart. Which error kind tungstenite reports for which broken frame can still change
/// with a tungstenite release: `tests/protocol_errors.rs` writes each kind of broken frame on
/// a real connection and checks the close code, so such a change fails there.
fn read_error(err: &WsError, metrics: &Metrics) -> Stop {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    let (kind, code, reason) = match err {
        WsError::Capacity(_) => (
            FrameError::TooLarge,
            close_code::MESSAGE_TOO_BIG,
            "frame too large",
        ),
        WsError::Utf8(_) => (
            FrameError::InvalidUtf8,
            close_code::INVALID_PAYLOAD,
            "text frame is not UTF-8",
        ),
        // The peer closed TCP without a close frame: nobody is left to tell.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return Stop::Gone,
        WsError::Protocol(_) => (
            FrameError::ProtocolError,
            close_code::PROTOCOL_ERROR,
            "websocket protocol error",
        ),
        _ => {
            tracing::debug!(%err, "websocket read error");
            return Stop::Gone;
        }
    };
    tracing::debug!(%err, code, "websocket protocol error from the client");
    metrics.frame_error(kind);
    Stop::Fail(code, reason)
}
