//! A tally as the channels send it:
//! `{"game_state":"good_guess","turns_left":6,"letters":["_","e","_"],"used":["a","e"],"version":2}`,
//! plus `"word"` once the game is won or lost. Of two tallies of one game, the one with the
//! higher `version` is the newer.

use hangman_proto::v1::{GameState, Tally};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};

use phoenix_channels::message::Payload;

/// The lower-case state name of docs/design.md §3 (`unspecified` for a value this build does
/// not know).
pub fn state_name(state: i32) -> &'static str {
    GameState::try_from(state)
        .unwrap_or(GameState::Unspecified)
        .snake_name()
}

/// A tally as JSON, written straight from the gRPC message.
struct TallyJson<'a>(&'a Tally);

impl Serialize for TallyJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tally = self.0;
        // Keys in the order a JSON object value prints them (sorted).
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("game_state", state_name(tally.game_state))?;
        map.serialize_entry("letters", &tally.letters)?;
        map.serialize_entry("turns_left", &tally.turns_left)?;
        map.serialize_entry("used", &tally.used)?;
        map.serialize_entry("version", &tally.version)?;
        if let Some(word) = &tally.word {
            map.serialize_entry("word", word)?;
        }
        map.end()
    }
}

pub fn to_json(tally: &Tally) -> Value {
    serde_json::to_value(TallyJson(tally)).expect("a tally serializes")
}

/// The tally encoded once, for a reply and the push that repeats it.
pub fn encoded(tally: &Tally) -> Payload {
    Payload::encode(&TallyJson(tally))
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
}
