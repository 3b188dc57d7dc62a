//! Command-line flags, each with a `WS_GATEWAY_*` environment twin.
//!
//! The flags all three services have (`--listen`, `--header-read-timeout`,
//! `--max-pending-connections`, `--shutdown-timeout`, `--log-json`) are written out here as
//! in the other two, on purpose: a shared `#[command(flatten)]` struct cannot work, since
//! clap's derive gives a field one fixed `env` name and each service's carries its own prefix.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, builder::BoolishValueParser};
use phoenix_channels::longpoll::SigningKey;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "ws-gateway",
    version,
    about = "Phoenix Channels gateway to the Hangman game service"
)]
pub struct Config {
    /// Address to serve HTTP and WebSockets on.
    #[arg(long, env = "WS_GATEWAY_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,

    /// Socket mount path(s); the WebSocket is at `{mount}/websocket`. Repeatable; the env
    /// twin is comma-separated. Checked at start (see [`Config::check_paths`]).
    #[arg(
        long = "mount",
        env = "WS_GATEWAY_MOUNT",
        value_delimiter = ',',
        default_value = "/socket"
    )]
    pub mounts: Vec<String>,

    /// The game service's gRPC URL (`http://host:port`), or several separated by commas.
    #[arg(
        long,
        env = "WS_GATEWAY_GAME_SERVICE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub game_service: String,

    /// Directory of the built SPA.
    #[arg(long, env = "WS_GATEWAY_STATIC_DIR", default_value = "web/dist")]
    pub static_dir: PathBuf,

    /// URL prefix the SPA is served at (`/ws/v1` is `/ws/v1/`). Checked at start (see
    /// [`Config::check_paths`]).
    #[arg(long, env = "WS_GATEWAY_STATIC_PATH", default_value = "/")]
    pub static_path: String,

    /// Browser origins (`https://host:port`) or hosts (`host:port`) allowed besides loopback
    /// hosts and the listen address's host, on any port (comma-separated; `*` allows any). The
    /// Host header is not trusted (DNS rebinding). No Origin header is allowed; two are refused.
    #[arg(long, env = "WS_GATEWAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// The transports served at each mount (comma-separated): `websocket` at
    /// `{mount}/websocket`, `longpoll` at `{mount}/longpoll`. Without `websocket`, its path
    /// answers 404, and clients that can fall back to long-poll do.
    #[arg(
        long,
        env = "WS_GATEWAY_TRANSPORTS",
        value_delimiter = ',',
        default_value = "websocket,longpoll"
    )]
    pub transports: Vec<Transport>,

    /// How long a long-poll request waits for messages before answering 204 (Phoenix: 10 s).
    /// A poll's start and end are the client's signs of life for `--idle-timeout`, so a
    /// window not shorter than that is shortened to half of it (with a warning).
    #[arg(long, env = "WS_GATEWAY_LONGPOLL_WINDOW", default_value = "10s", value_parser = service_kit::durations::non_zero)]
    pub longpoll_window: Duration,

    /// A long-poll session with no poll waiting ends once none has come for this long: its
    /// channels leave, and its client opens a new session and rejoins.
    #[arg(long, env = "WS_GATEWAY_LONGPOLL_EXPIRY", default_value = "15s", value_parser = service_kit::durations::non_zero)]
    pub longpoll_expiry: Duration,

    /// Long-poll sessions open at once; more get HTTP 503.
    #[arg(
        long,
        env = "WS_GATEWAY_LONGPOLL_MAX_SESSIONS",
        default_value_t = 10_000
    )]
    pub longpoll_max_sessions: usize,

    /// The largest long-poll POST body, in bytes; larger gets HTTP 413.
    #[arg(long, env = "WS_GATEWAY_LONGPOLL_MAX_BODY", default_value_t = 1024 * 1024)]
    pub longpoll_max_body: usize,

    /// The most messages (lines) one long-poll POST carries (the npm client batches up to
    /// 100); more gets HTTP 400.
    #[arg(long, env = "WS_GATEWAY_LONGPOLL_MAX_MESSAGES", default_value_t = 100, value_parser = at_least_one)]
    pub longpoll_max_messages: usize,

    /// Messages a long-poll session keeps for its client between polls; a client that lets
    /// them fill for the idle timeout is dropped, as a WebSocket client that stops reading.
    #[arg(long, env = "WS_GATEWAY_LONGPOLL_BUFFER", default_value_t = 256, value_parser = at_least_one)]
    pub longpoll_buffer: usize,

    /// The key long-poll tokens are signed with (at least 32 bytes), the same on every
    /// replica; in Kubernetes, from a Secret. Unset: a random key of this process, so sessions
    /// survive no restart and no other replica can resume them.
    #[arg(long, env = "WS_GATEWAY_LONGPOLL_SECRET", hide_env_values = true, value_parser = signing_key)]
    pub longpoll_secret: Option<SigningKey>,

    /// The address (`host:port`) other replicas reach this one at (in Kubernetes the pod's
    /// IP and port). Tokens name it, and a long-poll request that lands on a replica not
    /// holding its session is forwarded to the one that does. Port 0 stands for the port
    /// bound. Unset: such a request is answered 410, and the client opens a new session.
    #[arg(long, env = "WS_GATEWAY_LONGPOLL_ADVERTISE")]
    pub longpoll_advertise: Option<String>,

    /// Close a connection that sent nothing (not even a heartbeat) for this long.
    #[arg(long, env = "WS_GATEWAY_IDLE_TIMEOUT", default_value = "60s", value_parser = service_kit::durations::non_zero)]
    pub idle_timeout: Duration,

    /// Largest WebSocket message accepted, in bytes; larger ones close the socket with 1009.
    #[arg(long, env = "WS_GATEWAY_MAX_FRAME_SIZE", default_value_t = 65536)]
    pub max_frame_size: usize,

    /// A new connection that has not sent a complete request within this long is dropped,
    /// and so is a keep-alive connection whose next request's headers take longer.
    #[arg(long, env = "WS_GATEWAY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = service_kit::durations::non_zero)]
    pub header_read_timeout: Duration,

    /// Connections that may be waiting for their first complete request at once; past this,
    /// new connections wait in the kernel's accept queue. Upgraded WebSockets do not count
    /// (`--max-connections` caps them).
    #[arg(
        long,
        env = "WS_GATEWAY_MAX_PENDING_CONNECTIONS",
        default_value_t = 1_024
    )]
    pub max_pending_connections: usize,

    /// HTTP connections open at once, whatever they are doing (waiting for a request, kept
    /// alive between requests, a long-poll's, upgraded to a WebSocket); past this, new
    /// connections wait in the kernel's accept queue. Keep it above `--max-connections` plus
    /// `--longpoll-max-sessions`, or the WebSockets past it wait instead of getting 503.
    #[arg(
        long,
        env = "WS_GATEWAY_MAX_OPEN_CONNECTIONS",
        default_value_t = 65_536
    )]
    pub max_open_connections: usize,

    /// Open WebSocket connections at most; more get HTTP 503.
    #[arg(long, env = "WS_GATEWAY_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Channels one connection may have joined at once.
    #[arg(long, env = "WS_GATEWAY_MAX_CHANNELS", default_value_t = 100)]
    pub max_channels: usize,

    /// Client events that may wait for a busy channel; more get `overloaded` replies.
    #[arg(long, env = "WS_GATEWAY_CHANNEL_INBOX", default_value_t = 64, value_parser = at_least_one)]
    pub channel_inbox: usize,

    /// At most this long between two renewals of the room members this gateway carries (their
    /// presence is a lease in the game service); a third of the lease the game service gives
    /// when that is shorter.
    #[arg(long, env = "WS_GATEWAY_PRESENCE_RENEW_INTERVAL", default_value = "5s", value_parser = service_kit::durations::non_zero)]
    pub presence_renew_interval: Duration,

    /// The shortest time between two `presence_diff` pushes of a room: a lone join or leave
    /// goes out at once, those of a burst together at the end of the interval. Zero: no
    /// batching, every change goes out as it arrives.
    #[arg(long, env = "WS_GATEWAY_PRESENCE_BATCH_INTERVAL", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub presence_batch_interval: Duration,

    /// Room messages (tallies, presence diffs) that may wait for one member's socket; past
    /// that the member is skipped, and sent the room's state once its socket has caught up.
    #[arg(long, env = "WS_GATEWAY_ROOM_MEMBER_BACKLOG", default_value_t = 64, value_parser = at_least_one)]
    pub room_member_backlog: usize,

    /// Messages per second per connection (burst of as many); over it: `rate_limited` replies,
    /// and a further second's worth of refused messages closes the socket with 1008.
    #[arg(long, env = "WS_GATEWAY_MAX_PUSHES_PER_SECOND", default_value_t = 100)]
    pub max_pushes_per_second: u32,

    /// How long to wait for the game service's TCP/HTTP2 connection.
    #[arg(long, env = "WS_GATEWAY_GRPC_CONNECT_TIMEOUT", default_value = "2s", value_parser = service_kit::durations::non_zero)]
    pub grpc_connect_timeout: Duration,

    /// How long one gRPC call may take before the client gets `unavailable`.
    #[arg(long, env = "WS_GATEWAY_GRPC_REQUEST_TIMEOUT", default_value = "5s", value_parser = service_kit::durations::non_zero)]
    pub grpc_request_timeout: Duration,

    /// How often the HTTP/2 connections to the game service are pinged; a ping not answered
    /// within as long drops the connection (the next call opens a new one).
    #[arg(long, env = "WS_GATEWAY_GRPC_KEEP_ALIVE", default_value = "30s", value_parser = service_kit::durations::non_zero)]
    pub grpc_keep_alive: Duration,

    /// HTTP/2 connections to the game service that calls are spread over (one shared,
    /// load-balanced channel), across every address its host name resolves to (at least one
    /// connection per address).
    #[arg(long, env = "WS_GATEWAY_GRPC_CONNECTIONS", default_value_t = 4)]
    pub grpc_connections: usize,

    /// How often the game service's host name is resolved again, so that connections follow
    /// replicas added or gone (it is also resolved again whenever a connection is closed).
    #[arg(long, env = "WS_GATEWAY_GRPC_RESOLVE_INTERVAL", default_value = "30s", value_parser = service_kit::durations::non_zero)]
    pub grpc_resolve_interval: Duration,

    /// On SIGTERM/Ctrl-C, how long to wait for connections to close before exiting.
    /// (`--shutdown-drain`, its old name, still works.)
    #[arg(long, alias = "shutdown-drain", env = "WS_GATEWAY_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// After the gateway sends a close frame, how long it waits for the client's close (reading
    /// and discarding its frames meanwhile) before dropping the connection.
    #[arg(long, env = "WS_GATEWAY_CLOSE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub close_timeout: Duration,

    /// Close code sent to sockets on shutdown: 1001 (going away) or 1012 (service restart).
    #[arg(long, env = "WS_GATEWAY_SHUTDOWN_CLOSE_CODE", default_value_t = 1001, value_parser = parse_shutdown_code)]
    pub shutdown_close_code: u16,

    /// Log JSON lines instead of human-readable text.
    #[arg(long, env = "WS_GATEWAY_LOG_JSON", value_parser = BoolishValueParser::new())]
    pub log_json: bool,
}

/// The gateway's own routes, those of [`crate::http::routes`]: no `--static-path` may take one.
pub const GATEWAY_ROUTES: [&str; 4] = ["/healthz", "/readyz", "/version", "/metrics"];

/// A `--mount` or `--static-path` the gateway cannot serve: refused at start, since the router
/// would panic on it (or route it as a pattern) rather than say which flag is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("invalid {flag} {value:?}: it must start with '/'")]
    Relative { flag: &'static str, value: String },
    #[error(
        "invalid {flag} {value:?}: a path segment may not start with ':' or '*', nor hold '{{' or '}}' (the router would take it for a pattern)"
    )]
    Pattern { flag: &'static str, value: String },
    #[error(
        "invalid --mount {value:?}: it is the same mount as --mount {earlier:?} (trailing '/'s make no difference)"
    )]
    DuplicateMount { value: String, earlier: String },
    #[error("invalid --static-path {value:?}: {route} is the gateway's own route{owner}")]
    Route {
        value: String,
        route: String,
        /// ` (of --mount "…")` for a mount's transport path, empty for the gateway's own.
        owner: String,
    },
}

impl Config {
    /// Checks `--mount` and `--static-path`: each a path from the root (a trailing '/' makes no
    /// difference, `/ws/v1` is `/ws/v1/`), no two mounts the same, and the SPA at none of the
    /// gateway's routes ([`GATEWAY_ROUTES`], each mount's `/websocket` and `/longpoll`, served
    /// or not).
    pub fn check_paths(&self) -> Result<(), PathError> {
        for mount in &self.mounts {
            check_path("--mount", mount)?;
        }
        check_path("--static-path", &self.static_path)?;
        let mut routes: Vec<(String, Option<&str>)> = GATEWAY_ROUTES
            .iter()
            .map(|route| ((*route).to_owned(), None))
            .collect();
        for (i, mount) in self.mounts.iter().enumerate() {
            let paths = phoenix_channels::transport::mount_paths(mount);
            if let Some(earlier) = self.mounts[..i]
                .iter()
                .find(|earlier| phoenix_channels::transport::mount_paths(earlier) == paths)
            {
                return Err(PathError::DuplicateMount {
                    value: mount.clone(),
                    earlier: earlier.clone(),
                });
            }
            routes.extend(paths.map(|path| (path, Some(mount.as_str()))));
        }
        let spa = self.static_path.trim_end_matches('/');
        match routes.into_iter().find(|(route, _)| route == spa) {
            Some((route, owner)) => Err(PathError::Route {
                value: self.static_path.clone(),
                route,
                owner: owner.map_or_else(String::new, |mount| format!(" (of --mount {mount:?})")),
            }),
            None => Ok(()),
        }
    }
}

/// `value` is a path from the root that the router takes as it is.
fn check_path(flag: &'static str, value: &str) -> Result<(), PathError> {
    if !value.starts_with('/') {
        return Err(PathError::Relative {
            flag,
            value: value.to_owned(),
        });
    }
    let pattern = value.contains(['{', '}'])
        || value
            .split('/')
            .any(|segment| segment.starts_with([':', '*']));
    if pattern {
        return Err(PathError::Pattern {
            flag,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// A transport a mount serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Websocket,
    Longpoll,
}

fn signing_key(value: &str) -> Result<SigningKey, String> {
    SigningKey::new(value).map_err(|err| err.to_string())
}

fn parse_shutdown_code(s: &str) -> Result<u16, String> {
    match s {
        "1001" => Ok(1001),
        "1012" => Ok(1012),
        _ => Err("must be 1001 or 1012 (1000 would stop the npm client from reconnecting)".into()),
    }
}

/// A queue length: zero would refuse everything (and the queues cannot be built empty).
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    #[test]
    fn the_channel_inbox_must_hold_at_least_one_event() {
        let err = Config::try_parse_from(["ws-gateway", "--channel-inbox", "0"]).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        assert!(Config::try_parse_from(["ws-gateway", "--channel-inbox", "1"]).is_ok());
    }

    #[test]
    fn both_transports_by_default_and_at_least_one() {
        use super::Transport;
        let config = Config::try_parse_from(["ws-gateway"]).unwrap();
        assert_eq!(
            config.transports,
            [Transport::Websocket, Transport::Longpoll]
        );
        let only = Config::try_parse_from(["ws-gateway", "--transports", "longpoll"]).unwrap();
        assert_eq!(only.transports, [Transport::Longpoll]);
        assert!(Config::try_parse_from(["ws-gateway", "--transports", ""]).is_err());
        assert!(Config::try_parse_from(["ws-gateway", "--transports", "sse"]).is_err());
    }

    #[test]
    fn a_longpoll_secret_shorter_than_32_bytes_is_refused() {
        let short = "k".repeat(31);
        let err = Config::try_parse_from(["ws-gateway", "--longpoll-secret", short.as_str()])
            .unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        let long = "k".repeat(32);
        assert!(Config::try_parse_from(["ws-gateway", "--longpoll-secret", long.as_str()]).is_ok());
    }

    #[test]
    fn the_shutdown_timeout_is_named_as_in_the_other_services_and_the_old_name_still_works() {
        for flag in ["--shutdown-timeout", "--shutdown-drain"] {
            let config = Config::try_parse_from(["ws-gateway", flag, "7s"]).unwrap();
            assert_eq!(
                config.shutdown_timeout,
                std::time::Duration::from_secs(7),
                "{flag}"
            );
        }
    }

    #[test]
    fn timeouts_and_intervals_must_be_longer_than_zero() {
        for flag in [
            "--idle-timeout",
            "--header-read-timeout",
            "--grpc-connect-timeout",
            "--grpc-request-timeout",
            "--grpc-keep-alive",
            "--grpc-resolve-interval",
            "--presence-renew-interval",
            "--longpoll-window",
            "--longpoll-expiry",
        ] {
            let err = Config::try_parse_from(["ws-gateway", flag, "0s"]).unwrap_err();
            assert!(
                err.to_string().contains("must be greater than zero"),
                "{flag}: {err}"
            );
        }
        let config = Config::try_parse_from(["ws-gateway", "--grpc-keep-alive", "10s"]).unwrap();
        assert_eq!(config.grpc_keep_alive, std::time::Duration::from_secs(10));
    }

    #[test]
    fn paths_from_the_root_are_accepted_with_or_without_a_trailing_slash() {
        // The refused ones are in tests/binary.rs, as an operator meets them.
        for args in [
            &[][..],
            &["--static-path", "/ws/v1/", "--mount", "/ws/v1/socket"],
            &["--static-path", "/ws/v1", "--mount", "/ws/v1/socket/"],
            &["--mount", "/", "--static-path", "/"],
            &["--mount", "/socket", "--mount", "/v1/socket"],
            &[
                "--static-path",
                "/metrics/dashboard/",
                "--mount",
                "/healthz",
            ],
            &["--static-path", "/socket/websocket/app/"],
        ] {
            let config = Config::try_parse_from(["ws-gateway"].iter().chain(args)).unwrap();
            config
                .check_paths()
                .unwrap_or_else(|err| panic!("{args:?}: {err}"));
        }
    }

    #[test]
    fn a_presence_batch_interval_of_zero_means_no_batching_and_is_accepted() {
        let config =
            Config::try_parse_from(["ws-gateway", "--presence-batch-interval", "0s"]).unwrap();
        assert!(config.presence_batch_interval.is_zero());
    }
}
