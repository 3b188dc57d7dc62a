//! The V2 binary format: a client push is `0, join_ref_size, ref_size,
//! topic_size, event_size, join_ref, ref, topic, event, data`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_channels::{
    message::{Outbound, Payload},
    serializer::{Frame, Serializer},
};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Serializer::V2.decode_binary(data) else {
        return;
    };
    hangman_fuzz::check_fields(&message);
    let Payload::Binary(bytes) = &message.payload else {
        panic!("a binary frame decoded to a JSON payload");
    };
    // Decoding is exact: the fields and the data, written back in the client
    // push layout, are the frame itself (an absent ref is an empty one).
    let fields = [
        message.join_ref.as_deref().unwrap_or(""),
        message.msg_ref.as_deref().unwrap_or(""),
        &message.topic,
        &message.event,
    ];
    let mut frame = vec![0];
    frame.extend(fields.map(|field| u8::try_from(field.len()).unwrap()));
    for field in fields {
        frame.extend_from_slice(field.as_bytes());
    }
    frame.extend_from_slice(bytes);
    assert_eq!(frame, data);
    // And the same message, pushed back, fits a binary frame.
    let push = Outbound::Push {
        join_ref: message.join_ref.clone(),
        msg_ref: None,
        topic: message.topic.clone(),
        event: message.event.clone(),
        payload: message.payload.clone(),
    };
    assert!(matches!(
        Serializer::V2.encode(&push),
        Some(Frame::Binary(_))
    ));
});
