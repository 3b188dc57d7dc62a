//! Logs, request spans and Prometheus metrics.
//!
//! Every call gets a span carrying its gRPC method and the caller's W3C
//! `traceparent` (sent by the front ends), so one player's request can be
//! followed from a front end's logs into this service's.

use std::{io::IsTerminal, sync::OnceLock, time::Instant};

use axum::{extract::Request, middleware::Next, response::Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global `tracing` subscriber: text by default, JSON lines with
/// `json`, to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: they cost time on every span (each call opens one) and
    // clutter log files.
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// A second server in the same process (tests) shares it.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0,
                ],
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then ours renders nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// `GET /metrics`: Prometheus text.
pub async fn render_metrics() -> String {
    metrics_handle().render()
}

/// Axum middleware around every call: a span with method and `traceparent`,
/// a latency histogram per method, and one log line per finished call.
pub async fn observe(request: Request, next: Next) -> Response {
    let method = request.uri().path().to_owned();
    // A cheap copy (reference counted) that outlives the request handed to the service.
    let traceparent = request.headers().get("traceparent").cloned();
    let span = tracing::info_span!(
        "call",
        %method,
        traceparent = %traceparent.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    // Errors come back "trailers-only", so grpc-status is in the headers;
    // a successful call's status is in the trailers, which is "0".
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0");
    metrics::histogram!("grpc_server_handling_seconds", "method" => method, "grpc_status" => grpc_status.to_owned())
        .record(elapsed.as_secs_f64());
    // Failed calls are worth a line at the default level; successful ones
    // (tens of thousands a second under load) only when debugging.
    let elapsed_us = elapsed.as_micros() as u64;
    span.in_scope(|| {
        if grpc_status == "0" {
            tracing::debug!(grpc_status, elapsed_us, "call finished");
        } else {
            tracing::info!(grpc_status, elapsed_us, "call failed");
        }
    });
    response
}
