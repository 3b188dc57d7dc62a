//! Where live games are kept, behind one small seam: [`GameStore`].
//!
//! - [`memory`]: in this process, the embedded default; a game lives as long as the process.
//! - [`redis`]: in Redis, shared by any number of replicas, surviving restarts and rollouts.
//!
//! Both apply moves with [`crate::rules`] only; a store keeps games and tells watchers.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use futures::stream::BoxStream;
use rand::Rng;
use thiserror::Error;

use crate::rules::{InvalidGuess, InvalidWord, Tally};

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// An unguessable game id: 128 random bits as unpadded URL-safe base64.
pub type GameId = Arc<str>;

/// How many games a store holds, how long they live and how many may watch them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_games: usize,
    pub game_ttl: Duration,
    pub watch_buffer: usize,
    pub max_watchers_per_game: usize,
    pub max_watchers: usize,
}

/// Why a store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("no game with this id (it may have ended or expired)")]
    NotFound,
    #[error("the game id is empty")]
    EmptyId,
    #[error("the server holds its maximum of {max} games; try again later")]
    Full { max: usize },
    #[error("the game has its maximum of {max} watchers")]
    TooManyWatchers { max: usize },
    #[error("the server holds its maximum of {max} watch streams; try again later")]
    TooManyWatchStreams { max: usize },
    #[error(transparent)]
    InvalidGuess(#[from] InvalidGuess),
    #[error("invalid word: {0}")]
    InvalidWord(#[from] InvalidWord),
    #[error("too many concurrent moves on this game; try again")]
    Contention,
    #[error("the game store is unavailable: {0}")]
    Unavailable(String),
    #[error("the game store is out of memory: {0}")]
    StoreFull(String),
    #[error("the game store holds something that is not a game: {0:?}")]
    Corrupt(String),
    #[error("invalid game store URL: {0}")]
    Config(String),
}

/// A new watcher's view: the tally now and every change after it.
pub struct Subscription {
    pub tally: Tally,
    pub changes: Changes,
}

/// A watcher's changes, in the order they were applied. Dropping it is how a watcher
/// leaves. A watcher that falls more than the watch buffer behind skips to the oldest
/// change still buffered, so order is kept and memory is bounded.
pub struct Changes(BoxStream<'static, Tally>);

impl Changes {
    fn new(changes: BoxStream<'static, Tally>) -> Changes {
        Changes(changes)
    }

    /// The next change, or `None` once the game has ended or expired.
    pub async fn next(&mut self) -> Option<Tally> {
        self.0.next().await
    }
}

/// The operations the gRPC API needs of a store of games.
pub trait GameStore: Send + Sync + 'static {
    /// Starts a game with `word`, or a random word from the dictionary.
    fn create(
        &self,
        word: Option<&str>,
    ) -> impl Future<Output = Result<(GameId, Tally), StoreError>> + Send;

    /// The game's current tally. Reading is not activity: it does not extend the TTL.
    fn get(&self, id: &str) -> impl Future<Output = Result<Tally, StoreError>> + Send;

    /// Plays one guess; watchers get the new tally when it changed.
    fn make_move(
        &self,
        id: &str,
        guess: &str,
    ) -> impl Future<Output = Result<Tally, StoreError>> + Send;

    /// The tally now and every later change, with none falling between the two.
    fn watch(&self, id: &str) -> impl Future<Output = Result<Subscription, StoreError>> + Send;

    /// Removes a game; its watchers' streams end.
    fn end(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops (or, where the store expires games itself, stops watching) games idle past
    /// their TTL; returns how many.
    fn sweep(&self) -> impl Future<Output = usize> + Send;

    /// Whether the store can serve: the health check turns NOT_SERVING while it cannot.
    fn check(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl GameStore for MemoryStore {
    async fn create(&self, word: Option<&str>) -> Result<(GameId, Tally), StoreError> {
        MemoryStore::create(self, word)
    }

    async fn get(&self, id: &str) -> Result<Tally, StoreError> {
        MemoryStore::get(self, id)
    }

    async fn make_move(&self, id: &str, guess: &str) -> Result<Tally, StoreError> {
        MemoryStore::make_move(self, id, guess)
    }

    async fn watch(&self, id: &str) -> Result<Subscription, StoreError> {
        MemoryStore::watch(self, id)
    }

    async fn end(&self, id: &str) -> Result<(), StoreError> {
        MemoryStore::end(self, id)
    }

    async fn sweep(&self) -> usize {
        MemoryStore::sweep(self)
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl GameStore for RedisStore {
    async fn create(&self, word: Option<&str>) -> Result<(GameId, Tally), StoreError> {
        RedisStore::create(self, word).await
    }

    async fn get(&self, id: &str) -> Result<Tally, StoreError> {
        RedisStore::get(self, id).await
    }

    async fn make_move(&self, id: &str, guess: &str) -> Result<Tally, StoreError> {
        RedisStore::make_move(self, id, guess).await
    }

    async fn watch(&self, id: &str) -> Result<Subscription, StoreError> {
        RedisStore::watch(self, id).await
    }

    async fn end(&self, id: &str) -> Result<(), StoreError> {
        RedisStore::end(self, id).await
    }

    async fn sweep(&self) -> usize {
        RedisStore::sweep(self).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        RedisStore::check(self).await
    }
}

fn new_game_id() -> GameId {
    let bytes: [u8; 16] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .into()
}
