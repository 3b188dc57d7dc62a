//! The tally cache's limits: past its capacity it watches no more games (their
//! pages are read from the game service on every view), and it stops watching
//! a game nobody views for the idle time. The only test in its binary, so the
//! process-wide metrics it reads count its own requests alone.

mod support;

use support::{Browser, Stack, sample, tally_cache_reads, view_until_a_cache_hit};

const WORD: &str = "gallows";

#[tokio::test]
async fn the_cache_watches_at_most_its_capacity_and_lets_idle_games_go() {
    // Before the game service starts, so that html-gallows' recorder is the one installed.
    html_gallows::metrics::handle();
    let stack = Stack::start_with(
        WORD,
        &[],
        &[
            "--tally-cache-games",
            "1",
            "--tally-cache-max-age",
            "1h",
            "--tally-cache-idle",
            "3s",
        ],
    )
    .await;
    let other_replica = stack.start_replica(&["--tally-cache-games", "0"]).await;

    // The first game takes the cache's only place: once its watch has
    // delivered, its views are hits.
    let first = Browser::new(&stack);
    first.new_game().await;
    let hits = view_until_a_cache_hit(&first).await;

    // A second game gets no place: every view of it is a miss.
    let here = Browser::new(&stack);
    let game = here.new_game().await;
    let misses = tally_cache_reads(&here, "miss").await;
    for _ in 0..5 {
        here.get("/hangman/current").await;
    }
    assert_eq!(tally_cache_reads(&here, "miss").await, misses + 5.0);
    assert_eq!(tally_cache_reads(&here, "hit").await, hits);
    let metrics = here.get("/metrics").await;
    assert_eq!(
        sample(&metrics.body, "gallows_tally_cache_watched_games", &[]),
        Some(1.0)
    );

    // And its views are current: a move made elsewhere shows at once.
    here.at_replica(&other_replica).play(&game, "w").await;
    let page = here.get("/hangman/current").await;
    assert_eq!(page.word(), "_____w_");

    // Nobody views the first game any more: its watch is closed after the idle time.
    let mut watched = None;
    for _ in 0..100 {
        let metrics = here.get("/metrics").await;
        watched = sample(&metrics.body, "gallows_tally_cache_watched_games", &[]);
        if watched == Some(0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(watched, Some(0.0), "the idle game is still watched");
}
