//! What the game service's tests share beyond `game_service::testing`: the two stores a suite
//! runs against.

#![allow(dead_code)] // each test binary uses its own part of this

use game_service::testing::TestGameService;

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

/// One `#[tokio::test]` per store for each suite test `async fn name(store: Store)`, named
/// `memory::name` and `redis::name`.
#[macro_export]
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
