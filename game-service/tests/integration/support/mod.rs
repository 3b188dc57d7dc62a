//! What the game service's tests share beyond `game_service::testing`: the two stores a suite
//! runs against, the calls they make, and how they wait for what happens in time.

use std::time::Duration;

use game_service::testing::{Client, TestGameService};
use hangman_proto::v1::{
    CreateGameRequest, CreateGameResponse, GetGameRequest, MakeMoveRequest, Tally,
    WatchGameRequest, WatchGameResponse,
};
use tonic::{Code, Status, Streaming, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Where the server under test keeps its games.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Memory,
    /// A `redis-server` started for the test, and stopped with it.
    Redis,
}

/// A game service on port 0 with games in `store`, the built-in words and `flags`.
pub async fn server(store: Store, flags: &[&str]) -> TestGameService {
    let service = TestGameService::builder().flags(flags);
    match store {
        Store::Memory => service,
        Store::Redis => service.own_redis(),
    }
    .spawn()
    .await
}

pub async fn create(client: &mut Client, word: Option<&str>) -> Result<CreateGameResponse, Status> {
    let word = word.map(String::from);
    Ok(client
        .create_game(CreateGameRequest { word })
        .await?
        .into_inner())
}

/// A new game with a fixed word (the server must be in test mode); its id.
pub async fn new_game(client: &mut Client, word: &str) -> String {
    create(client, Some(word)).await.unwrap().game_id
}

pub async fn try_guess(client: &mut Client, game_id: &str, guess: &str) -> Result<Tally, Status> {
    let request = MakeMoveRequest {
        game_id: game_id.into(),
        guess: guess.into(),
    };
    Ok(client.make_move(request).await?.into_inner().tally.unwrap())
}

pub async fn guess(client: &mut Client, game_id: &str, guess: &str) -> Tally {
    try_guess(client, game_id, guess).await.unwrap()
}

pub async fn get(client: &mut Client, game_id: &str) -> Result<Tally, Status> {
    let request = GetGameRequest {
        game_id: game_id.into(),
    };
    Ok(client.get_game(request).await?.into_inner().tally.unwrap())
}

/// A watch stream on the game: its tally now, then every change.
pub async fn watch(
    client: &mut Client,
    game_id: &str,
) -> Result<Streaming<WatchGameResponse>, Status> {
    let request = WatchGameRequest {
        game_id: game_id.into(),
        ..Default::default()
    };
    Ok(client.watch_game(request).await?.into_inner())
}

/// The stream's next message, within ten seconds; panics if the stream ends or fails.
pub async fn next_message(stream: &mut Streaming<WatchGameResponse>) -> WatchGameResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message within ten seconds")
        .expect("the stream goes on")
        .expect("a message, not the end")
}

/// A connection of its own to `server`, for clients other than the game client.
pub async fn channel(server: &TestGameService) -> Channel {
    Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The health check's status of the game service.
pub async fn health(server: &TestGameService) -> ServingStatus {
    let mut health = HealthClient::new(channel(server).await);
    let request = HealthCheckRequest {
        service: "hangman.v1.HangmanService".into(),
    };
    health.check(request).await.unwrap().into_inner().status()
}

/// Polls the health check until it reports `wanted`, for at most ten seconds.
pub async fn until_health(server: &TestGameService, wanted: ServingStatus) {
    let stuck = format!("health never turned {wanted:?}");
    eventually(&stuck, async || {
        (health(server).await == wanted).then_some(())
    })
    .await;
}

/// Asserts that a call was refused with `code` and a message that says `why`.
#[track_caller]
pub fn assert_refused(status: &Status, code: Code, why: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(why), "{}", status.message());
}

/// Tries `attempt` again every 20 ms until it gives something, for at most ten seconds; what
/// it gave. Panics with `stuck`, what it means that nothing came.
pub async fn eventually<T>(stuck: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match attempt().await {
                Some(outcome) => break outcome,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    outcome.expect(stuck)
}

/// One `#[tokio::test]` per store for each suite test `async fn name(store: Store)`, named
/// `memory::name` and `redis::name`.
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::Store::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::support::Store::Redis).await
                }
            )*
        }
    };
}
pub(crate) use store_suite;
