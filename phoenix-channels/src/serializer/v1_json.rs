//! The V1 JSON format (`vsn` absent or 1.x, Phoenix's `V1.JSONSerializer`): text frames
//! holding a `{"topic","event","payload","ref","join_ref"}` object.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::DecodeError;
use super::json::{self, Fields, FramePayload, message_of};
use crate::message::{Message, Outbound, Payload};

pub fn decode(text: &str) -> Result<Message, DecodeError> {
    json::decode(text, message, raw_fields)
}

/// `{"event","join_ref","payload","ref","topic"}`.
pub fn encode(out: &Outbound) -> String {
    let fields = Fields::of(out);
    let frame = V1Frame {
        event: fields.event,
        join_ref: fields.join_ref,
        payload: fields.payload,
        msg_ref: fields.msg_ref,
        topic: fields.topic,
    };
    serde_json::to_string(&frame).expect("JSON values always serialize")
}

/// A V1 frame object (keys in the order the JSON value form printed them).
#[derive(Serialize)]
struct V1Frame<'a> {
    event: &'a str,
    join_ref: Option<&'a str>,
    payload: FramePayload<'a>,
    #[serde(rename = "ref")]
    msg_ref: Option<&'a str>,
    topic: &'a str,
}

/// The keys of a V1 frame object, in the order of a V2 array's fields.
const V1_KEYS: [&str; 5] = ["join_ref", "ref", "topic", "event", "payload"];

fn message(value: Value) -> Result<Message, DecodeError> {
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

fn raw_fields(text: &str) -> Option<[Option<&RawValue>; 5]> {
    let map = serde_json::from_str::<HashMap<String, &RawValue>>(text).ok()?;
    Some(V1_KEYS.map(|key| map.get(key).copied()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{Frame, Serializer};
    use crate::message::Outbound;

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
}
