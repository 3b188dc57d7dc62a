//! What a [`Socket`](crate::socket) reads its client's messages from and writes its own to: a
//! WebSocket, or a long-poll session. The socket's code is the same for both (one protocol
//! layer, two transports); what differs is here: a WebSocket's large messages leave in
//! fragments, and only a WebSocket can break the WebSocket protocol.
//!
//! Both carry tungstenite's [`Message`]: a long-poll session takes text messages (what a poll
//! returns), gives the client's messages as text or binary ones (a POST's lines), and gives a
//! ping for each poll, which counts as activity for the idle timeout as a WebSocket ping does
//! (the npm client sends no heartbeat over long-poll).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::fragment::{self, Frames};
use super::longpoll::SessionWire;
use super::transport::WsStream;

#[expect(
    clippy::large_enum_variant,
    reason = "a WebSocket is what nearly every socket has: boxed, it would cost each an \
              allocation and every read a pointer more, to spare long-poll sessions 280 bytes"
)]
pub(crate) enum Wire {
    WebSocket(WsStream),
    LongPoll(SessionWire),
}

impl Wire {
    /// The frames `message` leaves in: a WebSocket's large ones in fragments (see
    /// [`fragment`]); a long-poll session's whole, as a poll returns whole messages.
    pub(crate) fn frames(&self, message: Message) -> Frames {
        match self {
            Wire::WebSocket(_) => fragment::frames(message, fragment::FRAGMENT_SIZE),
            Wire::LongPoll(_) => Frames::Whole(Some(message)),
        }
    }

    /// After a protocol error, with the close frame sent: ends the server's side and reads
    /// the client's bytes raw until it ends its own (see `socket::fail_connection`). A
    /// long-poll session has no protocol of its own to break, and nothing left to read.
    pub(crate) async fn discard_until_end(&mut self) {
        let Wire::WebSocket(ws) = self else {
            return;
        };
        let io = ws.get_mut();
        let _ = io.shutdown().await;
        let mut discard = vec![0; 8192];
        while let Ok(1..) = io.read(&mut discard).await {}
    }
}

impl Stream for Wire {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Wire::WebSocket(ws) => Pin::new(ws).poll_next(cx),
            Wire::LongPoll(session) => Pin::new(session).poll_next(cx),
        }
    }
}

impl Sink<Message> for Wire {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Wire::WebSocket(ws) => Pin::new(ws).poll_ready(cx),
            Wire::LongPoll(session) => Pin::new(session).poll_ready(cx),
        }
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        match self.get_mut() {
            Wire::WebSocket(ws) => Pin::new(ws).start_send(message),
            Wire::LongPoll(session) => Pin::new(session).start_send(message),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Wire::WebSocket(ws) => Pin::new(ws).poll_flush(cx),
            Wire::LongPoll(session) => Pin::new(session).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            Wire::WebSocket(ws) => Pin::new(ws).poll_close(cx),
            Wire::LongPoll(session) => Pin::new(session).poll_close(cx),
        }
    }
}
