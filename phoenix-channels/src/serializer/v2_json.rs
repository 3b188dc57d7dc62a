//! The V2 JSON format (`vsn` 2.x, Phoenix's `V2.JSONSerializer`): text frames holding a
//! `[join_ref, ref, topic, event, payload]` array.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{self, Fields, message_of, salvage};
use super::{DecodeError, MAX_FIELD_LEN};
use crate::message::{Message, Outbound, Payload};

pub fn decode(text: &str) -> Result<Message, DecodeError> {
    // A valid frame (every client message, nearly) is read in one pass straight into its
    // message. Anything else goes the general way, which reads it as a JSON value first to
    // tell what is wrong with it and salvage its refs: a frame the fast path refuses gets
    // exactly the general path's answer.
    match serde_json::from_str(text) {
        Ok(Valid(message)) => Ok(message),
        Err(_) => decode_in_general(text),
    }
}

/// Reads any frame as a JSON value, then checks it, saying what is wrong.
pub(super) fn decode_in_general(text: &str) -> Result<Message, DecodeError> {
    json::decode(text, message, raw_fields)
}

/// A frame the protocol allows: `[join_ref, ref, topic, event, payload]` with each ref null
/// or a string, topic and event non-empty strings, no field longer than [`MAX_FIELD_LEN`].
struct Valid(Message);

impl<'de> de::Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ValidVisitor)
    }
}

struct ValidVisitor;

impl<'de> Visitor<'de> for ValidVisitor {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [join_ref, ref, topic, event, payload] array")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Valid, S::Error> {
        fn field<'de, S: SeqAccess<'de>>(seq: &mut S) -> Result<Option<String>, S::Error> {
            match seq.next_element::<Option<String>>()? {
                Some(Some(s)) if s.len() > MAX_FIELD_LEN => Err(de::Error::custom("too long")),
                Some(value) => Ok(value),
                None => Err(de::Error::custom("too few fields")),
            }
        }
        fn required<'de, S: SeqAccess<'de>>(seq: &mut S) -> Result<String, S::Error> {
            field(seq)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| de::Error::custom("missing"))
        }
        let join_ref = field(&mut seq)?;
        let msg_ref = field(&mut seq)?;
        let topic = required(&mut seq)?;
        let event = required(&mut seq)?;
        let payload = seq
            .next_element::<Value>()?
            .ok_or_else(|| de::Error::custom("too few fields"))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("too many fields"));
        }
        Ok(Valid(Message {
            join_ref,
            msg_ref,
            topic,
            event,
            payload: Payload::Json(payload),
        }))
    }
}

/// `[join_ref, ref, topic, event, payload]`.
pub fn encode(out: &Outbound) -> String {
    let fields = Fields::of(out);
    let frame = (
        fields.join_ref,
        fields.msg_ref,
        fields.topic,
        fields.event,
        fields.payload,
    );
    serde_json::to_string(&frame).expect("JSON values always serialize")
}

fn message(value: Value) -> Result<Message, DecodeError> {
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

fn raw_fields(text: &str) -> Option<[Option<&RawValue>; 5]> {
    match serde_json::from_str::<Vec<&RawValue>>(text) {
        Ok(items) if items.len() == 5 => Some(std::array::from_fn(|i| Some(items[i]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Frame, Serializer};
    use crate::message::{Outbound, Payload, Status};

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
}
