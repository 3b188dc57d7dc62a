//! Games in Redis, shared by every replica of the game service.
//!
//! Each game is one hash, `hangman:{<id>}`, with a version `v` and the game's [`Record`] `g`;
//! the game TTL is the key's expiry, refreshed by every move, so nothing needs sweeping. Its
//! changes go out on the shard channel `hangman:{<id>}:changes`: the hash tag puts the key and
//! the channel in one Redis Cluster slot.
//!
//! A move reads the game, applies the guess with [`crate::rules`] and writes the result back
//! with a compare-and-set script that checks the version, bumps it, refreshes the expiry and
//! publishes the change in one atomic step. A replica that lost a race to another one's move
//! reads again and retries, so no move is lost or applied twice. No rule is written in Lua.
//!
//! Each replica keeps one multiplexed, auto-reconnecting connection (RESP3, so the
//! subscriptions' messages arrive on the same connection as the replies). A watched game is
//! subscribed once per replica however many watchers it has. Every published change carries
//! the version and the whole game, so a watcher that missed messages (a version jump) is
//! current again with the next one; after a reconnect, every watched game is read again,
//! since a message lost while disconnected may have been the last one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Script, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};

use super::{
    Change, Changes, GameId, Limits, Member, Recovery, StoreError, Subscription, WatchOptions,
    new_game_id,
};
use crate::dictionary::Dictionary;
use crate::rules::{Game, GameState, History, Record, Tally};

/// How many times a move is tried against concurrent moves on the same game before the
/// caller is told to try again. Each retry follows a move that did succeed, and a game has at
/// most 26 moves that change it, so this is only reached under pathological contention.
const MAX_MOVE_ATTEMPTS: usize = 64;

/// How long the estimate of live games is trusted before `DBSIZE` is asked again.
const GAME_COUNT_TTL: Duration = Duration::from_secs(1);

/// Checks the version, writes the game, refreshes the expiry and publishes the change.
/// KEYS: the game, its channel. ARGV: the version read, the new version, the new record,
/// the TTL in milliseconds. Returns 1 when written, 0 when the version moved on (or the game
/// is gone).
const COMPARE_AND_SET: &str = r"
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'g', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], ARGV[2] .. ' ' .. ARGV[3])
return 1
";

/// Deletes the game and tells its watchers. KEYS: the game, its channel. Returns 1 when the
/// game existed.
const END: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('PUBLISH', KEYS[2], 'end')
return 1
";

/// Games in Redis (see the module docs).
pub struct RedisStore {
    connection: ConnectionManager,
    dictionary: Dictionary,
    limits: Limits,
    compare_and_set: Script,
    end: Script,
    watched: Arc<Watched>,
    subscriptions: mpsc::UnboundedSender<Subscriptions>,
    watch_streams: Arc<Semaphore>,
    game_count: Mutex<Option<(Instant, usize)>>,
}

impl RedisStore {
    /// Connects lazily: the service starts (not serving) while Redis is down, and serves as
    /// soon as it is up. `url` is `redis://` or `rediss://` with optional user, password and
    /// database.
    pub fn connect(
        url: &str,
        dictionary: Dictionary,
        limits: Limits,
        timeout: Duration,
    ) -> Result<RedisStore, StoreError> {
        let info = url
            .into_connection_info()
            .map_err(|error| StoreError::Config(error.to_string()))?;
        // RESP3: subscription messages come as pushes on the shared connection.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|error| StoreError::Config(error.to_string()))?;
        let (pushes, received) = mpsc::unbounded_channel();
        // A call fails fast while Redis is down (after one reconnection attempt) rather than
        // waiting out the backoff; the manager keeps reconnecting on later calls.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2))
            .set_push_sender(pushes)
            .set_automatic_resubscription();
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|error| StoreError::Config(error.to_string()))?;
        let watched = Arc::new(Watched::default());
        tokio::spawn(deliver_changes(
            received,
            Arc::downgrade(&watched),
            connection.clone(),
        ));
        let (subscriptions, requests) = mpsc::unbounded_channel();
        tokio::spawn(manage_subscriptions(
            requests,
            Arc::downgrade(&watched),
            connection.clone(),
        ));
        Ok(RedisStore {
            connection,
            dictionary,
            watch_streams: Arc::new(Semaphore::new(limits.max_watchers)),
            limits,
            compare_and_set: Script::new(COMPARE_AND_SET),
            end: Script::new(END),
            watched,
            subscriptions,
            game_count: Mutex::new(None),
        })
    }

    pub async fn create(&self, word: Option<&str>) -> Result<(GameId, Tally), StoreError> {
        let game = Game::new(word.unwrap_or_else(|| self.dictionary.random_word()))?;
        if self.live_games().await? >= self.limits.max_games {
            return Err(StoreError::Full {
                max: self.limits.max_games,
            });
        }
        let id = new_game_id();
        let key = game_key(&id);
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &[("v", "1"), ("g", &encode(&game))])
            .ignore()
            .pexpire(&key, self.ttl_ms())
            .ignore()
            .exec_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        self.count_games(1);
        Ok((id, game.tally()))
    }

    /// Reading is not activity: it does not extend the TTL.
    pub async fn get(&self, id: &str) -> Result<Tally, StoreError> {
        let (_, game) = self.read(id).await?;
        Ok(game.tally())
    }

    pub async fn make_move(&self, id: &str, guess: &str) -> Result<Tally, StoreError> {
        for _ in 0..MAX_MOVE_ATTEMPTS {
            let (version, mut game) = self.read(id).await?;
            let before = game.clone();
            game.make_move(guess)?;
            let key = game_key(id);
            if game == before {
                // Nothing to write or tell watchers, but a move is activity.
                redis::cmd("PEXPIRE")
                    .arg(&key)
                    .arg(self.ttl_ms())
                    .exec_async(&mut self.connection.clone())
                    .await
                    .map_err(unavailable)?;
                return Ok(game.tally());
            }
            let written: i64 = self
                .compare_and_set
                .key(&key)
                .key(channel(id))
                .arg(version)
                .arg(version + 1)
                .arg(encode(&game))
                .arg(self.ttl_ms())
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(unavailable)?;
            if written == 1 {
                return Ok(game.tally());
            }
        }
        Err(StoreError::Contention)
    }

    pub async fn end(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let ended: i64 = self
            .end
            .key(game_key(id))
            .key(channel(id))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        if ended == 1 {
            self.count_games(-1);
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Subscribes first and reads second, so that no change falls between the two; changes
    /// up to the version read are skipped.
    pub async fn watch(&self, id: &str, options: WatchOptions) -> Result<Subscription, StoreError> {
        check_id(id)?;
        let permit = Arc::clone(&self.watch_streams)
            .try_acquire_owned()
            .map_err(|_| StoreError::TooManyWatchStreams {
                max: self.limits.max_watchers,
            })?;
        let id: GameId = id.into();
        let (receiver, newly_watched) = self.watched.join(
            &id,
            self.limits.watch_buffer,
            self.limits.max_watchers_per_game,
        )?;
        let leave = Leave {
            id: id.clone(),
            watched: Arc::downgrade(&self.watched),
            subscriptions: self.subscriptions.clone(),
            _permit: permit,
        };
        if newly_watched {
            let (done, subscribed) = oneshot::channel();
            let _ = self
                .subscriptions
                .send(Subscriptions::Subscribe(id.clone(), done));
            subscribed
                .await
                .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))??;
        }
        let (version, game) = self.read(&id).await?;
        self.watched.seen(&id, version);
        let changes = futures::stream::unfold(
            (receiver, version, leave),
            |(mut receiver, mut seen, leave)| async move {
                loop {
                    match receiver.recv().await {
                        Ok((version, tally)) if version > seen => {
                            seen = version;
                            return Some((Change::Tally(tally), (receiver, seen, leave)));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        );
        Ok(Subscription {
            tally: game.tally(),
            recovery: Recovery::of(&game, options.since_version),
            changes: Changes::new(changes.boxed()),
        })
    }

    /// Adds or renews members of a game's room and removes others (see [`GameStore`]).
    ///
    /// [`GameStore`]: super::GameStore
    pub async fn update_presence(
        &self,
        id: &str,
        renew: Vec<Member>,
        leave: Vec<String>,
    ) -> Result<(), StoreError> {
        let _ = (id, renew, leave);
        Err(StoreError::Unavailable("presence: not yet".into()))
    }

    /// Removes the members whose lease ran out (see [`GameStore`]).
    ///
    /// [`GameStore`]: super::GameStore
    pub async fn expire_presence(&self) -> usize {
        0
    }

    /// Whether Redis answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .exec_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }

    /// Ends the streams of watched games that expired (expiry publishes nothing).
    pub async fn sweep(&self) -> usize {
        let ids = self.watched.ids();
        if ids.is_empty() {
            return 0;
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.exists(game_key(id));
        }
        let Ok(exist): Result<Vec<bool>, _> = pipe.query_async(&mut self.connection.clone()).await
        else {
            return 0;
        };
        let mut ended = 0;
        for (id, exists) in ids.iter().zip(exist) {
            if !exists {
                self.watched.close(id);
                ended += 1;
            }
        }
        ended
    }

    /// Live games: `DBSIZE` at most [`GAME_COUNT_TTL`] old, plus the games this replica
    /// made (less those it ended) since. Other replicas' games of the last second are not in
    /// it, nor are games expired since; the game service should have a Redis database of
    /// its own.
    async fn live_games(&self) -> Result<usize, StoreError> {
        let cached = *self.game_count.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, count)) = cached
            && at.elapsed() < GAME_COUNT_TTL
        {
            return Ok(count);
        }
        let count: usize = redis::cmd("DBSIZE")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        *self.game_count.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), count));
        metrics::gauge!("hangman_games_live").set(count as f64);
        Ok(count)
    }

    fn count_games(&self, change: isize) {
        if let Some((_, count)) = self
            .game_count
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            *count = count.saturating_add_signed(change);
        }
    }

    async fn read(&self, id: &str) -> Result<(u64, Game), StoreError> {
        check_id(id)?;
        read(&mut self.connection.clone(), id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.limits.game_ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() {
        Err(StoreError::EmptyId)
    } else {
        Ok(())
    }
}

async fn read(
    connection: &mut ConnectionManager,
    id: &str,
) -> Result<Option<(u64, Game)>, StoreError> {
    let (version, record): (Option<u64>, Option<String>) = redis::cmd("HMGET")
        .arg(game_key(id))
        .arg("v")
        .arg("g")
        .query_async(connection)
        .await
        .map_err(unavailable)?;
    match (version, record) {
        (Some(version), Some(record)) => Ok(Some((version, decode(&record)?))),
        _ => Ok(None),
    }
}

fn game_key(id: &str) -> String {
    format!("hangman:{{{id}}}")
}

fn channel(id: &str) -> String {
    format!("hangman:{{{id}}}:changes")
}

/// The game id a channel name carries.
fn id_of_channel(channel: &[u8]) -> Option<&str> {
    std::str::from_utf8(channel)
        .ok()?
        .strip_prefix("hangman:{")?
        .strip_suffix("}:changes")
}

/// `state used word`, e.g. `good_guess ex bee` (letters and word are a-z, so spaces
/// separate them unambiguously, and `used` may be empty).
/// `<state> <used> <word> <unknown>:<guesses>`: the history after the word, so that a game
/// stored before histories existed (three fields) still reads, as one whose history is
/// unknown.
fn encode(game: &Game) -> String {
    let Record {
        word,
        used,
        state,
        history: History { unknown, guesses },
    } = game.record();
    format!("{} {used} {word} {unknown}:{guesses}", state.name())
}

fn decode(text: &str) -> Result<Game, StoreError> {
    let corrupt = || StoreError::Corrupt(text.chars().take(64).collect());
    let mut parts = text.splitn(4, ' ');
    let (Some(state), Some(used), Some(word)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt());
    };
    let state = GameState::from_name(state).ok_or_else(corrupt)?;
    let history = match parts.next() {
        Some(history) => {
            let (unknown, guesses) = history.split_once(':').ok_or_else(corrupt)?;
            History {
                unknown: unknown.parse().map_err(|_| corrupt())?,
                guesses: guesses.to_owned(),
            }
        }
        // Stored before histories: its version starts at one per letter used, and one more
        // for a repeat, which keeps versions growing from here on.
        None => History {
            unknown: u32::try_from(used.len()).map_err(|_| corrupt())?
                + u32::from(state == GameState::AlreadyUsed),
            guesses: String::new(),
        },
    };
    let record = Record {
        word: word.to_owned(),
        used: used.to_owned(),
        state,
        history,
    };
    Game::from_record(&record).map_err(|_| corrupt())
}

fn unavailable(error: redis::RedisError) -> StoreError {
    if error.code() == Some("OOM") {
        StoreError::StoreFull(error.to_string())
    } else {
        StoreError::Unavailable(error.to_string())
    }
}

/// The games this replica watches, each subscribed once however many watchers it has.
#[derive(Default)]
struct Watched {
    games: Mutex<HashMap<GameId, WatchedGame>>,
}

struct WatchedGame {
    changes: broadcast::Sender<(u64, Tally)>,
    /// The newest version handed to watchers.
    version: u64,
    /// The connection dropped since: read the game again once resubscribed.
    stale: bool,
}

impl Watched {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GameId, WatchedGame>> {
        self.games.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of the game's changes; `true` when this replica did not watch it yet
    /// (the caller subscribes).
    fn join(
        &self,
        id: &GameId,
        buffer: usize,
        max_per_game: usize,
    ) -> Result<(broadcast::Receiver<(u64, Tally)>, bool), StoreError> {
        let mut games = self.lock();
        if let Some(game) = games.get(id) {
            if game.changes.receiver_count() >= max_per_game {
                return Err(StoreError::TooManyWatchers { max: max_per_game });
            }
            return Ok((game.changes.subscribe(), false));
        }
        let (changes, receiver) = broadcast::channel(buffer.max(1));
        games.insert(
            id.clone(),
            WatchedGame {
                changes,
                version: 0,
                stale: false,
            },
        );
        Ok((receiver, true))
    }

    fn seen(&self, id: &str, version: u64) {
        if let Some(game) = self.lock().get_mut(id) {
            game.version = game.version.max(version);
        }
    }

    /// Hands a version of the game to its watchers, unless they have it already.
    fn offer(&self, id: &str, version: u64, game: &Game) {
        let mut games = self.lock();
        let Some(watched) = games.get_mut(id) else {
            return;
        };
        if version <= watched.version {
            return;
        }
        if version > watched.version + 1 && watched.version != 0 {
            // Messages were missed; this one carries the whole game, so watchers are
            // current again.
            metrics::counter!("hangman_watch_gaps_total").increment(1);
        }
        watched.version = version;
        let _ = watched.changes.send((version, game.tally()));
    }

    /// The game ended or expired: its watchers' streams end.
    fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn ids(&self) -> Vec<GameId> {
        self.lock().keys().cloned().collect()
    }

    fn mark_all_stale(&self) {
        for game in self.lock().values_mut() {
            game.stale = true;
        }
    }

    fn take_stale(&self, id: &str) -> bool {
        self.lock()
            .get_mut(id)
            .is_some_and(|game| std::mem::take(&mut game.stale))
    }

    /// A watcher left; the last one unwatches the game. Returns whether it was the last.
    fn leave(&self, id: &str) -> bool {
        let mut games = self.lock();
        // The leaving watcher's receiver is already dropped.
        if games
            .get(id)
            .is_some_and(|game| game.changes.receiver_count() == 0)
        {
            games.remove(id);
            return true;
        }
        false
    }
}

/// Dropped with a watcher's stream, after its receiver.
struct Leave {
    id: GameId,
    watched: Weak<Watched>,
    subscriptions: mpsc::UnboundedSender<Subscriptions>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Leave {
    fn drop(&mut self) {
        if let Some(watched) = self.watched.upgrade()
            && watched.leave(&self.id)
        {
            let _ = self
                .subscriptions
                .send(Subscriptions::Unsubscribe(self.id.clone()));
        }
    }
}

/// A change to this replica's Redis subscriptions.
enum Subscriptions {
    Subscribe(GameId, oneshot::Sender<Result<(), StoreError>>),
    Unsubscribe(GameId),
}

/// Sends subscription changes one at a time, in the order they were asked for, so that the
/// last watcher's unsubscription never overtakes the next watcher's subscription. An
/// unsubscription is dropped when the game is watched again by the time it is sent.
async fn manage_subscriptions(
    mut requests: mpsc::UnboundedReceiver<Subscriptions>,
    watched: Weak<Watched>,
    mut connection: ConnectionManager,
) {
    while let Some(request) = requests.recv().await {
        match request {
            Subscriptions::Subscribe(id, done) => {
                let subscribed = connection.subscribe(channel(&id)).await;
                let _ = done.send(subscribed.map_err(unavailable));
            }
            Subscriptions::Unsubscribe(id) => {
                let Some(watched) = watched.upgrade() else {
                    return;
                };
                if !watched.lock().contains_key(&id) {
                    let _ = connection.unsubscribe(channel(&id)).await;
                }
            }
        }
    }
}

/// Hands published changes to the watchers of this replica, and reads watched games again
/// after a reconnect.
async fn deliver_changes(
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    watched: Weak<Watched>,
    connection: ConnectionManager,
) {
    while let Some(push) = pushes.recv().await {
        let Some(watched) = watched.upgrade() else {
            return;
        };
        match (push.kind, push.data.as_slice()) {
            (PushKind::SMessage | PushKind::Message, [Value::BulkString(channel), message]) => {
                let Some(id) = id_of_channel(channel) else {
                    continue;
                };
                let message = match message {
                    Value::BulkString(bytes) => String::from_utf8_lossy(bytes),
                    _ => continue,
                };
                if message == "end" {
                    watched.close(id);
                } else if let Some((version, game)) = message
                    .split_once(' ')
                    .and_then(|(v, g)| Some((v.parse().ok()?, decode(g).ok()?)))
                {
                    watched.offer(id, version, &game);
                }
            }
            (PushKind::Disconnection, _) => watched.mark_all_stale(),
            (PushKind::SSubscribe | PushKind::Subscribe, [Value::BulkString(channel), ..]) => {
                if let Some(id) = id_of_channel(channel)
                    && watched.take_stale(id)
                {
                    tokio::spawn(resync(
                        connection.clone(),
                        Arc::downgrade(&watched),
                        id.into(),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Reads a watched game again, after messages may have been lost.
async fn resync(mut connection: ConnectionManager, watched: Weak<Watched>, id: GameId) {
    let read = read(&mut connection, &id).await;
    let Some(watched) = watched.upgrade() else {
        return;
    };
    match read {
        Ok(Some((version, game))) => watched.offer(&id, version, &game),
        Ok(None) => watched.close(&id),
        // Still disconnected: the next resubscription reads it again.
        Err(_) => {
            if let Some(game) = watched.lock().get_mut(&id) {
                game.stale = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_is_stored_as_state_letters_word_and_history() {
        let mut game = Game::new("otter").unwrap();
        assert_eq!(encode(&game), "initializing  otter 0:");
        game.make_move("x").unwrap();
        game.make_move("t").unwrap();
        game.make_move("x").unwrap();
        assert_eq!(encode(&game), "already_used tx otter 0:xtx");
        assert_eq!(decode(&encode(&game)).unwrap(), game);
    }

    #[test]
    fn a_game_stored_before_histories_reads_with_an_unknown_one() {
        let game = decode("already_used tx otter").unwrap();
        assert_eq!(game.version(), 3);
        assert_eq!(game.tally().used, ['t', 'x']);
        assert_eq!(game.tally_at(2), None);
        assert_eq!(encode(&game), "already_used tx otter 3:");
    }

    #[test]
    fn a_stored_game_that_is_not_one_is_refused() {
        for text in [
            "",
            "won",
            "won e",
            "winning e bee",
            "won e bee",
            "good_guess e Bee",
            "good_guess e bee 0",
            "good_guess e bee x:e",
            "good_guess e bee 0:x",
            "good_guess e bee 0:ee",
        ] {
            assert!(decode(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn key_and_channel_share_a_hash_tag() {
        assert_eq!(game_key("abc"), "hangman:{abc}");
        assert_eq!(channel("abc"), "hangman:{abc}:changes");
        assert_eq!(id_of_channel(b"hangman:{abc}:changes"), Some("abc"));
        assert_eq!(id_of_channel(b"other"), None);
    }
}
