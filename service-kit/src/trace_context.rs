//! W3C Trace Context (`traceparent`, version 00): what the front ends put on every game-service
//! call, and what the game service logs, so that one player's request can be followed from a
//! front end's logs into the game service's.
//!
//! A [`TraceContext`] is a trace id and this service's span (the parent id it sends). A front
//! end starts one per HTTP request (continuing the caller's trace when it sent a valid
//! `traceparent`) or per WebSocket connection, and gives each call a span of its own
//! ([`TraceContext::child`]).

use std::fmt;

/// The header, and gRPC metadata key, that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

/// The sampled flag: a trace this service starts is sampled.
const SAMPLED: u8 = 0x01;

/// A trace and this service's span in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceContext {
    /// A new, sampled trace.
    pub fn new() -> Self {
        TraceContext {
            trace_id: nonzero(rand::random),
            span_id: nonzero(rand::random),
            flags: SAMPLED,
        }
    }

    /// Continues the trace of an incoming `traceparent` value under a new span, or starts a
    /// new trace when there is none or it is malformed.
    pub fn continue_or_start(incoming: Option<&str>) -> Self {
        match incoming.and_then(Self::parse) {
            Some(parent) => parent.child(),
            None => Self::new(),
        }
    }

    /// The same trace, under a new span (a call this service makes).
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: nonzero(rand::random),
            ..*self
        }
    }

    /// Parses a version-00 `traceparent`, refusing what the specification calls invalid:
    /// all-zero ids, version `ff` (and any other version: this is the format of 00),
    /// upper-case or other non-hex digits, wrong lengths, extra fields.
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.trim().split('-');
        let (version, trace_id, span_id, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let well_formed = fields.next().is_none()
            && version == "00"
            && [(trace_id, 32), (span_id, 16), (flags, 2)]
                .iter()
                .all(|(field, len)| field.len() == *len && is_lower_hex(field));
        if !well_formed {
            return None;
        }
        let context = TraceContext {
            trace_id: u128::from_str_radix(trace_id, 16).ok()?,
            span_id: u64::from_str_radix(span_id, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (context.trace_id != 0 && context.span_id != 0).then_some(context)
    }

    /// The `traceparent` to send: this service's span is the parent of the callee's.
    pub fn traceparent(&self) -> String {
        self.to_string()
    }

    /// The `traceparent` in a fixed buffer: written per request and per call (log span, gRPC
    /// metadata), so without the formatting machinery or an allocation.
    pub fn traceparent_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        write_hex(&mut out[3..35], self.trace_id);
        write_hex(&mut out[36..52], u128::from(self.span_id));
        write_hex(&mut out[53..55], u128::from(self.flags));
        out
    }

    /// The trace id as the 32 lower-case hex digits logs show.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl Default for TraceContext {
    fn default() -> Self {
        Self::new()
    }
}

/// The `traceparent` value.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.traceparent_bytes();
        // Only ASCII digits, letters a-f and dashes are ever written.
        f.write_str(std::str::from_utf8(&bytes).expect("a traceparent is ASCII"))
    }
}

/// Fills `out` with the low `out.len()` hex digits of `value`, lower-case.
fn write_hex(out: &mut [u8], mut value: u128) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_reads_back_as_it_was_written() {
        let context = TraceContext::parse(INCOMING).expect("valid");
        assert_eq!(context.traceparent(), INCOMING);
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for _ in 0..100 {
            let new = TraceContext::new();
            assert_eq!(TraceContext::parse(&new.traceparent()), Some(new));
        }
    }

    #[test]
    fn ids_are_written_in_fixed_width_hex() {
        let context = TraceContext {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0xb7,
            flags: 0x01,
        };
        assert_eq!(
            context.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000b7-01"
        );
        assert_eq!(
            &context.traceparent_bytes()[..],
            context.traceparent().as_bytes()
        );
    }

    #[test]
    fn a_valid_incoming_trace_is_continued_under_a_new_span() {
        let context = TraceContext::continue_or_start(Some(INCOMING));
        let outgoing = context.traceparent();
        assert!(outgoing.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(outgoing.ends_with("-01"));
        assert_ne!(outgoing, INCOMING, "the parent id is this service's span");
    }

    #[test]
    fn unsampled_flags_are_kept() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let outgoing = TraceContext::continue_or_start(Some(incoming)).traceparent();
        assert!(outgoing.ends_with("-00"));
    }

    #[test]
    fn malformed_values_are_refused_and_start_a_new_trace() {
        for invalid in [
            "",
            "garbage",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(invalid), None, "{invalid}");
            let context = TraceContext::continue_or_start(Some(invalid));
            assert_ne!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(context.trace_id(), "0".repeat(32), "{invalid}");
        }
    }

    #[test]
    fn a_new_trace_is_sampled_and_a_child_keeps_the_trace_under_a_new_span() {
        let root = TraceContext::new();
        assert!(root.traceparent().ends_with("-01"));
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.traceparent(), root.traceparent());
    }
}
