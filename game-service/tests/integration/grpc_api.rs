//! The `hangman.v1` API as a client sees it: a real server on port 0, real gRPC,
//! the generated client. The suite runs once with games in memory and once with games in a
//! Redis of its own (`memory::…` and `redis::…`); what only holds for one store is apart.

use std::{collections::HashSet, time::Duration};

use clap::Parser;
use futures::StreamExt;
use game_service::Config;
use game_service::testing::TestGameService;
use hangman_proto::v1::{EndGameRequest, GameState, GetGameRequest};
use tonic::Code;

use crate::support::{
    Store, assert_refused, create, eventually, get, guess, new_game, server, store_suite,
    try_guess, watch,
};

fn strings(letters: &str) -> Vec<String> {
    letters.chars().map(String::from).collect()
}

async fn a_full_game_is_won_by_guessing_every_letter(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let created = create(&mut client, Some("otter")).await.unwrap();
    let id = created.game_id;
    let tally = created.tally.unwrap();
    assert_eq!(tally.game_state(), GameState::Initializing);
    assert_eq!(tally.turns_left, 7);
    assert_eq!(tally.letters, strings("_____"));
    assert_eq!(tally.word, None);

    let tally = guess(&mut client, &id, "t").await;
    assert_eq!(tally.game_state(), GameState::GoodGuess);
    assert_eq!(tally.letters, strings("_tt__"));
    let tally = guess(&mut client, &id, "z").await;
    assert_eq!(tally.game_state(), GameState::BadGuess);
    assert_eq!(tally.turns_left, 6);
    let tally = guess(&mut client, &id, "t").await;
    assert_eq!(tally.game_state(), GameState::AlreadyUsed);
    for letter in ["o", "e"] {
        assert_eq!(
            guess(&mut client, &id, letter).await.game_state(),
            GameState::GoodGuess
        );
    }
    let tally = guess(&mut client, &id, "R").await;
    assert_eq!(tally.game_state(), GameState::Won);
    assert_eq!(tally.letters, strings("otter"));
    assert_eq!(tally.used, strings("eortz"));
    assert_eq!(tally.word.as_deref(), Some("otter"));

    let read = client
        .get_game(GetGameRequest {
            game_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.game_id, id);
    assert_eq!(read.tally.unwrap(), tally);
    server.stop().await;
}

async fn a_full_game_is_lost_after_seven_wrong_letters(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    for (i, letter) in "abcdfg".chars().enumerate() {
        let tally = guess(&mut client, &id, &letter.to_string()).await;
        assert_eq!(tally.game_state(), GameState::BadGuess);
        assert_eq!(tally.turns_left, 6 - i as u32);
        assert_eq!(tally.word, None);
    }
    let tally = guess(&mut client, &id, "h").await;
    assert_eq!(tally.game_state(), GameState::Lost);
    assert_eq!(tally.turns_left, 0);
    assert_eq!(tally.word.as_deref(), Some("otter"));
    // Nothing changes once the game is over.
    assert_eq!(guess(&mut client, &id, "o").await, tally);
    server.stop().await;
}

async fn an_invalid_guess_is_rejected_with_a_reason_and_changes_nothing(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    for bad in ["", "ab", "7", "é", " ", &"x".repeat(5000)] {
        let status = try_guess(&mut client, &id, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert!(
            status.message().contains("exactly one letter a-z"),
            "{}",
            status.message()
        );
        assert!(
            status.message().len() < 100,
            "the message echoes a huge guess"
        );
    }
    let tally = get(&mut client, &id).await.unwrap();
    assert_eq!(tally.game_state(), GameState::Initializing);
    assert_eq!(tally.turns_left, 7);
    assert!(tally.used.is_empty());
    server.stop().await;
}

async fn unknown_and_empty_ids_are_not_found_and_invalid(store: Store) {
    let server = server(store, &[]).await;
    let mut client = server.client().await;
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA".to_string();
    let codes = [
        get(&mut client, &unknown).await.unwrap_err().code(),
        try_guess(&mut client, &unknown, "a")
            .await
            .unwrap_err()
            .code(),
        watch(&mut client, &unknown).await.unwrap_err().code(),
        client
            .end_game(EndGameRequest { game_id: unknown })
            .await
            .unwrap_err()
            .code(),
    ];
    assert_eq!(codes, [Code::NotFound; 4]);
    let status = try_guess(&mut client, "", "a").await.unwrap_err();
    assert_refused(&status, Code::InvalidArgument, "empty");
    server.stop().await;
}

async fn a_fixed_word_is_refused_outside_test_mode(store: Store) {
    let server = server(store, &[]).await;
    let mut client = server.client().await;
    let status = create(&mut client, Some("otter")).await.unwrap_err();
    assert_refused(&status, Code::InvalidArgument, "test mode");
    // Without a word, a random one from the dictionary.
    let tally = create(&mut client, None).await.unwrap().tally.unwrap();
    assert!(tally.letters.len() >= 4);
    assert!(tally.letters.iter().all(|l| l == "_"));
    server.stop().await;
}

async fn a_fixed_word_must_be_lowercase_letters_even_in_test_mode(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    for word in ["", "Otter", "ot ter"] {
        let status = create(&mut client, Some(word)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{word:?}");
    }
    server.stop().await;
}

async fn ids_are_unguessable_url_safe_text(store: Store) {
    let server = server(store, &[]).await;
    let mut client = server.client().await;
    let mut ids = HashSet::new();
    for _ in 0..50 {
        let id = create(&mut client, None).await.unwrap().game_id;
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 50);
    server.stop().await;
}

async fn an_idle_game_expires_after_its_ttl(store: Store) {
    let server = server(
        store,
        &[
            "--test-mode",
            "--game-ttl",
            "300ms",
            "--sweep-interval",
            "50ms",
        ],
    )
    .await;
    let mut client = server.client().await;
    let idle = new_game(&mut client, "otter").await;
    let active = new_game(&mut client, "otter").await;
    let mut watch = watch(&mut client, &idle).await.unwrap();
    assert!(watch.next().await.is_some());
    for letter in ["a", "b", "c"] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        guess(&mut client, &active, letter).await;
    }
    let status = get(&mut client, &idle).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // The watcher of the expired game sees its stream end.
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    // Moves keep a game alive.
    assert!(get(&mut client, &active).await.is_ok());
    server.stop().await;
}

async fn a_full_registry_refuses_new_games_with_resource_exhausted(store: Store) {
    let server = server(store, &["--max-games", "3"]).await;
    let mut client = server.client().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create(&mut client, None).await.unwrap().game_id);
    }
    let status = create(&mut client, None).await.unwrap_err();
    assert_refused(&status, Code::ResourceExhausted, "maximum of 3");
    // Ending a game makes room.
    client
        .end_game(EndGameRequest {
            game_id: ids.pop().unwrap(),
        })
        .await
        .unwrap();
    assert!(create(&mut client, None).await.is_ok());
    server.stop().await;
}

async fn concurrent_moves_on_one_game_are_all_applied(store: Store) {
    // A word with every letter, so that no guess ends the game early.
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "thequickbrownfoxjumpsoverthelazydog").await;
    let tasks: Vec<_> = ('a'..='y')
        .map(|letter| {
            let mut client = client.clone();
            let id = id.clone();
            tokio::spawn(async move { guess(&mut client, &id, &letter.to_string()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let tally = get(&mut client, &id).await.unwrap();
    assert_eq!(tally.used.len(), 25, "{:?}", tally.used);
    assert_eq!(tally.game_state(), GameState::GoodGuess);
    assert_eq!(tally.letters.iter().filter(|l| *l == "_").count(), 1); // the z
    server.stop().await;
}

async fn a_watcher_gets_the_tally_now_then_every_change_in_order_then_the_end(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    guess(&mut client, &id, "x").await;
    let mut watch = watch(&mut client, &id).await.unwrap();
    let mut played = Vec::new();
    for letter in ["o", "x", "t", "q", "e", "r"] {
        played.push(guess(&mut client, &id, letter).await);
    }
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.game_id, id);
    assert_eq!(first.tally.unwrap().used, strings("x"));
    for expected in played {
        let change = watch.next().await.unwrap().unwrap();
        assert_eq!(change.tally.unwrap(), expected);
    }
    client
        .end_game(EndGameRequest { game_id: id })
        .await
        .unwrap();
    assert!(
        watch.next().await.is_none(),
        "the stream ends with the game"
    );
    server.stop().await;
}

async fn watch_streams_end_when_the_server_shuts_down(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    let mut watch = watch(&mut client, &id).await.unwrap();
    watch.next().await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("graceful shutdown does not wait on open watch streams");
    // Not a clean end, which would say the game ended: the watcher should watch again.
    let end = watch.next().await;
    assert!(
        matches!(&end, Some(Err(status)) if status.code() == Code::Unavailable),
        "{end:?}"
    );
}

async fn an_oversized_request_is_refused_with_resource_exhausted(store: Store) {
    // The gRPC status codes say so for a request larger than the server's limit;
    // tonic's own answer is OUT_OF_RANGE.
    let server = server(store, &[]).await;
    let mut client = server.client().await;
    let huge = "x".repeat(60_000);
    let status = get(&mut client, &huge).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("larger than this server accepts")
            && status.message().contains("16384 bytes"),
        "{}",
        status.message()
    );
    // The server still serves, on the same connection.
    assert!(create(&mut client, None).await.is_ok());
    server.stop().await;
}

async fn watchers_past_the_cap_are_refused_until_one_leaves(store: Store) {
    let server = server(store, &["--test-mode", "--max-watchers-per-game", "2"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    let first = watch(&mut client, &id).await.unwrap();
    let _second = watch(&mut client, &id).await.unwrap();
    let status = watch(&mut client, &id).await.unwrap_err();
    assert_refused(&status, Code::ResourceExhausted, "maximum of 2 watchers");
    // The cap is per game.
    let other = new_game(&mut client, "otter").await;
    assert!(watch(&mut client, &other).await.is_ok());
    // A watcher that hangs up makes room (once the server sees the stream reset).
    drop(first);
    eventually("the departed watcher still counts", async || {
        watch(&mut client, &id).await.ok()
    })
    .await;
    server.stop().await;
}

async fn watch_streams_past_the_server_wide_cap_are_refused_until_one_leaves(store: Store) {
    // Each watch stream holds memory, so their number is bounded however many games there are.
    let server = server(store, &["--test-mode", "--max-watchers", "2"]).await;
    let mut client = server.client().await;
    let mut games = Vec::new();
    for _ in 0..3 {
        games.push(new_game(&mut client, "otter").await);
    }
    let first = watch(&mut client, &games[0]).await.unwrap();
    let _second = watch(&mut client, &games[1]).await.unwrap();
    let status = watch(&mut client, &games[2]).await.unwrap_err();
    assert_refused(
        &status,
        Code::ResourceExhausted,
        "maximum of 2 watch streams",
    );
    drop(first);
    eventually("the departed watcher still counts", async || {
        watch(&mut client, &games[2]).await.ok()
    })
    .await;
    server.stop().await;
}

async fn a_game_watched_again_after_its_watchers_left_streams_every_change(store: Store) {
    // An unwatched game holds no change buffer: the last watcher to leave drops
    // it, and the next watcher gets a new one.
    let server = server(store, &["--test-mode", "--max-watchers-per-game", "1"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    let mut first = watch(&mut client, &id).await.unwrap();
    first.next().await.unwrap().unwrap();
    drop(first);
    // With a cap of one, the next watch succeeds once the server has seen the first leave.
    let mut again = eventually("the departed watcher still counts", async || {
        watch(&mut client, &id).await.ok()
    })
    .await;
    let now = again.next().await.unwrap().unwrap();
    assert!(now.tally.unwrap().used.is_empty());
    for letter in ["o", "x"] {
        let played = guess(&mut client, &id, letter).await;
        let change = again.next().await.unwrap().unwrap();
        assert_eq!(change.tally.unwrap(), played);
    }
    server.stop().await;
}

/// Writes `text` to a file of its own under the temporary directory; its path.
fn dictionary_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("game-service-{}-{name}.txt", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_dictionary_file_replaces_the_builtin_words() {
    let store = Store::Memory;
    let path = dictionary_file("one-word", "\nzebra\n");
    let server = server(store, &["--dictionary", path.to_str().unwrap()]).await;
    let mut client = server.client().await;
    let id = create(&mut client, None).await.unwrap().game_id;
    let mut tally = get(&mut client, &id).await.unwrap();
    for letter in ["z", "e", "b", "r", "a"] {
        tally = guess(&mut client, &id, letter).await;
    }
    assert_eq!(tally.game_state(), GameState::Won);
    assert_eq!(tally.word.as_deref(), Some("zebra"));
    server.stop().await;
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn words_given_in_memory_replace_the_builtin_words_and_any_dictionary_file() {
    let missing = std::env::temp_dir().join("game-service-no-such-dictionary.txt");
    let server = TestGameService::builder()
        .words(&["yak"])
        .flags(&["--dictionary", missing.to_str().unwrap()])
        .spawn()
        .await;
    let mut client = server.client().await;
    let id = create(&mut client, None).await.unwrap().game_id;
    let mut tally = get(&mut client, &id).await.unwrap();
    for letter in ["y", "a", "k"] {
        tally = guess(&mut client, &id, letter).await;
    }
    assert_eq!(tally.game_state(), GameState::Won);
    assert_eq!(tally.word.as_deref(), Some("yak"));
    server.stop().await;
}

#[tokio::test]
async fn a_bad_or_missing_dictionary_stops_start_up_with_a_reason() {
    let bad = dictionary_file("bad-word", "apple\nBanana\n");
    let missing = std::env::temp_dir().join("game-service-no-such-dictionary.txt");
    for (path, reason) in [(&bad, "line 2"), (&missing, "cannot read the dictionary")] {
        let config = Config::parse_from([
            "game-service",
            "--listen",
            "127.0.0.1:0",
            "--dictionary",
            path.to_str().unwrap(),
        ]);
        let Err(error) = game_service::start(config).await else {
            panic!("{} was accepted", path.display());
        };
        assert!(error.to_string().contains(reason), "{error}");
    }
    std::fs::remove_file(bad).unwrap();
}

store_suite!(
    a_full_game_is_won_by_guessing_every_letter,
    a_full_game_is_lost_after_seven_wrong_letters,
    an_invalid_guess_is_rejected_with_a_reason_and_changes_nothing,
    unknown_and_empty_ids_are_not_found_and_invalid,
    a_fixed_word_is_refused_outside_test_mode,
    a_fixed_word_must_be_lowercase_letters_even_in_test_mode,
    ids_are_unguessable_url_safe_text,
    an_idle_game_expires_after_its_ttl,
    a_full_registry_refuses_new_games_with_resource_exhausted,
    concurrent_moves_on_one_game_are_all_applied,
    a_watcher_gets_the_tally_now_then_every_change_in_order_then_the_end,
    watch_streams_end_when_the_server_shuts_down,
    an_oversized_request_is_refused_with_resource_exhausted,
    watchers_past_the_cap_are_refused_until_one_leaves,
    watch_streams_past_the_server_wide_cap_are_refused_until_one_leaves,
    a_game_watched_again_after_its_watchers_left_streams_every_change,
);
