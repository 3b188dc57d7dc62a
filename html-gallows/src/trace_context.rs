//! W3C Trace Context: every HTTP request gets a `traceparent` (continuing the
//! caller's trace when it sent a valid one), its log span records it, and every
//! game-service call made for the request carries it as gRPC metadata.

use axum::{extract::Request, middleware::Next, response::Response};
use tracing::Instrument;

/// The header (and gRPC metadata key) that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The trace an HTTP request belongs to and this service's span in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceContext {
    /// Continues the trace of an incoming `traceparent` value, or starts a new,
    /// sampled trace when there is none or it is malformed. Either way the span id
    /// is new: it names this service's part of the trace.
    pub fn continue_or_start(incoming: Option<&str>) -> Self {
        let span_id = nonzero(rand::random);
        match incoming.and_then(parse_traceparent) {
            Some((trace_id, flags)) => Self {
                trace_id,
                span_id,
                flags,
            },
            None => Self {
                trace_id: nonzero(rand::random),
                span_id,
                flags: 0x01,
            },
        }
    }

    /// The `traceparent` value to send downstream: this service's span is the parent.
    pub fn traceparent(&self) -> String {
        self.traceparent_str().as_str().to_owned()
    }

    /// The `traceparent` value in a fixed buffer: written per request (log span
    /// and gRPC metadata), so without the formatting machinery or an allocation.
    pub fn traceparent_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        write_hex(&mut out[3..35], self.trace_id);
        write_hex(&mut out[36..52], u128::from(self.span_id));
        write_hex(&mut out[53..55], u128::from(self.flags));
        out
    }

    fn traceparent_str(&self) -> TraceparentText {
        TraceparentText(self.traceparent_bytes())
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// The length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

/// Fills `out` with the low `out.len()` hex digits of `value`, lowercase.
fn write_hex(out: &mut [u8], mut value: u128) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// A `traceparent` as text, for logs.
struct TraceparentText([u8; TRACEPARENT_LEN]);

impl TraceparentText {
    fn as_str(&self) -> &str {
        // Only ASCII digits, letters a-f and dashes are ever written.
        std::str::from_utf8(&self.0).expect("a traceparent is ASCII")
    }
}

impl std::fmt::Display for TraceparentText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a version-00 `traceparent` into its trace id and flags, refusing the
/// invalid values the specification lists (all-zero ids, version `ff`, bad hex).
fn parse_traceparent(value: &str) -> Option<(u128, u8)> {
    let mut fields = value.trim().split('-');
    let (version, trace_id, parent_id, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let well_formed = fields.next().is_none()
        && version == "00"
        && [(trace_id, 32), (parent_id, 16), (flags, 2)]
            .iter()
            .all(|(field, len)| field.len() == *len && is_lower_hex(field));
    if !well_formed {
        return None;
    }
    let trace_id = u128::from_str_radix(trace_id, 16).ok()?;
    let parent_id = u64::from_str_radix(parent_id, 16).ok()?;
    if trace_id == 0 || parent_id == 0 {
        return None;
    }
    Some((trace_id, u8::from_str_radix(flags, 16).ok()?))
}

fn is_lower_hex(field: &str) -> bool {
    field
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A random id that is not zero (zero means "invalid" in Trace Context).
fn nonzero<T: Default + PartialEq>(mut random: impl FnMut() -> T) -> T {
    loop {
        let id = random();
        if id != T::default() {
            return id;
        }
    }
}

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
        traceparent = %context.traceparent_str(),
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

#[cfg(test)]
mod tests {
    use super::*;

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_incoming_trace_is_continued_under_a_new_span() {
        let context = TraceContext::continue_or_start(Some(INCOMING));
        let outgoing = context.traceparent();
        assert!(outgoing.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(outgoing.ends_with("-01"));
        assert_ne!(outgoing, INCOMING, "the parent id is this service's span");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn unsampled_flags_are_kept() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let outgoing = TraceContext::continue_or_start(Some(incoming)).traceparent();
        assert!(outgoing.ends_with("-00"));
    }

    #[test]
    fn invalid_incoming_values_start_a_new_trace() {
        for invalid in [
            "",
            "garbage",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let context = TraceContext::continue_or_start(Some(invalid));
            assert_ne!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(context.trace_id(), "0".repeat(32), "{invalid}");
        }
    }

    #[test]
    fn the_traceparent_is_the_ids_in_fixed_width_hex() {
        let context = TraceContext {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0xb7,
            flags: 0x01,
        };
        assert_eq!(
            context.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000b7-01"
        );
    }

    #[test]
    fn a_new_trace_is_well_formed_and_sampled() {
        let value = TraceContext::continue_or_start(None).traceparent();
        let (trace_id, flags) = parse_traceparent(&value).expect("valid traceparent");
        assert_ne!(trace_id, 0);
        assert_eq!(flags, 1);
    }
}
