//! W3C Trace Context: every HTTP request gets a `traceparent` (continuing the
//! caller's trace when it sent a valid one), its log span records it, and every
//! game-service call made for the request carries it as gRPC metadata. The
//! format itself is `service_kit::trace_context`, shared with ws-gateway.

use axum::{extract::Request, middleware::Next, response::Response};
pub use service_kit::trace_context::{TRACEPARENT, TraceContext};
use tracing::Instrument;

/// Middleware: gives the request its [`TraceContext`] (as an extension the
/// handlers read) and runs it inside a log span that records the traceparent.
pub async fn trace_requests(mut request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok());
    let context = TraceContext::continue_or_start(incoming);
    let span = tracing::info_span!(
        "http_request",
        method = %request.method(),
        path = %request.uri().path(),
        traceparent = %context,
    );
    request.extensions_mut().insert(context);
    async move {
        let response = next.run(request).await;
        tracing::debug!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}
