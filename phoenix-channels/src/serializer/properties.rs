//! Property tests of every serializer: every decoder takes any input without panicking, and
//! what the encoders write decodes back to the same message.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::v2_binary::{KIND_BROADCAST, KIND_PUSH, KIND_REPLY, opt};
use super::*;
use crate::message::{Payload, Status, events};

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

    /// A V2 frame the fast path reads (a valid one) decodes as the general path decodes it,
    /// and any other gets the general path's answer: valid messages, then any five (or four,
    /// or six) JSON values.
    #[test]
    fn v2_frames_decode_as_the_general_path_decodes_them(
        message in message(),
        fields in vec(json(), 4..7),
    ) {
        let Payload::Json(payload) = &message.payload else { unreachable!() };
        let valid = serde_json::to_string(&(
            &message.join_ref, &message.msg_ref, &message.topic, &message.event, payload,
        )).unwrap();
        prop_assert_eq!(v2_json::decode(&valid), Ok(message));
        prop_assert_eq!(v2_json::decode(&valid), v2_json::decode_in_general(&valid));
        let any = Value::Array(fields).to_string();
        prop_assert_eq!(v2_json::decode(&any), v2_json::decode_in_general(&any));
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
