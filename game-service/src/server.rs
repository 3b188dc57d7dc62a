//! Assembles and runs the gRPC server: the Hangman API, health, reflection
//! (v1 and v1alpha), `/metrics`, the sweepers of expired games and presence leases, and
//! graceful shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{middleware, routing::get};
use futures::TryStreamExt;
use hangman_proto::v1::hangman_service_server::{HangmanServiceServer, SERVICE_NAME};
use service_kit::ConnectionLimits;
use service_kit::coalesce::Coalesced;
use service_kit::connections::Admission;
use thiserror::Error;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::{
    config::{Config, StoreConfig},
    dictionary::{Dictionary, DictionaryError},
    oversized,
    service::HangmanApi,
    store::{
        GameStore, Limits, MemoryStore, RedisStore, StoreError,
        tls::{self, TlsError},
    },
    telemetry,
};

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Dictionary(#[from] DictionaryError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    StoreTls(#[from] TlsError),
}

/// A server running in the background; [`RunningServer::stop`] shuts it down.
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a gRPC client connects to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown: health turns NOT_SERVING, watch streams end, open
    /// calls finish, and the listener closes.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) {
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server failed"),
            Err(error) => tracing::error!(%error, "server task failed"),
        }
    }
}

/// Binds `config.listen` and serves in the background, with games in the store `--store`
/// names.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    telemetry::metrics_handle();
    let dictionary = match (&config.words, &config.dictionary) {
        (Some(words), _) => words.clone(),
        (None, Some(path)) => Dictionary::from_file(path)?,
        (None, None) => Dictionary::builtin(),
    };
    let limits = Limits {
        max_games: config.max_games,
        game_ttl: config.game_ttl,
        watch_buffer: config.watch_buffer,
        max_watchers_per_game: config.max_watchers_per_game,
        max_watchers: config.max_watchers,
        presence_lease: config.presence_lease,
        max_members_per_game: config.max_members_per_game,
        max_members: config.max_members,
    };
    let tls = tls::certificates(&config.store_tls, &config.store)?;
    match &config.store {
        StoreConfig::Memory => {
            let store = MemoryStore::new(dictionary, limits.clone());
            serve(Arc::new(store), &limits, config).await
        }
        StoreConfig::Redis(url) => {
            let store =
                RedisStore::connect(url, tls, dictionary, limits.clone(), config.store_timeout)?;
            tracing::info!(url = %redacted(url), "games are kept in Redis");
            serve(Arc::new(store), &limits, config).await
        }
    }
}

async fn serve<S: GameStore>(
    store: Arc<S>,
    limits: &Limits,
    config: Config,
) -> Result<RunningServer, StartError> {
    let bind_error = |source| StartError::Bind {
        addr: config.listen,
        source,
    };
    let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;

    let shutdown = CancellationToken::new();
    let api = HangmanServiceServer::new(
        HangmanApi::new(store.clone(), config.test_mode, limits, shutdown.clone())
            .max_moves_in_flight_per_stream(config.max_moves_in_flight_per_stream as usize),
    )
    .max_decoding_message_size(config.max_message_size);
    let (health, health_service) = tonic_health::server::health_reporter();

    let mut routes = Routes::builder();
    routes
        .add_service(api)
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    let routes = routes
        .routes()
        .into_axum_router()
        .route("/metrics", get(telemetry::render_metrics))
        // Inside `observe`, so that metrics and logs show the status the client gets.
        .layer(middleware::from_fn(oversized::as_resource_exhausted))
        .layer(middleware::from_fn(telemetry::observe));

    tokio::spawn(every(
        store.clone(),
        config.sweep_interval,
        shutdown.clone(),
        async |store: &S| {
            let removed = store.sweep().await;
            if removed > 0 {
                tracing::info!(removed, "expired games dropped");
            }
        },
    ));
    tokio::spawn(every(
        store.clone(),
        config.presence_sweep_interval,
        shutdown.clone(),
        async |store: &S| {
            let expired = store.expire_presence().await;
            if expired > 0 {
                metrics::counter!("hangman_presence_expired_total").increment(expired as u64);
                tracing::debug!(expired, "presence leases ran out");
            }
        },
    ));
    // Serving follows the store: NOT_SERVING while it cannot answer (Redis down).
    let health_checks = report_health(
        store,
        health.clone(),
        config.store_timeout,
        shutdown.clone(),
    )
    .await;

    let mut server = tonic::transport::Server::builder()
        // HTTP/1.1 only so that `curl /metrics` works; gRPC stays on HTTP/2.
        .accept_http1(true)
        .timeout(config.request_timeout)
        .max_concurrent_streams(config.max_concurrent_streams);
    if let Some(age) = config.max_connection_age {
        // Clients reconnect, and a Service in front of several replicas spreads them again.
        // Only the age: tonic's own grace setting replaces the graceful retirement (GOAWAY,
        // open calls finish) by a cut; the connections' I/O ends at age + grace instead.
        server = server.max_connection_age(age);
    }
    let hard_age = config
        .max_connection_age
        .map(|age| age + config.max_connection_age_grace);
    let server = server.add_routes(Routes::from(routes));
    let grace = config.shutdown_timeout;
    let signal = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            let _ = health_checks.await;
            for service in ["", SERVICE_NAME] {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
            tracing::info!(?grace, "shutting down");
        }
    };
    let deadline = shutdown.clone();
    let connection_limits = ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        max_pending: config.max_pending_connections,
        max_open: config.max_open_connections,
    };
    let task = tokio::spawn(async move {
        // Admission caps the connections that have not sent a request yet and drops those
        // that send none in time (it also sets TCP_NODELAY: replies are written in pieces).
        // tonic's own HTTP/1 header timeout (30 s, fixed) bounds later `/metrics` requests.
        // Replies finished together leave in one write (`Coalesced`).
        let incoming = Admission::new(connection_limits)
            .incoming(listener)
            .map_ok(move |io| Coalesced::new(io.ending_after(hard_age)));
        let serve = server.serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result,
            // Past the grace period, open connections are cut.
            () = grace_expired(&deadline, grace) => {
                tracing::warn!("calls still open after the shutdown grace period; closing");
                Ok(())
            }
        }
    });
    tracing::info!(target: service_kit::logging::LISTENING, "listening on {addr}");
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}

/// Sets the health status from the store's check, every `every` until shutdown, logging
/// each change. The first check is done before the server starts, so that a client never
/// finds the service unregistered.
async fn report_health<S: GameStore>(
    store: Arc<S>,
    health: HealthReporter,
    every: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let mut serving = check_health(&*store, &health, None).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            serving = check_health(&*store, &health, Some(serving)).await;
        }
    })
}

/// One check of the store; sets and returns the status (logging a change from `before`).
async fn check_health<S: GameStore>(
    store: &S,
    health: &HealthReporter,
    before: Option<ServingStatus>,
) -> ServingStatus {
    let status = match store.check().await {
        Ok(()) => {
            if before == Some(ServingStatus::NotServing) {
                tracing::info!("serving again: the game store answers");
            }
            ServingStatus::Serving
        }
        Err(error) => {
            if before != Some(ServingStatus::NotServing) {
                tracing::warn!(%error, "not serving: the game store cannot be reached");
            }
            ServingStatus::NotServing
        }
    };
    if before != Some(status) {
        for service in ["", SERVICE_NAME] {
            health.set_service_status(service, status).await;
        }
    }
    status
}

/// A store URL fit for a log line: without its password. Everything between the first `:`
/// after the scheme and the last `@` is hidden, so that a password with `:` or `@` left
/// unencoded is hidden whole; credentials with no `:` (a password some providers put where
/// the user goes) are hidden whole too.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

/// Reflection over every service the server offers; built once per protocol version.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hangman_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false)
}

async fn grace_expired(shutdown: &CancellationToken, grace: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// Runs `task` on the store every `period` (the first time at once) until shutdown: the
/// store's sweeps.
async fn every<S>(
    store: Arc<S>,
    period: Duration,
    shutdown: CancellationToken,
    task: impl AsyncFn(&S),
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => task(&store).await,
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_store_url_is_logged_without_its_password() {
        for (url, logged) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "redis://:s3cret@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "rediss://default:s3cret@cache:6380",
                "rediss://default:***@cache:6380",
            ),
            ("redis://u:pa:ss@host/2", "redis://u:***@host/2"),
            ("redis://u:p@ss@host", "redis://u:***@host"),
            ("redis://s3cret@host", "redis://***@host"),
        ] {
            assert_eq!(redacted(url), logged, "{url}");
        }
    }
}
