//! Game-service replicas for the front ends' tests: a `redis-server` of the test's own and the
//! game-service binary in processes of their own over it. Shared by ws-gateway's and
//! html-gallows' tests (html-gallows includes this file by its path).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A `redis-server` of the test's own, without persistence; killed when dropped.
pub struct Redis {
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
    pub fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile_dir::Dir::new("test-redis");
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

    pub fn url(&self) -> String {
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
pub struct Replica {
    _child: tokio::process::Child,
    addr: String,
}

impl Replica {
    /// Starts the binary with the word list `dictionary` and `flags`.
    pub async fn spawn(dictionary: &Path, flags: &[&str]) -> Replica {
        use tokio::io::{AsyncBufReadExt, BufReader};
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

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The MakeMove calls this replica served, from its `/metrics`.
    pub async fn moves_served(&self) -> f64 {
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

/// A TCP proxy in front of `upstream` that counts the connections it is asked for.
pub async fn counting_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                // Each direction on its own, to its end: the game service's last replies on a
                // retired connection still reach the client when the other direction fails
                // (copy_bidirectional would drop both).
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                    let _ = to_server.shutdown().await;
                });
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                let _ = to_client.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

/// Two replicas over `redis` that retire connections after 300 ms, as deployed (front ends
/// reconnect all along).
pub async fn two_replicas(redis: &Redis, dictionary: &Path) -> (Replica, Replica) {
    let store = redis.url();
    let flags = [
        "--store",
        &store,
        "--max-connection-age",
        "300ms",
        "--max-connection-age-grace",
        "1s",
    ];
    (
        Replica::spawn(dictionary, &flags).await,
        Replica::spawn(dictionary, &flags).await,
    )
}

/// Both replicas served MakeMove calls, per their `/metrics`: `moves` in all.
pub async fn assert_both_served(a: &Replica, b: &Replica, moves: usize) {
    let (on_a, on_b) = (a.moves_served().await, b.moves_served().await);
    assert_eq!(on_a + on_b, moves as f64, "every move was served once");
    assert!(
        on_a > 0.0 && on_b > 0.0,
        "MakeMove calls: {on_a} on A, {on_b} on B"
    );
}
