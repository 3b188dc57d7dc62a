//! What the fuzz targets share: the checks on a decoded Phoenix message, and the
//! html-gallows harness (a cookie key, a sealed session, the app in-process).

use serde_json::Value;
use phoenix_channels::{
    message::{Message, Outbound, Payload},
    serializer::{Frame, MAX_FIELD_LEN, Serializer},
};

/// What every decoded message must satisfy, whatever the frame: a topic and an
/// event, non-empty, and no field longer than the protocol allows.
pub fn check_fields(message: &Message) {
    assert!(!message.topic.is_empty() && message.topic.len() <= MAX_FIELD_LEN);
    assert!(!message.event.is_empty() && message.event.len() <= MAX_FIELD_LEN);
    for field in [&message.join_ref, &message.msg_ref].into_iter().flatten() {
        assert!(field.len() <= MAX_FIELD_LEN);
    }
}

/// A JSON message decoded by `serializer`, sent back as a push and decoded
/// again, is the same message: what the gateway reads it can also write.
pub fn check_json_round_trip(serializer: Serializer, message: &Message) {
    let Payload::Json(payload) = &message.payload else {
        panic!("a text frame decoded to a non-JSON payload");
    };
    let push = Outbound::Push {
        join_ref: message.join_ref.clone(),
        msg_ref: message.msg_ref.clone(),
        topic: message.topic.clone(),
        event: message.event.clone(),
        payload: message.payload.clone(),
    };
    let Some(Frame::Text(text)) = serializer.encode(&push) else {
        panic!("a JSON push must encode as a text frame");
    };
    let again = serializer
        .decode_text(&text)
        .unwrap_or_else(|error| panic!("{text} does not decode again: {error}"));
    assert_eq!(again.join_ref, message.join_ref);
    assert_eq!(again.msg_ref, message.msg_ref);
    assert_eq!(again.topic, message.topic);
    assert_eq!(again.event, message.event);
    match &again.payload {
        Payload::Json(value) => assert!(same_json(value, payload), "{value} != {payload}"),
        _ => panic!("the payload came back as another kind"),
    }
}

/// Equal JSON values, except that a float may come back one unit in the last
/// place off: serde_json (without its `float_roundtrip` feature) does not
/// always read a float's shortest form back to the same float. Found by these
/// targets (`corpus/*/float_*`); README.md says more.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x - y).abs() <= 2.0 * f64::EPSILON * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, v)| y.get(key).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// A JSON text frame as the gateway gets it: a WebSocket text frame is valid
/// UTF-8 before any serializer sees it.
pub fn fuzz_text_frame(serializer: Serializer, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serializer.decode_text(text) {
        Ok(message) => {
            check_fields(&message);
            check_json_round_trip(serializer, &message);
        }
        Err(error) => assert!(!error.reason.is_empty()),
    }
}

pub mod gallows;
