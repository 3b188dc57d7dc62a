//! The invariants of docs/design.md §3, checked over random words and guess sequences.

use game_service::rules::{Game, GameState, TURNS};
use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    "[a-z]{1,12}"
}

/// Mostly letters, sometimes something invalid.
fn guesses() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            8 => "[a-z]",
            1 => "[A-Z]",
            1 => "|[0-9]|[a-z]{2,3}| [a-z] |é",
        ],
        0..40,
    )
}

proptest! {
    #[test]
    fn invariants_hold_after_every_move(word in word(), guesses in guesses()) {
        let mut game = Game::new(&word).unwrap();
        let mut previous = game.tally();
        for guess in &guesses {
            let before = game.clone();
            let result = game.make_move(guess);
            let tally = game.tally();

            // An invalid guess changes nothing.
            if result.is_err() {
                prop_assert_eq!(&game, &before);
            }
            // turns_left never grows and never goes below zero.
            prop_assert!(tally.turns_left <= previous.turns_left);
            prop_assert!(tally.turns_left <= TURNS);
            // used is sorted and unique.
            prop_assert!(tally.used.windows(2).all(|w| w[0] < w[1]));
            // A letter shows iff it was used.
            for (shown, actual) in tally.letters.iter().zip(word.chars()) {
                prop_assert_eq!(*shown != '_', tally.used.contains(&actual));
                if *shown != '_' { prop_assert_eq!(*shown, actual); }
            }
            // won iff no blank is left; lost iff no turn is left.
            prop_assert_eq!(tally.game_state == GameState::Won, !tally.letters.contains(&'_'));
            prop_assert_eq!(tally.game_state == GameState::Lost, tally.turns_left == 0);
            // The word shows only at the end.
            prop_assert_eq!(tally.word.is_some(), tally.game_state.is_over());
            // Nothing changes after the end.
            if before.state().is_over() {
                prop_assert_eq!(&game, &before);
            }
            previous = tally;
        }
    }

    #[test]
    fn bad_guesses_cost_exactly_one_turn_each(word in word(), guesses in guesses()) {
        let mut game = Game::new(&word).unwrap();
        let mut bad = 0;
        for guess in &guesses {
            // Lost is only ever reached by a bad guess; the loop stops there.
            if let Ok(GameState::BadGuess | GameState::Lost) = game.make_move(guess) {
                bad += 1;
            }
            if game.state().is_over() { break; }
        }
        prop_assert_eq!(u32::from(game.tally().turns_left), u32::from(TURNS) - bad);
    }
}
