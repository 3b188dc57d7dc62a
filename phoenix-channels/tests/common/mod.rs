//! The crate's test harness: a small echo app served by axum on port 0, for the raw WebSocket
//! client of `phoenix_channels::test_client`.
//!
//! The app's channels:
//! - `echo:*`: a join with `{"refuse": reason}` is refused with that reason, any other is
//!   answered `{"topic": topic}`. Events: `echo` replies with its own payload (bytes stay
//!   bytes), `push` pushes its payload back as `pushed` and replies `{}`, `slow` waits
//!   `{"ms": n}` then replies with its payload, `shout` sends its payload to every channel
//!   joined on the topic (each pushes it as `shout`), `crash` crashes the channel; any other
//!   is `unknown_event`.
//! - `presence:*`: after the join, pushes the `presence_state` that lists the connection's
//!   `user` param (its `phx_ref` the join's ref), then the `presence_diff` of that join, built
//!   with the crate's `presence` payloads. Who is present is the application's to know (ws-gateway
//!   asks its game service), so this room knows only its own member.
//!
//! The connect hook refuses a connection whose params carry `refuse`, and one whose params carry
//! `auth` unless its auth token, decoded, is that param (so a test sees what the hook gets).
//!
//! These channels are written as a user of the crate writes one, on purpose (the tests use the
//! crate's API as it is): what they share with each other and with ws-gateway's channels is the
//! shape of the `Channel` trait.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use phoenix_channels::channel::{Channel, ChannelContext, Crash, InfoSender, Join, Reply, Router};
use phoenix_channels::longpoll::LongPollConfig;
use phoenix_channels::message::Payload;
use phoenix_channels::presence::{self, Presence};
use phoenix_channels::socket::SocketLimits;
use phoenix_channels::telemetry::Metrics;
use phoenix_channels::transport::{
    AllowedOrigins, Connect, ConnectInfo, ConnectRefused, Endpoint, TransportConfig,
};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use phoenix_channels::test_client::{Client, PATIENCE};

/// The connect hook: assigns the `user` param (or `anonymous`); refuses on `refuse`, and on
/// `auth` unless the auth token is that param.
pub struct App;

impl Connect for App {
    type Assigns = String;

    fn connect(&self, info: &ConnectInfo) -> Result<String, ConnectRefused> {
        if info.params.contains_key("refuse") {
            return Err(ConnectRefused("asked to".into()));
        }
        if let Some(expected) = info.params.get("auth")
            && info.auth_token.as_deref() != Some(expected.as_bytes())
        {
            return Err(ConnectRefused(format!(
                "auth token {:?} is not {expected:?}",
                info.auth_token.as_deref().map(String::from_utf8_lossy)
            )));
        }
        let user = info.params.get("user").map_or("anonymous", String::as_str);
        Ok(user.to_owned())
    }
}

/// `echo:*`: the topics' `shout` fan-out, shared by every connection.
#[derive(Default, Clone)]
pub struct EchoJoin {
    shouts: Arc<Mutex<HashMap<String, broadcast::Sender<Value>>>>,
}

pub struct Echo {
    shouts: broadcast::Sender<Value>,
}

impl Join<String> for EchoJoin {
    type Channel = Echo;

    async fn join(
        &self,
        topic: &str,
        payload: Payload,
        _user: &String,
        info: &InfoSender<Value>,
    ) -> Result<(Echo, Value), Value> {
        if let Some(reason) = payload.as_json().and_then(|p| p.get("refuse")) {
            return Err(json!({ "reason": reason }));
        }
        let shouts = self
            .shouts
            .lock()
            .unwrap()
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(64).0)
            .clone();
        let heard = BroadcastStream::new(shouts.subscribe()).filter_map(|s| async { s.ok() });
        info.forward(heard, |shout| shout, None);
        Ok((Echo { shouts }, json!({ "topic": topic })))
    }
}

impl Channel for Echo {
    type Info = Value;

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &ChannelContext<Value>,
    ) -> Result<Reply, Crash> {
        let json = payload.as_json().cloned().unwrap_or(Value::Null);
        Ok(match event {
            "echo" => Reply::Ok(payload),
            "push" => {
                ctx.push("pushed", payload).await;
                Reply::Ok(json!({}).into())
            }
            "slow" => {
                let ms = json["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Reply::Ok(payload)
            }
            "shout" => {
                let _ = self.shouts.send(json);
                Reply::Ok(json!({}).into())
            }
            "crash" => {
                return Err(Crash {
                    reason: "asked to".into(),
                });
            }
            _ => Reply::error("unknown_event"),
        })
    }

    async fn handle_info(
        &mut self,
        shout: Value,
        ctx: &ChannelContext<Value>,
    ) -> Result<(), Crash> {
        ctx.push("shout", shout).await;
        Ok(())
    }
}

/// `presence:*`.
pub struct PresenceJoin;

/// A `presence:*` member: the connection's user.
pub struct Member(String);

impl Join<String> for PresenceJoin {
    type Channel = Member;

    async fn join(
        &self,
        _topic: &str,
        _payload: Payload,
        user: &String,
        info: &InfoSender<()>,
    ) -> Result<(Member, Value), Value> {
        info.send(());
        Ok((Member(user.clone()), json!({})))
    }
}

impl Channel for Member {
    type Info = ();

    async fn handle_in(
        &mut self,
        _event: &str,
        _payload: Payload,
        _ctx: &ChannelContext<()>,
    ) -> Result<Reply, Crash> {
        Ok(Reply::error("unknown_event"))
    }

    async fn handle_info(&mut self, _info: (), ctx: &ChannelContext<()>) -> Result<(), Crash> {
        let me = || Presence::new(self.0.clone(), ctx.join_ref());
        ctx.push("presence_state", presence::state([me()])).await;
        ctx.push("presence_diff", presence::diff([me()], [])).await;
        Ok(())
    }
}

/// The transport settings of the tests: ws-gateway's defaults, the listen host 127.0.0.1.
pub fn config() -> TransportConfig {
    TransportConfig {
        allowed_origins: AllowedOrigins::new(&[], [127, 0, 0, 1].into()),
        max_frame_size: 65536,
        max_connections: 50_000,
        limits: SocketLimits {
            idle_timeout: Duration::from_secs(60),
            max_channels: 100,
            channel_inbox: 64,
            messages_per_second: 100,
            shutdown_close_code: 1001,
            close_timeout: Duration::from_secs(2),
        },
        metrics: Metrics::default(),
        websocket: true,
        longpoll: Some(LongPollConfig::default()),
    }
}

/// The echo app, served on 127.0.0.1, port 0.
pub struct Server {
    pub addr: SocketAddr,
    pub endpoint: Arc<Endpoint<App>>,
    serve: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

/// Serves the echo app with `config` at `/socket`.
pub async fn serve(config: TransportConfig) -> Server {
    serve_at(config, &["/socket"]).await
}

pub async fn serve_at(config: TransportConfig, mounts: &[&str]) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, config, mounts)
}

/// Serves the echo app on `listener` (bound ahead, when the config must name its address).
pub fn serve_on(
    listener: tokio::net::TcpListener,
    config: TransportConfig,
    mounts: &[&str],
) -> Server {
    let router = Router::new()
        .channel("echo:*", EchoJoin::default())
        .channel("presence:*", PresenceJoin);
    let endpoint = Endpoint::new(App, router, config);
    let mounts: Vec<String> = mounts.iter().map(|m| (*m).to_owned()).collect();
    let app: axum::Router = endpoint.routes(&mounts);
    let addr = listener.local_addr().unwrap();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        addr,
        endpoint,
        serve,
    }
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn socket_url(&self, query: &str) -> String {
        format!("ws://{}/socket/websocket?{query}", self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket_url("vsn=2.0.0")).await
    }

    /// Waits until the server holds no more than `n` connections.
    pub async fn connections_down_to(&self, n: usize) {
        tokio::time::timeout(PATIENCE, async {
            while self.endpoint.connections() > n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the connections end within the test's patience");
    }
}
