//! A tally as the channels send it:
//! `{"game_state":"good_guess","turns_left":6,"letters":["_","e","_"],"used":["a","e"],"version":2}`,
//! plus `"word"` once the game is won or lost. Of two tallies of one game, the one with the
//! higher `version` is the newer.

use hangman_proto::v1::{GameState, Tally};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::upstream::TallyWire;
use phoenix_channels::message::Payload;

/// The lower-case state name of docs/design.md §3 (`unspecified` for a value this build does
/// not know).
pub fn state_name(state: i32) -> &'static str {
    GameState::try_from(state)
        .unwrap_or(GameState::Unspecified)
        .snake_name()
}

/// A tally as JSON, written straight from the gRPC message: the contract's [`Tally`], or a
/// move's [`TallyWire`] (its strings read where they lie), `S` listing the strings of either.
#[derive(Serialize)]
#[serde(bound = "S: Iterator<Item = &'a str> + Clone")]
pub struct TallyJson<'a, S> {
    // Keys in the order a JSON object value prints them (sorted).
    #[serde(serialize_with = "game_state")]
    game_state: i32,
    #[serde(serialize_with = "strings")]
    letters: S,
    turns_left: u32,
    #[serde(serialize_with = "strings")]
    used: S,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    word: Option<&'a str>,
}

fn game_state<Ser: Serializer>(state: &i32, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
    serializer.serialize_str(state_name(*state))
}

fn strings<'a, S, Ser>(strings: &S, serializer: Ser) -> Result<Ser::Ok, Ser::Error>
where
    S: Iterator<Item = &'a str> + Clone,
    Ser: Serializer,
{
    serializer.collect_seq(strings.clone())
}

type StringsOfTally<'a> = std::iter::Map<std::slice::Iter<'a, String>, fn(&String) -> &str>;

impl<'a> From<&'a Tally> for TallyJson<'a, StringsOfTally<'a>> {
    fn from(tally: &'a Tally) -> Self {
        TallyJson {
            game_state: tally.game_state,
            letters: tally.letters.iter().map(String::as_str),
            turns_left: tally.turns_left,
            used: tally.used.iter().map(String::as_str),
            version: tally.version,
            word: tally.word.as_deref(),
        }
    }
}

impl<'a> From<&'a TallyWire> for TallyJson<'a, crate::upstream::tally_wire::Strings<'a>> {
    fn from(tally: &'a TallyWire) -> Self {
        TallyJson {
            game_state: tally.game_state(),
            letters: tally.letters(),
            turns_left: tally.turns_left(),
            used: tally.used(),
            version: tally.version(),
            word: tally.word(),
        }
    }
}

pub fn to_json(tally: &Tally) -> Value {
    serde_json::to_value(TallyJson::from(tally)).expect("a tally serializes")
}

/// The tally encoded once, for a reply and the push that repeats it.
pub fn encoded<'a, S>(tally: impl Into<TallyJson<'a, S>>) -> Payload
where
    S: Iterator<Item = &'a str> + Clone,
{
    Payload::encode(&tally.into())
}

/// The join (and `new_game`) response: `{"game_id": id, "tally": {...}}`.
pub fn with_game_id(game_id: &str, tally: &Tally) -> Value {
    json!({"game_id": game_id, "tally": to_json(tally)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_always_and_the_word_only_when_present() {
        let mut tally = Tally {
            version: 2,
            game_state: GameState::GoodGuess as i32,
            turns_left: 6,
            letters: vec!["_".into(), "e".into()],
            used: vec!["a".into(), "e".into()],
            word: None,
        };
        assert_eq!(
            to_json(&tally),
            json!({"game_state":"good_guess","turns_left":6,"letters":["_","e"],"used":["a","e"],"version":2})
        );
        tally.word = Some("be".into());
        tally.game_state = GameState::Lost as i32;
        assert_eq!(to_json(&tally)["word"], "be");
        assert_eq!(to_json(&tally)["game_state"], "lost");
    }

    #[test]
    fn encoded_once_reads_as_the_json_value() {
        let tally = Tally {
            version: 0,
            game_state: GameState::Won as i32,
            turns_left: 3,
            letters: vec!["b".into(), "e".into()],
            used: vec!["b".into(), "e".into(), "\"q".into()],
            word: Some("be".into()),
        };
        let Payload::Encoded(raw) = encoded(&tally) else {
            panic!("an encoded payload");
        };
        assert_eq!(raw.get(), serde_json::to_string(&to_json(&tally)).unwrap());
    }

    #[test]
    fn a_move_tally_read_where_it_lies_writes_the_same_json() {
        let mut tally = Tally {
            version: 4,
            game_state: GameState::BadGuess as i32,
            turns_left: 5,
            letters: vec!["_".into(), "é".into()],
            used: vec!["\"q".into(), "é".into()],
            word: None,
        };
        for word in [None, Some("ré".to_owned())] {
            tally.word = word;
            let Payload::Encoded(from_wire) = encoded(&TallyWire::from(&tally)) else {
                panic!("an encoded payload");
            };
            let Payload::Encoded(from_tally) = encoded(&tally) else {
                panic!("an encoded payload");
            };
            assert_eq!(from_wire.get(), from_tally.get());
        }
    }
}
