//! What the V1 and V2 JSON formats share: the checks on a message's five fields, the salvage
//! of whatever can be read from a frame that is not one, and payloads written as they are.

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{DecodeError, DecodeErrorKind, MAX_FIELD_LEN};
use crate::message::{Message, Outbound, Payload, events};

/// Decodes a JSON text frame: `message` reads a parsed frame; when the text does not parse,
/// `raw_fields` reads it again as the five fields' raw JSON (`[join_ref, ref, topic, event,
/// payload]`, absent ones `None`), or `None` when not even that shape reads.
pub(super) fn decode(
    text: &str,
    message: fn(Value) -> Result<Message, DecodeError>,
    raw_fields: for<'a> fn(&'a str) -> Option<[Option<&'a RawValue>; 5]>,
) -> Result<Message, DecodeError> {
    match serde_json::from_str(text) {
        Ok(value) => message(value),
        Err(err) => Err(salvage_unparsable(raw_fields(text), &err)),
    }
}

/// A frame serde_json refuses may still be a message whose payload alone is bad, such as a
/// guess with a lone surrogate (`"\ud83d"`, which is no Unicode character). serde_json's
/// `RawValue` only checks a value's syntax, so the frame is read again as raw fields and
/// each field parsed on its own: when the refs and topic can be read, the error reply
/// reaches the client's push instead of topic `phoenix` with ref null.
fn salvage_unparsable(raw: Option<[Option<&RawValue>; 5]>, err: &serde_json::Error) -> DecodeError {
    let not_json = || DecodeError::new(format!("frame is not JSON: {err}"));
    let Some(raw) = raw else {
        return not_json();
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

/// A reply's payload, `{"response": ..., "status": "ok"}`.
#[derive(Serialize)]
pub(super) struct ReplyPayload<'a> {
    response: JsonPayload<'a>,
    status: &'a str,
}

/// A payload in a JSON frame: its value, its encoded text as is, or `null` for bytes (which
/// only binary frames carry).
pub(super) struct JsonPayload<'a>(&'a Payload);

impl Serialize for JsonPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Payload::Json(value) => value.serialize(serializer),
            Payload::Encoded(raw) => raw.serialize(serializer),
            Payload::Binary(_) => serializer.serialize_unit(),
        }
    }
}

/// The payload of a JSON frame: a reply's `{response, status}` or any other message's own.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum FramePayload<'a> {
    Reply(ReplyPayload<'a>),
    Own(JsonPayload<'a>),
}

/// A message as the five fields of a JSON frame, borrowed: the frame is written straight from
/// them, with no intermediate JSON value.
pub(super) struct Fields<'a> {
    pub join_ref: Option<&'a str>,
    pub msg_ref: Option<&'a str>,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: FramePayload<'a>,
}

impl<'a> Fields<'a> {
    pub(super) fn of(out: &'a Outbound) -> Self {
        match out {
            Outbound::Reply {
                join_ref,
                msg_ref,
                topic,
                status,
                response,
            } => Fields {
                join_ref: join_ref.as_deref(),
                msg_ref: msg_ref.as_deref(),
                topic,
                event: events::REPLY,
                payload: FramePayload::Reply(ReplyPayload {
                    response: JsonPayload(response),
                    status: status.as_str(),
                }),
            },
            Outbound::Push {
                join_ref,
                msg_ref,
                topic,
                event,
                payload,
            } => Fields {
                join_ref: join_ref.as_deref(),
                msg_ref: msg_ref.as_deref(),
                topic,
                event,
                payload: FramePayload::Own(JsonPayload(payload)),
            },
            Outbound::Broadcast {
                topic,
                event,
                payload,
            } => Fields {
                join_ref: None,
                msg_ref: None,
                topic,
                event,
                payload: FramePayload::Own(JsonPayload(payload)),
            },
        }
    }
}

/// Whatever refs and topic can be read from a malformed message, so an error reply can reach it.
pub(super) fn salvage(
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
pub(super) fn message_of(fields: [Value; 5]) -> Result<Message, DecodeError> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Frame, Serializer};
    use super::*;
    use crate::message::Status;

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
}
