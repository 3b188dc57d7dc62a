//! Playing through html-gallows as a browser without JavaScript would: every
//! step is a form post answered with a redirect, then a page to read.

mod support;

use reqwest::StatusCode;
use support::{Browser, Stack};

const WORD: &str = "gallows";

#[tokio::test]
async fn the_root_leads_to_a_welcome_page_with_a_new_game_button() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);

    browser.get("/").await.assert_redirect_to("/hangman");
    let welcome = browser.get("/hangman").await;
    assert_eq!(welcome.status, StatusCode::OK);
    assert!(welcome.offers_new_game());
    assert_eq!(welcome.one("html").value().attr("lang"), Some("en"));
    assert!(!welcome.body.contains("<script"), "no JavaScript anywhere");
}

#[tokio::test]
async fn a_new_game_shows_blanks_all_turns_and_a_full_keyboard() {
    let stack = Stack::start(WORD).await;
    let game = Browser::new(&stack).new_game().await;

    assert_eq!(game.status_message(), "Let's play!");
    assert_eq!(game.word(), "_______");
    assert_eq!(game.turns_left(), 7);
    assert_eq!(game.parts_shown(), 0);
    for letter in 'a'..='z' {
        assert!(game.key_is_enabled(letter), "{letter} can be played");
        assert!(game.key_classes(letter).is_empty());
    }
    let typed = game.one("form[action='/hangman/current/guess'] input[type=text][name=guess]");
    let label = game.one("label[for=typed-guess]");
    assert_eq!(typed.value().id(), Some("typed-guess"));
    assert!(!label.text().collect::<String>().is_empty());
    assert!(
        !game.offers_new_game(),
        "New Game appears once the game is over"
    );
}

#[tokio::test]
async fn playing_to_a_win() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;

    let game = browser.play(&game, "a").await;
    assert_eq!(game.status_message(), "Good guess!");
    assert_eq!(game.word(), "_a_____");
    assert!(!game.key_is_enabled('a'));
    assert_eq!(game.key_classes('a'), ["right"]);

    let game = browser.play(&game, "z").await;
    assert_eq!(
        game.status_message(),
        "Sorry, that letter is not in the word"
    );
    assert_eq!(game.turns_left(), 6);
    assert_eq!(game.parts_shown(), 1);
    assert_eq!(game.key_classes('z'), ["wrong"]);
    assert_eq!(game.text("#used"), "a z");

    let mut game = game;
    for letter in ["g", "l", "o", "w"] {
        game = browser.play(&game, letter).await;
        assert_eq!(game.status_message(), "Good guess!");
    }
    let game = browser.play(&game, "s").await;
    assert_eq!(game.status_message(), "You won!");
    assert_eq!(game.word(), "gallows");
    assert_eq!(game.turns_left(), 6);
    assert!(game.offers_new_game());
    assert!(('a'..='z').all(|letter| !game.key_is_enabled(letter)));
    assert!(game.select("input[type=text][name=guess]").is_empty());
}

#[tokio::test]
async fn playing_to_a_loss_reveals_the_word() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let mut game = browser.play(&browser.new_game().await, "l").await;

    for (spent, letter) in ["b", "c", "d", "e", "f", "h"].into_iter().enumerate() {
        game = browser.play(&game, letter).await;
        assert_eq!(game.turns_left(), 6 - spent as u32);
        assert_eq!(game.parts_shown(), spent + 1, "one part per turn spent");
    }
    let game = browser.play(&game, "i").await;
    assert_eq!(game.status_message(), "You lost — the word was gallows");
    assert_eq!(game.turns_left(), 0);
    assert_eq!(game.parts_shown(), 7);
    assert_eq!(game.word(), "gallows", "the word is revealed");
    let missed = game.select("#word span.letter.missed");
    assert_eq!(missed.len(), 5, "g, a, o, w, s were never guessed");
    assert!(game.offers_new_game());

    // A move after the end changes nothing.
    let after = browser.play(&game, "a").await;
    assert_eq!(after.status_message(), "You lost — the word was gallows");
    assert_eq!(after.text("#used"), game.text("#used"));

    // New Game starts over.
    let fresh = browser.new_game_from(&game).await;
    assert_eq!(fresh.status_message(), "Let's play!");
    assert_eq!(fresh.turns_left(), 7);
}

#[tokio::test]
async fn a_typed_letter_is_trimmed_and_lower_cased() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.play(&browser.new_game().await, " W ").await;
    assert_eq!(game.status_message(), "Good guess!");
    assert_eq!(game.word(), "_____w_");
    assert_eq!(game.key_classes('w'), ["right"]);
}

#[tokio::test]
async fn an_invalid_guess_gets_422_with_the_game_unchanged() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let before = browser.play(&browser.new_game().await, "z").await;

    for invalid in ["7", "ab", "", "é"] {
        let refused = browser.submit_guess(&before, invalid).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{invalid:?}"
        );
        assert_eq!(
            refused.status_message(),
            "Please guess a single letter from a to z"
        );
        assert_eq!(refused.turns_left(), 6);
        assert_eq!(refused.text("#used"), "z");
        assert_eq!(refused.word(), "_______");
    }
    let after = browser.get("/hangman/current").await;
    assert_eq!(
        after.status_message(),
        "Sorry, that letter is not in the word"
    );
    assert_eq!(after.turns_left(), 6);
}

#[tokio::test]
async fn a_letter_already_used_costs_nothing() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.play(&browser.new_game().await, "q").await;
    assert_eq!(game.turns_left(), 6);

    let again = browser.play(&game, "q").await;
    assert_eq!(again.status_message(), "You already tried that letter");
    assert_eq!(again.turns_left(), 6);
    assert_eq!(again.text("#used"), "q");
}

#[tokio::test]
async fn a_reload_after_a_guess_does_not_play_it_again() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.play(&browser.new_game().await, "x").await;
    let reloaded = browser.get("/hangman/current").await;
    assert_eq!(reloaded.status_message(), game.status_message());
    assert_eq!(reloaded.turns_left(), 6);
}

#[tokio::test]
async fn without_a_game_the_game_page_leads_to_the_welcome_page() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    browser.assert_no_game().await;
    // A guess with a valid session but no game goes there too.
    let welcome = browser.get("/hangman").await;
    let token = welcome.csrf_token();
    browser
        .post(
            "/hangman/current/guess",
            &[("csrf_token", &token), ("guess", "a")],
        )
        .await
        .assert_redirect_to("/hangman");
}

#[tokio::test]
async fn each_browser_plays_its_own_game() {
    let stack = Stack::start(WORD).await;
    let (alice, bob) = (Browser::new(&stack), Browser::new(&stack));
    let alice_game = alice.play(&alice.new_game().await, "g").await;
    let bob_game = bob.new_game().await;
    assert_eq!(alice_game.word(), "g______");
    assert_eq!(bob_game.word(), "_______");
    assert_ne!(alice_game.csrf_token(), bob_game.csrf_token());
}

#[tokio::test]
async fn unknown_routes_get_a_friendly_404_page() {
    let stack = Stack::start(WORD).await;
    let page = Browser::new(&stack).get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(page.title(), "Page not found");
    assert_eq!(
        page.one("main a[href='/hangman']")
            .text()
            .collect::<String>(),
        "Back to the start"
    );
}

#[tokio::test]
async fn opening_the_guess_address_as_a_page_shows_the_game() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    browser.new_game().await;
    browser
        .get("/hangman/current/guess")
        .await
        .assert_redirect_to("/hangman/current");
}

#[tokio::test]
async fn a_method_a_route_does_not_take_gets_a_friendly_405_page() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let page = browser
        .request(reqwest::Method::DELETE, &stack.url("/hangman"))
        .send()
        .await
        .unwrap();
    let page = support::Page::from(page).await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(page.title(), "Not something this page does");
}

#[tokio::test]
async fn the_stylesheet_is_served_from_the_binary() {
    let stack = Stack::start(WORD).await;
    let welcome = Browser::new(&stack).get("/hangman").await;
    let href = welcome
        .one("link[rel=stylesheet]")
        .value()
        .attr("href")
        .unwrap()
        .to_owned();
    let css = reqwest::get(stack.url(&href)).await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains(".keys"));
}
