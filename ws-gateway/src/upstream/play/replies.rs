//! Reading a `Play` stream's replies off its DATA frames: each reply's gRPC frame found, its
//! message decoded with the tally left encoded ([`TallyWire`] reads it where it lies), and its
//! outcome made what the unary call's result would have been.
//!
//! A reply is read from the DATA frame's own bytes. One cut across frames is put together first,
//! its bytes copied once; none may be larger than [`MAX_REPLY`] (tonic's default for a message).

use bytes::{Buf, Bytes, BytesMut};
use hangman_proto::v1::PlayError;
use prost::Message;
use tonic::{Code, Status};

use crate::upstream::tally_wire::TallyWire;
use crate::upstream::{MAKE_MOVE, UpstreamError};

/// The largest reply accepted; a larger one breaks the stream.
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// `hangman.v1.PlayResponse` as the gateway reads it: the game id (the gateway's own) skipped,
/// the tally left encoded.
#[derive(Clone, PartialEq, prost::Message)]
struct PlayReply {
    #[prost(uint64, tag = "1")]
    request_id: u64,
    /// Every occurrence of the `tally` field, encoded. Protobuf merges a message field that
    /// comes more than once into one message, whose encoding is theirs end to end.
    #[prost(bytes = "bytes", repeated, tag = "3")]
    tally: Vec<Bytes>,
    #[prost(message, optional, tag = "4")]
    error: Option<PlayError>,
}

/// What one reply says of its move: the move's request id and its answer.
pub type Answer = (u64, Result<TallyWire, UpstreamError>);

/// The replies of one stream, as its DATA frames bring them.
#[derive(Default)]
pub struct Replies {
    /// The start of a reply cut across DATA frames, waiting for the rest.
    partial: BytesMut,
}

impl Replies {
    /// Hands `answer` every reply completed by `data`, in order. An error breaks the stream:
    /// a frame that cannot be a reply (compressed, too large, not a `PlayResponse`).
    pub fn feed(&mut self, data: Bytes, mut answer: impl FnMut(Answer)) -> Result<(), String> {
        let mut received = if self.partial.is_empty() {
            data
        } else {
            self.partial.extend_from_slice(&data);
            if whole_reply_at_front(&self.partial)?.is_none() {
                return Ok(());
            }
            self.partial.split().freeze()
        };
        let read = read_whole_replies(&mut received, &mut answer);
        self.partial.extend_from_slice(&received);
        read
    }
}

/// The length of the whole reply's frame `received` starts with, if it does.
fn whole_reply_at_front(received: &[u8]) -> Result<Option<usize>, String> {
    let Some(header) = received.get(..5) else {
        return Ok(None);
    };
    if header[0] != 0 {
        return Err("a compressed Play reply (none was asked for)".into());
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_REPLY {
        return Err(format!("a Play reply of {len} bytes (at most {MAX_REPLY})"));
    }
    Ok((received.len() >= 5 + len).then_some(5 + len))
}

/// Answers every whole reply at the front of `received`, leaving a partial one there.
fn read_whole_replies(received: &mut Bytes, answer: &mut impl FnMut(Answer)) -> Result<(), String> {
    while let Some(frame_len) = whole_reply_at_front(received)? {
        let mut message = received.split_to(frame_len);
        message.advance(5);
        let reply = PlayReply::decode(message)
            .map_err(|err| format!("a Play reply that does not decode: {err}"))?;
        answer((reply.request_id, outcome(reply.tally, reply.error)));
    }
    Ok(())
}

/// A reply's outcome as the unary call's result would be. A tally that does not decode fails
/// its own move only.
fn outcome(tally: Vec<Bytes>, error: Option<PlayError>) -> Result<TallyWire, UpstreamError> {
    let unavailable = |why: &str| UpstreamError::Unavailable(why.to_owned());
    let tally = match (tally.as_slice(), error) {
        ([], Some(error)) => return Err(refusal(error)),
        ([], None) => return Err(unavailable("a Play reply without an outcome")),
        // The two are one `oneof`: a reply with both says neither.
        (_, Some(_)) => return Err(unavailable("a Play reply with both a tally and an error")),
        ([tally], None) => tally.clone(),
        (parts, None) => parts.concat().into(),
    };
    TallyWire::new(tally).map_err(|err| {
        UpstreamError::Unavailable(format!("a Play reply whose tally does not decode: {err}"))
    })
}

/// The status the unary call would have ended with, read the same way.
fn refusal(error: PlayError) -> UpstreamError {
    let code = Code::from_i32(error.code);
    let status = match error.field.as_str() {
        "" => Status::new(code, error.message),
        field => hangman_proto::invalid_field(field, error.message),
    };
    UpstreamError::from_status(&MAKE_MOVE, &status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangman_proto::v1::{PlayResponse, Tally, play_response};

    fn frame(message: &[u8]) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message);
        frame
    }

    fn contract_reply(request_id: u64, outcome: play_response::Outcome) -> Vec<u8> {
        let reply = PlayResponse {
            request_id,
            game_id: "a-game".into(),
            outcome: Some(outcome),
        };
        reply.encode_to_vec()
    }

    fn tally(letters: &[&str]) -> Tally {
        Tally {
            letters: letters.iter().map(|l| l.to_string()).collect(),
            used: vec!["a".into()],
            version: 3,
            ..Tally::default()
        }
    }

    fn letters(answer: &Result<TallyWire, UpstreamError>) -> Vec<&str> {
        answer.as_ref().expect("a tally").letters().collect()
    }

    /// Three replies: a tally, a tally whose string is not UTF-8, a refused guess.
    fn three_replies() -> Vec<u8> {
        let bad_tally = PlayReply {
            request_id: 2,
            tally: vec![Bytes::from_static(b"\x1a\x01\xff")],
            error: None,
        };
        let refused = PlayError {
            code: Code::InvalidArgument as i32,
            message: "one letter a-z".into(),
            field: "guess".into(),
        };
        [
            frame(&contract_reply(
                1,
                play_response::Outcome::Tally(tally(&["_", "a"])),
            )),
            frame(&bad_tally.encode_to_vec()),
            frame(&contract_reply(3, play_response::Outcome::Error(refused))),
        ]
        .concat()
    }

    #[test]
    fn replies_cut_anywhere_across_frames_each_answer_their_own_move() {
        let stream = three_replies();
        for first in 0..=stream.len() {
            for second in first..=stream.len() {
                let mut read = Replies::default();
                let mut answers = Vec::new();
                for chunk in [&stream[..first], &stream[first..second], &stream[second..]] {
                    read.feed(Bytes::copy_from_slice(chunk), |answer| answers.push(answer))
                        .unwrap();
                }
                assert!(read.partial.is_empty(), "cut at {first} and {second}");
                let ids: Vec<u64> = answers.iter().map(|(id, _)| *id).collect();
                assert_eq!(ids, [1, 2, 3], "cut at {first} and {second}");
                assert_eq!(letters(&answers[0].1), ["_", "a"]);
                let Err(UpstreamError::Unavailable(why)) = &answers[1].1 else {
                    panic!("the bad tally fails its move: {:?}", answers[1].1);
                };
                assert!(why.contains("does not decode"), "{why}");
                assert!(
                    matches!(answers[2].1, Err(UpstreamError::InvalidGuess(_))),
                    "{:?}",
                    answers[2].1
                );
            }
        }
    }

    #[test]
    fn a_tally_given_twice_is_one_merged_as_protobuf_merges_it() {
        let first = Tally {
            game_state: 2,
            turns_left: 5,
            ..Tally::default()
        };
        let then = tally(&["_", "b"]);
        let message = [
            contract_reply(7, play_response::Outcome::Tally(first)),
            contract_reply(7, play_response::Outcome::Tally(then)),
        ]
        .concat();
        let Some(play_response::Outcome::Tally(merged)) =
            PlayResponse::decode(&message[..]).unwrap().outcome
        else {
            panic!("prost merges the two");
        };
        let mut answers = Vec::new();
        Replies::default()
            .feed(Bytes::from(frame(&message)), |answer| answers.push(answer))
            .unwrap();
        let read = answers[0].1.as_ref().unwrap();
        assert_eq!(
            (read.game_state(), read.turns_left(), read.version()),
            (merged.game_state, merged.turns_left, merged.version)
        );
        assert_eq!(letters(&answers[0].1), merged.letters);
    }

    #[test]
    fn a_reply_with_a_tally_and_an_error_or_neither_fails_its_move_only() {
        let both = [
            contract_reply(1, play_response::Outcome::Tally(tally(&["a"]))),
            contract_reply(1, play_response::Outcome::Error(PlayError::default())),
        ]
        .concat();
        let neither = PlayResponse {
            request_id: 2,
            ..PlayResponse::default()
        }
        .encode_to_vec();
        let mut answers = Vec::new();
        Replies::default()
            .feed(
                Bytes::from([frame(&both), frame(&neither)].concat()),
                |answer| answers.push(answer),
            )
            .unwrap();
        assert_eq!(answers.len(), 2);
        for (_, answer) in answers {
            assert!(
                matches!(answer, Err(UpstreamError::Unavailable(_))),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn a_reply_over_the_limit_or_compressed_breaks_the_stream_before_it_arrives_whole() {
        let mut too_large = vec![0];
        too_large.extend_from_slice(&(MAX_REPLY as u32 + 1).to_be_bytes());
        let compressed = [1, 0, 0, 0, 9];
        for start in [&too_large[..], &compressed[..]] {
            let fed =
                Replies::default().feed(Bytes::copy_from_slice(start), |_| panic!("no answer"));
            assert!(fed.is_err(), "{start:?}");
            // Also when its header comes cut across frames.
            let mut read = Replies::default();
            read.feed(Bytes::copy_from_slice(&start[..2]), |_| {})
                .unwrap();
            assert!(
                read.feed(Bytes::copy_from_slice(&start[2..]), |_| {})
                    .is_err()
            );
        }
    }
}
