//! One long-poll session: the [`SessionWire`] its socket reads and writes through, and the
//! [`Session`] that polls and posts reach it by.
//!
//! The socket is the same one a WebSocket has (see [`crate::wire`]); what the session adds
//! is a bounded buffer between the socket's writes and the client's polls, and its end when
//! the client stops polling.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{Sink, Stream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::mailbox;

/// Client messages that may wait for the socket; a POST beyond them waits for room.
const INBOX: usize = 32;

/// What a poll got.
pub(crate) enum Polled {
    /// Messages, oldest first.
    Messages(Vec<Utf8Bytes>),
    /// Nothing within the window, or a newer poll took over.
    Nothing,
    /// The session has ended.
    Gone,
}

/// What the HTTP requests hold of a session.
pub(crate) struct Session {
    state: Mutex<State>,
    /// A waiting poll is woken here: messages came, the session closed, or a newer poll
    /// replaces it.
    ready: Notify,
    /// The socket's read: a poll began or ended, or the session was closed from outside.
    socket: AtomicWaker,
    /// The client's messages (a POST's lines), for the socket to read.
    inbox: mailbox::Sender<Message>,
    /// A POST is being handled (the npm client waits for each POST's answer before the next).
    posting: AtomicBool,
}

struct State {
    outgoing: VecDeque<Utf8Bytes>,
    /// The socket waiting for room in `outgoing`.
    room: Option<Waker>,
    /// Polls waiting right now; the session does not expire while one is.
    polls_waiting: usize,
    /// When the last poll ended (or the session began).
    last_poll: Instant,
    /// A poll began or ended that the socket has not counted as activity yet.
    polled: bool,
    /// The number of the newest poll: an older one still waiting answers `Nothing`.
    newest_poll: u64,
    closed: bool,
}

impl Session {
    /// A new session, and the wire its socket uses. The socket keeps at most `buffer`
    /// messages for the client, and the session ends once no poll has come for `expiry`, or
    /// for `first_poll` when none ever came (a client polls at once after opening, and
    /// sessions opened and left would otherwise hold their slots for the whole expiry).
    pub(crate) fn new(
        buffer: usize,
        expiry: Duration,
        first_poll: Duration,
    ) -> (Arc<Session>, SessionWire) {
        let (inbox, inbox_rx) = mailbox::bounded(INBOX);
        let session = Arc::new(Session {
            state: Mutex::new(State {
                outgoing: VecDeque::new(),
                room: None,
                polls_waiting: 0,
                last_poll: Instant::now(),
                polled: false,
                newest_poll: 0,
                closed: false,
            }),
            ready: Notify::new(),
            socket: AtomicWaker::new(),
            inbox,
            posting: AtomicBool::new(false),
        });
        let wire = SessionWire {
            session: Arc::clone(&session),
            inbox: inbox_rx,
            buffer: buffer.max(1),
            expiry,
            first_poll,
            timer: Box::pin(tokio::time::sleep(first_poll)),
        };
        (session, wire)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds a valid state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits at most `window` for messages for the client. A newer poll of the same session
    /// makes this one answer at once, as the client gave up on it.
    pub(crate) async fn poll(&self, window: Duration) -> Polled {
        let deadline = Instant::now() + window;
        let ticket = {
            let mut state = self.lock();
            state.polls_waiting += 1;
            state.polled = true;
            state.newest_poll += 1;
            state.newest_poll
        };
        let _waiting = PollWaiting(self);
        self.socket.wake();
        self.ready.notify_waiters();
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Registered before the state is read: nothing that happens after is missed.
            notified.as_mut().enable();
            {
                let state = self.lock();
                // Superseded first: the messages are the newer poll's, whose client waits.
                if state.newest_poll != ticket {
                    return Polled::Nothing;
                }
                if !state.outgoing.is_empty() {
                    return self.take(state);
                }
                if state.closed {
                    return Polled::Gone;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                // What came without a wake (none is missed, but a last look costs nothing).
                let state = self.lock();
                if state.newest_poll == ticket && !state.outgoing.is_empty() {
                    return self.take(state);
                }
                return Polled::Nothing;
            }
        }
    }

    /// Takes every message waiting, and lets a socket waiting for room write again.
    fn take(&self, mut state: MutexGuard<'_, State>) -> Polled {
        let messages = Vec::from(std::mem::take(&mut state.outgoing));
        let room = state.room.take();
        drop(state);
        room.into_iter().for_each(Waker::wake);
        Polled::Messages(messages)
    }

    /// Hands one of the client's messages to the socket, waiting for room; `Err` once the
    /// session has ended.
    pub(crate) async fn deliver(&self, message: Message) -> Result<(), Gone> {
        self.inbox.send(message).await.map_err(|_| Gone)
    }

    /// Marks a POST in flight for as long as the guard lives; `None` while another is: one
    /// client sends one at a time, and more at once would only hold connections and bodies.
    pub(crate) fn begin_post(&self) -> Option<PostInFlight<'_>> {
        (!self.posting.swap(true, Ordering::AcqRel)).then_some(PostInFlight(self))
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
        self.socket.wake();
    }
}

/// The session has ended.
#[derive(Debug)]
pub(crate) struct Gone;

/// A POST in flight (see [`Session::begin_post`]).
pub(crate) struct PostInFlight<'a>(&'a Session);

impl Drop for PostInFlight<'_> {
    fn drop(&mut self) {
        self.0.posting.store(false, Ordering::Release);
    }
}

/// Counts a poll as waiting for as long as it does, even one dropped mid-way (its client
/// went away): when the last one ends, the session's expiry starts from then.
struct PollWaiting<'a>(&'a Session);

impl Drop for PollWaiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.polls_waiting -= 1;
        state.last_poll = Instant::now();
        // The client was there all along: with the next poll's start, the gap between two
        // signs of life is a window at most (the endpoint keeps it under the idle timeout).
        state.polled = true;
        drop(state);
        self.0.socket.wake();
    }
}

/// The socket's side of a session: the client's messages come out, its own go in.
pub(crate) struct SessionWire {
    session: Arc<Session>,
    inbox: mailbox::Receiver<Message>,
    buffer: usize,
    expiry: Duration,
    first_poll: Duration,
    /// Fires when the session would expire, if no poll comes first.
    timer: Pin<Box<Sleep>>,
}

impl SessionWire {
    /// Whether the session has expired; if not, sets the timer for when it would.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let state = self.session.lock();
        if state.closed {
            return true;
        }
        if state.polls_waiting > 0 {
            // The poll's end wakes the socket, and the timer is set again then.
            return false;
        }
        let patience = if state.newest_poll == 0 {
            self.first_poll
        } else {
            self.expiry
        };
        let deadline = state.last_poll + patience;
        drop(state);
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl Stream for SessionWire {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.session.socket.register(cx.waker());
        if std::mem::take(&mut this.session.lock().polled) {
            // A poll is the long-poll client's sign of life, as a WebSocket's ping.
            return Poll::Ready(Some(Ok(Message::Ping(Bytes::new()))));
        }
        if let Poll::Ready(Some(message)) = this.inbox.poll_recv(cx) {
            return Poll::Ready(Some(Ok(message)));
        }
        if this.expired(cx) {
            tracing::debug!("long-poll session expired: no poll came in time");
            this.session.close();
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl Sink<Message> for SessionWire {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let mut state = self.session.lock();
        if state.closed {
            return Poll::Ready(Err(WsError::ConnectionClosed));
        }
        if state.outgoing.len() < self.buffer {
            return Poll::Ready(Ok(()));
        }
        // Full: the socket waits as for a WebSocket client that does not read, within its
        // idle timeout, and the next poll makes room. A poll waiting now takes what is there:
        // the socket writes a batch before it flushes, and would not flush before room comes.
        state.room = Some(cx.waker().clone());
        drop(state);
        self.session.ready.notify_waiters();
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        match message {
            Message::Text(text) => self.session.lock().outgoing.push_back(text),
            Message::Close(_) => self.session.close(),
            // A poll's messages are JSON strings: the npm client's long-poll cannot take a
            // binary message (it would hand the decoder a string), so none is sent.
            Message::Binary(_) => {
                tracing::warn!("binary message dropped: long-poll carries text messages only");
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.session.ready.notify_waiters();
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.session.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for SessionWire {
    fn drop(&mut self) {
        self.session.close();
    }
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};

    use super::*;

    fn text(s: &'static str) -> Message {
        Message::Text(Utf8Bytes::from_static(s))
    }

    /// A poll of `session` with a 10 s window, waiting in a task of its own.
    fn spawn_poll(session: &Arc<Session>) -> tokio::task::JoinHandle<Polled> {
        let session = Arc::clone(session);
        tokio::spawn(async move { session.poll(Duration::from_secs(10)).await })
    }

    fn messages(polled: Polled) -> Vec<String> {
        match polled {
            Polled::Messages(messages) => messages.iter().map(|m| m.to_string()).collect(),
            Polled::Nothing => panic!("nothing polled"),
            Polled::Gone => panic!("session gone"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_takes_what_the_socket_wrote_and_waits_for_more() {
        let (session, mut wire) = Session::new(8, Duration::from_secs(15), Duration::from_secs(10));
        wire.send(text("a")).await.unwrap();
        wire.send(text("b")).await.unwrap();
        assert_eq!(
            messages(session.poll(Duration::from_secs(10)).await),
            ["a", "b"]
        );
        let later = spawn_poll(&session);
        tokio::time::sleep(Duration::from_secs(1)).await;
        wire.send(text("c")).await.unwrap();
        assert_eq!(messages(later.await.unwrap()), ["c"]);
        assert!(matches!(
            session.poll(Duration::from_secs(10)).await,
            Polled::Nothing
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_poll_ends_the_older_one() {
        let (session, _wire) = Session::new(8, Duration::from_secs(15), Duration::from_secs(10));
        let older = spawn_poll(&session);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let newer = spawn_poll(&session);
        let started = Instant::now();
        assert!(matches!(older.await.unwrap(), Polled::Nothing));
        assert!(started.elapsed() < Duration::from_secs(1));
        newer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_socket_sees_a_polls_start_and_end_as_activity_and_the_session_expires_without_polls()
     {
        let (session, mut wire) = Session::new(8, Duration::from_secs(15), Duration::from_secs(10));
        let poll = spawn_poll(&session);
        assert!(matches!(wire.next().await, Some(Ok(Message::Ping(_)))));
        session.deliver(text("[1]")).await.unwrap();
        assert_eq!(wire.next().await.unwrap().unwrap(), text("[1]"));
        poll.await.unwrap();
        // Its end is a sign of life too: the client was waiting in it all along.
        assert!(matches!(wire.next().await, Some(Ok(Message::Ping(_)))));
        // The poll ended at 10 s: 15 s later, with no other, the session is over.
        let started = Instant::now();
        assert!(wire.next().await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        assert!(matches!(
            session.poll(Duration::from_secs(10)).await,
            Polled::Gone
        ));
        drop(wire);
        assert!(session.deliver(text("[2]")).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_poll_takes_a_batch_that_fills_the_buffer_before_it_is_flushed() {
        let (session, mut wire) = Session::new(1, Duration::from_secs(15), Duration::from_secs(10));
        let poll = spawn_poll(&session);
        tokio::time::sleep(Duration::from_millis(10)).await;
        // As the socket writes a batch: fed one by one, flushed only at the end.
        let started = Instant::now();
        wire.feed(text("a")).await.unwrap();
        let room = tokio::time::timeout(Duration::from_secs(1), wire.feed(text("b"))).await;
        room.expect("the waiting poll took the first message")
            .unwrap();
        assert_eq!(messages(poll.await.unwrap()), ["a"]);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not after the window"
        );
        wire.flush().await.unwrap();
        assert_eq!(messages(session.poll(Duration::from_secs(10)).await), ["b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_older_poll_leaves_the_messages_to_the_newer() {
        let (session, mut wire) = Session::new(8, Duration::from_secs(15), Duration::from_secs(10));
        let older = spawn_poll(&session);
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The newer poll arrives, then a message, before the older one has run again.
        let newer = session.poll(Duration::from_secs(10));
        tokio::pin!(newer);
        assert!(futures::poll!(newer.as_mut()).is_pending());
        wire.send(text("a")).await.unwrap();
        assert!(matches!(older.await.unwrap(), Polled::Nothing));
        assert_eq!(messages(newer.await), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_never_polled_ends_after_the_first_poll_time() {
        let (session, mut wire) = Session::new(8, Duration::from_secs(15), Duration::from_secs(2));
        let started = Instant::now();
        assert!(wire.next().await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(matches!(
            session.poll(Duration::from_secs(10)).await,
            Polled::Gone
        ));
    }

    #[tokio::test]
    async fn one_post_at_a_time() {
        let (session, _wire) = Session::new(8, Duration::from_secs(15), Duration::from_secs(10));
        let first = session.begin_post();
        assert!(first.is_some());
        assert!(session.begin_post().is_none());
        drop(first);
        assert!(session.begin_post().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_buffer_holds_the_socket_until_a_poll_makes_room() {
        let (session, mut wire) = Session::new(2, Duration::from_secs(15), Duration::from_secs(10));
        wire.send(text("a")).await.unwrap();
        wire.send(text("b")).await.unwrap();
        let third = tokio::time::timeout(Duration::from_secs(5), wire.send(text("c"))).await;
        assert!(third.is_err(), "a third message waits for a poll");
        assert_eq!(
            messages(session.poll(Duration::from_secs(10)).await),
            ["a", "b"]
        );
        wire.send(text("c")).await.unwrap();
        assert_eq!(messages(session.poll(Duration::from_secs(10)).await), ["c"]);
    }
}
