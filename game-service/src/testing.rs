//! What tests need of a game service, shared by this crate's tests and the front ends'
//! (feature `test-support`, enabled by their dev-dependencies only):
//!
//! - [`spawn_with_words`] and [`TestGameService::builder`]: a real server on 127.0.0.1:0,
//!   in this process, whose games play the words given in memory;
//! - [`RedisServer`]: a `redis-server` of the test's own on a free port, killed on drop,
//!   with TLS ([`RedisServer::start_tls`]) on certificates of a [`TestCertificates`];
//! - [`GameServiceProcess`]: the binary in a process of its own, for what only a process
//!   shows (`kill -9`, a `/metrics` of its own, read with [`GameServiceProcess::metric`]),
//!   and [`game_service_binary`] to find it from
//!   another crate's tests.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use clap::{CommandFactory, FromArgMatches};
use hangman_proto::v1::hangman_service_client::HangmanServiceClient;
use tonic::transport::Channel;

use crate::config::{Config, StoreConfig};
use crate::dictionary::Dictionary;
use crate::server::{self, RunningServer};

/// A gRPC client of the game service.
pub type Client = HangmanServiceClient<Channel>;

/// A game service whose every game plays one of `words`, with games in memory.
pub async fn spawn_with_words(words: &[&str]) -> TestGameService {
    TestGameService::builder().words(words).spawn().await
}

/// How a [`TestGameService`] is started: its words, its flags, its address and its store.
#[derive(Debug, Clone)]
pub struct Builder {
    words: Option<Vec<String>>,
    flags: Vec<String>,
    listen: Option<SocketAddr>,
    store: Option<String>,
    own_redis: bool,
}

impl Builder {
    /// Games play one of these words (the built-in list when never called).
    pub fn words(mut self, words: &[&str]) -> Builder {
        self.words = Some(words.iter().map(|word| word.to_string()).collect());
        self
    }

    /// Flags as on the command line (`--max-games`, `--test-mode`, timeouts…); a flag given
    /// twice takes its last value.
    pub fn flags(mut self, flags: &[&str]) -> Builder {
        self.flags.extend(flags.iter().map(|flag| flag.to_string()));
        self
    }

    /// Listens on `addr` (a server started again where the last one was) instead of port 0.
    pub fn listen(mut self, addr: SocketAddr) -> Builder {
        self.listen = Some(addr);
        self
    }

    /// Keeps games in the Redis at `url`.
    pub fn store(mut self, url: &str) -> Builder {
        self.store = Some(url.to_owned());
        self
    }

    /// Keeps games in a [`RedisServer`] of the service's own, started with it and killed
    /// when it is dropped ([`TestGameService::redis`]).
    pub fn own_redis(mut self) -> Builder {
        self.own_redis = true;
        self
    }

    /// The configuration the server starts with. Panics on a bad flag or word: a mistake of
    /// the test.
    fn config(&self) -> Config {
        let args = ["game-service", "--listen", "127.0.0.1:0"]
            .into_iter()
            .map(String::from)
            .chain(self.flags.iter().cloned());
        let matches = Config::command()
            .args_override_self(true)
            .try_get_matches_from(args)
            .unwrap_or_else(|error| panic!("the test's flags: {error}"));
        let mut config = Config::from_arg_matches(&matches).expect("flags make a Config");
        if let Some(words) = &self.words {
            let words = Dictionary::from_words(words.iter().map(String::as_str));
            config.words = Some(words.expect("the test's words are a valid dictionary"));
        }
        if let Some(addr) = self.listen {
            config.listen = addr;
        }
        if let Some(url) = &self.store {
            config.store = StoreConfig::Redis(url.clone());
        }
        config
    }

    /// Starts the server (and its Redis, if it has one of its own); panics if it cannot.
    pub async fn spawn(mut self) -> TestGameService {
        let redis = self.own_redis.then(RedisServer::start);
        if let Some(redis) = &redis {
            self.store = Some(redis.url());
        }
        let server = server::start(self.config())
            .await
            .expect("the game service starts");
        TestGameService {
            server,
            redis,
            builder: self,
        }
    }
}

/// A game service running in this test's process, with the Redis it owns (if any).
pub struct TestGameService {
    server: RunningServer,
    redis: Option<RedisServer>,
    builder: Builder,
}

impl TestGameService {
    /// Port 0, games in memory, the built-in words, the default flags.
    pub fn builder() -> Builder {
        Builder {
            words: None,
            flags: Vec::new(),
            listen: None,
            store: None,
            own_redis: false,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The URL a gRPC client connects to.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A new client on a connection of its own.
    pub async fn client(&self) -> Client {
        HangmanServiceClient::connect(self.url())
            .await
            .expect("the game service accepts a connection")
    }

    /// The Redis it owns ([`Builder::own_redis`]).
    pub fn redis(&self) -> Option<&RedisServer> {
        self.redis.as_ref()
    }

    pub fn redis_mut(&mut self) -> Option<&mut RedisServer> {
        self.redis.as_mut()
    }

    /// Another replica over the same store, with the same words and flags and `flags` added;
    /// the Redis stays this one's.
    pub async fn replica(&self, flags: &[&str]) -> TestGameService {
        let mut builder = self.builder.clone().flags(flags);
        builder.listen = None;
        builder.own_redis = false;
        builder.spawn().await
    }

    /// Graceful shutdown (health NOT_SERVING, watch streams end, open calls finish); then
    /// the Redis it owns is killed.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A `redis-server` (Debian's) of the test's own on a free loopback port, without
/// persistence, in a temporary directory; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls: Option<(u16, TestCertificates)>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts it and waits until it answers PING.
    pub fn start() -> RedisServer {
        RedisServer::start_with(None)
    }

    /// Starts it with a TLS port as well ([`RedisServer::tls_url`]), its certificate signed
    /// by an authority of its own ([`RedisServer::certificates`]), asking every TLS client for
    /// a certificate of that authority (Redis' default). The plain port stays, for the test's
    /// own [`RedisServer::command`]s.
    pub fn start_tls() -> RedisServer {
        RedisServer::start_with(Some((free_port(), TestCertificates::generate())))
    }

    fn start_with(tls: Option<(u16, TestCertificates)>) -> RedisServer {
        let mut redis = RedisServer {
            child: None,
            port: free_port(),
            tls,
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The `rediss://` URL of a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        let (port, _) = self.tls.as_ref()?;
        Some(format!("rediss://127.0.0.1:{port}"))
    }

    /// The authority, server and client certificates of [`RedisServer::start_tls`].
    pub fn certificates(&self) -> Option<&TestCertificates> {
        self.tls.as_ref().map(|(_, certificates)| certificates)
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
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("Redis is up");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        let mut reply = [0; 4096];
        let n = stream.read(&mut reply).expect("Redis replies");
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(self.tls.iter().flat_map(|(port, certificates)| {
                let file = |name| certificates.path(name).into_os_string();
                [
                    "--tls-port".into(),
                    port.to_string().into(),
                    "--tls-cert-file".into(),
                    file("server.pem"),
                    "--tls-key-file".into(),
                    file("server.key"),
                    "--tls-ca-cert-file".into(),
                    file("ca.pem"),
                    "--tls-auth-clients".into(),
                    "yes".into(),
                ]
            }))
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

/// A certificate authority of a test's own, and a server certificate (for 127.0.0.1 and
/// localhost) and a client certificate it signed: PEM files in a temporary directory,
/// `ca.pem`, `server.pem` and `server.key`, `client.pem` and `client.key`.
pub struct TestCertificates {
    dir: tempfile::TempDir,
}

impl TestCertificates {
    pub fn generate() -> TestCertificates {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("a temporary directory");
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).expect("the certificate is written");
        };
        let mut authority = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Each its own name: OpenSSL (Redis) takes a certificate whose subject is its issuer's
        // for a self-signed one, and refuses it.
        authority
            .distinguished_name
            .push(DnType::CommonName, "hangman test authority");
        let authority = CertifiedIssuer::self_signed(authority, KeyPair::generate().unwrap())
            .expect("a self-signed authority");
        write("ca.pem", authority.pem());
        for (name, subject_alt_names) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ),
            ("client", vec!["game-service".to_owned()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(subject_alt_names).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            let certificate = params
                .signed_by(&key, &authority)
                .expect("a certificate signed by the authority");
            write(&format!("{name}.pem"), certificate.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        TestCertificates { dir }
    }

    /// The file `name` (`ca.pem`, `client.key`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The game-service binary in a process of its own; killed when dropped.
pub struct GameServiceProcess {
    child: Child,
    addr: SocketAddr,
}

impl GameServiceProcess {
    /// Runs `binary` (`env!("CARGO_BIN_EXE_game-service")` in this crate's tests,
    /// [`game_service_binary`] in others') on port 0 with `flags`, its games playing `words`
    /// (the built-in list when empty); waits until it logs its address.
    pub fn spawn(binary: impl AsRef<OsStr>, words: &[&str], flags: &[&str]) -> GameServiceProcess {
        let mut command = Command::new(binary);
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !words.is_empty() {
            // The word list is read once, at start-up: from a pipe, no file is needed.
            command
                .args(["--dictionary", "/dev/stdin"])
                .stdin(Stdio::piped());
        }
        let mut child = command.spawn().expect("the game-service binary runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(words.join("\n").as_bytes())
                .expect("the word list is written");
        }
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (found, addr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            // Keeps reading, so that the process never blocks on a full pipe.
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1)
                    && let Some(sender) = found.take()
                {
                    let _ = sender.send(addr.trim().parse::<SocketAddr>());
                }
            }
        });
        let addr = addr
            .recv_timeout(Duration::from_secs(30))
            .expect("game-service logs `listening on ADDR`")
            .expect("the address it logs is an address");
        GameServiceProcess { child, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sum of metric `name`'s samples on its `/metrics`, over every label set (0 when it
    /// has none).
    pub async fn metric(&self, name: &str) -> f64 {
        let metrics = reqwest::get(format!("{}/metrics", self.url()))
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics' text");
        metrics
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGTERM, as Kubernetes stops a pod: the graceful shutdown (health NOT_SERVING, no new
    /// connection, open calls finish), not waited for.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// `kill -9`: no graceful shutdown of any kind.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GameServiceProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The game-service binary, for the tests of another crate (cargo tells only a crate's own
/// tests where its binaries are). `cargo test --workspace` has just built it, next to the test
/// (`target/<profile>/`), so it is used as it is when no source it was built from is newer;
/// otherwise `cargo build` builds it first (`cargo test -p ws-gateway`, say). Building it
/// whenever would recompile it mid-run on CI: features unify differently in the two commands.
pub fn game_service_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            // The test runs from target/<profile>/deps/.
            let exe = std::env::current_exe().expect("the test knows where it runs from");
            let binary = exe.parent().unwrap().parent().unwrap().join("game-service");
            if !built_after_its_sources(&binary) {
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
            }
            binary
        })
        .clone()
}

/// Whether `binary` is newer than every file its dep-info (`binary.d`, which cargo writes
/// beside it) lists, and than the manifests: cargo's own test of freshness, by mtime.
fn built_after_its_sources(binary: &Path) -> bool {
    let modified = |path: &Path| path.metadata().and_then(|meta| meta.modified()).ok();
    let Some(built) = modified(binary) else {
        return false;
    };
    let Ok(dep_info) = std::fs::read_to_string(binary.with_extension("d")) else {
        return false;
    };
    let Some((_, sources)) = dep_info.split_once(": ") else {
        return false;
    };
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifests = [
        manifest_dir.join("Cargo.toml"),
        manifest_dir.join("../Cargo.toml"),
        manifest_dir.join("../Cargo.lock"),
    ];
    sources
        .split_whitespace()
        .map(PathBuf::from)
        .chain(manifests)
        .all(|source| modified(&source).is_some_and(|time: SystemTime| time <= built))
}
