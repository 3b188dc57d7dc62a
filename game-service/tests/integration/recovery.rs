//! Versions and recovery over gRPC: every tally carries the number of changes its game has
//! had, and a watch given the last version its client saw recovers the tallies it missed.

use game_service::testing::Client;
use hangman_proto::v1::{Tally, WatchGameRequest, WatchGameResponse};
use tonic::Streaming;

use crate::support::{Store, create, get, guess, next_message, server, store_suite};

async fn watch_since(
    client: &mut Client,
    game_id: &str,
    since_version: Option<u64>,
) -> Streaming<WatchGameResponse> {
    let request = WatchGameRequest {
        game_id: game_id.into(),
        presence: false,
        since_version,
    };
    client.watch_game(request).await.unwrap().into_inner()
}

fn versions(tallies: &[Tally]) -> Vec<u64> {
    tallies.iter().map(|tally| tally.version).collect()
}

async fn every_tally_carries_the_number_of_changes(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let created = create(&mut client, Some("otter")).await.unwrap();
    let id = created.game_id;
    assert_eq!(created.tally.unwrap().version, 0);
    let mut stream = watch_since(&mut client, &id, None).await;
    assert_eq!(next_message(&mut stream).await.tally.unwrap().version, 0);

    // The second "t" changes the state to already_used; the third changes nothing.
    let mut played = Vec::new();
    for letter in ["t", "z", "t", "t", "o"] {
        played.push(guess(&mut client, &id, letter).await.version);
    }
    assert_eq!(played, [1, 2, 3, 3, 4]);
    assert_eq!(get(&mut client, &id).await.unwrap().version, 4);
    let mut watched = Vec::new();
    for _ in 0..4 {
        watched.push(next_message(&mut stream).await.tally.unwrap().version);
    }
    assert_eq!(watched, [1, 2, 3, 4], "one message per change");
    server.stop().await;
}

async fn a_watch_since_a_version_recovers_the_tallies_missed_in_order(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = create(&mut client, Some("otter")).await.unwrap().game_id;
    let mut played = Vec::new();
    for letter in ["t", "z", "o", "e"] {
        played.push(guess(&mut client, &id, letter).await);
    }

    let mut stream = watch_since(&mut client, &id, Some(1)).await;
    let first = next_message(&mut stream).await;
    assert_eq!(first.recovered, Some(true));
    assert_eq!(first.missed, played[1..3], "versions 2 and 3, oldest first");
    assert_eq!(first.tally.as_ref(), played.last());
    // Later messages are changes only.
    let tally = guess(&mut client, &id, "r").await;
    let later = next_message(&mut stream).await;
    assert_eq!(
        (later.tally, later.recovered, later.missed),
        (Some(tally), None, vec![])
    );

    let from_start = next_message(&mut watch_since(&mut client, &id, Some(0)).await).await;
    assert_eq!(from_start.recovered, Some(true));
    assert_eq!(versions(&from_start.missed), [1, 2, 3, 4]);
    let current = next_message(&mut watch_since(&mut client, &id, Some(5)).await).await;
    assert_eq!((current.recovered, current.missed), (Some(true), vec![]));
    server.stop().await;
}

async fn a_version_the_game_never_had_is_not_recovered(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = create(&mut client, Some("otter")).await.unwrap().game_id;
    let tally = guess(&mut client, &id, "t").await;

    let future = next_message(&mut watch_since(&mut client, &id, Some(7)).await).await;
    assert_eq!(future.recovered, Some(false));
    assert_eq!(future.missed, []);
    assert_eq!(
        future.tally,
        Some(tally.clone()),
        "the current tally is all there is"
    );

    let not_asked = next_message(&mut watch_since(&mut client, &id, None).await).await;
    assert_eq!((not_asked.recovered, not_asked.missed), (None, vec![]));
    assert_eq!(not_asked.tally, Some(tally));
    server.stop().await;
}

store_suite!(
    every_tally_carries_the_number_of_changes,
    a_watch_since_a_version_recovers_the_tallies_missed_in_order,
    a_version_the_game_never_had_is_not_recovered,
);
