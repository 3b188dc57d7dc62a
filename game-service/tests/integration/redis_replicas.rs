//! With games in Redis, replicas of the game service are interchangeable: any one plays any
//! game, watchers see moves made through the others, and a replica dying loses nothing.

use std::time::Duration;

use futures::StreamExt;
use game_service::testing::{GameServiceProcess, RedisServer, TestGameService};
use hangman_proto::v1::{
    CreateGameRequest, EndGameRequest, GameState, Tally, WatchGameResponse,
    hangman_service_client::HangmanServiceClient,
};
use tonic::{Code, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{
    Store, assert_refused, channel, get, new_game, server, try_guess, until_health, watch,
};

fn letters(tally: &Tally) -> String {
    tally.letters.concat()
}

/// The next change `watch` streams: its tally. Panics with `late` if none comes within ten
/// seconds.
async fn next_change(watch: &mut Streaming<WatchGameResponse>, late: &str) -> Tally {
    let change = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
    change.expect(late).unwrap().unwrap().tally.unwrap()
}

#[tokio::test]
async fn a_game_created_through_one_replica_is_played_through_another() {
    let a = server(Store::Redis, &["--test-mode"]).await;
    let b = a.replica(&["--test-mode"]).await;
    let (mut via_a, mut via_b) = (a.client().await, b.client().await);
    let id = new_game(&mut via_a, "otter").await;
    assert_eq!(
        letters(&try_guess(&mut via_b, &id, "t").await.unwrap()),
        "_tt__"
    );
    assert_eq!(
        letters(&try_guess(&mut via_a, &id, "o").await.unwrap()),
        "ott__"
    );
    let seen_by_b = get(&mut via_b, &id).await.unwrap();
    assert_eq!(seen_by_b.used, ["o", "t"]);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_watcher_on_one_replica_sees_moves_made_through_another_in_order() {
    let a = server(Store::Redis, &["--test-mode"]).await;
    let b = a.replica(&["--test-mode"]).await;
    let (mut via_a, mut via_b) = (a.client().await, b.client().await);
    let id = new_game(&mut via_a, "otter").await;
    let mut watch = watch(&mut via_a, &id).await.unwrap();
    let now = watch.next().await.unwrap().unwrap().tally.unwrap();
    assert_eq!(now.game_state(), GameState::Initializing);
    let mut played = Vec::new();
    for letter in ["t", "x", "o", "e", "r"] {
        played.push(try_guess(&mut via_b, &id, letter).await.unwrap());
    }
    for expected in played {
        let change = next_change(
            &mut watch,
            "a move through the other replica reaches the watcher",
        )
        .await;
        assert_eq!(change, expected);
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn concurrent_moves_from_two_replicas_are_each_applied_exactly_once() {
    let a = server(Store::Redis, &["--test-mode"]).await;
    let b = a.replica(&["--test-mode"]).await;
    let word = "thequickbrownfoxjumpsoverthelazydog";
    let id = new_game(&mut a.client().await, word).await;
    // 500 moves through each replica at once: every letter but z, many times over, so that
    // nearly every move races another one for the same version of the game.
    let alphabet: Vec<String> = ('a'..='y').map(String::from).collect();
    let mut moves = Vec::new();
    for (server, offset) in [(&a, 0), (&b, 7)] {
        let channel = channel(server).await;
        for i in 0..500 {
            let mut client = HangmanServiceClient::new(channel.clone());
            let (id, letter) = (id.clone(), alphabet[(i + offset) % alphabet.len()].clone());
            moves.push(tokio::spawn(async move {
                try_guess(&mut client, &id, &letter).await
            }));
        }
    }
    let mut first_plays = 0;
    for played in moves {
        let tally = played
            .await
            .unwrap()
            .expect("every move is applied, none refused");
        if tally.game_state() != GameState::AlreadyUsed {
            first_plays += 1;
        }
    }
    // Each letter was new to exactly one move: had two moves been applied to the same
    // version (one lost), both would have found their letter new.
    assert_eq!(first_plays, alphabet.len());
    let last = get(&mut a.client().await, &id).await.unwrap();
    // Applied one after another in any order, the same moves leave this: every letter but z
    // shown and used, no turn spent (z is the only letter of the alphabet the moves miss,
    // and the word has every letter, so no move was wrong).
    let sequential: String = word
        .chars()
        .map(|c| if c == 'z' { '_' } else { c })
        .collect();
    assert_eq!(letters(&last), sequential);
    assert_eq!(last.used, alphabet);
    assert_eq!(last.turns_left, 7);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn after_kill_9_of_one_replica_the_game_goes_on_through_the_other_with_nothing_lost() {
    let redis = RedisServer::start();
    let store = redis.url();
    let flags = ["--test-mode", "--store", &store];
    let mut a = GameServiceProcess::spawn(env!("CARGO_BIN_EXE_game-service"), &[], &flags);
    let b = GameServiceProcess::spawn(env!("CARGO_BIN_EXE_game-service"), &[], &flags);
    let mut via_a = HangmanServiceClient::connect(a.url()).await.unwrap();
    let id = new_game(&mut via_a, "otter").await;
    for letter in ["t", "x", "o"] {
        try_guess(&mut via_a, &id, letter).await.unwrap();
    }
    a.kill_9();
    assert!(
        try_guess(&mut via_a, &id, "e").await.is_err(),
        "replica A is gone"
    );
    let mut via_b = HangmanServiceClient::connect(b.url()).await.unwrap();
    let tally = get(&mut via_b, &id).await.unwrap();
    assert_eq!((letters(&tally), tally.turns_left), ("ott__".into(), 6));
    let won = try_guess(&mut via_b, &id, "e").await.unwrap();
    let won = if won.game_state() == GameState::Won {
        won
    } else {
        try_guess(&mut via_b, &id, "r").await.unwrap()
    };
    assert_eq!(won.game_state(), GameState::Won);
    assert_eq!(won.word.as_deref(), Some("otter"));
}

#[tokio::test]
async fn games_live_counts_the_games_in_redis_as_they_are_made_and_ended() {
    let redis = RedisServer::start();
    let store = redis.url();
    let replica = GameServiceProcess::spawn(
        env!("CARGO_BIN_EXE_game-service"),
        &[],
        &["--test-mode", "--store", &store],
    );
    let mut games = HangmanServiceClient::connect(replica.url()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(new_game(&mut games, "otter").await);
    }
    assert_eq!(replica.metric("hangman_games_live").await, 3.0);
    let game_id = ids.pop().unwrap();
    games.end_game(EndGameRequest { game_id }).await.unwrap();
    assert_eq!(replica.metric("hangman_games_live").await, 2.0);
}

#[tokio::test]
async fn with_redis_down_calls_are_unavailable_and_health_not_serving_until_it_is_back() {
    let mut server = server(Store::Redis, &["--store-timeout", "500ms"]).await;
    let mut games = server.client().await;
    until_health(&server, ServingStatus::Serving).await;
    server.redis_mut().unwrap().kill();
    let refused = games
        .create_game(CreateGameRequest::default())
        .await
        .unwrap_err();
    assert_refused(&refused, Code::Unavailable, "game store is unavailable");
    until_health(&server, ServingStatus::NotServing).await;
    // Back, on the same address: no restart of the service is needed.
    server.redis_mut().unwrap().restart();
    until_health(&server, ServingStatus::Serving).await;
    let created = games.create_game(CreateGameRequest::default()).await;
    assert!(created.is_ok(), "{created:?}");
    server.stop().await;
}

#[tokio::test]
async fn with_redis_out_of_memory_new_games_and_moves_are_resource_exhausted_until_it_has_room() {
    let server = server(Store::Redis, &["--test-mode"]).await;
    let mut games = server.client().await;
    let id = new_game(&mut games, "otter").await;
    let redis = server.redis().unwrap();
    // Below what Redis already uses: with `noeviction` (the default), every write is refused.
    assert!(redis.command("CONFIG SET maxmemory 1").starts_with("+OK"));
    let refused = games
        .create_game(CreateGameRequest::default())
        .await
        .unwrap_err();
    assert_refused(&refused, Code::ResourceExhausted, "out of memory");
    let refused = try_guess(&mut games, &id, "t").await.unwrap_err();
    assert_refused(&refused, Code::ResourceExhausted, "out of memory");
    // Redis answers: the service is still serving, and the game is as it was.
    until_health(&server, ServingStatus::Serving).await;
    assert_eq!(letters(&get(&mut games, &id).await.unwrap()), "_____");
    assert!(redis.command("CONFIG SET maxmemory 0").starts_with("+OK"));
    assert_eq!(
        letters(&try_guess(&mut games, &id, "t").await.unwrap()),
        "_tt__"
    );
    server.stop().await;
}

/// Sends `commands` to `redis` on one connection, authenticated as `user`; the raw replies.
fn redis_as(redis: &RedisServer, user: &str, password: &str, commands: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    let mut script = format!("AUTH {user} {password}\r\n");
    for command in commands {
        script.push_str(command);
        script.push_str("\r\n");
    }
    stream.write_all(script.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut replies = String::new();
    stream.read_to_string(&mut replies).unwrap();
    replies
}

/// Replica B of `a` (its Redis, test mode), logged in as a user of its own, so that A alone
/// can be shut out of Redis ([`shut_out`]).
pub(crate) async fn replica_with_a_user_of_its_own(a: &TestGameService) -> TestGameService {
    let redis = a.redis().unwrap();
    assert!(
        redis
            .command("ACL SETUSER b on >pw ~* &* +@all")
            .contains("OK")
    );
    let b_store = redis.url().replace("redis://", "redis://b:pw@");
    TestGameService::builder()
        .flags(&["--test-mode"])
        .store(&b_store)
        .spawn()
        .await
}

/// Cuts the replicas logged in as the default user off: their connection is killed and they
/// cannot log in again until [`let_in`].
pub(crate) fn shut_out(redis: &RedisServer) {
    let cut = redis_as(
        redis,
        "b",
        "pw",
        &["ACL SETUSER default off", "CLIENT KILL USER default"],
    );
    assert!(cut.contains("+OK"), "{cut}");
}

pub(crate) fn let_in(redis: &RedisServer) {
    let back = redis_as(redis, "b", "pw", &["ACL SETUSER default on"]);
    assert!(back.contains("+OK"), "{back}");
}

#[tokio::test]
async fn a_change_published_while_a_replica_was_cut_off_from_redis_reaches_its_watcher() {
    let a = server(Store::Redis, &["--test-mode", "--store-timeout", "300ms"]).await;
    let b = replica_with_a_user_of_its_own(&a).await;
    let (mut via_a, mut via_b) = (a.client().await, b.client().await);
    let id = new_game(&mut via_a, "otter").await;
    let mut watch = watch(&mut via_a, &id).await.unwrap();
    watch.next().await.unwrap().unwrap();

    shut_out(a.redis().unwrap());
    let missed = try_guess(&mut via_b, &id, "t").await.unwrap();
    // Let A in again: it reconnects, subscribes again and reads the game it watches.
    let_in(a.redis().unwrap());
    let change = next_change(
        &mut watch,
        "the change made while A was cut off reaches A's watcher",
    )
    .await;
    assert_eq!(change, missed);
    b.stop().await;
    a.stop().await;
}
