//! Spreading the gateway's calls over game-service replicas (issue 11): a Kubernetes ClusterIP
//! Service balances connections, not calls, so the gateway opens its connections across every
//! address of the game service, and the game service retires connections by age so that
//! clients reconnect. Real game services over a real Redis, a real gateway, real sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Client;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

const GAME: &str = "hangman:game";

/// Plays `hangman:game` through `client` (letters a to z in turn, a new game when one ends)
/// until `enough(moves)`; every reply must be ok. Returns the moves made.
async fn play_until(client: &mut Client, mut enough: impl FnMut(usize) -> bool) -> usize {
    let (join_ref, _) = client.join_ok(GAME, json!({})).await;
    let (mut moves, mut letter) = (0, b'a');
    while !enough(moves) {
        let guess = (letter as char).to_string();
        let (reply, _) = client
            .call(&join_ref, GAME, "make_move", json!(guess))
            .await;
        assert_eq!(reply["status"], "ok", "move {moves} ({guess}): {reply}");
        moves += 1;
        letter += 1;
        if matches!(
            reply["response"]["game_state"].as_str(),
            Some("won" | "lost")
        ) {
            let (reply, _) = client.call(&join_ref, GAME, "new_game", json!({})).await;
            assert_eq!(
                reply["status"], "ok",
                "new game after {moves} moves: {reply}"
            );
            letter = b'a';
        }
    }
    moves
}

/// A `redis-server` of the test's own, without persistence; killed when dropped.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A fresh directory, removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("{name}-{}", rand::random::<u64>()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile_dir::Dir::new("ws-gateway-redis");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir.0)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup installs Debian's redis-server)");
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut pong = [0; 5];
            let answered = StdTcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
                s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut pong).is_ok()
            });
            if answered && &pong == b"+PONG" {
                return redis;
            }
            assert!(Instant::now() < deadline, "redis-server answers on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The game-service binary: each replica in a process of its own, so that each has its own
/// `/metrics` (in-process servers would share one recorder). The gateway's tests depend on the
/// game service's library only, so the binary is built here (nothing to do when it is current).
fn game_service_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "game-service",
                    "--bin",
                    "game-service",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "the game-service binary builds");
            // This test runs from target/<profile>/deps/.
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("game-service")
        })
        .clone()
}

/// A game-service replica as a process; killed when dropped.
struct Replica {
    _child: tokio::process::Child,
    addr: String,
}

impl Replica {
    async fn spawn(flags: &[&str]) -> Replica {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let dictionary = common::dictionary();
        let mut child = tokio::process::Command::new(game_service_binary())
            .args(["--listen", "127.0.0.1:0", "--dictionary"])
            .arg(dictionary)
            .args(flags)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    return addr.trim().to_owned();
                }
            }
            panic!("game-service exited before listening");
        })
        .await
        .expect("game-service logs `listening on ADDR`");
        // Keep reading, so that the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Replica {
            _child: child,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The MakeMove calls this replica served, from its `/metrics`.
    async fn moves_served(&self) -> f64 {
        let metrics = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .filter(|line| {
                line.starts_with("grpc_server_handling_seconds_count{")
                    && line.contains(r#"method="/hangman.v1.HangmanService/MakeMove""#)
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[tokio::test]
async fn moves_through_the_gateway_reach_every_replica_of_the_game_service() {
    let redis = Redis::start();
    let store = redis.url();
    // A short connection age, as deployed: the gateway reconnects all along.
    let flags = [
        "--store",
        &store,
        "--max-connection-age",
        "300ms",
        "--max-connection-age-grace",
        "1s",
    ];
    let (a, b) = (Replica::spawn(&flags).await, Replica::spawn(&flags).await);
    // Two replicas at fixed addresses, and fewer connections than addresses: each address
    // still gets one.
    let gateway = common::gateway(
        &format!("{},{}", a.url(), b.url()),
        &[
            "--grpc-connections",
            "1",
            "--max-pushes-per-second",
            "100000",
        ],
    )
    .await;
    let mut client =
        Client::connect(&format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url())).await;
    play_until(&mut client, |moves| moves == 200).await;
    let (on_a, on_b) = (a.moves_served().await, b.moves_served().await);
    assert_eq!(on_a + on_b, 200.0, "every move was served once");
    assert!(
        on_a > 0.0 && on_b > 0.0,
        "MakeMove calls: {on_a} on A, {on_b} on B"
    );
}

/// A TCP proxy in front of `upstream` that counts the connections it is asked for.
async fn counting_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn connections_retired_by_age_are_reopened_without_a_failed_call() {
    let games =
        common::game_service_with(&["--listen", "127.0.0.1:0", "--max-connection-age", "300ms"])
            .await;
    let (proxy, connections) = counting_proxy(games.addr().to_string()).await;
    let gateway = common::gateway(
        &format!("http://{proxy}"),
        &[
            "--grpc-connections",
            "1",
            "--max-pushes-per-second",
            "100000",
        ],
    )
    .await;
    // Eight players without pause for 2 s, through several retirements: every move is
    // answered ok (calls are in flight whenever the connection is retired).
    let url = format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url());
    let started = Instant::now();
    let players: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(&url).await;
                play_until(&mut client, |_| started.elapsed() >= Duration::from_secs(2)).await
            })
        })
        .collect();
    let mut moves = 0;
    for player in players {
        moves += player.await.expect("every move answered ok");
    }
    let opened = connections.load(Ordering::Relaxed);
    assert!(
        opened >= 3,
        "the one connection was retired and reopened: {opened} connections for {moves} moves"
    );
    games.stop().await;
}
