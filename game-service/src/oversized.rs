//! A request message over `--max-message-size` is answered `RESOURCE_EXHAUSTED`.
//!
//! tonic refuses such a message with `OUT_OF_RANGE`, but the gRPC status codes
//! (grpc/doc/statuscodes.md) have a server answer `RESOURCE_EXHAUSTED` for a
//! request larger than its limit, and clients act on the code: to a front end,
//! `OUT_OF_RANGE` is no reason it knows, so the player got "unavailable" for
//! what is their own oversized input. Only tonic's own refusal is rewritten; no
//! handler of this service answers `OUT_OF_RANGE`.

use axum::{extract::Request, http::HeaderMap, middleware::Next, response::Response};
use tonic::{Code, Status};

/// How tonic's decoder words the refusal, up to the sizes it names.
const TONIC_REFUSAL: &str = "Error, decoded message length too large: ";

/// Middleware: the refusal comes back "trailers-only", with its status in the
/// response headers, before any handler runs.
pub async fn as_resource_exhausted(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(status) = rewritten(response.headers()) {
        // Cannot fail: tonic percent-encodes the message it puts in a header.
        let _ = status.add_header(response.headers_mut());
    }
    response
}

fn rewritten(headers: &HeaderMap) -> Option<Status> {
    let status = Status::from_header_map(headers)?;
    // "found N bytes, the limit is: M bytes"
    let sizes = status.message().strip_prefix(TONIC_REFUSAL)?;
    (status.code() == Code::OutOfRange).then(|| {
        Status::resource_exhausted(format!(
            "the request message is larger than this server accepts: {sizes}"
        ))
    })
}
