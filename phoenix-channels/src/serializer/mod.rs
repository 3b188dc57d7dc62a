//! Frames ⇄ messages, byte for byte what Phoenix 1.8 and the npm `phoenix` client speak, one
//! module per wire format as Phoenix has them (`Phoenix.Socket.V1.JSONSerializer`,
//! `Phoenix.Socket.V2.JSONSerializer`, whose binary frames are [`v2_binary`]):
//! - [`v1_json`]: `{"topic","event","payload","ref","join_ref"}` objects (`vsn` absent or 1.x);
//! - [`v2_json`]: `[join_ref, ref, topic, event, payload]` arrays (`vsn` 2.x);
//! - [`v2_binary`]: the binary frames of `vsn` 2.x;
//! - [`json`]: what the two JSON formats share (field checks, salvage of unreadable frames).
//!
//! [`Serializer`] is the format a connection negotiated with `vsn`, and dispatches to them.

mod json;
pub mod v1_json;
pub mod v2_binary;
pub mod v2_json;

use super::message::{Message, Outbound};

/// The longest topic, event or ref accepted, in bytes (the V2 binary format's own limit).
pub const MAX_FIELD_LEN: usize = 255;

/// A WebSocket data frame, independent of the WebSocket library.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// The wire format a connection negotiated with `vsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serializer {
    /// `vsn` absent or `1.x`: `{"topic","event","payload","ref","join_ref"}` objects.
    V1,
    /// `vsn` `2.x`: `[join_ref, ref, topic, event, payload]` arrays, plus binary frames.
    V2,
}

/// A frame that is not a valid message. Whatever could be read of it is kept so that the
/// error reply can reach the client's pending push.
#[derive(Debug, Clone, PartialEq, Default, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: Option<String>,
    /// What is wrong, for the reply's `detail`.
    pub reason: String,
    /// Whether only the payload is at fault (the rest of the message was read).
    pub kind: DecodeErrorKind,
}

/// Which part of a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecodeErrorKind {
    /// The frame itself: not JSON, not a message's shape, fields of the wrong type.
    #[default]
    Message,
    /// Only the payload: refs, topic and event were read.
    Payload,
}

impl DecodeErrorKind {
    /// The stable `reason` of the error reply.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeErrorKind::Message => "invalid_message",
            DecodeErrorKind::Payload => "invalid_payload",
        }
    }
}

impl DecodeError {
    fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
            ..Default::default()
        }
    }
}

impl Serializer {
    /// Picks the serializer for a `vsn` query parameter; `None` means refuse the connection.
    pub fn for_vsn(vsn: Option<&str>) -> Option<Self> {
        let Some(vsn) = vsn else {
            return Some(Serializer::V1);
        };
        let mut parts = vsn.split('.');
        let major = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if rest.len() > 2 || !rest.iter().all(|p| numeric(p)) {
            return None;
        }
        match major {
            "1" => Some(Serializer::V1),
            "2" => Some(Serializer::V2),
            _ => None,
        }
    }

    /// The `vsn` this serializer answers to, for `/version`.
    pub fn vsn(self) -> &'static str {
        match self {
            Serializer::V1 => "1.0.0",
            Serializer::V2 => "2.0.0",
        }
    }

    pub fn decode_text(self, text: &str) -> Result<Message, DecodeError> {
        match self {
            Serializer::V1 => v1_json::decode(text),
            Serializer::V2 => v2_json::decode(text),
        }
    }

    pub fn decode_binary(self, bytes: &[u8]) -> Result<Message, DecodeError> {
        match self {
            Serializer::V1 => Err(DecodeError::new(
                "binary frames need vsn 2.0.0; this connection speaks 1.0.0",
            )),
            Serializer::V2 => v2_binary::decode(bytes),
        }
    }

    /// Encodes a message for this connection; `None` when it cannot be expressed
    /// (a binary payload for a V1 client, or a field too long for a binary frame).
    /// Encodes a message for this connection; `None` when it cannot be expressed
    /// (a binary payload for a V1 client, or a field too long for a binary frame).
    pub fn encode(self, out: &Outbound) -> Option<Frame> {
        match (self, out.payload().is_binary()) {
            (Serializer::V2, true) => v2_binary::encode(out),
            (Serializer::V1, true) => None,
            (Serializer::V1, false) => Some(Frame::Text(v1_json::encode(out))),
            (Serializer::V2, false) => Some(Frame::Text(v2_json::encode(out))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsn_negotiation_follows_phoenix() {
        assert_eq!(Serializer::for_vsn(None), Some(Serializer::V1));
        assert_eq!(Serializer::for_vsn(Some("1.0.0")), Some(Serializer::V1));
        assert_eq!(Serializer::for_vsn(Some("2.0.0")), Some(Serializer::V2));
        assert_eq!(Serializer::for_vsn(Some("2.1")), Some(Serializer::V2));
        for refused in ["3.0.0", "", "2.x", "abc", "2.0.0.0", "v2"] {
            assert_eq!(Serializer::for_vsn(Some(refused)), None, "{refused}");
        }
    }
}

#[cfg(test)]
mod properties;
