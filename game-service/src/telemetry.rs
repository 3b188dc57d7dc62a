//! Request spans and Prometheus metrics (the log subscriber is `service_kit::logging`).
//!
//! Every failed call is logged with its gRPC method and the caller's W3C
//! `traceparent` (sent by the front ends), and so is every new game, so one
//! player's request can be followed from a front end's logs into this
//! service's; at `debug`, every call gets a span carrying both.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, OnceLock, RwLock},
    time::Instant,
};

use axum::{extract::Request, middleware::Next, response::Response};
use metrics::Histogram;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use service_kit::trace_context::TRACEPARENT;
use tracing::Instrument;

/// The process-wide Prometheus recorder, installed on first use.
///
/// A second server in the same process (tests) shares it.
pub fn metrics_handle() -> &'static PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0,
            ],
        )
        .expect("the bucket list is not empty");
    service_kit::metrics::install(builder, service_kit::metrics::UPKEEP_INTERVAL)
}

/// `GET /metrics`: Prometheus text.
pub async fn render_metrics() -> String {
    metrics_handle().render()
}

/// Axum middleware around every call: a latency histogram per method and status, and a
/// log line per finished call carrying the caller's `traceparent`.
///
/// This runs tens of thousands of times a second, so it allocates little per call: label
/// values are static or interned once, histograms are looked up once per method and status,
/// and the per-call span is at `debug` (the `fmt` layer formats a span's fields when it is
/// created: at `info`, that cost more than the call's own work in the service).
pub async fn observe(request: Request, next: Next) -> Response {
    // The connection has delivered a request: it no longer counts as half-open.
    service_kit::connections::request_arrived(request.extensions());
    // Cheap copies (reference counted) that outlive the request handed to the service.
    let path = request.uri().path_and_query().cloned();
    let path = path.as_ref().map_or("", |p| p.path());
    let traceparent = request.headers().get(TRACEPARENT).cloned();
    let traceparent = traceparent
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::debug_span!("call", method = %path, %traceparent);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    // Errors come back "trailers-only", so grpc-status is in the headers;
    // a successful call's status is in the trailers, which is "0".
    let status = response
        .headers()
        .get("grpc-status")
        .map_or(Some(0), |v| v.to_str().ok()?.parse::<u8>().ok())
        .filter(|code| usize::from(*code) < GRPC_CODES.len());
    latency_histogram(path, status).record(elapsed.as_secs_f64());
    // Failed calls are worth a line at the default level; successful ones
    // (tens of thousands a second under load) only when debugging.
    let elapsed_us = elapsed.as_micros() as u64;
    let grpc_status = status.map_or("unknown", |code| GRPC_CODES[usize::from(code)]);
    span.in_scope(|| {
        if status == Some(0) {
            tracing::debug!(grpc_status, elapsed_us, "call finished");
        } else {
            tracing::info!(
                method = %path,
                %traceparent,
                grpc_status,
                elapsed_us,
                "call failed"
            );
        }
    });
    response
}

/// `grpc-status` values as label strings, indexed by code.
const GRPC_CODES: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// A method's histograms, by status code (the last slot for a status that is not a code).
type ByStatus = [OnceLock<Histogram>; GRPC_CODES.len() + 1];

/// `grpc_server_handling_seconds` for one method and status, created on first use.
///
/// A path the server does not serve is answered UNIMPLEMENTED (12) and labelled
/// `unimplemented`: a client making up paths must not make up label values too.
fn latency_histogram(path: &str, status: Option<u8>) -> Histogram {
    static METHODS: LazyLock<RwLock<HashMap<Box<str>, Arc<ByStatus>>>> =
        LazyLock::new(Default::default);
    const UNIMPLEMENTED: u8 = 12;
    let method = if status == Some(UNIMPLEMENTED) {
        "unimplemented"
    } else {
        path
    };
    let known = METHODS
        .read()
        .expect("histogram map lock")
        .get(method)
        .cloned();
    let by_status = known.unwrap_or_else(|| {
        METHODS
            .write()
            .expect("histogram map lock")
            .entry(method.into())
            .or_default()
            .clone()
    });
    let slot = status.map_or(GRPC_CODES.len(), usize::from);
    by_status[slot]
        .get_or_init(|| {
            let grpc_status = GRPC_CODES.get(slot).copied().unwrap_or("unknown");
            metrics::histogram!(
                "grpc_server_handling_seconds",
                "method" => method.to_owned(),
                "grpc_status" => grpc_status
            )
        })
        .clone()
}
