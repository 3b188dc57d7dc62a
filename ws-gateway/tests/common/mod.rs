//! Shared test harness: a real game service and a real gateway on port 0, and the raw
//! WebSocket client of phoenix-channels (feature `test-client`), which speaks the Phoenix
//! wire format by hand.
#![allow(dead_code)]

use clap::Parser;
use game_service::testing::TestGameService;
use serde_json::{Value, json};
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

/// Collects frames until one matches; the others are returned too.
pub async fn until(client: &mut Client, pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    loop {
        let frame = client.recv().await;
        if pred(&frame) {
            return (frame, seen);
        }
        seen.push(frame);
    }
}

/// A client of the gateway at `ws_url` (`ws://ADDR`) connected as `player`.
pub async fn player(ws_url: &str, player: &str) -> Client {
    Client::connect(&format!(
        "{ws_url}/socket/websocket?vsn=2.0.0&player={player}"
    ))
    .await
}

/// The names a presence payload lists (a `presence_state`, or the `joins` or `leaves` of a
/// `presence_diff`), sorted.
pub fn names(presences: &Value) -> Vec<String> {
    let mut names: Vec<_> = presences
        .as_object()
        .unwrap_or_else(|| panic!("presences are an object: {presences}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// The one meta a presence payload lists for `name` (one connection), checked to be as the
/// gateway makes it: `phx_ref` the member key (32 hex digits), `online_at` the Unix seconds of
/// the join, as a string.
pub fn meta(presences: &Value, name: &str) -> Value {
    let metas = &presences[name]["metas"];
    let [meta] = metas.as_array().map(Vec::as_slice).unwrap_or_default() else {
        panic!("one meta for {name}: {presences}");
    };
    let key = meta["phx_ref"].as_str().unwrap_or_default();
    assert!(
        key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{meta}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let online_at: u64 = meta["online_at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("online_at is seconds as a string: {meta}"));
    assert!(now.abs_diff(online_at) < 600, "{meta}, now {now}");
    assert_eq!(meta.as_object().unwrap().len(), 2, "{meta}");
    meta.clone()
}

/// Waits for the `presence_diff` in which `name` joins (or leaves, with `joined` false) and
/// nobody else comes or goes; returns that meta.
pub async fn diff_of(client: &mut Client, name: &str, joined: bool) -> Value {
    let (side, other) = if joined {
        ("joins", "leaves")
    } else {
        ("leaves", "joins")
    };
    let (diff, _) = until(client, |f| {
        f[3] == "presence_diff" && f[4][side].get(name).is_some()
    })
    .await;
    assert_eq!(names(&diff[4][side]), [name], "{diff}");
    assert_eq!(diff[4][other], json!({}), "{diff}");
    meta(&diff[4][side], name)
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

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// `kill -9` (SIGKILL): the gateway closes nothing and tells the game service nothing.
    pub async fn kill_9(&mut self) {
        self.child.kill().await.expect("SIGKILL");
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

/// Raises this process's soft limit on open files to `needed` (a process may, up to its hard
/// limit); processes it spawns afterwards inherit it. Where the hard limit is too low the test
/// fails and says so: it never tests fewer connections than it says.
pub fn raise_open_files_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current.is_none_or(|soft| soft >= needed) {
        return;
    }
    if let Some(hard) = maximum.filter(|&hard| hard < needed) {
        panic!(
            "this test needs {needed} open files, but the hard limit is {hard}: raise it \
             (`ulimit -Hn {needed}` as root, LimitNOFILE in systemd, `--ulimit nofile={needed}` \
             in Docker)"
        );
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum,
        },
    )
    .expect("raising the soft limit on open files up to the hard limit");
}
