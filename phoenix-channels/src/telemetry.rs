//! The endpoint's metrics, under names its user chooses (`{prefix}_connections`, ...). Every
//! handle is taken once, when the endpoint is built, so recording costs no name formatting or
//! registry lookup per message; and every series exists (at 0) from the start.

use metrics::{Counter, Gauge};

/// What was wrong with a client's frame: the `kind` label of `{prefix}_frame_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not a message: not JSON, not a message's shape, fields of the wrong type.
    InvalidMessage,
    /// A message whose payload alone could not be read.
    InvalidPayload,
    /// Refused by the message rate limit.
    RateLimited,
    /// The rate limit exceeded repeatedly: the socket is closed with 1008.
    RateAbuse,
    /// A frame over the size limit (close 1009).
    TooLarge,
    /// A text frame that is not UTF-8 (close 1007).
    InvalidUtf8,
    /// Any other break of RFC 6455 (close 1002).
    ProtocolError,
}

impl FrameError {
    pub const ALL: [FrameError; 7] = [
        FrameError::InvalidMessage,
        FrameError::InvalidPayload,
        FrameError::RateLimited,
        FrameError::RateAbuse,
        FrameError::TooLarge,
        FrameError::InvalidUtf8,
        FrameError::ProtocolError,
    ];

    /// The label value.
    pub fn kind(self) -> &'static str {
        match self {
            FrameError::InvalidMessage => "invalid_message",
            FrameError::InvalidPayload => "invalid_payload",
            FrameError::RateLimited => "rate_limited",
            FrameError::RateAbuse => "rate_abuse",
            FrameError::TooLarge => "too_large",
            FrameError::InvalidUtf8 => "invalid_utf8",
            FrameError::ProtocolError => "protocol_error",
        }
    }
}

/// The metrics an endpoint records. The handles come from the `metrics` recorder installed
/// when they are built: install it first.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `{prefix}_connections`: WebSocket connections open.
    pub(crate) connections: Gauge,
    /// `{prefix}_longpoll_sessions`: long-poll sessions open.
    pub(crate) longpoll_sessions: Gauge,
    /// `{prefix}_channels`: channels joined, counted from a successful join until it ends.
    pub(crate) channels: Gauge,
    /// `{prefix}_messages_total`: valid messages received (heartbeats included).
    pub(crate) messages: Counter,
    /// `{prefix}_frame_errors_total{kind}`, in the order of [`FrameError::ALL`].
    frame_errors: [Counter; FrameError::ALL.len()],
}

impl Metrics {
    /// The metrics named `{prefix}_connections`, `{prefix}_longpoll_sessions`,
    /// `{prefix}_channels`, `{prefix}_messages_total` and `{prefix}_frame_errors_total{kind}`.
    pub fn with_prefix(prefix: &str) -> Self {
        let frame_errors = format!("{prefix}_frame_errors_total");
        Metrics {
            connections: metrics::gauge!(format!("{prefix}_connections")),
            longpoll_sessions: metrics::gauge!(format!("{prefix}_longpoll_sessions")),
            channels: metrics::gauge!(format!("{prefix}_channels")),
            messages: metrics::counter!(format!("{prefix}_messages_total")),
            frame_errors: FrameError::ALL
                .map(|error| metrics::counter!(frame_errors.clone(), "kind" => error.kind())),
        }
    }

    pub(crate) fn frame_error(&self, error: FrameError) {
        self.frame_errors[error as usize].increment(1);
    }
}

/// `phoenix_connections`, `phoenix_channels`, ...
impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_prefix("phoenix")
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[test]
    fn every_series_carries_the_users_prefix_and_exists_from_the_start() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let metrics = metrics::with_local_recorder(&recorder, || Metrics::with_prefix("chat"));
        metrics.connections.increment(1);
        metrics.frame_error(FrameError::TooLarge);
        let mut series: Vec<(String, String)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let value = match value {
                    DebugValue::Counter(n) => n.to_string(),
                    DebugValue::Gauge(g) => g.to_string(),
                    DebugValue::Histogram(_) => unreachable!("no histograms"),
                };
                (format!("{}{{{}}}", key.name(), labels.join(",")), value)
            })
            .collect();
        series.sort();
        let expected = [
            ("chat_channels{}", "0"),
            ("chat_connections{}", "1"),
            ("chat_frame_errors_total{kind=invalid_message}", "0"),
            ("chat_frame_errors_total{kind=invalid_payload}", "0"),
            ("chat_frame_errors_total{kind=invalid_utf8}", "0"),
            ("chat_frame_errors_total{kind=protocol_error}", "0"),
            ("chat_frame_errors_total{kind=rate_abuse}", "0"),
            ("chat_frame_errors_total{kind=rate_limited}", "0"),
            ("chat_frame_errors_total{kind=too_large}", "1"),
            ("chat_longpoll_sessions{}", "0"),
            ("chat_messages_total{}", "0"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(series, expected);
    }
}
