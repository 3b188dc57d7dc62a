//! Shared test harness: a real game service and a real gateway on port 0, and a raw
//! WebSocket client that speaks the Phoenix wire format by hand.
#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use game_service::testing::TestGameService;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every game in these tests plays this word (a one-word dictionary).
pub const WORD: &str = "hello";

/// A guard against a hung test; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

/// The word list of every game service in these tests: [`WORD`] alone.
pub fn dictionary() -> [&'static str; 1] {
    [WORD]
}

/// A game service (in this process, on port 0) with the one-word dictionary and extra flags.
pub async fn game_service_with(extra: &[&str]) -> TestGameService {
    TestGameService::builder()
        .words(&dictionary())
        .flags(extra)
        .spawn()
        .await
}

/// A game service on `listen` (where a stopped one was, say).
pub async fn game_service_on(listen: &str) -> TestGameService {
    game_service_with(&["--listen", listen]).await
}

pub async fn game_service() -> TestGameService {
    game_service::testing::spawn_with_words(&dictionary()).await
}

/// A gateway on port 0 talking to `game_service_url`, with extra flags.
pub async fn gateway(game_service_url: &str, extra: &[&str]) -> ws_gateway::Server {
    let mut args = vec![
        "ws-gateway",
        "--listen",
        "127.0.0.1:0",
        "--game-service",
        game_service_url,
    ];
    args.extend_from_slice(extra);
    ws_gateway::start(ws_gateway::Config::parse_from(args))
        .await
        .expect("gateway starts")
}

/// A game service and a gateway in front of it.
pub struct System {
    pub games: TestGameService,
    pub gateway: ws_gateway::Server,
}

pub async fn system(extra: &[&str]) -> System {
    let games = game_service().await;
    let gateway = gateway(&games.url(), extra).await;
    System { games, gateway }
}

impl System {
    pub fn socket_url(&self, query: &str) -> String {
        format!("{}/socket/websocket?{query}", self.gateway.ws_url())
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket_url("vsn=2.0.0")).await
    }
}

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
    let mut named = std::collections::HashSet::new();
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

    /// The next data frame, or `None` once the server closed (with its close frame).
    pub async fn next(&mut self) -> Result<Message, Option<CloseFrame>> {
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

    /// The next text frame as JSON.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Ok(Message::Text(text)) => serde_json::from_str(&text).expect("server sends JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Waits for the server to close the connection; returns its close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
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

/// `GET path` on the gateway: `(status, content-type, body)`.
pub async fn http_get(base: &str, path: &str) -> (u16, String, String) {
    let response = reqwest::get(format!("{base}{path}")).await.expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// The real `ws-gateway` binary in its own process (it installs its own metrics recorder, and
/// holds its own file descriptors). Killed on drop.
pub struct GatewayProcess {
    child: tokio::process::Child,
    pub addr: String,
}

impl GatewayProcess {
    pub async fn spawn(game_service_url: &str, extra: &[&str]) -> GatewayProcess {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ws-gateway"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--game-service",
                game_service_url,
            ])
            .args(extra)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn ws-gateway");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = tokio::time::timeout(PATIENCE, lines.next_line())
                .await
                .expect("the gateway starts")
                .unwrap()
                .expect("the gateway logs `listening on ADDR`");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining its logs so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        GatewayProcess { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn socket_url(&self) -> String {
        format!("ws://{}/socket/websocket?vsn=2.0.0", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// A metric's value from `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, _, body) = http_get(&self.url(), "/metrics").await;
        body.lines()
            .find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}
