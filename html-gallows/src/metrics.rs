//! Prometheus metrics: HTTP requests by route (count and latency), games
//! created, moves by the state they led to, game-service errors and the tally cache's reads
//! and watched games (recorded where they happen), rendered at `/metrics`.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use hangman_proto::v1::GameState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: a page answers in well under a millisecond to a
/// few hundred when the game service is slow.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The process-wide Prometheus recorder (installed once, with its upkeep, however many
/// servers the process starts: tests start several).
pub fn handle() -> &'static PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("gallows_http_request_duration_seconds".to_owned()),
            &LATENCY_BUCKETS,
        )
        .expect("the latency buckets are not empty");
    service_kit::metrics::install(builder, service_kit::metrics::UPKEEP_INTERVAL)
}

/// Middleware (a route layer, so the matched route is known): counts requests
/// and records their latency by method, route and status.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "gallows_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(
        "gallows_http_request_duration_seconds",
        "method" => method,
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());
    response
}

pub fn game_created() {
    metrics::counter!("gallows_games_created_total").increment(1);
}

/// A guess the game service played: `gallows_moves_total{state}` with the state after it
/// (`good_guess`, `won`, ...), spelled as the game service's `hangman_moves_total` spells it.
pub fn move_played(state: GameState) {
    metrics::counter!("gallows_moves_total", "state" => state.snake_name()).increment(1);
}

/// A guess the game service refused (not one letter a-z): `gallows_moves_total{state="refused"}`.
pub fn move_refused() {
    metrics::counter!("gallows_moves_total", "state" => "refused").increment(1);
}

pub fn upstream_error(call: &'static str, code: tonic::Code) {
    metrics::counter!(
        "gallows_upstream_errors_total",
        "call" => call,
        "code" => format!("{code:?}"),
    )
    .increment(1);
}

/// A game shown from the tally cache (`hit`) or read from the game service (`miss`).
pub fn tally_cache_read(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!("gallows_tally_cache_reads_total", "result" => result).increment(1);
}

pub fn tally_cache_watched(games: usize) {
    metrics::gauge!("gallows_tally_cache_watched_games").set(games as f64);
}
