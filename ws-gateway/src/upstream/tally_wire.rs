//! A move's tally as it came off the `Play` stream: the encoded `hangman.v1.Tally`, checked
//! once, then read field by field where it lies.
//!
//! Why not decode it into the contract's `Tally`: a tally carries a string per letter of the
//! word and per letter used, thirty or so. Decoded as `String`s (an allocation, a copy and a
//! growing `Vec` each), then written out as JSON and dropped, they were about a third of the
//! gateway's instructions a move; the gateway does nothing with a move's tally but write it as
//! JSON. Read from the bytes, each costs a key, a length, a UTF-8 check and a place in a list
//! of where the strings lie. This is what a gRPC-JSON transcoder does (Envoy's, say), for
//! the one message the gateway sees per move.
//!
//! Reading follows protobuf's rules as prost's decoding of `Tally` does: fields in any order,
//! the last of a scalar wins, unknown fields skipped, and a message prost would refuse (bad
//! wire type, truncated, strings that are not UTF-8) is refused. The tests hold it to prost's
//! decoding of the same bytes, fields written in any order by any sender. (Within a
//! `PlayResponse`, a tally given twice is merged first: `play::replies`.)

use std::ops::Range;

use bytes::Bytes;
use hangman_proto::v1::Tally;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use prost::{DecodeError, Message};

const GAME_STATE: u32 = 1;
const TURNS_LEFT: u32 = 2;
const LETTERS: u32 = 3;
const USED: u32 = 4;
const WORD: u32 = 5;
const VERSION: u32 = 6;

/// Why an encoded tally was refused.
#[derive(Debug, thiserror::Error)]
pub enum BadTally {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("field {tag} with the wrong wire type {wire_type:?}")]
    WireType { tag: u32, wire_type: WireType },
    #[error("a string past the end of the message")]
    PastTheEnd,
    #[error("a string that is not UTF-8")]
    NotUtf8,
}

/// An encoded `hangman.v1.Tally`, checked: its scalars read, and where each string lies.
#[derive(Debug, Clone)]
pub struct TallyWire {
    bytes: Bytes,
    game_state: i32,
    turns_left: u32,
    version: u64,
    letters: Vec<Range<usize>>,
    used: Vec<Range<usize>>,
    word: Option<Range<usize>>,
}

impl TallyWire {
    /// Checks an encoded `Tally`, reads its scalars and finds its strings.
    pub fn new(bytes: Bytes) -> Result<Self, BadTally> {
        let mut tally = TallyWire {
            bytes: Bytes::new(),
            game_state: 0,
            turns_left: 0,
            version: 0,
            // Room for a long word and the whole alphabet, so that the lists do not grow.
            letters: Vec::with_capacity(16),
            used: Vec::with_capacity(26),
            word: None,
        };
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (tag, wire_type) = decode_key(&mut rest)?;
            match (tag, wire_type) {
                (GAME_STATE, WireType::Varint) => {
                    tally.game_state = decode_varint(&mut rest)? as i32
                }
                (TURNS_LEFT, WireType::Varint) => {
                    tally.turns_left = decode_varint(&mut rest)? as u32
                }
                (VERSION, WireType::Varint) => tally.version = decode_varint(&mut rest)?,
                (LETTERS | USED | WORD, WireType::LengthDelimited) => {
                    let len = decode_varint(&mut rest)?;
                    if len > rest.len() as u64 {
                        return Err(BadTally::PastTheEnd);
                    }
                    let (string, after) = rest.split_at(len as usize);
                    // ASCII (a letter, `_`) is UTF-8, and cheaper to tell.
                    if !string.is_ascii() {
                        std::str::from_utf8(string).map_err(|_| BadTally::NotUtf8)?;
                    }
                    let start = bytes.len() - rest.len();
                    let at = start..start + string.len();
                    match tag {
                        LETTERS => tally.letters.push(at),
                        USED => tally.used.push(at),
                        _ => tally.word = Some(at),
                    }
                    rest = after;
                }
                (GAME_STATE | TURNS_LEFT | VERSION | LETTERS | USED | WORD, _) => {
                    return Err(BadTally::WireType { tag, wire_type });
                }
                _ => skip_field(wire_type, tag, &mut rest, DecodeContext::default())?,
            }
        }
        tally.bytes = bytes;
        Ok(tally)
    }

    /// The state as the contract's enum value (an unknown value kept as it came).
    pub fn game_state(&self) -> i32 {
        self.game_state
    }

    pub fn turns_left(&self) -> u32 {
        self.turns_left
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// One string per letter of the word: the letter once guessed, else `_`.
    pub fn letters(&self) -> Strings<'_> {
        Strings {
            bytes: &self.bytes,
            at: self.letters.iter(),
        }
    }

    /// The letters guessed so far.
    pub fn used(&self) -> Strings<'_> {
        Strings {
            bytes: &self.bytes,
            at: self.used.iter(),
        }
    }

    /// The word, once the game is won or lost.
    pub fn word(&self) -> Option<&str> {
        self.word.clone().map(|at| str_at(&self.bytes, at))
    }
}

/// A tally from a unary call (a game service without `Play`), in the same form.
impl From<&Tally> for TallyWire {
    fn from(tally: &Tally) -> Self {
        TallyWire::new(tally.encode_to_vec().into()).expect("prost's own encoding reads back")
    }
}

/// The strings of one repeated field of a checked tally, in order.
#[derive(Clone)]
pub struct Strings<'a> {
    bytes: &'a [u8],
    at: std::slice::Iter<'a, Range<usize>>,
}

impl<'a> Iterator for Strings<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let at = self.at.next()?;
        Some(str_at(self.bytes, at.clone()))
    }
}

/// A string that [`TallyWire::new`] found in `bytes` and checked UTF-8. Safe Rust makes a
/// `str` of bytes only by checking them, so they are checked again here (a byte or two each);
/// a string that failed the first check never got a place to be read from.
fn str_at(bytes: &[u8], at: Range<usize>) -> &str {
    std::str::from_utf8(&bytes[at]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangman_proto::v1::GameState;
    use proptest::prelude::*;

    /// What the gateway reads of `tally`, to compare with the contract's decoding.
    fn read(wire: &TallyWire) -> Tally {
        Tally {
            game_state: wire.game_state(),
            turns_left: wire.turns_left(),
            letters: wire.letters().map(String::from).collect(),
            used: wire.used().map(String::from).collect(),
            word: wire.word().map(String::from),
            version: wire.version(),
        }
    }

    #[test]
    fn a_tally_reads_field_for_field() {
        let tally = Tally {
            game_state: GameState::Won as i32,
            turns_left: 3,
            letters: vec!["b".into(), "é".into()],
            used: vec!["b".into(), "e".into(), "\"q".into()],
            word: Some("bé".into()),
            version: 9,
        };
        assert_eq!(read(&TallyWire::from(&tally)), tally);
        assert_eq!(read(&TallyWire::from(&Tally::default())), Tally::default());
    }

    #[test]
    fn fields_in_any_order_the_last_scalar_winning_and_unknown_ones_skipped() {
        // used "a", an unknown field 9 (a string), turns_left 4, letters "_", turns_left 2.
        let bytes = [
            0x22, 1, b'a', 0x4a, 2, b'z', b'z', 0x10, 4, 0x1a, 1, b'_', 0x10, 2,
        ];
        let wire = TallyWire::new(Bytes::copy_from_slice(&bytes)).unwrap();
        assert_eq!(read(&wire), Tally::decode(&bytes[..]).unwrap());
        assert_eq!(wire.turns_left(), 2);
        assert_eq!(wire.letters().collect::<Vec<_>>(), ["_"]);
    }

    #[test]
    fn what_prost_refuses_is_refused() {
        for bytes in [
            &[0x1a, 5, b'a'][..], // a string past the end
            &[0x1a, 1, 0xff][..], // not UTF-8
            &[0x18, 1][..],       // letters as a varint
            &[0x08][..],          // a key without its value
            &[0x0c][..],          // game_state as an end-group
            &[0x4c][..],          // an end-group of an unknown field, with no start
            &[0x4b, 0x08][..],    // a group of an unknown field, never ended
        ] {
            assert!(Tally::decode(bytes).is_err(), "{bytes:?}");
            assert!(
                TallyWire::new(Bytes::copy_from_slice(bytes)).is_err(),
                "{bytes:?}"
            );
        }
    }

    fn any_tally() -> impl Strategy<Value = Tally> {
        (
            any::<i32>(),
            any::<u32>(),
            proptest::collection::vec(".{0,3}", 0..30),
            proptest::collection::vec(".{0,3}", 0..30),
            proptest::option::of(".{0,12}"),
            any::<u64>(),
        )
            .prop_map(
                |(game_state, turns_left, letters, used, word, version)| Tally {
                    game_state,
                    turns_left,
                    letters,
                    used,
                    word,
                    version,
                },
            )
    }

    proptest! {
        #[test]
        fn any_tally_reads_back_as_prost_decodes_it(tally in any_tally()) {
            prop_assert_eq!(read(&TallyWire::from(&tally)), tally);
        }
    }

    proptest! {
        // More cases than the default: most random fields make a message prost refuses, and
        // the accepted ones are what tell a scalar given twice or a skipped group apart.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn any_fields_in_any_order_cut_anywhere_are_refused_or_read_as_prost_reads_them(
            fields in proptest::collection::vec(any_field(), 0..12),
            cut in any::<proptest::sample::Index>(),
            cut_it in any::<bool>(),
        ) {
            let mut bytes = Vec::new();
            for field in &fields {
                put(field, &mut bytes);
            }
            if cut_it && !bytes.is_empty() {
                bytes.truncate(cut.index(bytes.len()));
            }
            let wire = TallyWire::new(Bytes::from(bytes.clone()));
            match Tally::decode(&bytes[..]) {
                Ok(tally) => prop_assert_eq!(read(&wire.unwrap()), tally),
                Err(_) => prop_assert!(wire.is_err()),
            }
        }
    }

    /// A field as any sender might write it: a tally's own tag or another, any wire type, groups
    /// of fields, an end-group with no start, a wire type that does not exist.
    #[derive(Debug, Clone)]
    enum Field {
        Varint(u32, u64),
        Delimited(u32, Vec<u8>),
        Fixed32(u32),
        Fixed64(u32),
        Group(u32, Vec<Field>),
        StrayEndGroup(u32),
        NoSuchWireType(u32, u8),
    }

    fn put_key(tag: u32, wire_type: u8, out: &mut Vec<u8>) {
        prost::encoding::encode_varint(u64::from(tag) << 3 | u64::from(wire_type), out);
    }

    fn put(field: &Field, out: &mut Vec<u8>) {
        match field {
            Field::Varint(tag, value) => {
                put_key(*tag, 0, out);
                prost::encoding::encode_varint(*value, out);
            }
            Field::Delimited(tag, bytes) => {
                put_key(*tag, 2, out);
                prost::encoding::encode_varint(bytes.len() as u64, out);
                out.extend_from_slice(bytes);
            }
            Field::Fixed32(tag) => {
                put_key(*tag, 5, out);
                out.extend_from_slice(&[1, 2, 3, 4]);
            }
            Field::Fixed64(tag) => {
                put_key(*tag, 1, out);
                out.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            }
            Field::Group(tag, fields) => {
                put_key(*tag, 3, out);
                for field in fields {
                    put(field, out);
                }
                put_key(*tag, 4, out);
            }
            Field::StrayEndGroup(tag) => put_key(*tag, 4, out),
            Field::NoSuchWireType(tag, wire_type) => {
                put_key(*tag, *wire_type, out);
                out.push(1);
            }
        }
    }

    fn any_field() -> impl Strategy<Value = Field> {
        // Mostly the tally's own six tags, some unknown ones, the largest tag there is.
        let tag = || prop_oneof![4 => 1u32..=7, 1 => Just(9u32), 1 => Just((1u32 << 29) - 1)];
        let value = prop_oneof![
            any::<u64>(),
            any::<i32>().prop_map(|negative| negative as i64 as u64),
            0u64..300,
        ];
        // Mostly UTF-8, so that most messages are ones prost accepts.
        let bytes = prop_oneof![
            4 => ".{0,3}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..3),
        ];
        let leaf = prop_oneof![
            6 => (tag(), value).prop_map(|(tag, value)| Field::Varint(tag, value)),
            6 => (tag(), bytes).prop_map(|(tag, bytes)| Field::Delimited(tag, bytes)),
            1 => tag().prop_map(Field::Fixed32),
            1 => tag().prop_map(Field::Fixed64),
            1 => tag().prop_map(Field::StrayEndGroup),
            1 => (tag(), 6u8..=7).prop_map(|(tag, wire_type)| Field::NoSuchWireType(tag, wire_type)),
        ];
        leaf.prop_recursive(3, 16, 4, move |inner| {
            (tag(), proptest::collection::vec(inner, 0..4))
                .prop_map(|(tag, fields)| Field::Group(tag, fields))
        })
    }
}
