//! Memory per game: starts the real `game-service` binary (so with its allocator, mimalloc)
//! as a process of its own, fills its registry with N games over gRPC and prints how much
//! its RSS grew per game; then opens W `WatchGame` streams on W distinct games and prints
//! the growth per watched game; then opens C more client connections, each past one call and
//! left idle (a front end's connection between calls), and prints the growth per connection.
//! These are the figures behind the Kubernetes memory limit (README, "Memory").
//!
//! `cargo bench -p game-service --bench memory -- --games 20000,100000 --watchers 10000 --connections 1000`
//!
//! `--binary PATH` measures another build of the service, e.g. an older revision's.

use std::{
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, future::try_join_all};
use hangman_proto::v1::{
    CreateGameRequest, EndGameRequest, GetGameRequest, WatchGameRequest, WatchGameResponse,
    hangman_service_client::HangmanServiceClient,
};
use tonic::{
    Streaming,
    transport::{Channel, Endpoint},
};

#[derive(Parser)]
struct Args {
    /// Registry sizes to measure, each in a fresh process.
    #[arg(long, value_delimiter = ',', default_values_t = [20_000, 100_000])]
    games: Vec<usize>,
    /// Watch streams opened afterwards, each on a game of its own (the service's
    /// default --max-watchers).
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// Idle client connections opened last, each past one call.
    #[arg(long, default_value_t = 1_000)]
    connections: usize,
    /// The service binary to measure; the one built with this benchmark by default.
    #[arg(long, default_value = env!("CARGO_BIN_EXE_game-service"))]
    binary: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Client connections; calls are spread over them.
const CONNECTIONS: usize = 4;
/// Calls in flight at once.
const CONCURRENCY: usize = 64;
/// Time for the allocator to settle before RSS is read.
const SETTLE: Duration = Duration::from_secs(1);

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("binary: {}", args.binary);
    for &games in &args.games {
        runtime.block_on(measure(
            &args.binary,
            games,
            args.watchers.min(games),
            args.connections,
        ));
    }
}

async fn measure(binary: &str, games: usize, watchers: usize, connections: usize) {
    let service = Service::start(binary, games);
    let channels = service.connect().await;
    let started = rss_kib(service.pid());

    // Connections, per-call buffers and metrics are part of the baseline, not of the games.
    let warm_up: Vec<String> = create_games(&channels, CONCURRENCY).await;
    try_join_all(warm_up.into_iter().enumerate().map(|(i, game_id)| {
        let mut client = HangmanServiceClient::new(channels[i % CONNECTIONS].clone());
        async move { client.end_game(EndGameRequest { game_id }).await }
    }))
    .await
    .expect("EndGame");
    tokio::time::sleep(SETTLE).await;
    let baseline = rss_kib(service.pid());

    let created = Instant::now();
    let ids = create_games(&channels, games).await;
    let created = created.elapsed();
    tokio::time::sleep(SETTLE).await;
    let full = rss_kib(service.pid());

    let streams = watch_games(&channels, &ids[..watchers]).await;
    tokio::time::sleep(SETTLE).await;
    let watched = rss_kib(service.pid());

    println!(
        "{games} games (created in {:.1} s): RSS {started} KiB at start, {baseline} KiB warmed up, \
         {full} KiB full: {:.0} bytes per idle game",
        created.as_secs_f64(),
        per_item(full - baseline, games)
    );
    if watchers > 0 {
        println!(
            "  + {watchers} watch streams on as many games: {watched} KiB: \
             {:.0} bytes per watched game",
            per_item(watched - full, watchers)
        );
    }
    if connections > 0 {
        let idle = idle_connections(&service, &ids[0], connections).await;
        tokio::time::sleep(SETTLE).await;
        let connected = rss_kib(service.pid());
        println!(
            "  + {} idle client connections, each past one GetGame: {connected} KiB: \
             {:.0} bytes per connection",
            idle.len(),
            per_item(connected - watched, idle.len())
        );
    }
    drop(streams);
}

/// `count` connections of their own, each past one `GetGame` of `game_id`, `CONCURRENCY` at a
/// time.
async fn idle_connections(service: &Service, game_id: &str, count: usize) -> Vec<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{}", service.addr)).unwrap();
    let connections = (0..count).map(|_| {
        let endpoint = endpoint.clone();
        let game_id = game_id.to_owned();
        async move {
            let channel = endpoint.connect().await.expect("a connection");
            HangmanServiceClient::new(channel.clone())
                .get_game(GetGameRequest { game_id })
                .await
                .expect("GetGame");
            channel
        }
    });
    futures::stream::iter(connections)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

fn per_item(kib: i64, items: usize) -> f64 {
    (kib * 1024) as f64 / items as f64
}

/// Creates `count` games with random words, `CONCURRENCY` calls at a time; their ids.
async fn create_games(channels: &[Channel], count: usize) -> Vec<String> {
    let tasks = (0..CONCURRENCY).map(|task| {
        let mut client = HangmanServiceClient::new(channels[task % CONNECTIONS].clone());
        let share = count / CONCURRENCY + usize::from(task < count % CONCURRENCY);
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(share);
            for _ in 0..share {
                let created = client
                    .create_game(CreateGameRequest { word: None })
                    .await
                    .expect("CreateGame");
                ids.push(created.into_inner().game_id);
            }
            ids
        })
    });
    let ids = try_join_all(tasks).await.unwrap();
    ids.into_iter().flatten().collect()
}

/// One open `WatchGame` stream per id, each past its first message; opened
/// `CONCURRENCY` at a time (thousands at once would be resets and retries).
async fn watch_games(channels: &[Channel], ids: &[String]) -> Vec<Streaming<WatchGameResponse>> {
    let streams = ids.iter().enumerate().map(|(i, game_id)| {
        let mut client = HangmanServiceClient::new(channels[i % CONNECTIONS].clone());
        let game_id = game_id.clone();
        async move {
            let mut stream = client
                .watch_game(WatchGameRequest {
                    game_id,
                    ..Default::default()
                })
                .await?
                .into_inner();
            stream.next().await.expect("the tally now")?;
            Ok::<_, tonic::Status>(stream)
        }
    });
    futures::stream::iter(streams)
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .expect("WatchGame")
}

/// The service as a child process, killed when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
}

impl Service {
    fn start(binary: &str, max_games: usize) -> Service {
        // A free port; the service logs nothing at `warn` to say which one it took.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let child = Command::new(binary)
            .args(["--listen", &addr.to_string()])
            .args(["--max-games", &max_games.to_string()])
            // Well above what watch streams need: `CONNECTIONS` connections carry them all.
            .args(["--max-concurrent-streams", "100000"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        Service { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn connect(&self) -> Vec<Channel> {
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut channels = Vec::new();
        while channels.len() < CONNECTIONS {
            match endpoint.connect().await {
                Ok(channel) => channels.push(channel),
                Err(e) if Instant::now() > deadline => panic!("the service did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        channels
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process's resident set size (VmRSS), KiB.
fn rss_kib(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}
