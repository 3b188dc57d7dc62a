//! Frames ⇄ messages: the V1 JSON object serializer, the V2 JSON array serializer and the V2
//! binary format, byte for byte what Phoenix 1.8 and the npm `phoenix` client speak.
//!
//! V2 binary layout (sizes are one byte each, so every field is at most 255 bytes):
//! - client push (kind 0): `0, join_ref_size, ref_size, topic_size, event_size, join_ref, ref, topic, event, data`
//! - server push (kind 0): `0, join_ref_size, topic_size, event_size, join_ref, topic, event, data`
//! - reply (kind 1): `1, join_ref_size, ref_size, topic_size, status_size, join_ref, ref, topic, status, data`
//! - broadcast (kind 2): `2, topic_size, event_size, topic, event, data`

use std::collections::HashMap;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::message::{Message, Outbound, Payload, events};

/// The longest topic, event or ref accepted, in bytes (the V2 binary format's own limit).
pub const MAX_FIELD_LEN: usize = 255;

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

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
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(err) => return Err(self.salvage_unparsable(text, &err)),
        };
        match self {
            Serializer::V2 => decode_v2_array(value),
            Serializer::V1 => decode_v1_object(value),
        }
    }

    /// A frame serde_json refuses may still be a message whose payload alone is bad, such as a
    /// guess with a lone surrogate (`"\ud83d"`, which is no Unicode character). serde_json's
    /// `RawValue` only checks a value's syntax, so the frame is read again as raw fields and
    /// each field parsed on its own: when the refs and topic can be read, the error reply
    /// reaches the client's push instead of topic `phoenix` with ref null.
    fn salvage_unparsable(self, text: &str, err: &serde_json::Error) -> DecodeError {
        let not_json = || DecodeError::new(format!("frame is not JSON: {err}"));
        let raw: [Option<&RawValue>; 5] = match self {
            Serializer::V2 => match serde_json::from_str::<Vec<&RawValue>>(text) {
                Ok(items) if items.len() == 5 => std::array::from_fn(|i| Some(items[i])),
                _ => return not_json(),
            },
            Serializer::V1 => match serde_json::from_str::<HashMap<String, &RawValue>>(text) {
                Ok(map) => V1_KEYS.map(|key| map.get(key).copied()),
                Err(_) => return not_json(),
            },
        };
        let [join_ref, msg_ref, topic, event, payload] = raw.map(|field| match field {
            Some(raw) => serde_json::from_str::<Value>(raw.get()),
            None => Ok(Value::Null),
        });
        let fields = match (join_ref, msg_ref, topic, event) {
            (Ok(join_ref), Ok(msg_ref), Ok(topic), Ok(event)) => {
                [join_ref, msg_ref, topic, event, Value::Null]
            }
            // A ref, topic or event that is not JSON: keep whatever of them can be read.
            (join_ref, msg_ref, topic, _) => {
                let (join_ref, msg_ref, topic) = (join_ref.ok(), msg_ref.ok(), topic.ok());
                return DecodeError {
                    reason: not_json().reason,
                    ..salvage(join_ref.as_ref(), msg_ref.as_ref(), topic.as_ref())
                };
            }
        };
        let message = match message_of(fields) {
            Ok(message) => message,
            // A field of the wrong type: the same error as for a frame that parses.
            Err(bad_field) => return bad_field,
        };
        let (reason, kind) = match payload {
            Err(bad) => (
                format!("payload is not JSON: {bad}"),
                DecodeErrorKind::Payload,
            ),
            // What is unparsable lies elsewhere (a V1 object's other keys).
            Ok(_) => (not_json().reason, DecodeErrorKind::Message),
        };
        DecodeError {
            join_ref: message.join_ref,
            msg_ref: message.msg_ref,
            topic: Some(message.topic),
            reason,
            kind,
        }
    }

    pub fn decode_binary(self, bytes: &[u8]) -> Result<Message, DecodeError> {
        match self {
            Serializer::V1 => Err(DecodeError::new(
                "binary frames need vsn 2.0.0; this connection speaks 1.0.0",
            )),
            Serializer::V2 => decode_v2_binary(bytes),
        }
    }

    /// Encodes a message for this connection; `None` when it cannot be expressed
    /// (a binary payload for a V1 client, or a field too long for a binary frame).
    pub fn encode(self, out: &Outbound) -> Option<Frame> {
        match (self, out) {
            (
                Serializer::V2,
                Outbound::Reply {
                    response: Payload::Binary(data),
                    join_ref,
                    msg_ref,
                    topic,
                    status,
                },
            ) => binary_frame(
                KIND_REPLY,
                &[opt(join_ref), opt(msg_ref), topic, status.as_str()],
                data,
            ),
            (
                Serializer::V2,
                Outbound::Push {
                    payload: Payload::Binary(data),
                    join_ref,
                    topic,
                    event,
                    ..
                },
            ) => binary_frame(KIND_PUSH, &[opt(join_ref), topic, event], data),
            (
                Serializer::V2,
                Outbound::Broadcast {
                    payload: Payload::Binary(data),
                    topic,
                    event,
                },
            ) => binary_frame(KIND_BROADCAST, &[topic, event], data),
            (
                _,
                Outbound::Reply {
                    response: Payload::Binary(_),
                    ..
                },
            )
            | (
                _,
                Outbound::Push {
                    payload: Payload::Binary(_),
                    ..
                },
            )
            | (
                _,
                Outbound::Broadcast {
                    payload: Payload::Binary(_),
                    ..
                },
            ) => None,
            (serializer, out) => Some(Frame::Text(serializer.encode_json(out))),
        }
    }

    fn encode_json(self, out: &Outbound) -> String {
        let (join_ref, msg_ref, topic, event, payload) = match out {
            Outbound::Reply {
                join_ref,
                msg_ref,
                topic,
                status,
                response,
            } => {
                let payload = ReplyPayload {
                    response: JsonPayload(response),
                    status: status.as_str(),
                };
                return self.encode_parts(
                    join_ref.as_deref(),
                    msg_ref.as_deref(),
                    topic,
                    events::REPLY,
                    &payload,
                );
            }
            Outbound::Push {
                join_ref,
                msg_ref,
                topic,
                event,
                payload,
            } => (
                join_ref.as_deref(),
                msg_ref.as_deref(),
                topic,
                event,
                JsonPayload(payload),
            ),
            Outbound::Broadcast {
                topic,
                event,
                payload,
            } => (None, None, topic, event, JsonPayload(payload)),
        };
        self.encode_parts(join_ref, msg_ref, topic, event, &payload)
    }

    /// Writes the frame straight from borrowed parts (no intermediate JSON value).
    fn encode_parts(
        self,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: &impl Serialize,
    ) -> String {
        let encoded = match self {
            Serializer::V2 => serde_json::to_string(&(join_ref, msg_ref, topic, event, payload)),
            Serializer::V1 => serde_json::to_string(&V1Frame {
                event,
                join_ref,
                payload,
                msg_ref,
                topic,
            }),
        };
        encoded.expect("JSON values always serialize")
    }
}

/// A reply's payload, `{"response": ..., "status": "ok"}`.
#[derive(Serialize)]
struct ReplyPayload<'a> {
    response: JsonPayload<'a>,
    status: &'a str,
}

/// A V1 frame object (keys in the order the JSON value form printed them).
#[derive(Serialize)]
struct V1Frame<'a, P> {
    event: &'a str,
    join_ref: Option<&'a str>,
    payload: &'a P,
    #[serde(rename = "ref")]
    msg_ref: Option<&'a str>,
    topic: &'a str,
}

/// A payload in a JSON frame: its value, its encoded text as is, or `null` for bytes (which
/// only binary frames carry).
struct JsonPayload<'a>(&'a Payload);

impl Serialize for JsonPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Payload::Json(value) => value.serialize(serializer),
            Payload::Encoded(raw) => raw.serialize(serializer),
            Payload::Binary(_) => serializer.serialize_unit(),
        }
    }
}

fn opt(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}

fn binary_frame(kind: u8, fields: &[&str], data: &[u8]) -> Option<Frame> {
    let mut frame = Vec::with_capacity(
        1 + fields.len() + fields.iter().map(|f| f.len()).sum::<usize>() + data.len(),
    );
    frame.push(kind);
    for field in fields {
        frame.push(u8::try_from(field.len()).ok()?);
    }
    for field in fields {
        frame.extend_from_slice(field.as_bytes());
    }
    frame.extend_from_slice(data);
    Some(Frame::Binary(frame))
}

fn decode_v2_array(value: Value) -> Result<Message, DecodeError> {
    let Value::Array(items) = value else {
        return Err(DecodeError::new(
            "frame is not a [join_ref, ref, topic, event, payload] array",
        ));
    };
    let fields: [Value; 5] = items.try_into().map_err(|items: Vec<Value>| {
        let mut err = salvage(items.first(), items.get(1), items.get(2));
        err.reason = format!(
            "frame must be a 5-element array [join_ref, ref, topic, event, payload], got {} elements",
            items.len()
        );
        err
    })?;
    message_of(fields)
}

/// The keys of a V1 frame object, in the order of a V2 array's fields.
const V1_KEYS: [&str; 5] = ["join_ref", "ref", "topic", "event", "payload"];

fn decode_v1_object(value: Value) -> Result<Message, DecodeError> {
    let Value::Object(mut map) = value else {
        return Err(DecodeError::new(
            r#"frame is not a {"topic","event","payload","ref"} object"#,
        ));
    };
    let fields = V1_KEYS.map(|key| map.remove(key).unwrap_or(Value::Null));
    let mut message = message_of(fields)?;
    // V1 clients may leave the payload out.
    if message.payload == Payload::Json(Value::Null) {
        message.payload = Payload::Json(Value::Object(Map::new()));
    }
    Ok(message)
}

/// Whatever refs and topic can be read from a malformed message, so an error reply can reach it.
fn salvage(
    join_ref: Option<&Value>,
    msg_ref: Option<&Value>,
    topic: Option<&Value>,
) -> DecodeError {
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    DecodeError {
        join_ref: string(join_ref),
        msg_ref: string(msg_ref),
        topic: string(topic),
        reason: String::new(),
        kind: DecodeErrorKind::Message,
    }
}

/// Checks the types of `[join_ref, ref, topic, event, payload]`.
fn message_of(fields: [Value; 5]) -> Result<Message, DecodeError> {
    let err = salvage(Some(&fields[0]), Some(&fields[1]), Some(&fields[2]));
    let [join_ref, msg_ref, topic, event, payload] = fields;
    let message = (|| {
        Ok::<_, String>(Message {
            join_ref: optional_string(join_ref, "join_ref")?,
            msg_ref: optional_string(msg_ref, "ref")?,
            topic: required_string(topic, "topic")?,
            event: required_string(event, "event")?,
            payload: Payload::Json(payload),
        })
    })();
    message.map_err(|reason| DecodeError { reason, ..err })
}

fn optional_string(value: Value, name: &str) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.len() <= MAX_FIELD_LEN => Ok(Some(s)),
        Value::String(_) => Err(format!("{name} is longer than {MAX_FIELD_LEN} bytes")),
        other => Err(format!(
            "{name} must be a string or null, got {}",
            type_name(&other)
        )),
    }
}

fn required_string(value: Value, name: &str) -> Result<String, String> {
    match optional_string(value, name)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!("{name} must be a non-empty string")),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_v2_binary(bytes: &[u8]) -> Result<Message, DecodeError> {
    const HEADER: usize = 5;
    match bytes.first() {
        Some(&KIND_PUSH) => {}
        Some(kind) => {
            return Err(DecodeError::new(format!(
                "binary frame of kind {kind}: clients may only send pushes (kind 0)"
            )));
        }
        None => return Err(DecodeError::new("empty binary frame")),
    }
    if bytes.len() < HEADER {
        return Err(DecodeError::new(format!(
            "binary push of {} bytes is shorter than its {HEADER}-byte header",
            bytes.len()
        )));
    }
    let sizes = [bytes[1], bytes[2], bytes[3], bytes[4]].map(usize::from);
    let meta_len: usize = sizes.iter().sum();
    if bytes.len() < HEADER + meta_len {
        return Err(DecodeError::new(format!(
            "binary push declares {meta_len} bytes of join_ref/ref/topic/event but carries {}",
            bytes.len() - HEADER
        )));
    }
    let mut offset = HEADER;
    let mut fields = sizes.map(|size| {
        let field = &bytes[offset..offset + size];
        offset += size;
        std::str::from_utf8(field).map(str::to_owned)
    });
    let names = ["join_ref", "ref", "topic", "event"];
    let mut strings = Vec::with_capacity(4);
    for (field, name) in fields.iter_mut().zip(names) {
        match field {
            Ok(s) => strings.push(std::mem::take(s)),
            Err(_) => {
                return Err(DecodeError::new(format!(
                    "binary push: {name} is not UTF-8"
                )));
            }
        }
    }
    let [join_ref, msg_ref, topic, event]: [String; 4] = strings.try_into().expect("four fields");
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let (join_ref, msg_ref) = (non_empty(join_ref), non_empty(msg_ref));
    if topic.is_empty() || event.is_empty() {
        return Err(DecodeError {
            join_ref,
            msg_ref,
            topic: non_empty(topic),
            reason: "binary push: topic and event must be non-empty".into(),
            kind: DecodeErrorKind::Message,
        });
    }
    Ok(Message {
        join_ref,
        msg_ref,
        topic,
        event,
        payload: Payload::Binary(Bytes::copy_from_slice(&bytes[offset..])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Status;
    use serde_json::json;

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

    #[test]
    fn v2_text_round_trip() {
        let msg = Serializer::V2
            .decode_text(r#"["1","2","room:lobby","new_msg",{"body":"hi"}]"#)
            .unwrap();
        assert_eq!(msg.join_ref.as_deref(), Some("1"));
        assert_eq!(msg.msg_ref.as_deref(), Some("2"));
        assert_eq!(msg.payload, Payload::Json(json!({"body": "hi"})));
        let reply = Outbound::Reply {
            join_ref: msg.join_ref,
            msg_ref: msg.msg_ref,
            topic: msg.topic,
            status: Status::Ok,
            response: Payload::Json(json!({})),
        };
        assert_eq!(
            Serializer::V2.encode(&reply),
            Some(Frame::Text(
                r#"["1","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#.into()
            ))
        );
    }

    #[test]
    fn v2_rejects_wrong_shapes_keeping_refs() {
        let err = Serializer::V2.decode_text(r#"["1","7","t"]"#).unwrap_err();
        assert_eq!(
            (err.join_ref.as_deref(), err.msg_ref.as_deref()),
            (Some("1"), Some("7"))
        );
        let err = Serializer::V2
            .decode_text(r#"["1","7",3,"e",{}]"#)
            .unwrap_err();
        assert_eq!(err.reason, "topic must be a string or null, got a number");
        assert_eq!(err.msg_ref.as_deref(), Some("7"));
        assert!(
            Serializer::V2
                .decode_text("nope")
                .unwrap_err()
                .reason
                .starts_with("frame is not JSON")
        );
        assert!(Serializer::V2.decode_text(r#"{"topic":"t"}"#).is_err());
    }

    #[test]
    fn a_payload_that_is_not_json_keeps_the_refs_and_topic() {
        // A lone surrogate is valid JSON syntax but no Unicode character: serde_json refuses it.
        let err = Serializer::V2
            .decode_text(r#"["1","7","hangman:game","make_move",{"guess":"\ud83d"}]"#)
            .unwrap_err();
        assert_eq!(
            (
                err.join_ref.as_deref(),
                err.msg_ref.as_deref(),
                err.topic.as_deref()
            ),
            (Some("1"), Some("7"), Some("hangman:game"))
        );
        assert_eq!(err.kind, DecodeErrorKind::Payload);
        assert!(
            err.reason.starts_with("payload is not JSON"),
            "{}",
            err.reason
        );

        let err = Serializer::V1
            .decode_text(r#"{"topic":"t","event":"e","ref":"3","payload":"\udc00"}"#)
            .unwrap_err();
        assert_eq!(
            (err.msg_ref.as_deref(), err.topic.as_deref(), err.kind),
            (Some("3"), Some("t"), DecodeErrorKind::Payload)
        );

        // When the topic is what cannot be read, the rest is kept and the frame is at fault.
        let err = Serializer::V2
            .decode_text(r#"["1","8","\ud83d","e",{}]"#)
            .unwrap_err();
        assert_eq!(
            (err.msg_ref.as_deref(), err.topic, err.kind),
            (Some("8"), None, DecodeErrorKind::Message)
        );
        // A field of the wrong type is reported as such, even with a bad payload.
        let err = Serializer::V2
            .decode_text(r#"["1","9",5,"e","\ud83d"]"#)
            .unwrap_err();
        assert_eq!(err.reason, "topic must be a string or null, got a number");
        // Not JSON at all: nothing to salvage.
        let err = Serializer::V2
            .decode_text(r#"["1","9","t","e",{]"#)
            .unwrap_err();
        assert_eq!((err.msg_ref, err.kind), (None, DecodeErrorKind::Message));
    }

    #[test]
    fn an_encoded_payload_is_written_as_is() {
        let payload = Payload::encode(&json!({"x": [1, "y"]}));
        let reply = Outbound::Reply {
            join_ref: Some("1".into()),
            msg_ref: Some("2".into()),
            topic: "t".into(),
            status: Status::Ok,
            response: payload.clone(),
        };
        assert_eq!(
            Serializer::V2.encode(&reply),
            Some(Frame::Text(
                r#"["1","2","t","phx_reply",{"response":{"x":[1,"y"]},"status":"ok"}]"#.into()
            ))
        );
        let push = Outbound::push("1", "t", "tally", payload);
        assert_eq!(
            Serializer::V1.encode(&push),
            Some(Frame::Text(
                r#"{"event":"tally","join_ref":"1","payload":{"x":[1,"y"]},"ref":null,"topic":"t"}"#
                    .into()
            ))
        );
    }

    #[test]
    fn v1_objects() {
        let msg = Serializer::V1
            .decode_text(r#"{"topic":"t","event":"e","payload":{"a":1},"ref":"3"}"#)
            .unwrap();
        assert_eq!(
            (msg.topic.as_str(), msg.msg_ref.as_deref(), msg.join_ref),
            ("t", Some("3"), None)
        );
        let push = Outbound::push("1", "t", "tally", json!({"x": 1}).into());
        let Some(Frame::Text(text)) = Serializer::V1.encode(&push) else {
            panic!()
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"join_ref":"1","ref":null,"topic":"t","event":"tally","payload":{"x":1}})
        );
        assert!(
            Serializer::V1
                .decode_text(r#"["1","2","t","e",{}]"#)
                .is_err()
        );
        assert!(
            Serializer::V1
                .decode_binary(&[0, 0, 0, 1, 1, b't', b'e'])
                .is_err()
        );
    }

    #[test]
    fn v2_binary_push_and_encodings() {
        let mut frame = vec![0, 1, 1, 4, 3];
        frame.extend_from_slice(b"12room");
        frame.extend_from_slice(b"evt\x00\xff");
        let msg = Serializer::V2.decode_binary(&frame).unwrap();
        assert_eq!(
            (msg.join_ref.as_deref(), msg.msg_ref.as_deref()),
            (Some("1"), Some("2"))
        );
        assert_eq!((msg.topic.as_str(), msg.event.as_str()), ("room", "evt"));
        assert_eq!(
            msg.payload,
            Payload::Binary(Bytes::from_static(b"\x00\xff"))
        );

        let reply = Outbound::Reply {
            join_ref: Some("1".into()),
            msg_ref: Some("2".into()),
            topic: "room".into(),
            status: Status::Ok,
            response: Payload::Binary(Bytes::from_static(b"\x01")),
        };
        assert_eq!(
            Serializer::V2.encode(&reply),
            Some(Frame::Binary(
                b"\x01\x01\x01\x04\x021\x32roomok\x01".to_vec()
            ))
        );
        let broadcast = Outbound::Broadcast {
            topic: "r".into(),
            event: "e".into(),
            payload: Payload::Binary(Bytes::from_static(b"z")),
        };
        assert_eq!(
            Serializer::V2.encode(&broadcast),
            Some(Frame::Binary(b"\x02\x01\x01rez".to_vec()))
        );
        assert_eq!(Serializer::V1.encode(&broadcast), None);
    }

    #[test]
    fn v2_binary_bad_lengths() {
        assert!(Serializer::V2.decode_binary(&[]).is_err());
        assert!(Serializer::V2.decode_binary(&[0, 1]).is_err());
        assert!(
            Serializer::V2
                .decode_binary(&[0, 9, 9, 9, 9, b'a'])
                .is_err()
        );
        assert!(
            Serializer::V2
                .decode_binary(&[1, 0, 0, 1, 1, b't', b'e'])
                .is_err()
        );
        assert!(Serializer::V2.decode_binary(&[0, 0, 0, 0, 0]).is_err());
    }
}

/// Property tests: every decoder takes any input without panicking, and what the encoders
/// write decodes back to the same message.
#[cfg(test)]
mod properties {
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    use super::*;
    use crate::message::Status;

    /// Any characters (controls, quotes, astral planes), at most 240 bytes: a field fits the
    /// 255-byte limit.
    fn text() -> impl Strategy<Value = String> {
        vec(any::<char>(), 0..60).prop_map(String::from_iter)
    }

    fn non_empty_text() -> impl Strategy<Value = String> {
        vec(any::<char>(), 1..60).prop_map(String::from_iter)
    }

    /// JSON values. Numbers are integers: serde_json parses some floats to a neighbour of the
    /// value printed, which is not a serializer matter.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Value::Array),
                btree_map(text(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn serializer() -> impl Strategy<Value = Serializer> {
        prop_oneof![Just(Serializer::V1), Just(Serializer::V2)]
    }

    /// A client message as the protocol allows it.
    fn message() -> impl Strategy<Value = Message> {
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            non_empty_text(),
            non_empty_text(),
            json(),
        )
            .prop_map(|(join_ref, msg_ref, topic, event, payload)| Message {
                join_ref,
                msg_ref,
                topic,
                event,
                payload: Payload::Json(payload),
            })
    }

    /// The server push carrying a client message's fields, which a client decodes as it.
    fn push_of(message: Message) -> Outbound {
        Outbound::Push {
            join_ref: message.join_ref,
            msg_ref: message.msg_ref,
            topic: message.topic,
            event: message.event,
            payload: message.payload,
        }
    }

    /// A client's binary push (the layout in this module's documentation).
    fn client_binary_push(parts: [&str; 4], data: &[u8]) -> Vec<u8> {
        let mut frame = vec![KIND_PUSH];
        frame.extend(parts.iter().map(|p| u8::try_from(p.len()).unwrap()));
        for part in parts {
            frame.extend_from_slice(part.as_bytes());
        }
        frame.extend_from_slice(data);
        frame
    }

    /// Splits a server binary frame into its kind, `count` fields and data.
    fn split_server_frame(frame: &[u8], count: usize) -> (u8, Vec<String>, Vec<u8>) {
        let sizes = &frame[1..=count];
        let mut offset = 1 + count;
        let fields = sizes
            .iter()
            .map(|&size| {
                let field = &frame[offset..offset + usize::from(size)];
                offset += usize::from(size);
                String::from_utf8(field.to_vec()).unwrap()
            })
            .collect();
        (frame[0], fields, frame[offset..].to_vec())
    }

    /// Whatever a decoder accepts satisfies the protocol's rules on its fields.
    fn assert_well_formed(message: &Message) {
        for field in [&message.join_ref, &message.msg_ref].into_iter().flatten() {
            assert!(field.len() <= MAX_FIELD_LEN);
        }
        for field in [&message.topic, &message.event] {
            assert!(!field.is_empty() && field.len() <= MAX_FIELD_LEN);
        }
    }

    proptest! {
        #[test]
        fn any_text_decodes_or_is_refused(s in serializer(), text in any::<String>()) {
            if let Ok(message) = s.decode_text(&text) {
                assert_well_formed(&message);
            }
        }

        #[test]
        fn any_json_decodes_or_is_refused(s in serializer(), value in json()) {
            if let Ok(message) = s.decode_text(&value.to_string()) {
                assert_well_formed(&message);
            }
        }

        #[test]
        fn any_five_values_decode_or_are_refused(fields in vec(json(), 5)) {
            let text = Value::Array(fields).to_string();
            if let Ok(message) = Serializer::V2.decode_text(&text) {
                assert_well_formed(&message);
            }
        }

        /// Frames cut short or with a byte changed: the salvage path reads them again.
        #[test]
        fn damaged_frames_decode_or_are_refused(
            s in serializer(),
            message in message(),
            cut in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let Some(Frame::Text(text)) = s.encode(&push_of(message)) else { panic!("a JSON push encodes as text") };
            let mut bytes = text.into_bytes();
            let at = cut.index(bytes.len());
            let truncated = String::from_utf8_lossy(&bytes[..at]).into_owned();
            let _ = s.decode_text(&truncated);
            bytes[at] = byte;
            let _ = s.decode_text(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn any_bytes_decode_or_are_refused(s in serializer(), bytes in vec(any::<u8>(), 0..600)) {
            if let Ok(message) = s.decode_binary(&bytes) {
                assert_well_formed(&message);
            }
        }

        /// Pushes with plausible headers, so that the field checks are reached.
        #[test]
        fn binary_pushes_with_any_sizes_decode_or_are_refused(
            sizes in any::<[u8; 4]>(),
            rest in vec(any::<u8>(), 0..1100),
        ) {
            let mut frame = vec![KIND_PUSH];
            frame.extend_from_slice(&sizes);
            frame.extend_from_slice(&rest);
            if let Ok(message) = Serializer::V2.decode_binary(&frame) {
                assert_well_formed(&message);
            }
        }

        #[test]
        fn json_pushes_round_trip(s in serializer(), message in message()) {
            let Some(Frame::Text(text)) = s.encode(&push_of(message.clone())) else { panic!("a JSON push encodes as text") };
            let mut expected = message;
            // V1 clients may leave the payload out, so a null payload reads as `{}`.
            if s == Serializer::V1 && expected.payload == Payload::Json(Value::Null) {
                expected.payload = Payload::Json(Value::Object(Map::new()));
            }
            prop_assert_eq!(s.decode_text(&text), Ok(expected));
        }

        #[test]
        fn json_replies_round_trip_as_phx_reply(
            s in serializer(),
            message in message(),
            ok in any::<bool>(),
            encoded in any::<bool>(),
        ) {
            let Payload::Json(response) = message.payload else { unreachable!() };
            let status = if ok { Status::Ok } else { Status::Error };
            let reply = Outbound::Reply {
                join_ref: message.join_ref.clone(),
                msg_ref: message.msg_ref.clone(),
                topic: message.topic.clone(),
                status,
                // The same JSON, once as a value and once already encoded.
                response: if encoded { Payload::encode(&response) } else { Payload::Json(response.clone()) },
            };
            let Some(Frame::Text(text)) = s.encode(&reply) else { panic!("a JSON reply encodes as text") };
            let decoded = s.decode_text(&text).unwrap();
            prop_assert_eq!(
                (decoded.join_ref, decoded.msg_ref, decoded.topic, decoded.event),
                (message.join_ref, message.msg_ref, message.topic, events::REPLY.to_owned())
            );
            prop_assert_eq!(
                decoded.payload,
                Payload::Json(serde_json::json!({"response": response, "status": status.as_str()}))
            );
        }

        #[test]
        fn binary_client_pushes_decode_to_their_parts(
            join_ref in text(),
            msg_ref in text(),
            topic in non_empty_text(),
            event in non_empty_text(),
            data in vec(any::<u8>(), 0..300),
        ) {
            let frame = client_binary_push([&join_ref, &msg_ref, &topic, &event], &data);
            let decoded = Serializer::V2.decode_binary(&frame).unwrap();
            let absent_if_empty = |s: String| (!s.is_empty()).then_some(s);
            prop_assert_eq!(decoded, Message {
                join_ref: absent_if_empty(join_ref),
                msg_ref: absent_if_empty(msg_ref),
                topic,
                event,
                payload: Payload::Binary(Bytes::from(data)),
            });
        }

        #[test]
        fn binary_server_frames_carry_their_parts(
            join_ref in proptest::option::of(text()),
            msg_ref in proptest::option::of(text()),
            topic in non_empty_text(),
            event in non_empty_text(),
            data in vec(any::<u8>(), 0..300),
        ) {
            let payload = Payload::Binary(Bytes::from(data.clone()));
            let reply = Outbound::Reply {
                join_ref: join_ref.clone(),
                msg_ref: msg_ref.clone(),
                topic: topic.clone(),
                status: Status::Ok,
                response: payload.clone(),
            };
            let Some(Frame::Binary(frame)) = Serializer::V2.encode(&reply) else { panic!("binary reply") };
            let fields = vec![opt(&join_ref).to_owned(), opt(&msg_ref).to_owned(), topic.clone(), "ok".to_owned()];
            prop_assert_eq!(split_server_frame(&frame, 4), (KIND_REPLY, fields, data.clone()));

            let push = Outbound::Push {
                join_ref: join_ref.clone(),
                msg_ref: None,
                topic: topic.clone(),
                event: event.clone(),
                payload: payload.clone(),
            };
            let Some(Frame::Binary(frame)) = Serializer::V2.encode(&push) else { panic!("binary push") };
            let fields = vec![opt(&join_ref).to_owned(), topic.clone(), event.clone()];
            prop_assert_eq!(split_server_frame(&frame, 3), (KIND_PUSH, fields, data.clone()));

            let broadcast = Outbound::Broadcast { topic: topic.clone(), event: event.clone(), payload };
            // V1 has no binary frames.
            prop_assert_eq!(Serializer::V1.encode(&broadcast), None);
            let Some(Frame::Binary(frame)) = Serializer::V2.encode(&broadcast) else { panic!("binary broadcast") };
            prop_assert_eq!(split_server_frame(&frame, 2), (KIND_BROADCAST, vec![topic, event], data));
        }
    }
}
