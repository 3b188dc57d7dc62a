//! The binary frames of the V2 format, which carry a payload of raw bytes. Sizes are one byte
//! each, so every field is at most 255 bytes:
//! - client push (kind 0): `0, join_ref_size, ref_size, topic_size, event_size, join_ref, ref, topic, event, data`
//! - server push (kind 0): `0, join_ref_size, topic_size, event_size, join_ref, topic, event, data`
//! - reply (kind 1): `1, join_ref_size, ref_size, topic_size, status_size, join_ref, ref, topic, status, data`
//! - broadcast (kind 2): `2, topic_size, event_size, topic, event, data`

use bytes::Bytes;

use super::{DecodeError, DecodeErrorKind, Frame};
use crate::message::{Message, Outbound, Payload};

pub(super) const KIND_PUSH: u8 = 0;
pub(super) const KIND_REPLY: u8 = 1;
pub(super) const KIND_BROADCAST: u8 = 2;

/// Decodes a client's binary push.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
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

/// Encodes a message whose payload is bytes; `None` when a field is too long for its size byte
/// (or, never for the socket, when the payload is JSON).
pub fn encode(out: &Outbound) -> Option<Frame> {
    match out {
        Outbound::Reply {
            response: Payload::Binary(data),
            join_ref,
            msg_ref,
            topic,
            status,
        } => frame(
            KIND_REPLY,
            &[opt(join_ref), opt(msg_ref), topic, status.as_str()],
            data,
        ),
        Outbound::Push {
            payload: Payload::Binary(data),
            join_ref,
            topic,
            event,
            ..
        } => frame(KIND_PUSH, &[opt(join_ref), topic, event], data),
        Outbound::Broadcast {
            payload: Payload::Binary(data),
            topic,
            event,
        } => frame(KIND_BROADCAST, &[topic, event], data),
        _ => None,
    }
}

pub(super) fn opt(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}

fn frame(kind: u8, fields: &[&str], data: &[u8]) -> Option<Frame> {
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{Frame, Serializer};
    use crate::message::{Outbound, Payload, Status};

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
