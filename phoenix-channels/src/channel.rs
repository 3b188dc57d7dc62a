//! Channels and the topic router: what a Phoenix socket module declares with
//! `channel "room:*", RoomChannel`.
//!
//! Each joined channel runs as its own future (like a Phoenix channel process): it handles the
//! client's events one at a time, in order, and server-side messages (`handle_info`) sent to it
//! through its [`InfoSender`]. The socket's task polls its channels' futures next to the
//! connection itself (no task hop per message); a channel busy with an event (waiting on a
//! slow service) never delays the socket's heartbeats or its other channels.
//!
//! Joins are the exception: the socket awaits [`Join::join`] before it reads the client's next
//! frame, as a Phoenix socket process runs a channel's `join/3` itself before its next message.
//! So a slow join holds up that connection (its heartbeats, its other channels; never other
//! connections) until it returns, and the messages the client sends after a join always find
//! the join done. A join that needs slow work can accept at once and do it in `handle_info`.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use metrics::Gauge;
use serde_json::{Value, json};

use super::mailbox;
use super::message::{Outbound, Payload, Status, events};

/// The answer of a channel to a client event.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JSON value (`Value` converts with `.into()`) or a payload encoded once and shared.
    Ok(Payload),
    Error(Value),
    /// No reply; the client's push times out unless something else answers it.
    None,
}

impl Reply {
    /// An error reply with a stable machine-readable `reason`.
    pub fn error(reason: &str) -> Self {
        Reply::Error(json!({ "reason": reason }))
    }
}

/// A channel failure: the channel ends and the client gets `phx_error` (and rejoins).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("channel crashed: {reason}")]
pub struct Crash {
    pub reason: String,
}

/// Why a channel ended, for [`Channel::terminate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Terminate {
    /// The client sent `phx_leave`.
    Left,
    /// The socket closed, or the same topic was joined again.
    Closed,
    /// The channel crashed.
    Crashed(Crash),
}

/// A joined channel: the state one client holds on one topic.
pub trait Channel: Send + 'static {
    /// Server-side messages the channel receives (Phoenix's `handle_info`).
    type Info: Send + 'static;

    /// Handles a client event; `Err` crashes the channel.
    fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &ChannelContext<Self::Info>,
    ) -> impl Future<Output = Result<Reply, Crash>> + Send;

    /// Handles a server-side message; `Err` crashes the channel.
    fn handle_info(
        &mut self,
        info: Self::Info,
        ctx: &ChannelContext<Self::Info>,
    ) -> impl Future<Output = Result<(), Crash>> + Send;

    /// Runs once when the channel ends, whatever the reason.
    fn terminate(&mut self, _reason: &Terminate) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Joins a topic: the factory a router holds for a topic pattern. `A` is what the socket's
/// connect hook assigned to the connection.
pub trait Join<A>: Send + Sync + 'static {
    type Channel: Channel;

    /// Accepts (`Ok((channel, response))`) or refuses (`Err(response)`) a join. Joins cannot
    /// push; send yourself an info message to push right after the join reply. The socket
    /// waits for the join before reading further: keep it short (see the module's doc).
    fn join(
        &self,
        topic: &str,
        payload: Payload,
        assigns: &A,
        info: &InfoSender<<Self::Channel as Channel>::Info>,
    ) -> impl Future<Output = Result<(Self::Channel, Value), Value>> + Send;
}

/// Sends server-side messages to a channel; fails once the channel has ended.
pub struct InfoSender<I>(mailbox::Sender<I>);

impl<I> Clone for InfoSender<I> {
    fn clone(&self) -> Self {
        InfoSender(self.0.clone())
    }
}

impl<I: Send + 'static> InfoSender<I> {
    /// Queues `info` for the channel; `false` when the channel has ended.
    pub fn send(&self, info: I) -> bool {
        self.0.try_send(info).is_ok()
    }

    /// Feeds every item of `stream` to the channel until the stream ends or the channel does.
    /// `on_end` is sent when the stream ends by itself.
    pub fn forward<S, T>(&self, stream: S, map: impl Fn(T) -> I + Send + 'static, on_end: Option<I>)
    where
        S: Stream<Item = T> + Send + 'static,
        T: Send,
    {
        let tx = self.0.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    item = stream.next() => match item {
                        Some(item) => if tx.try_send(map(item)).is_err() { return },
                        None => break,
                    },
                }
            }
            if let Some(end) = on_end {
                let _ = tx.try_send(end);
            }
        });
    }
}

/// What the socket task receives from its channels.
pub(crate) enum ToSocket {
    Send(Box<Outbound>),
    /// The channel joined as `join_ref` on `topic` ended by itself.
    Exited(Box<(String, String)>),
}

/// What a running channel may do: push to its client, and message itself.
pub struct ChannelContext<I> {
    topic: String,
    join_ref: String,
    outbox: mailbox::Sender<ToSocket>,
    info: InfoSender<I>,
    _counted: JoinedChannel,
}

/// Counts a channel in the `{prefix}_channels` gauge from the moment its join succeeds
/// (before the reply leaves) until it is gone, however its run ends or is dropped.
struct JoinedChannel(Gauge);

impl JoinedChannel {
    fn count(gauge: &Gauge) -> Self {
        gauge.increment(1);
        JoinedChannel(gauge.clone())
    }
}

impl Drop for JoinedChannel {
    fn drop(&mut self) {
        self.0.decrement(1);
    }
}

impl<I: Send + 'static> ChannelContext<I> {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn join_ref(&self) -> &str {
        &self.join_ref
    }

    pub fn info_sender(&self) -> &InfoSender<I> {
        &self.info
    }

    /// Pushes `[join_ref, null, topic, event, payload]` to this channel's client.
    pub async fn push(&self, event: &str, payload: impl Into<Payload>) {
        let push = Outbound::push(&self.join_ref, &self.topic, event, payload.into());
        self.send(Box::new(push)).await;
    }

    /// Queues a message for the client. It comes boxed: what a channel's future holds while
    /// it waits for room is a pointer, not the message.
    async fn send(&self, out: Box<Outbound>) {
        // The socket may be gone already; the channel then ends through its closed inbox.
        let _ = self.outbox.send(ToSocket::Send(out)).await;
    }

    /// A channel's answer to the client event `msg_ref` (nothing for [`Reply::None`]).
    fn answer(&self, msg_ref: Option<String>, reply: Reply) -> Option<Box<Outbound>> {
        match reply {
            Reply::Ok(response) => Some(self.reply(msg_ref, Status::Ok, response)),
            Reply::Error(response) => Some(self.reply(msg_ref, Status::Error, response.into())),
            Reply::None => None,
        }
    }

    fn reply(&self, msg_ref: Option<String>, status: Status, response: Payload) -> Box<Outbound> {
        Box::new(Outbound::Reply {
            join_ref: Some(self.join_ref.clone()),
            msg_ref,
            topic: self.topic.clone(),
            status,
            response,
        })
    }
}

/// What the socket sends a running channel.
pub(crate) enum ChannelMsg {
    Event {
        event: String,
        msg_ref: Option<String>,
        payload: Payload,
    },
    Leave {
        msg_ref: Option<String>,
    },
}

/// The socket's handle on a running channel; dropping it ends the channel.
pub(crate) struct ChannelHandle {
    pub join_ref: String,
    pub inbox: mailbox::Sender<Box<ChannelMsg>>,
}

/// A joined channel's life, polled by its socket's task until the channel ends.
pub(crate) type ChannelRun = BoxFuture<'static, ()>;

/// An accepted join: the socket's handle, the join reply and the channel's life.
pub(crate) type Joined = (ChannelHandle, Value, ChannelRun);

/// Where a join goes: the socket's side of the topic router.
pub(crate) struct JoinRequest<'a, A> {
    pub topic: &'a str,
    pub join_ref: &'a str,
    pub payload: Payload,
    pub assigns: &'a A,
    pub outbox: &'a mailbox::Sender<ToSocket>,
    /// How many client events may wait for the channel before new ones are refused.
    pub inbox_capacity: usize,
    /// The gauge of joined channels.
    pub channels: &'a Gauge,
}

trait ErasedJoin<A>: Send + Sync {
    fn join<'a>(&'a self, req: JoinRequest<'a, A>) -> BoxFuture<'a, Result<Joined, Value>>;
}

impl<A: Sync, J: Join<A>> ErasedJoin<A> for J {
    fn join<'a>(&'a self, req: JoinRequest<'a, A>) -> BoxFuture<'a, Result<Joined, Value>> {
        Box::pin(async move {
            let (info_tx, info_rx) = mailbox::unbounded();
            let info = InfoSender(info_tx);
            let (channel, response) =
                Join::join(self, req.topic, req.payload, req.assigns, &info).await?;
            let (inbox, inbox_rx) = mailbox::bounded(req.inbox_capacity);
            let ctx = ChannelContext {
                topic: req.topic.to_owned(),
                join_ref: req.join_ref.to_owned(),
                outbox: req.outbox.clone(),
                info,
                _counted: JoinedChannel::count(req.channels),
            };
            let run = Box::pin(run_channel(channel, ctx, inbox_rx, info_rx));
            let handle = ChannelHandle {
                join_ref: req.join_ref.to_owned(),
                inbox,
            };
            Ok((handle, response, run as ChannelRun))
        })
    }
}

/// What a running channel received.
enum Mail<I> {
    FromClient(ChannelMsg),
    Info(I),
}

/// The life of a joined channel, until the client leaves, the socket closes or it crashes.
///
/// The channel's handlers run boxed, one allocation per event: inline, the largest of them
/// (a call to a service, say) would be part of every joined channel's future, idle or not.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
fn run_channel<C: Channel>(
    mut channel: C,
    ctx: ChannelContext<C::Info>,
    mut inbox: mailbox::Receiver<Box<ChannelMsg>>,
    mut info: mailbox::Receiver<C::Info>,
) -> impl Future<Output = ()> + Send {
    // An async block rather than an async fn, which would keep its arguments twice (as
    // passed, then moved into the body's locals): the channel's state is in every joined
    // channel's future.
    async move {
        let reason = loop {
            let mail = tokio::select! {
                biased;
                msg = inbox.recv() => match msg {
                    None => break Terminate::Closed,
                    Some(msg) => Mail::FromClient(*msg),
                },
                // The channel holds a sender itself, so this never yields `None`.
                Some(msg) = info.recv() => Mail::Info(msg),
            };
            let result = match mail {
                Mail::FromClient(ChannelMsg::Leave { msg_ref }) => {
                    let ok = ctx.reply(msg_ref, Status::Ok, json!({}).into());
                    ctx.send(ok).await;
                    let close = Box::new(Outbound::lifecycle(
                        &ctx.join_ref,
                        &ctx.topic,
                        events::CLOSE,
                        json!({}),
                    ));
                    ctx.send(close).await;
                    break Terminate::Left;
                }
                Mail::FromClient(ChannelMsg::Event {
                    event,
                    msg_ref,
                    payload,
                }) => {
                    // Boxed in a statement of its own, so that the unboxed future is no
                    // temporary of the statement that awaits.
                    let handling = Box::pin(channel.handle_in(&event, payload, &ctx));
                    match handling.await {
                        Ok(reply) => {
                            if let Some(answer) = ctx.answer(msg_ref, reply) {
                                ctx.send(answer).await;
                            }
                            Ok(())
                        }
                        Err(crash) => Err(crash),
                    }
                }
                Mail::Info(msg) => {
                    let handling = Box::pin(channel.handle_info(msg, &ctx));
                    handling.await
                }
            };
            if let Err(crash) = result {
                tracing::warn!(topic = %ctx.topic, reason = %crash.reason, "channel crashed");
                let error = Box::new(Outbound::lifecycle(
                    &ctx.join_ref,
                    &ctx.topic,
                    events::ERROR,
                    json!({"reason": crash.reason}),
                ));
                ctx.send(error).await;
                let exited = Box::new((ctx.topic.clone(), ctx.join_ref.clone()));
                let _ = ctx.outbox.send(ToSocket::Exited(exited)).await;
                break Terminate::Crashed(crash);
            }
        };
        let terminating = Box::pin(channel.terminate(&reason));
        terminating.await;
    }
}

/// A topic pattern: an exact topic, or a prefix ending in `*` (`"game:*"`).
#[derive(Debug, Clone)]
struct TopicPattern(String);

impl TopicPattern {
    fn matches(&self, topic: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => topic == self.0,
        }
    }
}

/// Routes topics to channels, first matching pattern wins.
pub struct Router<A> {
    routes: Vec<(TopicPattern, Arc<dyn ErasedJoin<A>>)>,
}

impl<A: Send + Sync + 'static> Default for Router<A> {
    fn default() -> Self {
        Router { routes: Vec::new() }
    }
}

impl<A: Send + Sync + 'static> Router<A> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `channel "pattern", join`.
    pub fn channel(mut self, pattern: &str, join: impl Join<A>) -> Self {
        self.routes
            .push((TopicPattern(pattern.to_owned()), Arc::new(join)));
        self
    }

    /// Joins `req.topic`; `None` when no pattern matches it.
    pub(crate) async fn join(&self, req: JoinRequest<'_, A>) -> Option<Result<Joined, Value>> {
        let (_, join) = self
            .routes
            .iter()
            .find(|(pattern, _)| pattern.matches(req.topic))?;
        Some(join.join(req).await)
    }
}
