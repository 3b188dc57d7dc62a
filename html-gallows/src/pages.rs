//! The pages: askama templates (in `templates/`, compiled and checked at build
//! time) and the view model that turns a game's tally into what the page shows.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use hangman_proto::v1::{GameState, Tally};

/// Turns a player starts with; the gallows shows one more part per turn spent.
///
/// A separate copy, on purpose, of the SPA's parts list (`web/src/game/tally.ts`): the front
/// ends share nothing but the contract, so a change to the figure belongs in both.
const GALLOWS_PARTS: [&str; 7] = [
    "rope",
    "head",
    "body",
    "leg-left",
    "leg-right",
    "arm-left",
    "arm-right",
];

/// `GET /hangman`: what the game is and a New Game button.
#[derive(Template)]
#[template(path = "welcome.html")]
pub struct WelcomePage<'a> {
    pub csrf_token: &'a str,
}

/// `GET /hangman/current`: the game in play or finished.
#[derive(Template)]
#[template(path = "game.html")]
pub struct GamePage<'a> {
    pub csrf_token: &'a str,
    /// What the last move did, or why the last guess was refused.
    pub status: String,
    /// A CSS class for the status: the game state in snake case, or `refused`.
    pub status_kind: &'static str,
    pub letters: Vec<LetterView>,
    pub turns_left: u32,
    pub used: Vec<String>,
    pub keys: Vec<KeyView>,
    pub parts: Vec<PartView>,
    pub over: bool,
}

/// One letter of the word as shown.
pub struct LetterView {
    /// The letter, or `_` while it is hidden.
    pub shown: String,
    /// The letter was never guessed and is shown only because the game was lost.
    pub missed: bool,
}

/// One button of the on-screen keyboard.
pub struct KeyView {
    pub letter: char,
    /// `right`, `wrong`, or empty for a letter not tried yet.
    pub class: &'static str,
    pub disabled: bool,
}

/// One part of the hanged figure.
pub struct PartView {
    pub name: &'static str,
    pub shown: bool,
}

impl PartView {
    /// The part's CSS class besides `part`: drawn parts are `shown`, the others
    /// `hidden` (drawn faintly, so the player sees what is still to come).
    pub fn visibility(&self) -> &'static str {
        if self.shown { "shown" } else { "hidden" }
    }
}

/// A page that explains a problem and offers a way on.
#[derive(Template)]
#[template(path = "problem.html")]
pub struct ProblemPage<'a> {
    pub csrf_token: &'a str,
    pub title: &'static str,
    pub message: &'static str,
    /// Show a New Game button.
    pub offer_new_game: bool,
    /// A link that tries again, when trying again may help.
    pub retry: Option<Retry>,
}

/// The way on from a problem page: a link (a GET, so following it never replays
/// a form), shown as `a.retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub href: &'static str,
    pub label: &'static str,
}

impl Retry {
    /// "Try again", at `href`.
    pub const fn try_again(href: &'static str) -> Self {
        Self {
            href,
            label: "Try again",
        }
    }

    /// "Reload the game", at `href`: after a guess that may have been played,
    /// the game page tells whether it was.
    pub const fn reload_game(href: &'static str) -> Self {
        Self {
            href,
            label: "Reload the game",
        }
    }
}

impl<'a> GamePage<'a> {
    /// The page for `tally`, with the status message for its state.
    pub fn new(csrf_token: &'a str, tally: &Tally) -> Self {
        let state = tally.game_state();
        let over = matches!(state, GameState::Won | GameState::Lost);
        let word = tally.word.as_deref().unwrap_or_default();
        let status = match state {
            GameState::GoodGuess => "Good guess!".to_owned(),
            GameState::BadGuess => "Sorry, that letter is not in the word".to_owned(),
            GameState::AlreadyUsed => "You already tried that letter".to_owned(),
            GameState::Won => "You won!".to_owned(),
            GameState::Lost => format!("You lost — the word was {word}"),
            GameState::Initializing | GameState::Unspecified => "Let's play!".to_owned(),
        };
        let letters = tally
            .letters
            .iter()
            .enumerate()
            .map(|(i, letter)| match word.get(i..=i) {
                // Once the game is over the word is known: reveal what was missed.
                Some(revealed) if letter == "_" => LetterView {
                    shown: revealed.to_owned(),
                    missed: true,
                },
                _ => LetterView {
                    shown: letter.clone(),
                    missed: false,
                },
            })
            .collect();
        let keys = ('a'..='z')
            .map(|letter| {
                let used = tally.used.iter().any(|u| u.starts_with(letter));
                let in_word = tally.letters.iter().any(|l| l.starts_with(letter));
                KeyView {
                    letter,
                    class: match (used, in_word) {
                        (false, _) => "",
                        (true, true) => "right",
                        (true, false) => "wrong",
                    },
                    disabled: used || over,
                }
            })
            .collect();
        let turns_spent = (GALLOWS_PARTS.len() as u32).saturating_sub(tally.turns_left) as usize;
        let parts = GALLOWS_PARTS
            .iter()
            .enumerate()
            .map(|(i, &name)| PartView {
                name,
                shown: i < turns_spent,
            })
            .collect();
        Self {
            csrf_token,
            status,
            status_kind: state_class(state),
            letters,
            turns_left: tally.turns_left,
            used: tally.used.clone(),
            keys,
            parts,
            over,
        }
    }

    /// How many parts of the figure are drawn.
    pub fn parts_shown(&self) -> usize {
        self.parts.iter().filter(|part| part.shown).count()
    }

    /// The page after a refused guess: the game as it is, and why.
    pub fn refused(csrf_token: &'a str, tally: &Tally) -> Self {
        Self {
            status: "Please guess a single letter from a to z".to_owned(),
            status_kind: "refused",
            ..Self::new(csrf_token, tally)
        }
    }
}

fn state_class(state: GameState) -> &'static str {
    match state {
        GameState::Unspecified | GameState::Initializing => "initializing",
        GameState::GoodGuess => "good_guess",
        GameState::BadGuess => "bad_guess",
        GameState::AlreadyUsed => "already_used",
        GameState::Won => "won",
        GameState::Lost => "lost",
    }
}

/// Renders a page as the response with `status`. A template that fails to render
/// (a bug) gives a plain 500 page rather than a blank one.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(include_str!("../templates/render-failed.html")),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(state: GameState, turns_left: u32, letters: &str, used: &str) -> Tally {
        Tally {
            game_state: state as i32,
            turns_left,
            letters: letters.chars().map(String::from).collect(),
            used: used.chars().map(String::from).collect(),
            word: None,
            version: 0,
        }
    }

    fn shown_parts(page: &GamePage) -> Vec<&'static str> {
        page.parts
            .iter()
            .filter(|p| p.shown)
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn a_new_game_shows_no_parts_and_lets_us_play() {
        let page = GamePage::new("t", &tally(GameState::Initializing, 7, "_____", ""));
        assert_eq!(page.status, "Let's play!");
        assert!(shown_parts(&page).is_empty());
        assert!(page.keys.iter().all(|k| !k.disabled && k.class.is_empty()));
        assert_eq!(page.keys.len(), 26);
    }

    #[test]
    fn parts_appear_one_per_turn_spent() {
        let page = GamePage::new("t", &tally(GameState::BadGuess, 6, "___", "z"));
        assert_eq!(shown_parts(&page), ["rope"]);
        let page = GamePage::new("t", &tally(GameState::BadGuess, 2, "___", "vwxyz"));
        assert_eq!(
            shown_parts(&page),
            ["rope", "head", "body", "leg-left", "leg-right"]
        );
        let page = GamePage::new("t", &tally(GameState::Lost, 0, "___", "tuvwxyz"));
        assert_eq!(shown_parts(&page).len(), 7);
    }

    #[test]
    fn used_letters_are_disabled_and_marked_right_or_wrong() {
        let page = GamePage::new("t", &tally(GameState::BadGuess, 6, "_a_", "az"));
        let key = |c: char| page.keys.iter().find(|k| k.letter == c).unwrap();
        assert_eq!((key('a').class, key('a').disabled), ("right", true));
        assert_eq!((key('z').class, key('z').disabled), ("wrong", true));
        assert_eq!((key('b').class, key('b').disabled), ("", false));
        assert_eq!(page.status, "Sorry, that letter is not in the word");
    }

    #[test]
    fn a_lost_game_reveals_the_word_and_disables_every_key() {
        let mut lost = tally(GameState::Lost, 0, "_a_", "abcdefg");
        lost.word = Some("cat".to_owned());
        // `letters` as the service sends them: only guessed letters filled in.
        lost.letters = vec!["c".into(), "a".into(), "_".into()];
        let page = GamePage::new("t", &lost);
        assert_eq!(page.status, "You lost — the word was cat");
        let shown: String = page.letters.iter().map(|l| l.shown.as_str()).collect();
        assert_eq!(shown, "cat");
        let missed: Vec<bool> = page.letters.iter().map(|l| l.missed).collect();
        assert_eq!(missed, [false, false, true]);
        assert!(page.over && page.keys.iter().all(|k| k.disabled));
    }

    #[test]
    fn every_state_has_its_message() {
        for (state, message) in [
            (GameState::GoodGuess, "Good guess!"),
            (GameState::AlreadyUsed, "You already tried that letter"),
            (GameState::Won, "You won!"),
        ] {
            assert_eq!(
                GamePage::new("t", &tally(state, 7, "a", "a")).status,
                message
            );
        }
    }

    #[test]
    fn pages_render() {
        let page = GamePage::new("token", &tally(GameState::GoodGuess, 5, "_a_", "a"));
        let html = page.render().unwrap();
        assert!(html.contains("value=\"token\""));
        WelcomePage { csrf_token: "t" }.render().unwrap();
    }
}
