//! The smallest user of the crate: one `echo:*` channel that answers every push with its own
//! payload. Run it, then from the npm `phoenix` client:
//!
//! ```js
//! const socket = new Socket("ws://127.0.0.1:4000/socket");
//! socket.connect();
//! socket.channel("echo:lobby").join();
//! channel.push("shout", { body: "hi" }).receive("ok", console.log); // { body: "hi" }
//! ```
//!
//! Its `Join` and `Channel` impls are the skeleton every channel fills in (ws-gateway's
//! `hangman:game` is a fuller one).
//!
//! `cargo run -p phoenix-channels --example echo`
//!
//! Two optional arguments, for measuring the crate on its own (ws-gateway/README.md,
//! "Performance"): the address to listen on (`127.0.0.1:4000`) and the messages a connection may
//! send a second (50).

use std::time::Duration;

use phoenix_channels::channel::{Channel, ChannelContext, Crash, InfoSender, Join, Reply, Router};
use phoenix_channels::longpoll::LongPollConfig;
use phoenix_channels::message::Payload;
use phoenix_channels::socket::SocketLimits;
use phoenix_channels::telemetry::Metrics;
use phoenix_channels::transport::{
    AllowedOrigins, Connect, ConnectInfo, ConnectRefused, Endpoint, TransportConfig,
};
use serde_json::{Value, json};

/// `connect/3`: everyone is welcome, and nothing is assigned to the connection.
struct Anyone;

impl Connect for Anyone {
    type Assigns = ();

    fn connect(&self, _info: &ConnectInfo) -> Result<(), ConnectRefused> {
        Ok(())
    }
}

/// `join/3` of `echo:*`: every join is accepted, and answered with the topic joined.
struct EchoJoin;

impl Join<()> for EchoJoin {
    type Channel = Echo;

    async fn join(
        &self,
        topic: &str,
        _payload: Payload,
        _assigns: &(),
        _info: &InfoSender<()>,
    ) -> Result<(Echo, Value), Value> {
        Ok((Echo, json!({ "topic": topic })))
    }
}

/// A joined `echo:*` channel.
struct Echo;

impl Channel for Echo {
    type Info = ();

    async fn handle_in(
        &mut self,
        _event: &str,
        payload: Payload,
        _ctx: &ChannelContext<()>,
    ) -> Result<Reply, Crash> {
        Ok(Reply::Ok(payload))
    }

    async fn handle_info(&mut self, (): (), _ctx: &ChannelContext<()>) -> Result<(), Crash> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_owned());
    let messages_per_second = match args.next().map(|rate| rate.parse()) {
        None => 50,
        Some(Ok(rate)) => rate,
        Some(Err(err)) => {
            eprintln!("usage: echo [ADDRESS] [MESSAGES_PER_SECOND]: {err}");
            std::process::exit(2);
        }
    };
    let config = TransportConfig {
        allowed_origins: AllowedOrigins::new(&[], [127, 0, 0, 1].into()),
        max_frame_size: 64 * 1024,
        max_connections: 10_000,
        limits: SocketLimits {
            idle_timeout: Duration::from_secs(60),
            max_channels: 100,
            channel_inbox: 16,
            messages_per_second,
            shutdown_close_code: 1001,
            close_timeout: Duration::from_secs(5),
        },
        // `phoenix_connections`, `phoenix_channels`, ... (no recorder is installed here).
        metrics: Metrics::default(),
        websocket: true,
        // The npm client's `LongPoll` at `/socket/longpoll`, with Phoenix's window and expiry.
        longpoll: Some(LongPollConfig::default()),
    };
    let endpoint = Endpoint::new(Anyone, Router::new().channel("echo:*", EchoJoin), config);
    let app = endpoint.routes(&["/socket".to_owned()]);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}: ws://{addr}/socket/websocket");
    axum::serve(listener, app).await
}
