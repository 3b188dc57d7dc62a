//! Frames ⇄ messages: the V1 JSON object serializer, the V2 JSON array serializer and the V2
//! binary format, byte for byte what Phoenix 1.8 and the npm `phoenix` client speak.
//!
//! V2 binary layout (sizes are one byte each, so every field is at most 255 bytes):
//! - client push (kind 0): `0, join_ref_size, ref_size, topic_size, event_size, join_ref, ref, topic, event, data`
//! - server push (kind 0): `0, join_ref_size, topic_size, event_size, join_ref, topic, event, data`
//! - reply (kind 1): `1, join_ref_size, ref_size, topic_size, status_size, join_ref, ref, topic, status, data`
//! - broadcast (kind 2): `2, topic_size, event_size, topic, event, data`

use bytes::Bytes;
use serde::Serialize;
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
    pub reason: String,
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
        let value: Value = serde_json::from_str(text)
            .map_err(|e| DecodeError::new(format!("frame is not JSON: {e}")))?;
        match self {
            Serializer::V2 => decode_v2_array(value),
            Serializer::V1 => decode_v1_object(value),
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

fn decode_v1_object(value: Value) -> Result<Message, DecodeError> {
    let Value::Object(mut map) = value else {
        return Err(DecodeError::new(
            r#"frame is not a {"topic","event","payload","ref"} object"#,
        ));
    };
    let fields = ["join_ref", "ref", "topic", "event", "payload"]
        .map(|key| map.remove(key).unwrap_or(Value::Null));
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
    use crate::phoenix::message::Status;
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
