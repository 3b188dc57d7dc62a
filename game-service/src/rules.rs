//! The Hangman rules (docs/design.md §3): pure state transitions, no I/O, no async.
//!
//! A [`Game`] holds a word, the letters guessed so far and the turns left;
//! [`Game::make_move`] applies one guess and [`Game::tally`] is what a player may
//! see. A game also keeps the guesses that changed it, in order: its version is how many
//! there were, and [`Game::tallies_since`] replays them to give back the tallies of earlier
//! version, so a watcher that missed changes can be given every one (a game changes at most
//! 52 times: each letter once, and each repeat after a change once). Everything else in the service (registry, gRPC) only stores games and
//! carries tallies; no other module decides anything about play.

use std::sync::Arc;

use thiserror::Error;

/// Wrong guesses a new game allows.
pub const TURNS: u8 = 7;

/// Where a game stands after its latest move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GameState {
    /// No guess made yet.
    Initializing,
    /// The last guess was in the word.
    GoodGuess,
    /// The last guess was not in the word; a turn was spent.
    BadGuess,
    /// The last guess had been tried before; nothing changed.
    AlreadyUsed,
    /// Every letter of the word has been guessed. Final.
    Won,
    /// No turns are left. Final.
    Lost,
}

impl GameState {
    /// Whether the game is finished: no move changes it any more.
    pub fn is_over(self) -> bool {
        matches!(self, GameState::Won | GameState::Lost)
    }

    /// The state's name in snake case, as logs, metrics and stored games spell it: the
    /// contract's `GameState::snake_name` of the same state (a test holds them together).
    pub fn name(self) -> &'static str {
        match self {
            GameState::Initializing => "initializing",
            GameState::GoodGuess => "good_guess",
            GameState::BadGuess => "bad_guess",
            GameState::AlreadyUsed => "already_used",
            GameState::Won => "won",
            GameState::Lost => "lost",
        }
    }

    /// The state a [`GameState::name`] names.
    pub fn from_name(name: &str) -> Option<GameState> {
        [
            GameState::Initializing,
            GameState::GoodGuess,
            GameState::BadGuess,
            GameState::AlreadyUsed,
            GameState::Won,
            GameState::Lost,
        ]
        .into_iter()
        .find(|state| state.name() == name)
    }
}

/// A word a game cannot be played with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidWord {
    #[error("the word is empty")]
    Empty,
    #[error("the word must be lowercase letters a-z only")]
    NotLowercaseLetters,
}

/// A guess that is not exactly one letter a-z (after trimming and lower-casing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a guess must be exactly one letter a-z, got {shown:?}")]
pub struct InvalidGuess {
    /// The guess as received, cut short so that a huge guess never fills a log or a reply.
    pub shown: String,
}

impl InvalidGuess {
    const SHOWN_CHARS: usize = 16;

    fn new(guess: &str) -> Self {
        let mut shown: String = guess.chars().take(Self::SHOWN_CHARS).collect();
        if guess.chars().nth(Self::SHOWN_CHARS).is_some() {
            shown.push('…');
        }
        InvalidGuess { shown }
    }
}

/// The set of letters a-z guessed so far, as a bit set: sorted and unique by construction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Letters(u32);

impl Letters {
    fn bit(letter: u8) -> u32 {
        1 << (letter - b'a')
    }

    fn contains(self, letter: u8) -> bool {
        self.0 & Self::bit(letter) != 0
    }

    fn insert(&mut self, letter: u8) {
        self.0 |= Self::bit(letter);
    }

    fn iter(self) -> impl Iterator<Item = char> {
        (b'a'..=b'z')
            .filter(move |&l| self.contains(l))
            .map(char::from)
    }
}

/// One game of Hangman. Cheap to clone (the word is shared), so the registry
/// can keep a copy to tell whether a move changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Game {
    word: Arc<str>,
    /// The word's distinct letters, so that "won" is one comparison.
    letters_in_word: Letters,
    used: Letters,
    turns_left: u8,
    state: GameState,
    history: History,
}

/// The changes a game has had: how many came before those known (only games stored before
/// versions existed have any), then the guess that made each known one, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub unknown: u32,
    /// One letter a-z per change; a letter seen before is a repeat (`already_used`).
    pub guesses: String,
}

/// What a store keeps of a game: the word, the letters guessed, the last move's state and
/// the history. Everything else follows from them, and [`Game::from_record`] checks that
/// they agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub word: String,
    /// The letters guessed so far, a-z, in any order.
    pub used: String,
    pub state: GameState,
    pub history: History,
}

/// A [`Record`] that no game played by these rules could leave.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a game these rules could reach: {0}")]
pub struct InvalidRecord(&'static str);

/// What a player may see of a game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub game_state: GameState,
    pub turns_left: u8,
    /// One entry per letter of the word: the letter once guessed, else `'_'`.
    pub letters: Vec<char>,
    /// The letters guessed so far, sorted, each once.
    pub used: Vec<char>,
    /// The word, only once the game is won or lost.
    pub word: Option<String>,
    /// How many changes the game had when this was its tally.
    pub version: u64,
}

impl Game {
    /// A new game with `word`, which must be lowercase letters a-z.
    pub fn new(word: &str) -> Result<Game, InvalidWord> {
        if word.is_empty() {
            return Err(InvalidWord::Empty);
        }
        if !word.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(InvalidWord::NotLowercaseLetters);
        }
        let mut letters_in_word = Letters::default();
        word.bytes().for_each(|b| letters_in_word.insert(b));
        Ok(Game {
            word: word.into(),
            letters_in_word,
            used: Letters::default(),
            turns_left: TURNS,
            state: GameState::Initializing,
            history: History::default(),
        })
    }

    pub fn state(&self) -> GameState {
        self.state
    }

    /// How many changes the game has had: one per move that changed its tally.
    pub fn version(&self) -> u64 {
        u64::from(self.history.unknown) + self.history.guesses.len() as u64
    }

    /// The tallies the game had after `version` and before the current one, oldest first, in
    /// one replay of its history: `None` for a version it never had, or one older than the
    /// changes it knows.
    pub fn tallies_since(&self, version: u64) -> Option<Vec<Tally>> {
        let current = self.version();
        if version == current {
            return Some(Vec::new());
        }
        if version > current || self.history.unknown > 0 {
            return None;
        }
        let mut game = Game::new(&self.word).expect("a game's word is valid");
        let mut tallies = Vec::new();
        for (applied, guess) in (1..current).zip(self.history.guesses.bytes()) {
            game.apply(guess);
            if applied > version {
                tallies.push(game.tally());
            }
        }
        Some(tallies)
    }

    /// What a store needs to keep to give this game back with [`Game::from_record`].
    pub fn record(&self) -> Record {
        Record {
            word: self.word.to_string(),
            used: self.used.iter().collect(),
            state: self.state,
            history: self.history.clone(),
        }
    }

    /// The game a [`Record`] describes, if these rules could have reached it: the turns left
    /// follow from the wrong letters, and the state must agree with them.
    pub fn from_record(record: &Record) -> Result<Game, InvalidRecord> {
        let mut game = Game::new(&record.word).map_err(|_| InvalidRecord("invalid word"))?;
        for letter in record.used.bytes() {
            if !letter.is_ascii_lowercase() {
                return Err(InvalidRecord("a used letter is not a-z"));
            }
            game.used.insert(letter);
        }
        let wrong = (game.used.0 & !game.letters_in_word.0).count_ones();
        game.turns_left = TURNS
            .checked_sub(u8::try_from(wrong).unwrap_or(u8::MAX))
            .ok_or(InvalidRecord("more wrong letters than turns"))?;
        let won = game.used.0 & game.letters_in_word.0 == game.letters_in_word.0;
        let lost = game.turns_left == 0;
        let consistent = match record.state {
            GameState::Won => won && !lost,
            GameState::Lost => lost && !won,
            GameState::Initializing => game.used.0 == 0,
            GameState::GoodGuess | GameState::BadGuess | GameState::AlreadyUsed => {
                game.used.0 != 0 && !won && !lost
            }
        };
        if !consistent {
            return Err(InvalidRecord("the state does not follow from the letters"));
        }
        game.state = record.state;
        game.history = record.history.clone();
        // Each letter once, and each repeat after a change once.
        if record.history.guesses.len() > 2 * 26 {
            return Err(InvalidRecord("a longer history than a game can have"));
        }
        let guessed = |l: u8| l.is_ascii_lowercase() && game.used.contains(l);
        if !record.history.guesses.bytes().all(guessed) {
            return Err(InvalidRecord("a guess in the history is not a used letter"));
        }
        // A whole history must replay to the same game, each guess a change.
        if record.history.unknown == 0 {
            let mut replayed = Game::new(&record.word).expect("checked above");
            for guess in record.history.guesses.bytes() {
                if !replayed.apply(guess) {
                    return Err(InvalidRecord("a guess in the history changed nothing"));
                }
            }
            if replayed != game {
                return Err(InvalidRecord("the history does not lead to the game"));
            }
        }
        Ok(game)
    }

    /// Applies one guess, in the order of docs/design.md §3, and returns the new state.
    ///
    /// A finished game ignores every guess, even an invalid one; otherwise an
    /// invalid guess is an error and changes nothing.
    pub fn make_move(&mut self, guess: &str) -> Result<GameState, InvalidGuess> {
        if self.state.is_over() {
            return Ok(self.state);
        }
        let letter = parse_guess(guess)?;
        self.apply(letter);
        Ok(self.state)
    }

    /// Applies a valid guess to a game not over; returns whether the game changed (and so
    /// was given a new version).
    fn apply(&mut self, letter: u8) -> bool {
        let (used, state) = (self.used, self.state);
        self.state = if self.used.contains(letter) {
            GameState::AlreadyUsed
        } else {
            self.used.insert(letter);
            if self.letters_in_word.contains(letter) {
                if self.used.0 & self.letters_in_word.0 == self.letters_in_word.0 {
                    GameState::Won
                } else {
                    GameState::GoodGuess
                }
            } else {
                self.turns_left -= 1;
                if self.turns_left == 0 {
                    GameState::Lost
                } else {
                    GameState::BadGuess
                }
            }
        };
        let changed = self.used != used || self.state != state;
        if changed {
            self.history.guesses.push(char::from(letter));
        }
        changed
    }

    pub fn tally(&self) -> Tally {
        Tally {
            game_state: self.state,
            turns_left: self.turns_left,
            letters: self
                .word
                .bytes()
                .map(|b| {
                    if self.used.contains(b) {
                        char::from(b)
                    } else {
                        '_'
                    }
                })
                .collect(),
            used: self.used.iter().collect(),
            word: self.state.is_over().then(|| self.word.to_string()),
            version: self.version(),
        }
    }
}

/// The letter a guess stands for: exactly one letter a-z after trimming and lower-casing.
pub fn parse_guess(guess: &str) -> Result<u8, InvalidGuess> {
    let mut chars = guess.trim().chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return Err(InvalidGuess::new(guess));
    };
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l @ 'a'..='z'), None) => Ok(l as u8),
        _ => Err(InvalidGuess::new(guess)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(word: &str, guesses: &str) -> Game {
        let mut game = Game::new(word).unwrap();
        for g in guesses.chars() {
            game.make_move(&g.to_string()).unwrap();
        }
        game
    }

    #[test]
    fn a_new_game_has_seven_turns_nothing_used_and_every_letter_hidden() {
        let tally = Game::new("bee").unwrap().tally();
        assert_eq!(tally.game_state, GameState::Initializing);
        assert_eq!(tally.turns_left, 7);
        assert_eq!(tally.letters, vec!['_', '_', '_']);
        assert!(tally.used.is_empty());
        assert_eq!(tally.word, None);
    }

    #[test]
    fn a_word_must_be_lowercase_letters() {
        assert_eq!(Game::new(""), Err(InvalidWord::Empty));
        assert_eq!(Game::new("Bee"), Err(InvalidWord::NotLowercaseLetters));
        assert_eq!(Game::new("be e"), Err(InvalidWord::NotLowercaseLetters));
        assert_eq!(Game::new("café"), Err(InvalidWord::NotLowercaseLetters));
    }

    #[test]
    fn a_letter_in_the_word_is_a_good_guess_and_shows_everywhere() {
        let mut game = Game::new("bee").unwrap();
        assert_eq!(game.make_move("e"), Ok(GameState::GoodGuess));
        let tally = game.tally();
        assert_eq!(tally.letters, vec!['_', 'e', 'e']);
        assert_eq!(tally.used, vec!['e']);
        assert_eq!(tally.turns_left, 7);
    }

    #[test]
    fn a_letter_not_in_the_word_is_a_bad_guess_and_costs_a_turn() {
        let mut game = Game::new("bee").unwrap();
        assert_eq!(game.make_move("x"), Ok(GameState::BadGuess));
        assert_eq!(game.tally().turns_left, 6);
        assert_eq!(game.tally().letters, vec!['_', '_', '_']);
    }

    #[test]
    fn a_letter_tried_before_is_already_used_and_changes_nothing_else() {
        let mut game = play("bee", "ex");
        let before = game.tally();
        assert_eq!(game.make_move("x"), Ok(GameState::AlreadyUsed));
        let after = game.tally();
        assert_eq!(after.game_state, GameState::AlreadyUsed);
        assert_eq!(
            (after.turns_left, after.letters, after.used),
            (before.turns_left, before.letters, before.used)
        );
    }

    #[test]
    fn guessing_every_distinct_letter_wins_and_reveals_the_word() {
        let game = play("bee", "eb");
        let tally = game.tally();
        assert_eq!(tally.game_state, GameState::Won);
        assert_eq!(tally.letters, vec!['b', 'e', 'e']);
        assert_eq!(tally.word.as_deref(), Some("bee"));
    }

    #[test]
    fn the_seventh_bad_guess_loses_and_reveals_the_word() {
        let mut game = play("bee", "acdfgh");
        assert_eq!(game.state(), GameState::BadGuess);
        assert_eq!(game.tally().word, None);
        assert_eq!(game.make_move("i"), Ok(GameState::Lost));
        let tally = game.tally();
        assert_eq!(tally.turns_left, 0);
        assert_eq!(tally.word.as_deref(), Some("bee"));
        assert_eq!(tally.letters, vec!['_', '_', '_']);
    }

    #[test]
    fn nothing_changes_after_the_game_is_over_not_even_for_invalid_guesses() {
        for (word, guesses) in [("bee", "eb"), ("bee", "acdfghi")] {
            let mut game = play(word, guesses);
            let over = game.clone();
            for guess in ["e", "z", "!!", ""] {
                assert_eq!(game.make_move(guess), Ok(over.state()));
                assert_eq!(game, over);
            }
        }
    }

    #[test]
    fn guesses_are_trimmed_and_lower_cased() {
        let mut game = Game::new("bee").unwrap();
        assert_eq!(game.make_move("  E\n"), Ok(GameState::GoodGuess));
        assert_eq!(game.tally().used, vec!['e']);
    }

    #[test]
    fn an_invalid_guess_is_rejected_and_spends_no_turn() {
        let mut game = play("bee", "x");
        let before = game.clone();
        for guess in ["", " ", "ab", "1", "é", "-", "ß", "\u{0}", "e e"] {
            let err = game.make_move(guess).unwrap_err();
            assert_eq!(err.shown, guess, "{guess:?}");
            assert_eq!(game, before, "{guess:?} changed the game");
        }
    }

    #[test]
    fn an_invalid_guess_error_shows_at_most_sixteen_characters() {
        let err = parse_guess(&"x".repeat(10_000)).unwrap_err();
        assert_eq!(err.shown, format!("{}…", "x".repeat(16)));
    }

    #[test]
    fn a_record_gives_back_the_same_game() {
        for (word, guesses) in [("bee", ""), ("bee", "ex"), ("bee", "exx"), ("bee", "eb")] {
            let game = play(word, guesses);
            assert_eq!(Game::from_record(&game.record()), Ok(game));
        }
        let lost = play("bee", "acdfghi");
        assert_eq!(Game::from_record(&lost.record()), Ok(lost));
    }

    #[test]
    fn a_record_no_game_could_reach_is_refused() {
        // A history of unknown changes, so that only the letters and the state are checked.
        let record = |word: &str, used: &str, state| Record {
            word: word.into(),
            used: used.into(),
            state,
            history: History {
                unknown: 1,
                guesses: String::new(),
            },
        };
        for bad in [
            record("bee", "e", GameState::Won),
            record("bee", "be", GameState::GoodGuess),
            record("bee", "", GameState::BadGuess),
            record("bee", "x", GameState::Initializing),
            record("bee", "acdfghijk", GameState::Lost),
            record("bee", "E", GameState::GoodGuess),
            record("Bee", "e", GameState::GoodGuess),
        ] {
            assert!(Game::from_record(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_change_is_a_version_and_a_move_that_changes_nothing_is_not() {
        let mut game = Game::new("bee").unwrap();
        assert_eq!(game.tally().version, 0);
        assert!(game.make_move("7").is_err());
        assert_eq!(game.version(), 0, "an invalid guess changes nothing");
        for (guess, version) in [("e", 1), ("e", 2), ("e", 2), ("x", 3), ("x", 4), ("b", 5)] {
            game.make_move(guess).unwrap();
            assert_eq!(game.tally().version, version, "after {guess:?}");
        }
        assert_eq!(game.state(), GameState::Won);
        game.make_move("z").unwrap();
        assert_eq!(game.version(), 5, "a finished game does not change");
    }

    #[test]
    fn the_tally_of_every_earlier_version_is_given_back() {
        let guesses = ["e", "e", "x", "b"];
        let mut game = Game::new("bee").unwrap();
        let mut tallies = vec![game.tally()];
        for guess in guesses {
            game.make_move(guess).unwrap();
            tallies.push(game.tally());
        }
        let current = tallies.len() - 1;
        for version in 0..current {
            let since = game.tallies_since(version as u64);
            assert_eq!(since.as_deref(), Some(&tallies[version + 1..current]));
        }
        assert_eq!(game.tallies_since(current as u64), Some(vec![]));
        assert_eq!(
            game.tallies_since(tallies.len() as u64),
            None,
            "a future version"
        );
        let stored = Game::from_record(&game.record()).unwrap();
        assert_eq!(
            stored.tallies_since(1).as_deref(),
            Some(&tallies[2..current])
        );
    }

    #[test]
    fn a_game_stored_without_its_history_gives_back_only_its_current_tally() {
        let record = Record {
            word: "bee".into(),
            used: "ex".into(),
            state: GameState::BadGuess,
            history: History {
                unknown: 2,
                guesses: String::new(),
            },
        };
        let mut game = Game::from_record(&record).unwrap();
        assert_eq!(game.version(), 2);
        assert_eq!(game.tallies_since(2), Some(vec![]));
        assert_eq!(game.tallies_since(1), None);
        game.make_move("b").unwrap();
        assert_eq!(game.version(), 3);
        assert_eq!(game.tallies_since(2), None, "the state before is not known");
        assert_eq!(Game::from_record(&game.record()), Ok(game));
    }

    #[test]
    fn a_history_that_does_not_lead_to_the_game_is_refused() {
        let game = play("bee", "ex");
        let with = |guesses: &str| Record {
            history: History {
                unknown: 0,
                guesses: guesses.into(),
            },
            ..game.record()
        };
        for good in ["ex", "eex"] {
            assert!(Game::from_record(&with(good)).is_ok(), "{good:?}");
        }
        for bad in ["xe", "e", "exx", "exe", "exb", "eE"] {
            assert!(Game::from_record(&with(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn state_names_are_snake_case_and_read_back() {
        assert_eq!(GameState::AlreadyUsed.name(), "already_used");
        for state in [GameState::Initializing, GameState::Won, GameState::Lost] {
            assert_eq!(GameState::from_name(state.name()), Some(state));
        }
        assert_eq!(GameState::from_name("Won"), None);
    }

    /// The rules' names are also how Redis stores a game, so they are the rules' own; they
    /// must still be the contract's spelling, which the front ends and metrics use.
    #[test]
    fn state_names_are_the_contracts() {
        use hangman_proto::v1::GameState as Contract;
        for (state, contract) in [
            (GameState::Initializing, Contract::Initializing),
            (GameState::GoodGuess, Contract::GoodGuess),
            (GameState::BadGuess, Contract::BadGuess),
            (GameState::AlreadyUsed, Contract::AlreadyUsed),
            (GameState::Won, Contract::Won),
            (GameState::Lost, Contract::Lost),
        ] {
            assert_eq!(state.name(), contract.snake_name());
        }
    }

    #[test]
    fn used_letters_are_sorted() {
        assert_eq!(play("bee", "zeax").tally().used, vec!['a', 'e', 'x', 'z']);
    }
}
