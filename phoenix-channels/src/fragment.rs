//! Outgoing messages larger than [`FRAGMENT_SIZE`] leave as fragments (RFC 6455 §5.4): a first
//! frame, then continuation frames, each of at most that many bytes of the message.
//!
//! Why: tungstenite's write buffer grows to the largest frame written through it and never
//! shrinks, so one large message (a big room's `presence_state` is about 90 bytes a member:
//! 450 KB at 5 000) would keep that much memory in its connection for the connection's life.
//! In fragments, it never holds more than a fragment and what is already waiting. Clients
//! (browsers, the npm `phoenix` client, tungstenite) put the message back together; a text
//! fragment may end inside a UTF-8 sequence, only the whole message must be valid.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The most bytes of a message one frame carries: the connection's write buffer size, the
/// most it then keeps. In a room of 5 000 (450 KB `presence_state`s), gateway RSS per member
/// was 332 KiB unfragmented, 34-43 KiB in 16 KiB fragments, 21-23 KiB in 4 KiB ones.
pub const FRAGMENT_SIZE: usize = 4 * 1024;

/// The frames that carry `message`: itself when it fits in one fragment.
pub(crate) fn frames(message: Message, max: usize) -> Frames {
    let (opcode, data) = match message {
        Message::Text(text) if text.len() > max => (Data::Text, Bytes::from(text)),
        Message::Binary(data) if data.len() > max => (Data::Binary, data),
        whole => return Frames::Whole(Some(whole)),
    };
    Frames::Fragments {
        data,
        first: Some(opcode),
        max,
    }
}

pub(crate) enum Frames {
    Whole(Option<Message>),
    Fragments {
        /// What is left to send.
        data: Bytes,
        /// The message's opcode, until the first fragment has gone.
        first: Option<Data>,
        max: usize,
    },
}

impl Iterator for Frames {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        match self {
            Frames::Whole(message) => message.take(),
            Frames::Fragments { data, first, max } => {
                if data.is_empty() {
                    return None;
                }
                let chunk = data.split_to((*max).min(data.len()));
                let opcode = OpCode::Data(first.take().unwrap_or(Data::Continue));
                Some(Message::Frame(Frame::message(
                    chunk,
                    opcode,
                    data.is_empty(),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (opcode, fin, payload) of each frame.
    fn sent(message: Message, max: usize) -> Vec<(OpCode, bool, Vec<u8>)> {
        frames(message, max)
            .map(|frame| match frame {
                Message::Frame(frame) => (
                    frame.header().opcode,
                    frame.header().is_final,
                    frame.payload().to_vec(),
                ),
                other => (OpCode::Data(Data::Text), true, other.into_data().to_vec()),
            })
            .collect()
    }

    #[test]
    fn a_message_that_fits_leaves_as_it_is() {
        assert_eq!(
            frames(Message::text("abc"), 3).collect::<Vec<_>>(),
            [Message::text("abc")]
        );
        let binary = Message::binary(vec![1, 2, 3]);
        assert_eq!(frames(binary.clone(), 3).collect::<Vec<_>>(), [binary]);
    }

    #[test]
    fn a_larger_message_leaves_as_a_first_frame_then_continuations_the_last_final() {
        let text = "é".repeat(5); // 10 bytes: fragments end inside characters
        let frames = sent(Message::text(text.clone()), 4);
        let opcodes: Vec<_> = frames.iter().map(|(op, fin, _)| (*op, *fin)).collect();
        assert_eq!(
            opcodes,
            [
                (OpCode::Data(Data::Text), false),
                (OpCode::Data(Data::Continue), false),
                (OpCode::Data(Data::Continue), true),
            ]
        );
        assert!(frames.iter().all(|(_, _, payload)| payload.len() <= 4));
        let whole: Vec<u8> = frames.into_iter().flat_map(|(_, _, p)| p).collect();
        assert_eq!(whole, text.as_bytes());

        let binary = sent(Message::binary(vec![7; 9]), 3);
        assert_eq!(binary.len(), 3);
        assert_eq!(binary[0].0, OpCode::Data(Data::Binary));
        assert!(binary[2].1);
    }
}
