//! gRPC load: `MakeMove` from N concurrent clients over loopback, then a no-op
//! unary call (`grpc.health.v1.Health/Check`) on the same server and stack as
//! the ceiling of this transport. Prints calls/s, p50 and p99 of each.
//!
//! `cargo bench -p game-service --bench grpc_load -- --clients 64 --seconds 10`
//!
//! With `--redis redis://127.0.0.1:6379/0` it then measures `MakeMove` again with games in
//! that Redis (in the same run, on a second server) and prints it as a share of the memory
//! store's calls/s.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use clap::Parser;
use game_service::Config;
use hangman_proto::v1::{
    CreateGameRequest, MakeMoveRequest, hangman_service_client::HangmanServiceClient,
};
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[derive(Parser)]
struct Args {
    /// Concurrent clients, each on its own HTTP/2 connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds per scenario (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Also measure `MakeMove` with games in this Redis (use a database of its own: the
    /// games it creates stay until their TTL).
    #[arg(long)]
    redis: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Five wrong letters, then the five letters of "hangman": a won game of ten moves.
const GAME: [&str; 10] = ["b", "c", "d", "e", "f", "h", "a", "n", "g", "m"];

fn main() {
    let args = Args::parse();
    // The server and the clients get a runtime each, as if two processes
    // shared the machine's cores.
    let server_runtime = runtime();
    let clients_runtime = runtime();
    let duration = Duration::from_secs(args.seconds);
    println!(
        "{} clients, {} s per scenario, {} cores",
        args.clients,
        args.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let server = server_runtime
        .block_on(start_server("memory"))
        .expect("the server starts");
    let in_memory = clients_runtime.block_on(async {
        let channels = connect(&server.url(), args.clients).await;
        let make_move = measure(&channels, duration, play_moves).await;
        report("MakeMove", &make_move);
        let noop = measure(&channels, duration, health_checks).await;
        report("no-op (Health/Check)", &noop);
        println!(
            "MakeMove reaches {:.0} % of the no-op calls/s",
            100.0 * make_move.calls_per_second / noop.calls_per_second
        );
        make_move
    });
    server_runtime.block_on(server.stop());

    if let Some(redis) = &args.redis {
        let server = server_runtime
            .block_on(start_server(redis))
            .expect("the server starts over Redis");
        clients_runtime.block_on(async {
            let channels = connect(&server.url(), args.clients).await;
            let make_move = measure(&channels, duration, play_moves).await;
            report("MakeMove (Redis)", &make_move);
            println!(
                "MakeMove over Redis reaches {:.0} % of the memory store's calls/s",
                100.0 * make_move.calls_per_second / in_memory.calls_per_second
            );
        });
        server_runtime.block_on(server.stop());
    }
}

async fn start_server(
    store: &str,
) -> Result<game_service::RunningServer, game_service::StartError> {
    game_service::start(Config::parse_from([
        "game-service",
        "--listen",
        "127.0.0.1:0",
        "--test-mode",
        "--store",
        store,
    ]))
    .await
}

/// One HTTP/2 connection per client.
async fn connect(url: &str, clients: usize) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..clients {
        let endpoint = Endpoint::from_shared(url.to_owned()).unwrap();
        channels.push(endpoint.connect().await.unwrap());
    }
    channels
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

struct Figures {
    calls_per_second: f64,
    latencies: Histogram<u64>,
}

fn report(name: &str, figures: &Figures) {
    let h = &figures.latencies;
    println!(
        "{name:<22} {:>9.0} calls/s   p50 {:>6} µs   p99 {:>6} µs   ({} calls)",
        figures.calls_per_second,
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.len()
    );
}

/// Runs `client` on every channel for one second of warm-up, then for
/// `duration`, and merges what they measured.
async fn measure<F, Fut>(channels: &[Channel], duration: Duration, client: F) -> Figures
where
    F: Fn(Channel, Instant) -> Fut,
    Fut: Future<Output = Histogram<u64>> + Send + 'static,
{
    let warm_up = Instant::now() + Duration::from_secs(1);
    let tasks: Vec<_> = channels
        .iter()
        .map(|c| tokio::spawn(client(c.clone(), warm_up)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = channels
        .iter()
        .map(|c| tokio::spawn(client(c.clone(), started + duration)))
        .collect();
    let mut latencies = new_histogram();
    for task in tasks {
        latencies.add(task.await.unwrap()).unwrap();
    }
    Figures {
        calls_per_second: latencies.len() as f64 / started.elapsed().as_secs_f64(),
        latencies,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// Plays ten-move games until `until`, timing only the moves.
async fn play_moves(channel: Channel, until: Instant) -> Histogram<u64> {
    let mut client = HangmanServiceClient::new(channel);
    let mut latencies = new_histogram();
    while Instant::now() < until {
        let game_id = client
            .create_game(CreateGameRequest {
                word: Some("hangman".into()),
            })
            .await
            .unwrap()
            .into_inner()
            .game_id;
        for guess in GAME {
            let request = MakeMoveRequest {
                game_id: game_id.clone(),
                guess: guess.into(),
            };
            timed(&mut latencies, client.make_move(request))
                .await
                .unwrap();
        }
    }
    latencies
}

async fn health_checks(channel: Channel, until: Instant) -> Histogram<u64> {
    let mut client = HealthClient::new(channel);
    let mut latencies = new_histogram();
    while Instant::now() < until {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        timed(&mut latencies, client.check(request)).await.unwrap();
    }
    latencies
}

/// Awaits `call` and records how long it took, in microseconds.
async fn timed<T>(latencies: &mut Histogram<u64>, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let output = call.await;
    latencies
        .record(started.elapsed().as_micros() as u64)
        .unwrap();
    output
}
