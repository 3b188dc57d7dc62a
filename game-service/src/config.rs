//! Command-line flags, each with a `GAME_SERVICE_*` environment twin.
//!
//! The flags all three services have (`--listen`, `--header-read-timeout`,
//! `--max-pending-connections`, `--shutdown-timeout`, `--log-json`) are written out in each
//! service's `Config`, not shared as one `#[command(flatten)]` struct: clap's derive gives a
//! field one fixed `env` name, and each service's names carry its own prefix (`GAME_SERVICE_`,
//! `WS_GATEWAY_`, `HTML_GALLOWS_`), which deploy/ and the READMEs use; their help differs by
//! service too (the front ends' header deadline also covers later requests).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, builder::BoolishValueParser};

use crate::dictionary::Dictionary;

/// The Hangman game service: rules, dictionary and live games behind gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "game-service", version, about)]
pub struct Config {
    /// Address to serve gRPC (and /metrics over HTTP/1.1) on.
    #[arg(long, env = "GAME_SERVICE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Where games are kept: `memory` (this process only) or a Redis URL
    /// (`redis://[user[:password]@]host[:port][/db]`, `rediss://` for TLS) shared by every
    /// replica. Give the game service a Redis database of its own: `--max-games` counts its keys.
    #[arg(long, env = "GAME_SERVICE_STORE", default_value = "memory", value_parser = StoreConfig::parse)]
    pub store: StoreConfig,

    /// TLS to a `rediss://` store whose certificate is not from a public authority, or that
    /// asks its clients for a certificate.
    #[command(flatten)]
    pub store_tls: StoreTls,

    /// How long one call to the store (Redis) may take, and how often its health is checked.
    #[arg(long, env = "GAME_SERVICE_STORE_TIMEOUT", default_value = "2s", value_parser = service_kit::durations::non_zero)]
    pub store_timeout: Duration,

    /// Drop a game after this long without a move (e.g. "1h", "90s").
    #[arg(long, env = "GAME_SERVICE_GAME_TTL", default_value = "1h", value_parser = service_kit::durations::non_zero)]
    pub game_ttl: Duration,

    /// How often expired games are swept away.
    #[arg(long, env = "GAME_SERVICE_SWEEP_INTERVAL", default_value = "30s", value_parser = service_kit::durations::non_zero)]
    pub sweep_interval: Duration,

    /// Most games held at once; creating one more fails with RESOURCE_EXHAUSTED.
    #[arg(long, env = "GAME_SERVICE_MAX_GAMES", default_value_t = 100_000)]
    pub max_games: usize,

    /// Changes buffered per watcher; a watcher further behind skips ahead.
    #[arg(long, env = "GAME_SERVICE_WATCH_BUFFER", default_value_t = 64)]
    pub watch_buffer: usize,

    /// Most concurrent WatchGame streams on one game.
    #[arg(
        long,
        env = "GAME_SERVICE_MAX_WATCHERS_PER_GAME",
        default_value_t = 1_000
    )]
    pub max_watchers_per_game: usize,

    /// Most concurrent WatchGame streams in all; each holds memory (README, "Memory").
    #[arg(long, env = "GAME_SERVICE_MAX_WATCHERS", default_value_t = 10_000)]
    pub max_watchers: usize,

    /// How long a member stays in a game's room (presence) unless its client renews it; the
    /// members of a client that died leave after this long.
    #[arg(long, env = "GAME_SERVICE_PRESENCE_LEASE", default_value = "15s", value_parser = service_kit::durations::non_zero)]
    pub presence_lease: Duration,

    /// How often members whose lease ran out are removed from their rooms (each removal is
    /// a leave for the room's watchers), so a member leaves at most this long after its lease.
    #[arg(long, env = "GAME_SERVICE_PRESENCE_SWEEP_INTERVAL", default_value = "1s", value_parser = service_kit::durations::non_zero)]
    pub presence_sweep_interval: Duration,

    /// Most members in one game's room; also the most one UpdatePresence call may list.
    #[arg(
        long,
        env = "GAME_SERVICE_MAX_MEMBERS_PER_GAME",
        default_value_t = 10_000
    )]
    pub max_members_per_game: usize,

    /// Most members in all rooms, with games kept in memory: each costs about 200 bytes
    /// (README, "Memory"). In Redis, the rooms count against Redis' own memory.
    #[arg(long, env = "GAME_SERVICE_MAX_MEMBERS", default_value_t = 100_000)]
    pub max_members: usize,

    /// Largest request message accepted, in bytes.
    #[arg(long, env = "GAME_SERVICE_MAX_MESSAGE_SIZE", default_value_t = 16 * 1024)]
    pub max_message_size: usize,

    /// Most concurrent HTTP/2 streams (calls) on one connection.
    #[arg(
        long,
        env = "GAME_SERVICE_MAX_CONCURRENT_STREAMS",
        default_value_t = 4_096
    )]
    pub max_concurrent_streams: u32,

    /// Most moves in flight on one `Play` stream; past it the server stops reading that stream
    /// until a move is answered (back-pressure, not an error).
    #[arg(
        long,
        env = "GAME_SERVICE_MAX_MOVES_IN_FLIGHT_PER_STREAM",
        default_value_t = 1_024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_moves_in_flight_per_stream: u32,

    /// A new connection that has not sent its first complete request within this long is
    /// dropped (half-open connections would otherwise be held forever).
    #[arg(long, env = "GAME_SERVICE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = service_kit::durations::non_zero)]
    pub header_read_timeout: Duration,

    /// Connections that may be waiting for their first complete request at once; past this,
    /// new connections wait in the kernel's accept queue.
    #[arg(
        long,
        env = "GAME_SERVICE_MAX_PENDING_CONNECTIONS",
        default_value_t = 1_024
    )]
    pub max_pending_connections: usize,

    /// Connections open at once, whatever they are doing; past this, new connections wait in
    /// the kernel's accept queue. The clients are the front ends (a few connections each) and
    /// the odd grpcurl.
    #[arg(
        long,
        env = "GAME_SERVICE_MAX_OPEN_CONNECTIONS",
        default_value_t = 4_096
    )]
    pub max_open_connections: usize,

    /// Close each client connection after this long (gracefully: open calls finish), so that
    /// clients reconnect and spread over the replicas a Service has now. Off by default.
    #[arg(long, env = "GAME_SERVICE_MAX_CONNECTION_AGE", value_parser = service_kit::durations::non_zero)]
    pub max_connection_age: Option<Duration>,

    /// After `--max-connection-age`, how long open calls get before the connection is cut.
    #[arg(long, env = "GAME_SERVICE_MAX_CONNECTION_AGE_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_connection_age_grace: Duration,

    /// Deadline for a unary call (a stream's messages are not cut off by it).
    #[arg(long, env = "GAME_SERVICE_REQUEST_TIMEOUT", default_value = "10s", value_parser = service_kit::durations::non_zero)]
    pub request_timeout: Duration,

    /// On SIGTERM/Ctrl-C, how long open calls get to finish.
    #[arg(long, env = "GAME_SERVICE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Word list to use instead of the built-in one (one lowercase word per line).
    #[arg(long, env = "GAME_SERVICE_DICTIONARY")]
    pub dictionary: Option<PathBuf>,

    /// Words given in memory, which replace both the built-in list and `--dictionary`: how
    /// tests make games deterministic without a file. Not a flag.
    #[arg(skip)]
    pub words: Option<Dictionary>,

    /// Allow CreateGame to fix the word, for deterministic tests and demos.
    #[arg(long, env = "GAME_SERVICE_TEST_MODE", value_parser = BoolishValueParser::new())]
    pub test_mode: bool,

    /// Log JSON lines instead of human-readable text.
    #[arg(long, env = "GAME_SERVICE_LOG_JSON", value_parser = BoolishValueParser::new())]
    pub log_json: bool,
}

/// The PEM files of a `rediss://` store's TLS, read at start-up. With none, the server's
/// certificate is checked against the public authorities (what managed Redis services use)
/// and no client certificate is sent.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreTls {
    /// The authorities (one or more PEM certificates) that the Redis server's certificate is
    /// checked against instead of the public ones: a Redis with a certificate of its own CA.
    #[arg(
        id = "store_tls_ca",
        long = "store-tls-ca",
        env = "GAME_SERVICE_STORE_TLS_CA",
        value_name = "PEM"
    )]
    pub ca: Option<PathBuf>,

    /// The certificate (PEM, chain first to last) this service shows a Redis that asks its
    /// clients for one (Redis' `tls-auth-clients`); with `--store-tls-key`.
    #[arg(
        id = "store_tls_cert",
        long = "store-tls-cert",
        env = "GAME_SERVICE_STORE_TLS_CERT",
        value_name = "PEM",
        requires = "store_tls_key"
    )]
    pub cert: Option<PathBuf>,

    /// The private key (PEM) of `--store-tls-cert`.
    #[arg(
        id = "store_tls_key",
        long = "store-tls-key",
        env = "GAME_SERVICE_STORE_TLS_KEY",
        value_name = "PEM",
        requires = "store_tls_cert"
    )]
    pub key: Option<PathBuf>,
}

impl StoreTls {
    /// Whether any of the flags is given (the client certificate comes with its key).
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some()
    }
}

/// Where games are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Memory,
    /// A `redis://` or `rediss://` URL.
    Redis(String),
}

impl StoreConfig {
    fn parse(text: &str) -> Result<StoreConfig, String> {
        if text == "memory" {
            Ok(StoreConfig::Memory)
        } else if text.contains('#') {
            // redis-rs reads `#insecure` (no certificate check) from the fragment, but only
            // when built with a feature this service leaves out: refused here, not at every
            // connection.
            Err(
                "a URL fragment (such as #insecure) is not supported; a Redis with a \
                 certificate of its own authority needs --store-tls-ca"
                    .to_owned(),
            )
        } else if text.starts_with("redis://") || text.starts_with("rediss://") {
            Ok(StoreConfig::Redis(text.to_owned()))
        } else {
            Err("must be `memory` or a redis:// or rediss:// URL".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_those_of_the_design() {
        let config = Config::parse_from(["game-service"]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.game_ttl, Duration::from_secs(3600));
        assert_eq!(config.max_games, 100_000);
        assert_eq!(config.presence_lease, Duration::from_secs(15));
        assert_eq!(config.presence_sweep_interval, Duration::from_secs(1));
        assert_eq!(config.max_members_per_game, 10_000);
        assert!(!config.test_mode);
    }

    #[test]
    fn zero_durations_are_refused_with_a_reason() {
        for flag in [
            "--store-timeout",
            "--game-ttl",
            "--sweep-interval",
            "--presence-lease",
            "--presence-sweep-interval",
            "--request-timeout",
            "--header-read-timeout",
            "--max-connection-age",
        ] {
            let error = Config::try_parse_from(["game-service", flag, "0s"]).unwrap_err();
            assert!(
                error.to_string().contains("must be greater than zero"),
                "{flag}: {error}"
            );
        }
        assert!(Config::try_parse_from(["game-service", "--game-ttl", "soon"]).is_err());
    }

    #[test]
    fn the_store_is_memory_or_a_redis_url() {
        let store = |text| Config::try_parse_from(["game-service", "--store", text]);
        assert_eq!(
            Config::parse_from(["game-service"]).store,
            StoreConfig::Memory
        );
        assert_eq!(
            store("redis://:secret@127.0.0.1:6379/2").unwrap().store,
            StoreConfig::Redis("redis://:secret@127.0.0.1:6379/2".into())
        );
        assert!(store("rediss://cache.example:6380").is_ok());
        let error = store("postgres://x").unwrap_err();
        assert!(error.to_string().contains("redis://"), "{error}");
        let error = store("rediss://cache.example:6380/#insecure").unwrap_err();
        assert!(error.to_string().contains("--store-tls-ca"), "{error}");
    }

    #[test]
    fn a_client_certificate_for_the_store_comes_with_its_key() {
        let parse = |flags: &[&str]| Config::try_parse_from(["game-service"].iter().chain(flags));
        let error = parse(&["--store-tls-cert", "client.pem"]).unwrap_err();
        assert!(error.to_string().contains("--store-tls-key"), "{error}");
        let error = parse(&["--store-tls-key", "client.key"]).unwrap_err();
        assert!(error.to_string().contains("--store-tls-cert"), "{error}");
        let config = parse(&[
            "--store-tls-cert",
            "client.pem",
            "--store-tls-key",
            "client.key",
        ])
        .unwrap();
        assert!(config.store_tls.is_set() && config.store_tls.ca.is_none());
    }
}
