//! The messages of the Phoenix Channels protocol, independent of how they are framed.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

/// A message from the client: `[join_ref, ref, topic, event, payload]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Payload,
}

/// A payload is JSON, or raw bytes when it came in a V2 binary frame.
#[derive(Debug, Clone)]
pub enum Payload {
    Json(Value),
    /// JSON already encoded (outbound only): one encoding shared by every message that
    /// carries it, such as a reply and the push that repeats it.
    Encoded(Arc<RawValue>),
    Binary(Bytes),
}

impl Payload {
    /// The JSON value, or `None` for a binary or already encoded payload.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Payload::Json(value) => Some(value),
            Payload::Encoded(_) | Payload::Binary(_) => None,
        }
    }

    /// Whether the payload is bytes, which only V2 binary frames carry.
    pub fn is_binary(&self) -> bool {
        matches!(self, Payload::Binary(_))
    }

    /// Encodes `value` once, for messages that share it.
    pub fn encode(value: &impl serde::Serialize) -> Self {
        let raw = serde_json::value::to_raw_value(value).expect("JSON payloads serialize");
        Payload::Encoded(Arc::from(raw))
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload::Json(value)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Payload::Json(a), Payload::Json(b)) => a == b,
            (Payload::Encoded(a), Payload::Encoded(b)) => a.get() == b.get(),
            (Payload::Binary(a), Payload::Binary(b)) => a == b,
            _ => false,
        }
    }
}

/// The two reply statuses of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// A message to the client. Boxed when queued so that queues stay small.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// The answer to a client message: `[join_ref, ref, topic, "phx_reply", {status, response}]`.
    Reply {
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: String,
        status: Status,
        response: Payload,
    },
    /// A server push to one joined channel: `[join_ref, null, topic, event, payload]`.
    /// The protocol's own `phx_close` and `phx_error` carry the join ref as `ref` too.
    Push {
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: String,
        event: String,
        payload: Payload,
    },
    /// A message to every subscriber of a topic: `[null, null, topic, event, payload]`.
    Broadcast {
        topic: String,
        event: String,
        payload: Payload,
    },
}

impl Outbound {
    /// A server push to the channel joined with `join_ref`.
    pub fn push(join_ref: &str, topic: &str, event: &str, payload: Payload) -> Self {
        Outbound::Push {
            join_ref: Some(join_ref.to_owned()),
            msg_ref: None,
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        }
    }

    /// The payload: a reply's response, or a push's or broadcast's payload.
    pub fn payload(&self) -> &Payload {
        match self {
            Outbound::Reply { response, .. } => response,
            Outbound::Push { payload, .. } | Outbound::Broadcast { payload, .. } => payload,
        }
    }

    /// `phx_close` or `phx_error` for a join: `[join_ref, join_ref, topic, event, payload]`.
    pub fn lifecycle(join_ref: &str, topic: &str, event: &str, payload: Value) -> Self {
        Outbound::Push {
            join_ref: Some(join_ref.to_owned()),
            msg_ref: Some(join_ref.to_owned()),
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload: Payload::Json(payload),
        }
    }
}

/// Events the protocol itself defines.
pub mod events {
    pub const JOIN: &str = "phx_join";
    pub const LEAVE: &str = "phx_leave";
    pub const REPLY: &str = "phx_reply";
    pub const CLOSE: &str = "phx_close";
    pub const ERROR: &str = "phx_error";
    pub const HEARTBEAT: &str = "heartbeat";
    /// The topic of socket-level messages (heartbeats).
    pub const PHOENIX_TOPIC: &str = "phoenix";
}
