//! A tally as the channels send it:
//! `{"game_state":"good_guess","turns_left":6,"letters":["_","e","_"],"used":["a","e"]}`,
//! plus `"word"` once the game is won or lost.

use hangman_proto::v1::{GameState, Tally};
use serde_json::{Map, Value, json};

/// The lower-case state name of DESIGN.md §3.
pub fn state_name(state: i32) -> &'static str {
    match GameState::try_from(state).unwrap_or(GameState::Unspecified) {
        GameState::Initializing => "initializing",
        GameState::GoodGuess => "good_guess",
        GameState::BadGuess => "bad_guess",
        GameState::AlreadyUsed => "already_used",
        GameState::Won => "won",
        GameState::Lost => "lost",
        GameState::Unspecified => "unspecified",
    }
}

pub fn to_json(tally: &Tally) -> Value {
    let strings = |list: &[String]| list.iter().cloned().map(Value::String).collect();
    let mut map = Map::new();
    map.insert("game_state".into(), state_name(tally.game_state).into());
    map.insert("turns_left".into(), tally.turns_left.into());
    map.insert("letters".into(), Value::Array(strings(&tally.letters)));
    map.insert("used".into(), Value::Array(strings(&tally.used)));
    if let Some(word) = &tally.word {
        map.insert("word".into(), word.clone().into());
    }
    Value::Object(map)
}

/// The join (and `new_game`) response: `{"game_id": id, "tally": {...}}`.
pub fn with_game_id(game_id: &str, tally: &Tally) -> Value {
    json!({"game_id": game_id, "tally": to_json(tally)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_only_when_present() {
        let mut tally = Tally {
            game_state: GameState::GoodGuess as i32,
            turns_left: 6,
            letters: vec!["_".into(), "e".into()],
            used: vec!["a".into(), "e".into()],
            word: None,
        };
        assert_eq!(
            to_json(&tally),
            json!({"game_state":"good_guess","turns_left":6,"letters":["_","e"],"used":["a","e"]})
        );
        tally.word = Some("be".into());
        tally.game_state = GameState::Lost as i32;
        assert_eq!(to_json(&tally)["word"], "be");
        assert_eq!(to_json(&tally)["game_state"], "lost");
    }
}
