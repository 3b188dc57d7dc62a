//! The tally cache: game pages are shown from tallies that the game service's
//! watch streams keep current, so they never show a game as it no longer is,
//! whoever changed it.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::{Browser, Stack, eventually};

const WORD: &str = "gallows";

/// Trust a cached tally for an hour without asking the service: whatever the
/// pages show in time below is the watch streams' doing.
const ONLY_THE_WATCH: &[&str] = &["--tally-cache-max-age", "1h"];

#[tokio::test]
async fn a_move_made_through_another_replica_shows_on_this_one() {
    let stack = Stack::start_with(WORD, &[], ONLY_THE_WATCH).await;
    let other_replica = stack.start_replica(&[]).await;
    let here = Browser::new(&stack);
    let there = here.at_replica(&other_replica);

    // Viewed here twice: the game is watched and shown from the cache.
    let game = here.new_game().await;
    here.get("/hangman/current").await;

    there.play(&game, "g").await;
    let page = eventually(&here, "/hangman/current", |page| page.text("#used") == "g").await;
    assert_eq!(page.word(), "g______");
    assert_eq!(page.status_message(), "Good guess!");

    // And the other way round, through this replica's own reply.
    let page = here.play(&page, "a").await;
    assert_eq!(page.word(), "ga_____");
    let theirs = eventually(&there, "/hangman/current", |page| {
        page.text("#used") == "a g"
    })
    .await;
    assert_eq!(theirs.word(), "ga_____");
}

#[tokio::test]
async fn a_repeated_letter_shows_whichever_replica_it_was_played_on() {
    // A repeat changes the state alone, with as many letters used as the tally
    // before it: the cache must still take it as the newer one.
    const TRIED: &str = "You already tried that letter";
    let stack = Stack::start_with(WORD, &[], ONLY_THE_WATCH).await;
    let other_replica = stack.start_replica(&[]).await;
    let here = Browser::new(&stack);
    let there = here.at_replica(&other_replica);

    let page = here.play(&here.new_game().await, "g").await;
    let page = here.play(&page, "g").await;
    assert_eq!(page.status_message(), TRIED);
    let page = here.get("/hangman/current").await;
    assert_eq!(page.status_message(), TRIED, "a reload, from the cache");

    there.play(&page, "a").await;
    let page = eventually(&here, "/hangman/current", |page| {
        page.status_message() == "Good guess!"
    })
    .await;
    assert_eq!(page.text("#used"), "a g");
    there.play(&page, "a").await;
    let page = eventually(&here, "/hangman/current", |page| {
        page.status_message() == TRIED
    })
    .await;
    assert_eq!(page.word(), "ga_____");
}

#[tokio::test]
async fn a_game_lost_with_a_restarted_game_service_is_not_shown_from_the_cache() {
    let mut stack = Stack::start_with(WORD, &[], ONLY_THE_WATCH).await;
    let browser = Browser::new(&stack);
    browser.play(&browser.new_game().await, "g").await;
    browser.get("/hangman/current").await;

    stack.stop_game_service().await;
    stack.restart_game_service().await;
    let gone = eventually(&browser, "/hangman/current", |page| {
        page.status != StatusCode::OK && page.status != StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    gone.assert_game_over();
}

#[tokio::test]
async fn an_expired_game_is_not_shown_from_the_cache() {
    // The sweeper is slow, so the watch stream outlives the game's expiry: the
    // cache's max age is what bounds how long the game may still be shown.
    let stack = Stack::start_with(
        WORD,
        &["--game-ttl", "1s", "--sweep-interval", "1h"],
        &["--tally-cache-max-age", "200ms"],
    )
    .await;
    let browser = Browser::new(&stack);
    browser.play(&browser.new_game().await, "g").await;
    browser.get("/hangman/current").await;

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let expired = browser.get("/hangman/current").await;
    expired.assert_game_over();
}

#[tokio::test]
async fn with_the_cache_off_every_view_asks_the_game_service() {
    let stack = Stack::start_with(WORD, &[], &["--tally-cache-games", "0"]).await;
    let other_replica = stack.start_replica(&[]).await;
    let here = Browser::new(&stack);
    let there = here.at_replica(&other_replica);

    let game = here.new_game().await;
    there.play(&game, "w").await;
    // No waiting: this view asks the service.
    let page = here.get("/hangman/current").await;
    assert_eq!(page.word(), "_____w_");
}
