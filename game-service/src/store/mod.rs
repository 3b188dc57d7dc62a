//! Where live games are kept, behind one small seam: [`GameStore`].
//!
//! - [`memory`]: in this process, the embedded default; a game lives as long as the process.
//! - [`redis`]: in Redis, shared by any number of replicas, surviving restarts and rollouts;
//!   [`tls`]: its TLS files, checked at start-up.
//!
//! Both apply moves with [`crate::rules`] only; a store keeps games, tells watchers of their
//! changes and keeps who is in each game's room (presence, as leases that clients renew).

pub mod memory;
pub mod redis;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use futures::stream::BoxStream;
use rand::Rng;
use thiserror::Error;

use crate::rules::{Game, InvalidGuess, InvalidWord, Tally};

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
    /// How long a member stays in a game's room without being renewed.
    pub presence_lease: Duration,
    /// The most members one game's room holds (and one presence update may list).
    pub max_members_per_game: usize,
    /// The most members in all the rooms a memory store holds (Redis holds a Redis store's).
    pub max_members: usize,
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
    #[error("the game's room has its maximum of {max} members")]
    TooManyMembers { max: usize },
    #[error("the server holds its maximum of {max} room members; try again later")]
    TooManyMembersInAll { max: usize },
    #[error("invalid presence member: {0}")]
    InvalidMember(String),
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

/// The longest member key and name, in characters.
pub const MAX_MEMBER_CHARS: usize = 64;

/// One connection in a game's room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Opaque, unique per connection.
    pub key: String,
    /// The player's name; may be empty.
    pub name: String,
    /// When the member joined, in seconds since the Unix epoch (set by the store).
    pub online_at: u64,
}

impl Member {
    /// Refuses a key that is empty or too long, or a name that is too long.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.key.is_empty() || self.key.chars().count() > MAX_MEMBER_CHARS {
            return Err(StoreError::InvalidMember(format!(
                "a key must be 1 to {MAX_MEMBER_CHARS} characters"
            )));
        }
        if self.name.chars().count() > MAX_MEMBER_CHARS {
            return Err(StoreError::InvalidMember(format!(
                "a name must be at most {MAX_MEMBER_CHARS} characters"
            )));
        }
        Ok(())
    }
}

/// What a watcher asks for besides the tallies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Also who is in the room: [`Change::PresenceState`] first, then diffs.
    pub presence: bool,
    /// The version of the last tally the watcher saw: recover every change since.
    pub since_version: Option<u64>,
}

/// A watcher's view of a game: a new tally, or who is in its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Tally(Tally),
    /// Everyone in the room: the first presence change, and again after a watcher fell
    /// behind by more than the watch buffer.
    PresenceState(Vec<Member>),
    PresenceDiff {
        joins: Vec<Member>,
        leaves: Vec<Member>,
    },
}

/// Whether the changes a watcher missed could be given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The watcher gave no version.
    NotAsked,
    /// The tallies after the watcher's version and before the current one, oldest first.
    Recovered(Vec<Tally>),
    /// A version the game never had, or older than its known history: only the current
    /// tally is known.
    Gap,
}

impl Recovery {
    /// What `game` can give back to a watcher whose last version was `since`.
    pub fn of(game: &Game, since: Option<u64>) -> Recovery {
        let Some(since) = since else {
            return Recovery::NotAsked;
        };
        game.tallies_since(since)
            .map_or(Recovery::Gap, Recovery::Recovered)
    }
}

/// A new watcher's view: the tally now, what it missed, and every change after it.
pub struct Subscription {
    pub tally: Tally,
    pub recovery: Recovery,
    pub changes: Changes,
}

/// A watcher's changes, in the order they were applied. Dropping it is how a watcher
/// leaves. A watcher that falls more than the watch buffer behind skips to the oldest
/// change still buffered (and is given the whole presence state again), so order is kept
/// and memory is bounded.
pub struct Changes(BoxStream<'static, Change>);

impl Changes {
    fn new(changes: BoxStream<'static, Change>) -> Changes {
        Changes(changes)
    }

    /// The next change, or `None` once the game has ended or expired.
    pub async fn next(&mut self) -> Option<Change> {
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

    /// The tally now and every later change, with none falling between the two; with
    /// `options`, also the room's members and the changes missed since a version.
    fn watch(
        &self,
        id: &str,
        options: WatchOptions,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send;

    /// Adds or renews the members in `renew` for one lease, and removes those keyed in
    /// `leave`; watchers asking for presence get the joins and leaves. Not game activity.
    fn update_presence(
        &self,
        id: &str,
        renew: Vec<Member>,
        leave: Vec<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a game; its watchers' streams end.
    fn end(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the members whose lease ran out, telling watchers they left; returns how many.
    fn expire_presence(&self) -> impl Future<Output = usize> + Send;

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

    async fn watch(&self, id: &str, options: WatchOptions) -> Result<Subscription, StoreError> {
        MemoryStore::watch(self, id, options)
    }

    async fn update_presence(
        &self,
        id: &str,
        renew: Vec<Member>,
        leave: Vec<String>,
    ) -> Result<(), StoreError> {
        MemoryStore::update_presence(self, id, renew, leave)
    }

    async fn end(&self, id: &str) -> Result<(), StoreError> {
        MemoryStore::end(self, id)
    }

    async fn expire_presence(&self) -> usize {
        MemoryStore::expire_presence(self)
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

    async fn watch(&self, id: &str, options: WatchOptions) -> Result<Subscription, StoreError> {
        RedisStore::watch(self, id, options).await
    }

    async fn update_presence(
        &self,
        id: &str,
        renew: Vec<Member>,
        leave: Vec<String>,
    ) -> Result<(), StoreError> {
        RedisStore::update_presence(self, id, renew, leave).await
    }

    async fn end(&self, id: &str) -> Result<(), StoreError> {
        RedisStore::end(self, id).await
    }

    async fn expire_presence(&self) -> usize {
        RedisStore::expire_presence(self).await
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
