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
//!
//! # Presence
//!
//! A game's room is two more keys in the game's slot: the sorted set `hangman:{<id>}:presence`
//! of member keys scored by the end of their lease (Redis time, in milliseconds), and the hash
//! `hangman:{<id>}:members` of member key to `<online_at> <name>` (seconds since the epoch, a
//! space, the name as given). Every update gives both an expiry of two leases, so the room of
//! a game nobody renews vanishes by itself; ending the game deletes them.
//!
//! Every join and leave goes through one Lua script (an update, or the expiry of leases run
//! out) that changes both keys, numbers the change with the game hash's counter `p` and
//! publishes it on the game's channel in the same atomic step, so two replicas expiring the
//! same lease publish its leave once. The message is `presence ` and a JSON object:
//!
//! ```text
//! presence {"seq":7,"joins":{"k1":"1733475952 ada"},"leaves":{"k0":"1733475900 "}}
//! ```
//!
//! A presence watcher first gets the room as read after subscribing, with its number, then
//! every change numbered after it; a watcher that fell behind in this replica's buffer reads
//! the room again (and is given the newest tally first if room changes pushed it out of the
//! buffer), and so does every watched game after a reconnect. The numbers order a room
//! read against the changes delivered around it, so neither an older state nor a change
//! already in the state is handed out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisResult, Script, ScriptInvocation,
    TlsCertificates, Value,
};
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

/// How many times a room is read again, after a reconnect, when changes newer than the read
/// were handed to watchers meanwhile.
const MAX_ROOM_READS: usize = 4;

/// Checks the version, writes the game, refreshes the expiry and publishes the change.
/// KEYS: the game, its channel. ARGV: the version read, the new version, the new record,
/// the TTL in milliseconds. Returns 1 when written, 0 when the version moved on (or the game
/// is gone).
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'g', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], ARGV[2] .. ' ' .. ARGV[3])
return 1
",
    )
});

/// What the scripts on a game's room share. KEYS: the game, its presence, its members, its
/// channel ([`room_script`]). `now` is Redis' clock in milliseconds, the one every lease is
/// measured on whichever replica renews or expires it; `remove` and `publish` keep the two
/// keys in step and tell watchers.
const ROOM_PRELUDE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local joins, leaves = {}, {}
local function remove(key)
  leaves[key] = redis.call('HGET', KEYS[3], key) or ''
  redis.call('ZREM', KEYS[2], key)
  redis.call('HDEL', KEYS[3], key)
end
local function remove_expired(kept, limit)
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)) do
    if not kept[key] then remove(key) end
  end
end
local function publish()
  if next(joins) == nil and next(leaves) == nil then return end
  local seq = redis.call('HINCRBY', KEYS[1], 'p', 1)
  local change = cjson.encode({seq = seq, joins = joins, leaves = leaves})
  redis.call('PUBLISH', KEYS[4], 'presence ' .. change)
end
";

/// Deletes the game and its room, and tells its watchers. Returns 1 when the game existed.
static END: LazyLock<Script> = LazyLock::new(|| {
    room_script(
        r"
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
if existed == 0 then return 0 end
redis.call('PUBLISH', KEYS[4], 'end')
return 1
",
    )
});

/// Renews and adds members, removes the leaving ones and those whose lease ran out, and
/// publishes who joined and left. ARGV: the lease and the keys' expiry in milliseconds, the
/// most members, how many members are renewed, their keys and names in pairs, then the keys
/// of those leaving (a key both renewed and leaving leaves). A member renewed after its lease
/// ran out but before anyone removed it stays, as it was. Returns 0, or -1 when the game does
/// not exist, -2 when the room would hold more than the most members (nothing is written).
/// A call's commands take many keys at once, 1 000 arguments at a time (Lua's `unpack` has a
/// limit): a renewal of 50 members is a few commands, not a hundred.
static UPDATE_PRESENCE: LazyLock<Script> = LazyLock::new(|| {
    room_script(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local lease, max, renewing = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function in_chunks(command, key, args, each)
  for i = 1, #args, 1000 do
    local reply = redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
    if each then for j = 1, #reply do each(args[i + j - 1], reply[j]) end end
  end
end
local leaving, renewed, asked = {}, {}, {}
for i = 5 + 2 * renewing, #ARGV do
  if not leaving[ARGV[i]] then
    leaving[ARGV[i]] = true
    asked[#asked + 1] = ARGV[i]
  end
end
for i = 5, 4 + 2 * renewing, 2 do
  if not leaving[ARGV[i]] and not renewed[ARGV[i]] then
    renewed[ARGV[i]] = ARGV[i + 1]
    asked[#asked + 1] = ARGV[i]
  end
end
local ends = {}
in_chunks('ZMSCORE', KEYS[2], asked, function(key, score) ends[key] = tonumber(score) end)
local function live(key) return ends[key] ~= nil and ends[key] > now end
local count = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
for key in pairs(leaving) do
  if live(key) then count = count - 1 end
end
for key in pairs(renewed) do
  if not live(key) then count = count + 1 end
end
if count > max then return -2 end
remove_expired(renewed, max)
for key in pairs(leaving) do
  if ends[key] and not leaves[key] then remove(key) end
end
local expiries, infos = {}, {}
for key, name in pairs(renewed) do
  expiries[#expiries + 1] = now + lease
  expiries[#expiries + 1] = key
  if not ends[key] then
    joins[key] = time[1] .. ' ' .. name
    infos[#infos + 1] = key
    infos[#infos + 1] = joins[key]
  end
end
in_chunks('ZADD', KEYS[2], expiries)
in_chunks('HSET', KEYS[3], infos)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
publish()
return 0
",
    )
});

/// Removes the members whose lease ran out (at most ARGV[1]) and publishes their leaves;
/// returns how many. The room of a game that no longer exists is deleted.
static EXPIRE_PRESENCE: LazyLock<Script> = LazyLock::new(|| {
    room_script(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  return 0
end
remove_expired({}, ARGV[1])
publish()
local left = 0
for _ in pairs(leaves) do left = left + 1 end
return left
",
    )
});

/// Reads the room: the number of its latest change, then each member whose lease runs (at
/// most ARGV[1]) as its key and its info (nil when missing).
static READ_ROOM: LazyLock<Script> = LazyLock::new(|| {
    room_script(
        r"
local room = {redis.call('HGET', KEYS[1], 'p') or '0'}
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, ARGV[1])
for _, key in ipairs(live) do
  room[#room + 1] = key
  room[#room + 1] = redis.call('HGET', KEYS[3], key) or false
end
return room
",
    )
});

fn room_script(body: &str) -> Script {
    Script::new(&[ROOM_PRELUDE, body].concat())
}

/// A call of a room script on game `id`, with its keys.
fn on_room<'a>(script: &'a Script, id: &str) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(game_key(id))
        .key(presence_key(id))
        .key(members_key(id))
        .key(channel(id));
    invocation
}

/// Games in Redis (see the module docs).
pub struct RedisStore {
    connection: ConnectionManager,
    dictionary: Dictionary,
    limits: Limits,
    watched: Arc<Watched>,
    subscriptions: mpsc::UnboundedSender<Subscriptions>,
    watch_streams: Arc<Semaphore>,
    game_count: Mutex<Option<(Instant, usize)>>,
}

impl RedisStore {
    /// Connects lazily: the service starts (not serving) while Redis is down, and serves as
    /// soon as it is up. `url` is `redis://` or `rediss://` with optional user, password and
    /// database; `tls`, for `rediss://` only, what [`super::tls::certificates`] read.
    pub fn connect(
        url: &str,
        tls: Option<TlsCertificates>,
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
        let info = info.set_redis_settings(settings);
        super::tls::install_crypto_provider();
        let client = match tls {
            Some(certificates) => redis::Client::build_with_tls(info, certificates),
            None => redis::Client::open(info),
        }
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
            limits.max_members_per_game,
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
            let written: i64 = COMPARE_AND_SET
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
        let ended: i64 = on_room(&END, id)
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
    /// up to the version read (and, with presence, the room's changes up to the room read)
    /// are skipped.
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
        let room = Room {
            id: id.clone(),
            connection: self.connection.clone(),
            max_members: self.limits.max_members_per_game,
        };
        let mut pending = VecDeque::new();
        let presence = if options.presence {
            let (seq, members) = room.read().await?;
            let state = Arc::new(Change::PresenceState(members));
            pending.push_back(Published::Presence(seq, state));
            Some(seq)
        } else {
            None
        };
        let watcher = Watcher {
            receiver,
            version,
            presence,
            pending,
            room,
            leave,
        };
        let changes = futures::stream::unfold(watcher, |mut watcher| async move {
            let change = watcher.next().await?;
            Some((change, watcher))
        });
        Ok(Subscription {
            tally: game.tally(),
            recovery: Recovery::of(&game, options.since_version),
            changes: Changes::new(changes.boxed()),
        })
    }

    /// Adds or renews members of a game's room and removes others (see [`GameStore`]), in one
    /// script ([`UPDATE_PRESENCE`]).
    ///
    /// [`GameStore`]: super::GameStore
    pub async fn update_presence(
        &self,
        id: &str,
        renew: Vec<Member>,
        leave: Vec<String>,
    ) -> Result<(), StoreError> {
        check_id(id)?;
        let max = self.limits.max_members_per_game;
        if renew.len() + leave.len() > max {
            return Err(StoreError::TooManyMembers { max });
        }
        renew.iter().try_for_each(Member::check)?;
        let lease = millis(self.limits.presence_lease);
        let mut update = on_room(&UPDATE_PRESENCE, id);
        update
            .arg(lease)
            .arg(lease.saturating_mul(2))
            .arg(max)
            .arg(renew.len());
        for member in &renew {
            update.arg(&member.key).arg(&member.name);
        }
        update.arg(&leave);
        let outcome: i64 = update
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        match outcome {
            0 => Ok(()),
            -1 => Err(StoreError::NotFound),
            -2 => Err(StoreError::TooManyMembers { max }),
            other => Err(StoreError::Corrupt(format!("presence update: {other}"))),
        }
    }

    /// Removes the members whose lease ran out from the rooms of the games this replica
    /// watches, in one pipeline of [`EXPIRE_PRESENCE`] scripts; returns how many. Replicas
    /// watching the same game may both run it: the script is atomic, so a leave is published
    /// once. The rooms nobody watches need no sweeping: an update removes their expired
    /// members, and their keys expire.
    pub async fn expire_presence(&self) -> usize {
        let ids = self.watched.ids();
        if ids.is_empty() {
            return 0;
        }
        let max = self.limits.max_members_per_game;
        let mut pipe = redis::pipe();
        // In a pipeline, redis-rs does not load a script Redis lost (a restart) by itself.
        pipe.load_script(&EXPIRE_PRESENCE).ignore();
        for id in &ids {
            pipe.invoke_script(on_room(&EXPIRE_PRESENCE, id).arg(max));
        }
        let expired: Vec<RedisResult<usize>> = match pipe
            .ignore_errors()
            .query_async(&mut self.connection.clone())
            .await
        {
            Ok(expired) => expired,
            // Redis is down: the health check says so; the next sweep tries again.
            Err(error) => {
                tracing::debug!(%error, "presence leases could not be expired");
                return 0;
            }
        };
        expired
            .into_iter()
            .filter_map(|expired| {
                expired
                    .inspect_err(|error| tracing::warn!(%error, "a room could not be expired"))
                    .ok()
            })
            .sum()
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

    /// Counts a game this replica made (1) or ended (-1) in the cached count, and in the
    /// `hangman_games_live` gauge with it.
    fn count_games(&self, change: isize) {
        if let Some((_, count)) = self
            .game_count
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            *count = count.saturating_add_signed(change);
            metrics::gauge!("hangman_games_live").set(*count as f64);
        }
    }

    async fn read(&self, id: &str) -> Result<(u64, Game), StoreError> {
        check_id(id)?;
        read(&mut self.connection.clone(), id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    fn ttl_ms(&self) -> i64 {
        millis(self.limits.game_ttl)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
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

/// The room's members by the end of their lease.
fn presence_key(id: &str) -> String {
    format!("hangman:{{{id}}}:presence")
}

/// The room's members by key: `<online_at> <name>`.
fn members_key(id: &str) -> String {
    format!("hangman:{{{id}}}:members")
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

/// A message on a game's channel.
#[derive(Debug, PartialEq)]
enum Message {
    /// `end`: the game ended.
    End,
    /// `<version> <record>`: a move changed the game.
    Tally(u64, Game),
    /// `presence <json>`: members joined or left the room, in its change numbered `seq`
    /// ([`PresenceChange`]).
    Presence(u64, Change),
}

/// The JSON of a presence message: member key to `<online_at> <name>`, as in the room's hash.
#[derive(serde::Deserialize)]
struct PresenceChange {
    seq: u64,
    joins: BTreeMap<String, String>,
    leaves: BTreeMap<String, String>,
}

impl Message {
    fn parse(text: &str) -> Result<Message, StoreError> {
        let corrupt = || StoreError::Corrupt(text.chars().take(64).collect());
        if text == "end" {
            return Ok(Message::End);
        }
        if let Some(json) = text.strip_prefix("presence ") {
            let change: PresenceChange = serde_json::from_str(json).map_err(|_| corrupt())?;
            let members = |members: BTreeMap<String, String>| {
                members
                    .into_iter()
                    .map(|(key, info)| member(key, &info))
                    .collect::<Result<Vec<_>, _>>()
            };
            let diff = Change::PresenceDiff {
                joins: members(change.joins)?,
                leaves: members(change.leaves)?,
            };
            return Ok(Message::Presence(change.seq, diff));
        }
        let (version, record) = text.split_once(' ').ok_or_else(corrupt)?;
        let version = version.parse().map_err(|_| corrupt())?;
        Ok(Message::Tally(version, decode(record)?))
    }
}

/// A member of a room from its key and its info in the room's hash, `<online_at> <name>`.
fn member(key: String, info: &str) -> Result<Member, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("member {key:?}: {info:?}"));
    let (online_at, name) = info.split_once(' ').ok_or_else(corrupt)?;
    Ok(Member {
        online_at: online_at.parse().map_err(|_| corrupt())?,
        name: name.to_owned(),
        key,
    })
}

/// Reads a game's room.
#[derive(Clone)]
struct Room {
    id: GameId,
    connection: ConnectionManager,
    max_members: usize,
}

impl Room {
    /// The number of the room's latest change, and the members whose lease runs, by key.
    async fn read(&self) -> Result<(u64, Vec<Member>), StoreError> {
        let read: Vec<Option<String>> = on_room(&READ_ROOM, &self.id)
            .arg(self.max_members)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        let corrupt = || StoreError::Corrupt(format!("the room of game {}", self.id));
        let (seq, members) = read.split_first().ok_or_else(corrupt)?;
        let seq = seq.as_deref().and_then(|seq| seq.parse().ok());
        let mut members = members
            .chunks(2)
            .map(|member_read| match member_read {
                [Some(key), Some(info)] => member(key.clone(), info),
                _ => Err(corrupt()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        members.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((seq.ok_or_else(corrupt)?, members))
    }
}

fn unavailable(error: redis::RedisError) -> StoreError {
    let message = error.to_string();
    // A transaction (MULTI/EXEC, as CreateGame's) that Redis refused is an EXECABORT that
    // carries each command's error: out of memory in there is out of memory all the same.
    let out_of_memory = error.code() == Some("OOM")
        || error
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, error)| error.code() == "OOM"));
    if out_of_memory {
        StoreError::StoreFull(message)
    } else {
        StoreError::Unavailable(message)
    }
}

/// The games this replica watches, each subscribed once however many watchers it has.
#[derive(Default)]
struct Watched {
    games: Mutex<HashMap<GameId, WatchedGame>>,
}

/// What a replica hands the watchers of a game.
#[derive(Clone)]
enum Published {
    /// A tally and its version.
    Tally(u64, Tally),
    /// A room's change ([`Change::PresenceDiff`]) or, read again, the whole room
    /// ([`Change::PresenceState`]), with the number of the room's change it follows.
    Presence(u64, Arc<Change>),
}

/// Whether a room change numbered `seq` is news to whoever has seen up to `seen`: a diff
/// when it is later, the whole room when it is no older.
fn is_news(change: &Change, seq: u64, seen: u64) -> bool {
    match change {
        Change::PresenceState(_) => seq >= seen,
        _ => seq > seen,
    }
}

struct WatchedGame {
    changes: broadcast::Sender<Published>,
    /// The newest version handed to watchers, and its tally (none before the first change).
    version: u64,
    tally: Option<Tally>,
    /// The number of the newest room change handed to watchers.
    presence: u64,
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
    ) -> Result<(broadcast::Receiver<Published>, bool), StoreError> {
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
                tally: None,
                presence: 0,
                stale: false,
            },
        );
        Ok((receiver, true))
    }

    /// The first watcher read the game at `version`: later versions are news. (A later
    /// watcher's read is not: a change in flight may be news to the watchers before it.)
    fn seen(&self, id: &str, version: u64) {
        if let Some(game) = self.lock().get_mut(id)
            && game.version == 0
        {
            game.version = version;
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
        watched.tally = Some(game.tally());
        let _ = watched
            .changes
            .send(Published::Tally(version, game.tally()));
    }

    /// The newest tally handed to the game's watchers, and its version.
    fn newest_tally(&self, id: &str) -> Option<(u64, Tally)> {
        let games = self.lock();
        let watched = games.get(id)?;
        Some((watched.version, watched.tally.clone()?))
    }

    /// Hands a room change numbered `seq` to the game's watchers if it is news
    /// ([`is_news`]); `false` when the room changed since (a room read is then read again).
    fn offer_presence(&self, id: &str, seq: u64, change: Change) -> bool {
        let mut games = self.lock();
        let Some(watched) = games.get_mut(id) else {
            return true;
        };
        if !is_news(&change, seq, watched.presence) {
            return false;
        }
        watched.presence = seq;
        let _ = watched
            .changes
            .send(Published::Presence(seq, Arc::new(change)));
        true
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

    fn mark_stale(&self, id: &str) {
        if let Some(game) = self.lock().get_mut(id) {
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

/// One watcher's stream: the game's changes from this replica's buffer, in order, less those
/// it has seen.
struct Watcher {
    receiver: broadcast::Receiver<Published>,
    /// The newest tally version given.
    version: u64,
    /// With presence: the number of the newest room change given.
    presence: Option<u64>,
    /// What to give before the next from the buffer: the room as read when the watch began,
    /// or what a watcher that fell behind is given ([`Watcher::catch_up`]).
    pending: VecDeque<Published>,
    room: Room,
    /// After the receiver: the last watcher to leave unwatches the game.
    leave: Leave,
}

impl Watcher {
    /// The next change, or `None` once the game has ended or expired.
    async fn next(&mut self) -> Option<Change> {
        loop {
            let published = match self.pending.pop_front() {
                Some(published) => published,
                None => match self.receiver.recv().await {
                    Ok(published) => published,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.catch_up().await;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            if let Some(change) = self.news(published) {
                return Some(change);
            }
        }
    }

    /// The change, if the watcher asked for it and has not seen it (or a newer one).
    fn news(&mut self, published: Published) -> Option<Change> {
        match published {
            Published::Tally(version, tally) if version > self.version => {
                self.version = version;
                Some(Change::Tally(tally))
            }
            Published::Tally(..) => None,
            Published::Presence(seq, change) => {
                let seen = self.presence.as_mut()?;
                is_news(&change, seq, *seen).then(|| {
                    *seen = seq;
                    Change::clone(&change)
                })
            }
        }
    }

    /// After falling behind, the watcher goes on with what is still buffered, but first: the
    /// newest tally, if room changes pushed it out of the buffer (everything buffered came after
    /// it; without it the watcher would miss it until the next move); and, with presence, the
    /// whole room read now, since the room changes skipped cannot be given back. (If the room
    /// cannot be read, Redis is likely gone: every watched room is read again once it is back.)
    async fn catch_up(&mut self) {
        let newest =
            (self.leave.watched.upgrade()).and_then(|watched| watched.newest_tally(&self.room.id));
        let buffered: Vec<Published> = (0..self.receiver.len())
            .map_while(|_| self.receiver.try_recv().ok())
            .collect();
        if let Some((version, tally)) = newest {
            let pushed_out = !buffered.iter().any(
                |published| matches!(published, Published::Tally(buffered, _) if *buffered >= version),
            );
            if pushed_out {
                self.pending.push_back(Published::Tally(version, tally));
            }
        }
        if self.presence.is_some() {
            match self.room.read().await {
                Ok((seq, members)) => {
                    let state = Arc::new(Change::PresenceState(members));
                    self.pending.push_back(Published::Presence(seq, state));
                }
                Err(error) => tracing::warn!(%error, "a lagging watcher's room is unread"),
            }
        }
        self.pending.extend(buffered);
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
    max_members: usize,
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
                match Message::parse(&message) {
                    Ok(Message::End) => watched.close(id),
                    Ok(Message::Tally(version, game)) => watched.offer(id, version, &game),
                    Ok(Message::Presence(seq, diff)) => {
                        watched.offer_presence(id, seq, diff);
                    }
                    Err(error) => tracing::warn!(%error, game = id, "unreadable game message"),
                }
            }
            (PushKind::Disconnection, _) => watched.mark_all_stale(),
            (PushKind::SSubscribe | PushKind::Subscribe, [Value::BulkString(channel), ..]) => {
                if let Some(id) = id_of_channel(channel)
                    && watched.take_stale(id)
                {
                    let room = Room {
                        id: id.into(),
                        connection: connection.clone(),
                        max_members,
                    };
                    tokio::spawn(resync(room, Arc::downgrade(&watched)));
                }
            }
            _ => {}
        }
    }
}

/// Reads a watched game and its room again, after messages may have been lost.
async fn resync(room: Room, watched: Weak<Watched>) {
    let read = read(&mut room.connection.clone(), &room.id).await;
    let Some(game_watched) = watched.upgrade() else {
        return;
    };
    match read {
        Ok(Some((version, game))) => game_watched.offer(&room.id, version, &game),
        Ok(None) => return game_watched.close(&room.id),
        // Still disconnected: the next resubscription reads it again.
        Err(_) => return game_watched.mark_stale(&room.id),
    }
    drop(game_watched);
    // A room read older than a change handed out meanwhile would undo it: read it again.
    for _ in 0..MAX_ROOM_READS {
        let read = room.read().await;
        let Some(watched) = watched.upgrade() else {
            return;
        };
        match read {
            Ok((seq, members)) => {
                if watched.offer_presence(&room.id, seq, Change::PresenceState(members)) {
                    return;
                }
            }
            Err(_) => return watched.mark_stale(&room.id),
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
        assert_eq!(game.tallies_since(2), None);
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
    fn a_game_message_is_end_a_tally_or_a_presence_change() {
        assert_eq!(Message::parse("end").unwrap(), Message::End);
        let game = Game::new("otter").unwrap();
        assert_eq!(
            Message::parse("1 initializing  otter 0:").unwrap(),
            Message::Tally(1, game)
        );
        // As Redis' cjson writes it: `/` escaped, an empty table as `{}`.
        let presence = r#"presence {"seq":7,"joins":{"k\/1":"1733475952 ada l","k2":"1733475953 "},"leaves":{}}"#;
        let member = |key: &str, name: &str, online_at| Member {
            key: key.into(),
            name: name.into(),
            online_at,
        };
        let diff = Change::PresenceDiff {
            joins: vec![
                member("k/1", "ada l", 1733475952),
                member("k2", "", 1733475953),
            ],
            leaves: vec![],
        };
        assert_eq!(
            Message::parse(presence).unwrap(),
            Message::Presence(7, diff)
        );
    }

    #[test]
    fn a_game_message_that_is_not_one_is_refused() {
        for text in [
            "",
            "ended",
            "1",
            "x initializing  otter 0:",
            "presence",
            "presence {}",
            "presence []",
            r#"presence {"seq":-1,"joins":{},"leaves":{}}"#,
            r#"presence {"seq":1,"joins":[],"leaves":{}}"#,
            r#"presence {"seq":1,"joins":{"k":"ada"},"leaves":{}}"#,
            r#"presence {"seq":1,"joins":{},"leaves":{"k":""}}"#,
            r#"presence {"seq":1,"joins":{"k":"-1 ada"},"leaves":{}}"#,
        ] {
            assert!(Message::parse(text).is_err(), "{text:?}");
        }
    }

    /// A store on `redis` whose watchers share a buffer of `watch_buffer` changes.
    #[cfg(feature = "test-support")]
    fn store_on(redis: &crate::testing::RedisServer, watch_buffer: usize) -> RedisStore {
        let limits = Limits {
            max_games: 10,
            game_ttl: Duration::from_secs(60),
            watch_buffer,
            max_watchers_per_game: 10,
            max_watchers: 10,
            presence_lease: Duration::from_secs(15),
            max_members_per_game: 100,
            max_members: 1_000,
        };
        let dictionary = Dictionary::parse("otter").unwrap();
        RedisStore::connect(
            &redis.url(),
            None,
            dictionary,
            limits,
            Duration::from_secs(2),
        )
        .unwrap()
    }

    #[cfg(feature = "test-support")]
    #[tokio::test]
    async fn a_presence_watcher_that_fell_behind_gets_the_tally_and_the_room_now_then_what_follows()
    {
        let redis = crate::testing::RedisServer::start();
        let store = store_on(&redis, 2);
        let (id, _) = store.create(None).await.unwrap();
        let presence = WatchOptions {
            presence: true,
            since_version: None,
        };
        let mut behind = store.watch(&id, presence).await.unwrap().changes;
        let mut keeping_up = store.watch(&id, presence).await.unwrap().changes;
        let member = |key: &str| Member {
            key: key.into(),
            name: String::new(),
            online_at: 0,
        };
        assert_eq!(keeping_up.next().await, Some(Change::PresenceState(vec![])));
        let tally = store.make_move(&id, "t").await.unwrap();
        assert_eq!(keeping_up.next().await, Some(Change::Tally(tally.clone())));
        // Five joins push the tally out of the buffer of two.
        let keys = ["k1", "k2", "k3", "k4", "k5"];
        for key in keys {
            store
                .update_presence(&id, vec![member(key)], vec![])
                .await
                .unwrap();
            // Once the other watcher has it, it went through the buffer of two.
            assert!(matches!(
                keeping_up.next().await,
                Some(Change::PresenceDiff { .. })
            ));
        }
        assert_eq!(behind.next().await, Some(Change::PresenceState(vec![])));
        assert_eq!(behind.next().await, Some(Change::Tally(tally)));
        let Some(Change::PresenceState(room)) = behind.next().await else {
            panic!("the room, not the joins it missed");
        };
        assert_eq!(
            room.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            keys
        );
        // Waiting already (past the joins it skipped) when the next change comes.
        let (next, updated) = tokio::join!(
            behind.next(),
            store.update_presence(&id, vec![member("k6")], vec!["k1".into()])
        );
        updated.unwrap();
        let Some(Change::PresenceDiff { joins, leaves }) = next else {
            panic!("the change after the room, not {next:?}");
        };
        assert_eq!(
            (joins[0].key.as_str(), leaves[0].key.as_str()),
            ("k6", "k1")
        );
    }

    #[cfg(feature = "test-support")]
    #[tokio::test]
    async fn a_watcher_that_fell_behind_goes_on_with_the_tallies_still_buffered() {
        let redis = crate::testing::RedisServer::start();
        let store = store_on(&redis, 2);
        let (id, _) = store.create(None).await.unwrap();
        let mut behind = store.watch(&id, WatchOptions::default()).await.unwrap();
        let mut keeping_up = store.watch(&id, WatchOptions::default()).await.unwrap();
        let mut played = Vec::new();
        for guess in ["t", "x", "o", "e"] {
            played.push(store.make_move(&id, guess).await.unwrap());
            let change = keeping_up.changes.next().await;
            assert_eq!(change, Some(Change::Tally(played.last().unwrap().clone())));
        }
        for tally in &played[2..] {
            assert_eq!(
                behind.changes.next().await,
                Some(Change::Tally(tally.clone()))
            );
        }
    }

    #[test]
    fn game_room_and_channel_share_a_hash_tag() {
        assert_eq!(game_key("abc"), "hangman:{abc}");
        assert_eq!(presence_key("abc"), "hangman:{abc}:presence");
        assert_eq!(members_key("abc"), "hangman:{abc}:members");
        assert_eq!(channel("abc"), "hangman:{abc}:changes");
        assert_eq!(id_of_channel(b"hangman:{abc}:changes"), Some("abc"));
        assert_eq!(id_of_channel(b"other"), None);
    }
}
