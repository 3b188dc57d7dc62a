//! A raw WebSocket client that speaks the Phoenix wire format by hand, for tests of a server
//! built on this crate (feature `test-client`): it sends exactly the frames a test writes, and
//! reads exactly what the server sends, with no client library's own behaviour in between.

use std::collections::HashSet;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long the client waits for the server: a guard against a hung test, not a timing
/// assertion.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A raw WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
}

/// Connects with extra request headers; `Err(status)` when the server refuses the upgrade.
/// A header's first value replaces the client's own (`host`), a repeated name adds a header.
pub async fn try_connect(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, Option<String>), StatusCode> {
    let mut request = url.into_client_request().expect("valid url");
    let mut named = HashSet::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        let value = HeaderValue::from_str(value).unwrap();
        if named.insert(name.clone()) {
            request.headers_mut().insert(name, value);
        } else {
            request.headers_mut().append(name, value);
        }
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok((Client { ws, next_ref: 0 }, protocol))
        }
        Err(WsError::Http(response)) => Err(response.status()),
        Err(other) => panic!("connect failed: {other}"),
    }
}

/// The status of an upgrade request with these headers: 101 or the refusal's.
pub async fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    match try_connect(url, headers).await {
        Ok(_) => 101,
        Err(status) => status.as_u16(),
    }
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        try_connect(url, &[]).await.expect("upgrade accepted").0
    }

    /// A fresh ref, as the npm client makes them ("1", "2", ...).
    pub fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends, ignoring a connection the server already closed.
    pub async fn try_send_text(&mut self, text: &str) {
        let _ = self.ws.send(Message::text(text)).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send");
    }

    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Sends every frame in one write, so that the server finds them all waiting at once.
    pub async fn send_all(&mut self, frames: &[Value]) {
        for frame in frames {
            self.ws
                .feed(Message::text(frame.to_string()))
                .await
                .expect("send");
        }
        self.ws.flush().await.expect("send");
    }

    /// The next frame but pings and pongs, or `Err(close frame)` once the server closed.
    pub async fn next_frame(&mut self) -> Result<Message, Option<CloseFrame>> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the server answers within the test's patience");
            match frame {
                Some(Ok(Message::Close(close))) => return Err(close),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Ok(message),
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// The next frame as it came, pings and pongs included.
    pub async fn raw_next(&mut self) -> Message {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("the server answers within the test's patience")
            .expect("the connection is open")
            .expect("a frame")
    }

    /// The next text frame as JSON.
    pub async fn recv(&mut self) -> Value {
        match self.next_frame().await {
            Ok(Message::Text(text)) => serde_json::from_str(&text).expect("server sends JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Waits for the server to close the connection; returns its close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_frame().await {
                Ok(_) => continue,
                Err(close) => return close.map(|c| c.code.into()),
            }
        }
    }

    /// Sends `[join_ref, ref, topic, event, payload]` with a new ref; returns the ref.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let msg_ref = self.make_ref();
        self.send(json!([join_ref, msg_ref, topic, event, payload]))
            .await;
        msg_ref
    }

    /// Receives frames until the reply to `msg_ref`, collecting the others.
    pub async fn reply_to(&mut self, msg_ref: &str) -> (Value, Vec<Value>) {
        let mut others = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame[3] == "phx_reply" && frame[1] == msg_ref {
                return (frame, others);
            }
            others.push(frame);
        }
    }

    /// Joins `topic`; returns `(join_ref, reply frame)`.
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, Value) {
        let join_ref = self.make_ref();
        self.send(json!([join_ref, join_ref, topic, "phx_join", payload]))
            .await;
        let (reply, _) = self.reply_to(&join_ref).await;
        (join_ref, reply)
    }

    /// Joins and asserts the join succeeded; returns `(join_ref, response)`.
    pub async fn join_ok(&mut self, topic: &str, payload: Value) -> (String, Value) {
        let (join_ref, reply) = self.join(topic, payload).await;
        assert_eq!(reply[4]["status"], "ok", "join {topic} failed: {reply}");
        (join_ref, reply[4]["response"].clone())
    }

    /// Pushes an event on a joined channel; returns `(reply payload, frames before it)`.
    pub async fn call(
        &mut self,
        join_ref: &str,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> (Value, Vec<Value>) {
        let msg_ref = self.push(Some(join_ref), topic, event, payload).await;
        let (reply, others) = self.reply_to(&msg_ref).await;
        (reply[4].clone(), others)
    }

    /// Sends `events` (pushes on the channel joined as `join_ref`) in one write and reads
    /// until each has its reply, passing over other frames: returns how many were answered
    /// ok and how many were refused as `overloaded` (a channel's full inbox). Any other
    /// reply fails the test.
    pub async fn burst(&mut self, join_ref: &str, events: &[Value]) -> (usize, usize) {
        self.send_all(events).await;
        let (mut ok, mut overloaded) = (0, 0);
        while ok + overloaded < events.len() {
            let frame = self.recv().await;
            if frame[3] != "phx_reply" {
                continue;
            }
            assert_eq!(frame[0], join_ref, "{frame}");
            if frame[4]["status"] == "ok" {
                ok += 1;
            } else {
                let refusal = &frame[4]["response"];
                assert_eq!(refusal, &json!({"reason": "overloaded"}), "{frame}");
                overloaded += 1;
            }
        }
        (ok, overloaded)
    }

    /// A heartbeat round trip: everything sent before it has been handled once it returns.
    pub async fn sync(&mut self) -> Vec<Value> {
        let msg_ref = self.push(None, "phoenix", "heartbeat", json!({})).await;
        self.reply_to(&msg_ref).await.1
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Closes with `code` and waits for the server's answer: `Ok(echoed code)` when it
    /// answered with a close frame and then ended the stream cleanly, `Err(what happened)`
    /// otherwise.
    pub async fn close_handshake(mut self, code: u16) -> Result<Option<u16>, String> {
        let frame = CloseFrame {
            code: code.into(),
            reason: "bye".into(),
        };
        self.ws
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|e| format!("sending the close: {e}"))?;
        let echoed = loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the server answers within the test's patience");
            match frame {
                Some(Ok(Message::Close(close))) => break close.map(|c| u16::from(c.code)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("before the close reply: {e}")),
                None => return Err("ended without a close reply".to_owned()),
            }
        };
        match tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("the server ends the connection within the test's patience")
        {
            None => Ok(echoed),
            Some(other) => Err(format!("after the close reply: {other:?}")),
        }
    }
}
