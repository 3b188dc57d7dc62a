//! `--max-connection-age` retires a connection gracefully (GOAWAY: the client opens its next
//! calls on a new connection, the open ones finish), and `--max-connection-age-grace` bounds
//! how long an open call, such as a watch, keeps the retired connection. (That retired
//! connections fail no call of a front end is tested in ws-gateway's and html-gallows' tests.)

use std::time::Duration;

use hangman_proto::v1::{CreateGameRequest, MakeMoveRequest, WatchGameRequest};

use crate::support::{Store, server};

/// A guard against a hung test; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_watch_outlives_its_connections_age_until_the_grace_is_over() {
    let server = server(
        Store::Memory,
        &[
            "--test-mode",
            "--max-connection-age",
            "300ms",
            "--max-connection-age-grace",
            "1s",
        ],
    )
    .await;
    let (mut watcher, mut player) = (server.client().await, server.client().await);
    let request = CreateGameRequest {
        word: Some("otter".into()),
    };
    let game_id = player
        .create_game(request)
        .await
        .unwrap()
        .into_inner()
        .game_id;
    let mut watch = watcher
        .watch_game(WatchGameRequest {
            game_id: game_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(watch.message().await.unwrap().is_some(), "the tally now");
    // Past the connection's age the watch goes on: retiring a connection ends no call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let request = MakeMoveRequest {
        game_id: game_id.clone(),
        guess: "t".into(),
    };
    player.make_move(request).await.unwrap();
    let moved = tokio::time::timeout(PATIENCE, watch.message()).await;
    let tally = moved
        .unwrap()
        .unwrap()
        .expect("the move, on the watch")
        .tally;
    assert_eq!(tally.unwrap().letters.concat(), "_tt__");
    // Past age + grace the connection is cut, and the watch with it.
    let end = tokio::time::timeout(PATIENCE, watch.message())
        .await
        .expect("the watch ends once the grace is over");
    assert!(end.is_err(), "cut, not ended by the game: {end:?}");
    server.stop().await;
}
