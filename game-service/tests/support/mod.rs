//! What the game service's tests share: a store to run against, a Redis server of the test's
//! own, the service in-process or as a process, and a gRPC client.

#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use game_service::{Config, RunningServer};
use hangman_proto::v1::hangman_service_client::HangmanServiceClient;
use tonic::transport::Channel;

pub type Client = HangmanServiceClient<Channel>;

/// Where the server under test keeps its games.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Memory,
    /// A `redis-server` started for the test, and stopped with it.
    Redis,
}

/// A game service started in-process for one test, with the Redis it uses (if any).
pub struct TestServer {
    server: RunningServer,
    pub redis: Option<RedisServer>,
}

impl TestServer {
    pub async fn start(store: Store, flags: &[&str]) -> TestServer {
        let redis = (store == Store::Redis).then(RedisServer::start);
        let server = start_with(redis.as_ref(), flags).await;
        TestServer { server, redis }
    }

    /// Another replica over the same store.
    pub async fn replica(&self, flags: &[&str]) -> RunningServer {
        start_with(self.redis.as_ref(), flags).await
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

impl std::ops::Deref for TestServer {
    type Target = RunningServer;
    fn deref(&self) -> &RunningServer {
        &self.server
    }
}

async fn start_with(redis: Option<&RedisServer>, flags: &[&str]) -> RunningServer {
    let mut args = vec![
        "game-service".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(redis) = redis {
        args.extend(["--store".into(), redis.url()]);
    }
    args.extend(flags.iter().map(|flag| flag.to_string()));
    game_service::start(Config::parse_from(args)).await.unwrap()
}

pub async fn client(server: &RunningServer) -> Client {
    HangmanServiceClient::connect(server.url()).await.unwrap()
}

/// A `redis-server` of the test's own on a free loopback port, without persistence, in a
/// temporary directory; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut redis = RedisServer {
            child: None,
            port,
            dir,
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `kill -9`: everything it held is gone (nothing is persisted).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends one command in the inline protocol; the raw reply.
    pub fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        let mut reply = [0; 4096];
        let n = stream.read(&mut reply).unwrap();
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup installs Debian's redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut reply = [0; 16];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream
                        .read(&mut reply)
                        .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The game-service binary as a process, for what only a process can show (`kill -9`).
pub struct ServiceProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ServiceProcess {
    /// Starts the binary with `flags` and waits until it logs its address.
    pub fn spawn(flags: &[&str]) -> ServiceProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_game-service"))
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (found, addr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            // Keeps reading, so that the process never blocks on a full pipe.
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1)
                    && let Some(sender) = found.take()
                {
                    let _ = sender.send(addr.trim().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = addr
            .recv_timeout(Duration::from_secs(30))
            .expect("game-service logs `listening on ADDR`");
        ServiceProcess { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// One `#[tokio::test]` per store for each suite test `async fn name(store: Store)`, named
/// `memory::name` and `redis::name`.
#[macro_export]
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::Store::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::Store::Redis).await
                }
            )*
        }
    };
}
