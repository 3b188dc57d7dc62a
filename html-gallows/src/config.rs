//! Command-line flags, each with an `HTML_GALLOWS_*` environment twin.
//!
//! The flags all three services have (`--listen`, `--header-read-timeout`,
//! `--max-pending-connections`, `--shutdown-timeout`, `--log-json`) are written out here as
//! in the other two, on purpose: a shared `#[command(flatten)]` struct cannot work, since
//! clap's derive gives a field one fixed `env` name and each service's carries its own prefix.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::http::Uri;
use axum_extra::extract::cookie::Key;
use clap::{Parser, builder::BoolishValueParser};

use crate::tally_cache::CacheLimits;

/// The fewest bytes of key material accepted for signing and encrypting cookies.
pub const MIN_COOKIE_KEY_BYTES: usize = 32;

/// How html-gallows is configured. Every flag has an environment twin and a default,
/// so `html-gallows` with no flags runs locally next to a local game service.
#[derive(Debug, Clone, Parser)]
#[command(name = "html-gallows", version, about)]
pub struct Config {
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, env = "HTML_GALLOWS_LISTEN", default_value = "127.0.0.1:4001")]
    pub listen: SocketAddr,

    /// URL of the game service's gRPC endpoint (`http://`: this build has no TLS), or several
    /// separated by commas. Calls are spread over every address its host name resolves to.
    #[arg(
        long,
        env = "HTML_GALLOWS_GAME_SERVICE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub game_service: String,

    /// Secret that signs and encrypts the session cookie (at least 32 bytes).
    /// Without it or --cookie-key-file, a fresh random key is made at start and
    /// every session ends when the process does.
    #[arg(
        long,
        env = "HTML_GALLOWS_COOKIE_KEY",
        hide_env_values = true,
        conflicts_with = "cookie_key_file"
    )]
    pub cookie_key: Option<String>,

    /// File holding the cookie secret (e.g. a mounted Kubernetes Secret); surrounding
    /// white space is ignored.
    #[arg(long, env = "HTML_GALLOWS_COOKIE_KEY_FILE")]
    pub cookie_key_file: Option<PathBuf>,

    /// Mark the session cookie `Secure` (set it when served behind TLS).
    #[arg(long, env = "HTML_GALLOWS_SECURE_COOKIES", value_parser = BoolishValueParser::new())]
    pub secure_cookies: bool,

    /// How long to wait for a connection to the game service.
    #[arg(long, env = "HTML_GALLOWS_GRPC_CONNECT_TIMEOUT", default_value = "2s", value_parser = service_kit::durations::non_zero)]
    pub grpc_connect_timeout: Duration,

    /// How long to wait for one game-service call.
    #[arg(long, env = "HTML_GALLOWS_GRPC_REQUEST_TIMEOUT", default_value = "5s", value_parser = service_kit::durations::non_zero)]
    pub grpc_request_timeout: Duration,

    /// How often the game service's host name is resolved again, so that calls follow
    /// replicas added or gone.
    #[arg(long, env = "HTML_GALLOWS_GRPC_RESOLVE_INTERVAL", default_value = "30s", value_parser = service_kit::durations::non_zero)]
    pub grpc_resolve_interval: Duration,

    /// How long one HTTP request may take in all before it is answered 503.
    #[arg(long, env = "HTML_GALLOWS_REQUEST_TIMEOUT", default_value = "10s", value_parser = service_kit::durations::non_zero)]
    pub request_timeout: Duration,

    /// Largest accepted request body in bytes (the forms send a few dozen).
    #[arg(long, env = "HTML_GALLOWS_MAX_BODY_BYTES", default_value_t = 4096)]
    pub max_body_bytes: usize,

    /// HTTP requests handled at once; a request beyond them is not queued: it is
    /// refused at once with 503 and `Retry-After` (load shedding).
    #[arg(
        long,
        env = "HTML_GALLOWS_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1024
    )]
    pub max_concurrent_requests: usize,

    /// A new connection that has not sent a complete request within this long is dropped,
    /// and so is a keep-alive connection whose next request's headers take longer.
    #[arg(long, env = "HTML_GALLOWS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = service_kit::durations::non_zero)]
    pub header_read_timeout: Duration,

    /// Connections that may be waiting for their first complete request at once; past this,
    /// new connections wait in the kernel's accept queue.
    #[arg(
        long,
        env = "HTML_GALLOWS_MAX_PENDING_CONNECTIONS",
        default_value_t = 1_024
    )]
    pub max_pending_connections: usize,

    /// Connections open at once, whatever they are doing (waiting for a request or kept alive
    /// between requests); past this, new connections wait in the kernel's accept queue.
    #[arg(
        long,
        env = "HTML_GALLOWS_MAX_OPEN_CONNECTIONS",
        default_value_t = 4_096
    )]
    pub max_open_connections: usize,

    /// How long a graceful shutdown waits for requests in flight. (`--shutdown-grace`, its
    /// old name, still works.)
    #[arg(long, alias = "shutdown-grace", env = "HTML_GALLOWS_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Most games whose tallies are kept current by a watch stream, so that
    /// showing them needs no call to the game service; 0 turns the cache off.
    /// Stay below the game service's --max-concurrent-streams (all watches share
    /// one connection).
    #[arg(long, env = "HTML_GALLOWS_TALLY_CACHE_GAMES", default_value_t = 1_000)]
    pub tally_cache_games: usize,

    /// A watched game nobody has viewed for this long stops being watched.
    #[arg(long, env = "HTML_GALLOWS_TALLY_CACHE_IDLE", default_value = "60s", value_parser = service_kit::durations::non_zero)]
    pub tally_cache_idle: Duration,

    /// A cached tally the game service has not confirmed for this long is read
    /// again (it bounds what a watch stream cannot tell, e.g. a game expired but
    /// not yet swept).
    #[arg(long, env = "HTML_GALLOWS_TALLY_CACHE_MAX_AGE", default_value = "10s", value_parser = service_kit::durations::non_zero)]
    pub tally_cache_max_age: Duration,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "HTML_GALLOWS_LOG_JSON", value_parser = BoolishValueParser::new())]
    pub log_json: bool,
}

/// Why the cookie key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CookieKeyError {
    #[error("cannot read the cookie key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cookie key has {0} bytes; it needs at least {MIN_COOKIE_KEY_BYTES}")]
    TooShort(usize),
}

impl Config {
    pub fn tally_cache_limits(&self) -> CacheLimits {
        CacheLimits {
            capacity: self.tally_cache_games,
            idle: self.tally_cache_idle,
            max_age: self.tally_cache_max_age,
        }
    }

    /// The key for the session cookie, from the flag, the file, or (neither given)
    /// freshly generated, and where it came from.
    pub fn cookie_key(&self) -> Result<(Key, KeySource), CookieKeyError> {
        let secret = match (&self.cookie_key, &self.cookie_key_file) {
            (Some(text), _) => text.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|source| CookieKeyError::Read {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
            (None, None) => return Ok((Key::generate(), KeySource::Generated)),
        };
        if secret.len() < MIN_COOKIE_KEY_BYTES {
            return Err(CookieKeyError::TooShort(secret.len()));
        }
        Ok((Key::derive_from(secret.as_bytes()), KeySource::Configured))
    }
}

/// Why `--game-service` cannot name a game service.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid --game-service (HTML_GALLOWS_GAME_SERVICE) {url:?}: {reason}; \
     give an http:// URL with a host, e.g. http://127.0.0.1:50051"
)]
pub struct GameServiceUrlError {
    url: String,
    reason: &'static str,
}

impl Config {
    /// The URLs of `--game-service` (one, or several separated by commas).
    pub fn game_service_urls(&self) -> impl Iterator<Item = &str> {
        self.game_service.split(',').map(str::trim)
    }

    /// Checks that `--game-service` is an `http` URL with a host (or a comma-separated list
    /// of them), so a mistyped address stops the start instead of failing every game later.
    /// `https` is refused too: this build has no TLS, and every call would fail.
    pub fn validate_game_service(&self) -> Result<(), GameServiceUrlError> {
        self.game_service_urls()
            .try_for_each(|url| validate_game_service_url(url, &self.game_service))
    }
}

/// Checks one URL of `--game-service` (all of which is `given`).
fn validate_game_service_url(url: &str, given: &str) -> Result<(), GameServiceUrlError> {
    let refuse = |reason| {
        Err(GameServiceUrlError {
            url: given.to_owned(),
            reason,
        })
    };
    let Ok(uri) = url.parse::<Uri>() else {
        return refuse("not a URL");
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return refuse(
                "https needs TLS, which this build of html-gallows does not have \
                 (end TLS in front of the game service, or reach it over the cluster network)",
            );
        }
        Some(_) => return refuse("the scheme is not http"),
        None => return refuse("no scheme"),
    }
    match uri.authority() {
        Some(authority) if !authority.host().is_empty() => Ok(()),
        _ => refuse("no host"),
    }
}

/// Where the cookie key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// From `--cookie-key` or `--cookie-key-file`.
    Configured,
    /// Made at start: sessions do not survive a restart or span replicas.
    Generated,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that the message `error` says each of `parts`.
    fn assert_says(error: &str, parts: &[&str]) {
        for part in parts {
            assert!(error.contains(part), "{part:?} is not in: {error}");
        }
    }

    fn parse(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("html-gallows").chain(args.iter().copied()))
    }

    #[test]
    fn a_short_cookie_key_is_refused() {
        let config = parse(&["--cookie-key", "too short"]);
        assert!(matches!(
            config.cookie_key(),
            Err(CookieKeyError::TooShort(9))
        ));
    }

    #[test]
    fn the_same_secret_gives_the_same_key() {
        let secret = "a secret that is long enough to sign cookies";
        let (first, source) = parse(&["--cookie-key", secret]).cookie_key().unwrap();
        let (second, _) = parse(&["--cookie-key", secret]).cookie_key().unwrap();
        assert_eq!(source, KeySource::Configured);
        assert_eq!(first.master(), second.master());
    }

    #[test]
    fn the_key_file_is_read_and_trimmed() {
        let secret = "a secret that is long enough to sign cookies";
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), format!("{secret}\n")).unwrap();
        let path = file.path().to_str().unwrap();
        let (from_file, _) = parse(&["--cookie-key-file", path]).cookie_key().unwrap();
        let (from_flag, _) = parse(&["--cookie-key", secret]).cookie_key().unwrap();
        assert_eq!(from_file.master(), from_flag.master());
    }

    #[test]
    fn game_service_urls_need_an_http_scheme_and_a_host() {
        for good in [
            "http://127.0.0.1:50051",
            "http://game-service",
            "http://10.0.0.5:50051,http://10.0.0.6:50051",
        ] {
            let config = parse(&["--game-service", good]);
            assert!(config.validate_game_service().is_ok(), "{good}");
        }
        for bad in [
            "not-a-url",
            "127.0.0.1:50051",
            "localhost:50051",
            "ftp://127.0.0.1:50051",
            "http://",
            "/just/a/path",
            "",
            "http://10.0.0.5:50051,",
            "http://10.0.0.5:50051,10.0.0.6:50051",
            "https://game-service.example:443",
            "http://10.0.0.5:50051,https://10.0.0.6:50051",
        ] {
            let config = parse(&["--game-service", bad]);
            let error = config.validate_game_service().unwrap_err().to_string();
            // The message quotes `bad` itself, so a failure shows which one it was.
            assert_says(
                &error,
                &[
                    "--game-service",
                    "HTML_GALLOWS_GAME_SERVICE",
                    "http://127.0.0.1:50051",
                ],
            );
        }
    }

    #[test]
    fn timeouts_intervals_and_cache_ages_must_be_longer_than_zero() {
        for flag in [
            "--grpc-connect-timeout",
            "--grpc-request-timeout",
            "--grpc-resolve-interval",
            "--request-timeout",
            "--header-read-timeout",
            "--tally-cache-idle",
            "--tally-cache-max-age",
        ] {
            let error = Config::try_parse_from(["html-gallows", flag, "0s"]).unwrap_err();
            assert_says(&error.to_string(), &[flag, "must be greater than zero"]);
        }
    }

    #[test]
    fn the_shutdown_timeout_is_named_as_in_the_other_services_and_the_old_name_still_works() {
        for flag in ["--shutdown-timeout", "--shutdown-grace"] {
            assert_eq!(
                parse(&[flag, "7s"]).shutdown_timeout,
                Duration::from_secs(7),
                "{flag}"
            );
        }
    }

    /// This build has no TLS: an https game service would fail every call, so it stops the
    /// start, saying why.
    #[tokio::test]
    async fn an_https_game_service_stops_the_start_with_the_reason() {
        let config = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--game-service",
            "https://game-service.example:443",
        ]);
        let error = crate::start(config)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert_says(&error, &["https://game-service.example:443", "needs TLS"]);
    }

    #[test]
    fn no_key_given_makes_a_fresh_one() {
        let (_, source) = parse(&[]).cookie_key().unwrap();
        assert_eq!(source, KeySource::Generated);
    }
}
