//! Shared test harness: a real game service and a real gateway on port 0, and the raw
//! WebSocket client of phoenix-channels (feature `test-client`), which speaks the Phoenix
//! wire format by hand.
#![allow(dead_code)]

use clap::Parser;
use game_service::testing::TestGameService;
// Each test file uses what it needs of these.
#[allow(unused_imports)]
pub use phoenix_channels::test_client::{Client, PATIENCE, try_connect};

/// Every game in these tests plays this word (a one-word dictionary).
pub const WORD: &str = "hello";

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
