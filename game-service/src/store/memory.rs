//! Games in this process: live games by id, with an idle TTL, a maximum count, change
//! notification and the members of each game's room.
//!
//! Memory stays bounded whatever clients do: at most `max_games` games, each
//! dropped after `game_ttl` without a move or creation; at most
//! `max_watchers` watchers in all and `max_watchers_per_game` on one game,
//! those of a game sharing a buffer of
//! `watch_buffer` changes (a watcher that falls further behind skips ahead
//! rather than growing the buffer); at most `max_members_per_game` members in
//! a game's room.
//!
//! An unwatched game holds no change buffer: that buffer is most of what a
//! watched game costs (about 8 KiB of the default 64 tallies), and most games
//! are never watched, so the first watcher makes it and the last one to leave
//! drops it. An idle game is its state, its id and its map entry; an empty room
//! allocates nothing.
//!
//! Moves on one game are applied one at a time under the game's own lock, and
//! the change is published under that same lock, so watchers see changes in
//! the order they were applied. Joins and leaves of the room are published the
//! same way, so a watcher's presence state and diffs fall in order between its
//! tallies.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, RwLock, Weak},
    time::{Instant, SystemTime},
};

use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use super::{
    Change, Changes, GameId, Limits, Member, Recovery, StoreError, Subscription, WatchOptions,
    new_game_id,
};
use crate::{
    dictionary::Dictionary,
    rules::{Game, Tally},
};

/// A watcher's changes, in the order they were applied. Dropping it is how a
/// watcher leaves.
struct MemoryChanges {
    /// Always `Some` until dropped: it is dropped under the game's lock.
    receiver: Option<broadcast::Receiver<Change>>,
    /// Weak, so that a watcher does not keep an ended or expired game alive:
    /// dropping the game drops its sender, which ends every watcher's changes.
    slot: Weak<Slot>,
    /// Whether the watcher asked for presence: the others never see it.
    presence: bool,
    /// The version of the last tally given, so that a watcher catching up is given the
    /// current tally only when it is newer.
    version: u64,
    /// Given before anything received: the first presence state, or what a watcher that
    /// fell behind catches up with. At most the watch buffer and two.
    pending: VecDeque<Change>,
    /// The watcher's place under `max_watchers`, given back with it.
    _permit: OwnedSemaphorePermit,
}

impl MemoryChanges {
    /// The next change, or `None` once the game has ended or expired.
    async fn next(&mut self) -> Option<Change> {
        loop {
            let change = match self.pending.pop_front() {
                Some(change) => change,
                None => match self.receiver.as_mut()?.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.catch_up();
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            match &change {
                Change::Tally(tally) => self.version = tally.version,
                Change::PresenceState(_) | Change::PresenceDiff { .. } if !self.presence => {
                    continue;
                }
                Change::PresenceState(_) | Change::PresenceDiff { .. } => {}
            }
            return Some(change);
        }
    }

    /// After falling more than `watch_buffer` changes behind: goes on with the oldest tally
    /// still buffered, then the newer ones, then the current tally if presence changes
    /// pushed it out of the buffer, and, for a presence watcher, the whole room again
    /// instead of the diffs. Done under the game's lock, where nothing is published, so
    /// the room read is exactly the one after the last change drained.
    fn catch_up(&mut self) {
        let (Some(slot), Some(receiver)) = (self.slot.upgrade(), self.receiver.as_mut()) else {
            return;
        };
        let state = lock(&slot.state);
        let mut newest = self.version;
        loop {
            match receiver.try_recv() {
                Ok(Change::Tally(tally)) => {
                    newest = tally.version;
                    self.pending.push_back(Change::Tally(tally));
                }
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        let tally = state.game.tally();
        if tally.version > newest {
            self.pending.push_back(Change::Tally(tally));
        }
        if self.presence {
            self.pending
                .push_back(Change::PresenceState(state.room.members()));
        }
    }
}

impl Drop for MemoryChanges {
    fn drop(&mut self) {
        let Some(slot) = self.slot.upgrade() else {
            return;
        };
        let mut state = lock(&slot.state);
        // Under the lock that watchers subscribe under: of two watchers
        // leaving at once, the second sees the first one gone.
        self.receiver = None;
        if self.presence {
            state.presence_watchers -= 1;
        }
        if state
            .changes
            .as_ref()
            .is_some_and(|changes| changes.receiver_count() == 0)
        {
            state.changes = None;
        }
    }
}

struct Slot {
    state: Mutex<SlotState>,
}

struct SlotState {
    game: Game,
    last_active: Instant,
    /// Only while someone watches the game.
    changes: Option<broadcast::Sender<Change>>,
    /// How many of the watchers asked for presence: joins and leaves are published only
    /// while some did.
    presence_watchers: u32,
    room: Room,
}

/// The members of a game's room, by key.
#[derive(Default)]
struct Room(BTreeMap<String, Lease>);

struct Lease {
    name: String,
    online_at: u64,
    expires_at: Instant,
    /// The member's place under `max_members`, given back with it (with its game, too).
    _permit: OwnedSemaphorePermit,
}

impl Room {
    fn members(&self) -> Vec<Member> {
        self.0
            .iter()
            .map(|(key, lease)| lease.member(key))
            .collect()
    }
}

impl Lease {
    fn member(&self, key: &str) -> Member {
        Member {
            key: key.to_owned(),
            name: self.name.clone(),
            online_at: self.online_at,
        }
    }
}

pub struct MemoryStore {
    games: RwLock<HashMap<GameId, Arc<Slot>>>,
    /// The games whose room has members, so that expiring leases visits only those. Weak,
    /// like a watcher's: an ended game is gone, and its entry with it at the next visit.
    rooms: Mutex<HashMap<GameId, Weak<Slot>>>,
    /// One permit per watcher, `max_watchers` in all.
    watchers: Arc<Semaphore>,
    /// One permit per room member, `max_members` in all.
    members: Arc<Semaphore>,
    dictionary: Dictionary,
    limits: Limits,
}

impl MemoryStore {
    pub fn new(dictionary: Dictionary, limits: Limits) -> MemoryStore {
        MemoryStore {
            games: RwLock::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            watchers: Arc::new(Semaphore::new(
                limits.max_watchers.min(Semaphore::MAX_PERMITS),
            )),
            members: Arc::new(Semaphore::new(
                limits.max_members.min(Semaphore::MAX_PERMITS),
            )),
            dictionary,
            limits,
        }
    }

    /// Starts a game with `word`, or a random word from the dictionary.
    pub fn create(&self, word: Option<&str>) -> Result<(GameId, Tally), StoreError> {
        let game = Game::new(word.unwrap_or_else(|| self.dictionary.random_word()))?;
        let tally = game.tally();
        let id = new_game_id();
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                game,
                last_active: Instant::now(),
                changes: None,
                presence_watchers: 0,
                room: Room::default(),
            }),
        });
        let mut games = self.games.write().unwrap_or_else(|e| e.into_inner());
        if games.len() >= self.limits.max_games {
            // Only a full registry pays for a sweep; expired games make room.
            self.remove_expired(&mut games, Instant::now());
            if games.len() >= self.limits.max_games {
                return Err(StoreError::Full {
                    max: self.limits.max_games,
                });
            }
        }
        games.insert(id.clone(), slot);
        metrics::gauge!("hangman_games_live").set(games.len() as f64);
        Ok((id, tally))
    }

    /// The game's current tally. Reading is not activity: it does not extend the TTL.
    pub fn get(&self, id: &str) -> Result<Tally, StoreError> {
        let slot = self.slot(id)?;
        let state = lock(&slot.state);
        self.check_alive(&state)?;
        Ok(state.game.tally())
    }

    /// Plays one guess; publishes the new tally to watchers when it changed.
    pub fn make_move(&self, id: &str, guess: &str) -> Result<Tally, StoreError> {
        let slot = self.slot(id)?;
        let mut state = lock(&slot.state);
        self.check_alive(&state)?;
        let before = state.game.clone();
        state.game.make_move(guess)?;
        state.last_active = Instant::now();
        let tally = state.game.tally();
        if state.game != before {
            publish(&state, Change::Tally(tally.clone()));
        }
        Ok(tally)
    }

    /// The tally now (and the room, for a presence watcher) and a receiver of every later
    /// change, taken under the game's lock so that no change falls between the two.
    pub fn watch(&self, id: &str, options: WatchOptions) -> Result<Subscription, StoreError> {
        let slot = self.slot(id)?;
        let mut state = lock(&slot.state);
        self.check_alive(&state)?;
        let max = self.limits.max_watchers_per_game;
        let watchers = state.changes.as_ref().map_or(0, |c| c.receiver_count());
        if watchers >= max {
            return Err(StoreError::TooManyWatchers { max });
        }
        let permit = self.watchers.clone().try_acquire_owned().map_err(|_| {
            StoreError::TooManyWatchStreams {
                max: self.limits.max_watchers,
            }
        })?;
        let tally = state.game.tally();
        let recovery = Recovery::of(&state.game, options.since_version);
        let mut pending = VecDeque::new();
        if options.presence {
            state.presence_watchers += 1;
            pending.push_back(Change::PresenceState(state.room.members()));
        }
        let buffer = self.limits.watch_buffer.max(1);
        let changes = state
            .changes
            .get_or_insert_with(|| broadcast::channel(buffer).0);
        let changes = MemoryChanges {
            receiver: Some(changes.subscribe()),
            slot: Arc::downgrade(&slot),
            presence: options.presence,
            version: tally.version,
            pending,
            _permit: permit,
        };
        // Dropping the stream drops `changes`, which is how the watcher leaves.
        let changes = futures::stream::unfold(changes, |mut changes| async move {
            changes.next().await.map(|change| (change, changes))
        });
        Ok(Subscription {
            tally,
            recovery,
            changes: Changes::new(changes.boxed()),
        })
    }

    /// Adds the members of `renew` new to the room and extends the lease of those in it,
    /// and removes those keyed in `leave`; the joins and leaves go to presence watchers as
    /// one diff. A renewed member keeps the name and `online_at` it joined with. A key in
    /// both lists leaves; an unknown key in `leave` is ignored. Past `max_members_per_game`
    /// nothing changes. Not game activity: the game's TTL runs on.
    pub fn update_presence(
        &self,
        id: &str,
        renew: Vec<Member>,
        leave: Vec<String>,
    ) -> Result<(), StoreError> {
        let slot = self.slot(id)?;
        let mut state = lock(&slot.state);
        self.check_alive(&state)?;
        let leaving: HashSet<&str> = leave.iter().map(String::as_str).collect();
        let joining: HashSet<&str> = renew
            .iter()
            .map(|member| member.key.as_str())
            .filter(|key| !leaving.contains(key) && !state.room.0.contains_key(*key))
            .collect();
        let left = leaving
            .iter()
            .filter(|key| state.room.0.contains_key(**key))
            .count();
        let max = self.limits.max_members_per_game;
        if state.room.0.len() + joining.len() - left > max {
            return Err(StoreError::TooManyMembers { max });
        }
        let too_many_in_all = || StoreError::TooManyMembersInAll {
            max: self.limits.max_members,
        };
        let mut permits = match u32::try_from(joining.len()) {
            Ok(0) => None,
            Ok(n) => Some(
                Arc::clone(&self.members)
                    .try_acquire_many_owned(n)
                    .map_err(|_| too_many_in_all())?,
            ),
            Err(_) => return Err(too_many_in_all()),
        };

        let expires_at = Instant::now() + self.limits.presence_lease;
        let online_at = unix_seconds();
        let mut joins = Vec::new();
        let renew = renew
            .into_iter()
            .filter(|member| !leaving.contains(member.key.as_str()));
        for Member { key, name, .. } in renew {
            match state.room.0.get_mut(&key) {
                Some(lease) => lease.expires_at = expires_at,
                None => {
                    let _permit = permits
                        .as_mut()
                        .and_then(|permits| permits.split(1))
                        .expect("one permit per key joining");
                    let lease = Lease {
                        name,
                        online_at,
                        expires_at,
                        _permit,
                    };
                    joins.push(lease.member(&key));
                    state.room.0.insert(key, lease);
                }
            }
        }
        let leaves: Vec<Member> = leave
            .iter()
            .filter_map(|key| state.room.0.remove_entry(key))
            .map(|(key, lease)| lease.member(&key))
            .collect();
        if !joins.is_empty() || !leaves.is_empty() {
            publish(&state, Change::PresenceDiff { joins, leaves });
        }
        self.track_room(id, &slot, &state);
        Ok(())
    }

    /// Removes the members whose lease ran out, each game's as one diff of leaves; returns
    /// how many.
    pub fn expire_presence(&self) -> usize {
        self.expire_presence_at(Instant::now())
    }

    fn expire_presence_at(&self, now: Instant) -> usize {
        let rooms: Vec<(GameId, Weak<Slot>)> = lock_rooms(&self.rooms)
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect();
        let mut expired = 0;
        for (id, slot) in rooms {
            let Some(slot) = slot.upgrade() else {
                lock_rooms(&self.rooms).remove(&id);
                continue;
            };
            let mut state = lock(&slot.state);
            let mut leaves = Vec::new();
            state.room.0.retain(|key, lease| {
                let alive = lease.expires_at > now;
                if !alive {
                    leaves.push(lease.member(key));
                }
                alive
            });
            if !leaves.is_empty() {
                expired += leaves.len();
                publish(
                    &state,
                    Change::PresenceDiff {
                        joins: Vec::new(),
                        leaves,
                    },
                );
            }
            self.track_room(&id, &slot, &state);
        }
        expired
    }

    /// Keeps `rooms` listing the game exactly while its room has members; called under the
    /// game's lock, so that a visit that empties a room and a join cannot cross.
    fn track_room(&self, id: &str, slot: &Arc<Slot>, state: &SlotState) {
        let mut rooms = lock_rooms(&self.rooms);
        if state.room.0.is_empty() {
            rooms.remove(id);
        } else if !rooms.contains_key(id) {
            rooms.insert(id.into(), Arc::downgrade(slot));
        }
    }

    /// Removes a game (and its room); its watchers' streams end.
    pub fn end(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let mut games = self.games.write().unwrap_or_else(|e| e.into_inner());
        let removed = games.remove(id).ok_or(StoreError::NotFound)?;
        metrics::gauge!("hangman_games_live").set(games.len() as f64);
        drop(games);
        // An expired game that was not swept yet no longer exists for clients.
        self.check_alive(&lock(&removed.state))
    }

    /// Drops every game idle for longer than the TTL (and its room); returns how many.
    pub fn sweep(&self) -> usize {
        let mut games = self.games.write().unwrap_or_else(|e| e.into_inner());
        let removed = self.remove_expired(&mut games, Instant::now());
        metrics::gauge!("hangman_games_live").set(games.len() as f64);
        removed
    }

    pub fn len(&self) -> usize {
        self.games.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove_expired(&self, games: &mut HashMap<GameId, Arc<Slot>>, now: Instant) -> usize {
        let before = games.len();
        games.retain(|_, slot| {
            now.duration_since(lock(&slot.state).last_active) <= self.limits.game_ttl
        });
        before - games.len()
    }

    fn slot(&self, id: &str) -> Result<Arc<Slot>, StoreError> {
        check_id(id)?;
        let games = self.games.read().unwrap_or_else(|e| e.into_inner());
        games.get(id).cloned().ok_or(StoreError::NotFound)
    }

    /// An expired game waiting for the sweeper is already gone for clients.
    fn check_alive(&self, state: &SlotState) -> Result<(), StoreError> {
        if state.last_active.elapsed() > self.limits.game_ttl {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}

/// Sends a change to the game's watchers, if any; a presence change only if one of them
/// asked for presence. Called under the game's lock, which keeps the order.
fn publish(state: &SlotState, change: Change) {
    let wanted = matches!(change, Change::Tally(_)) || state.presence_watchers > 0;
    if let Some(changes) = state.changes.as_ref().filter(|_| wanted) {
        // Cannot fail: the last watcher to leave takes the sender with it.
        let _ = changes.send(change);
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() {
        Err(StoreError::EmptyId)
    } else {
        Ok(())
    }
}

/// A game's lock; a panic while holding it cannot leave a half-made move
/// (`Game::make_move` does not panic), so a poisoned lock is still usable.
fn lock(state: &Mutex<SlotState>) -> std::sync::MutexGuard<'_, SlotState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The rooms' index; nothing is left half-done under it, so a poisoned lock is usable.
fn lock_rooms(
    rooms: &Mutex<HashMap<GameId, Weak<Slot>>>,
) -> std::sync::MutexGuard<'_, HashMap<GameId, Weak<Slot>>> {
    rooms.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::FutureExt;

    use super::*;

    fn registry(max_games: usize, game_ttl: Duration) -> MemoryStore {
        MemoryStore::new(
            Dictionary::parse("hangman").unwrap(),
            Limits {
                max_games,
                game_ttl,
                watch_buffer: 4,
                max_watchers_per_game: 2,
                max_watchers: 3,
                presence_lease: Duration::from_secs(15),
                max_members_per_game: 4,
                max_members: 6,
            },
        )
    }

    #[test]
    fn ids_are_22_url_safe_characters_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_game_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids {
            assert_eq!(id.len(), 22);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
    }

    #[test]
    fn a_full_registry_refuses_new_games_until_one_expires() {
        let registry = registry(2, Duration::from_millis(50));
        registry.create(None).unwrap();
        registry.create(None).unwrap();
        assert!(matches!(
            registry.create(None),
            Err(StoreError::Full { max: 2 })
        ));
        std::thread::sleep(Duration::from_millis(80));
        assert!(registry.create(None).is_ok());
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn the_sweeper_drops_only_idle_games() {
        let registry = registry(10, Duration::from_millis(60));
        let (idle, _) = registry.create(None).unwrap();
        let (busy, _) = registry.create(None).unwrap();
        for guess in ["a", "b"] {
            std::thread::sleep(Duration::from_millis(40));
            registry.make_move(&busy, guess).unwrap();
        }
        assert_eq!(registry.get(&idle), Err(StoreError::NotFound));
        assert_eq!(registry.sweep(), 1);
        assert!(registry.get(&busy).is_ok());
    }

    #[test]
    fn watchers_are_capped_per_game() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        let _a = registry.watch(&id, WatchOptions::default()).unwrap();
        let _b = registry.watch(&id, WatchOptions::default()).unwrap();
        assert!(matches!(
            registry.watch(&id, WatchOptions::default()),
            Err(StoreError::TooManyWatchers { max: 2 })
        ));
    }

    #[test]
    fn watchers_are_capped_in_all_and_a_leaving_one_makes_room() {
        let registry = registry(10, Duration::from_secs(60));
        let (one, _) = registry.create(None).unwrap();
        let (other, _) = registry.create(None).unwrap();
        let _a = registry.watch(&one, WatchOptions::default()).unwrap();
        let b = registry.watch(&one, WatchOptions::default()).unwrap();
        let _c = registry.watch(&other, WatchOptions::default()).unwrap();
        assert!(matches!(
            registry.watch(&other, WatchOptions::default()),
            Err(StoreError::TooManyWatchStreams { max: 3 })
        ));
        drop(b);
        assert!(registry.watch(&other, WatchOptions::default()).is_ok());
    }

    #[test]
    fn a_slow_watcher_skips_to_the_oldest_buffered_change() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        let mut sub = registry.watch(&id, WatchOptions::default()).unwrap();
        // Ten changes to "hangman" (the last one loses it), four buffered.
        let played: Vec<Tally> = "abcdefghij"
            .chars()
            .map(|guess| registry.make_move(&id, &guess.to_string()).unwrap())
            .collect();
        for expected in &played[6..] {
            assert_eq!(
                sub.changes.next().now_or_never(),
                Some(Some(Change::Tally(expected.clone())))
            );
        }
        assert_eq!(sub.changes.next().now_or_never(), None, "nothing more yet");
    }

    fn holds_a_change_buffer(registry: &MemoryStore, id: &str) -> bool {
        lock(&registry.slot(id).unwrap().state).changes.is_some()
    }

    #[test]
    fn only_a_watched_game_holds_a_change_buffer() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        registry.make_move(&id, "a").unwrap();
        assert!(!holds_a_change_buffer(&registry, &id));
        let first = registry.watch(&id, WatchOptions::default()).unwrap();
        let second = registry.watch(&id, WatchOptions::default()).unwrap();
        assert!(holds_a_change_buffer(&registry, &id));
        drop(first);
        assert!(holds_a_change_buffer(&registry, &id));
        drop(second);
        assert!(!holds_a_change_buffer(&registry, &id));

        // A later watcher gets a buffer again, and every change after it.
        let mut again = registry.watch(&id, WatchOptions::default()).unwrap();
        let tally = registry.make_move(&id, "h").unwrap();
        assert_eq!(
            again.changes.next().now_or_never(),
            Some(Some(Change::Tally(tally)))
        );
        registry.end(&id).unwrap();
        assert_eq!(
            again.changes.next().now_or_never(),
            Some(None),
            "the game ended"
        );
    }

    fn member(key: &str, name: &str) -> Member {
        Member {
            key: key.into(),
            name: name.into(),
            online_at: 0,
        }
    }

    fn keys(members: &[Member]) -> Vec<&str> {
        members.iter().map(|member| member.key.as_str()).collect()
    }

    /// The next change now, as (joins, leaves) keys for a diff.
    fn next_diff(sub: &mut Subscription) -> (Vec<String>, Vec<String>) {
        match sub.changes.next().now_or_never() {
            Some(Some(Change::PresenceDiff { joins, leaves })) => (
                keys(&joins).into_iter().map(String::from).collect(),
                keys(&leaves).into_iter().map(String::from).collect(),
            ),
            other => panic!("expected a presence diff, got {other:?}"),
        }
    }

    fn next_state(sub: &mut Subscription) -> Vec<Member> {
        match sub.changes.next().now_or_never() {
            Some(Some(Change::PresenceState(members))) => members,
            other => panic!("expected a presence state, got {other:?}"),
        }
    }

    fn with_presence() -> WatchOptions {
        WatchOptions {
            presence: true,
            since_version: None,
        }
    }

    #[test]
    fn a_presence_watcher_gets_the_room_then_its_joins_and_leaves_between_tallies() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        registry
            .update_presence(&id, vec![member("k1", "ann")], vec![])
            .unwrap();
        let mut sub = registry.watch(&id, with_presence()).unwrap();
        let room = next_state(&mut sub);
        assert_eq!(keys(&room), ["k1"]);
        assert_eq!(room[0].name, "ann");
        assert!(room[0].online_at > 1_700_000_000, "unix seconds");

        // A renewal is no join; a new key is; a renamed renewal keeps the first name.
        registry
            .update_presence(
                &id,
                vec![member("k1", "renamed"), member("k2", "bob")],
                vec![],
            )
            .unwrap();
        assert_eq!(next_diff(&mut sub), (vec!["k2".into()], vec![]));
        let tally = registry.make_move(&id, "a").unwrap();
        assert_eq!(
            sub.changes.next().now_or_never(),
            Some(Some(Change::Tally(tally)))
        );
        // Joins and leaves of one call are one diff; an unknown key is ignored.
        registry
            .update_presence(
                &id,
                vec![member("k3", "cy")],
                vec!["k1".into(), "nobody".into()],
            )
            .unwrap();
        assert_eq!(next_diff(&mut sub), (vec!["k3".into()], vec!["k1".into()]));
        registry
            .update_presence(&id, vec![member("k2", "bob")], vec!["nobody".into()])
            .unwrap();
        assert_eq!(sub.changes.next().now_or_never(), None, "nothing changed");

        let room = next_state(&mut registry.watch(&id, with_presence()).unwrap());
        assert_eq!(keys(&room), ["k2", "k3"]);
    }

    #[test]
    fn a_watcher_that_did_not_ask_for_presence_never_sees_it() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        let mut plain = registry.watch(&id, WatchOptions::default()).unwrap();
        let _room = registry.watch(&id, with_presence()).unwrap();
        registry
            .update_presence(&id, vec![member("k1", "ann")], vec![])
            .unwrap();
        let tally = registry.make_move(&id, "a").unwrap();
        assert_eq!(
            plain.changes.next().now_or_never(),
            Some(Some(Change::Tally(tally)))
        );
        assert_eq!(plain.changes.next().now_or_never(), None);
    }

    #[test]
    fn a_full_room_refuses_the_whole_update() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        let three: Vec<_> = ["k1", "k2", "k3"].map(|key| member(key, "")).into();
        registry
            .update_presence(&id, three.clone(), vec![])
            .unwrap();
        let mut sub = registry.watch(&id, with_presence()).unwrap();
        next_state(&mut sub);

        let two_more = vec![member("k4", ""), member("k5", "")];
        assert_eq!(
            registry.update_presence(&id, two_more.clone(), vec![]),
            Err(StoreError::TooManyMembers { max: 4 })
        );
        assert_eq!(sub.changes.next().now_or_never(), None, "nothing changed");
        // Renewals do not count, and leaves make room in the same call.
        registry.update_presence(&id, three, vec![]).unwrap();
        registry
            .update_presence(&id, two_more, vec!["k1".into()])
            .unwrap();
        assert_eq!(
            next_diff(&mut sub),
            (vec!["k4".into(), "k5".into()], vec!["k1".into()])
        );
    }

    #[test]
    fn rooms_hold_at_most_max_members_in_all_and_an_ended_game_gives_its_places_back() {
        let registry = registry(10, Duration::from_secs(60));
        let (first, _) = registry.create(None).unwrap();
        let (second, _) = registry.create(None).unwrap();
        let four: Vec<_> = ["a1", "a2", "a3", "a4"].map(|key| member(key, "")).into();
        registry.update_presence(&first, four, vec![]).unwrap();
        let mut sub = registry.watch(&second, with_presence()).unwrap();
        next_state(&mut sub);

        // Six in all: four in the first room leave room for two.
        let three: Vec<_> = ["b1", "b2", "b3"].map(|key| member(key, "")).into();
        assert_eq!(
            registry.update_presence(&second, three.clone(), vec![]),
            Err(StoreError::TooManyMembersInAll { max: 6 })
        );
        assert_eq!(sub.changes.next().now_or_never(), None, "nothing changed");
        registry
            .update_presence(&second, three[..2].to_vec(), vec![])
            .unwrap();
        next_diff(&mut sub);

        registry.end(&first).unwrap();
        registry.update_presence(&second, three, vec![]).unwrap();
        assert_eq!(next_diff(&mut sub), (vec!["b3".into()], vec![]));
    }

    #[test]
    fn a_key_listed_twice_counts_once_and_a_key_also_leaving_leaves() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        let mut sub = registry.watch(&id, with_presence()).unwrap();
        next_state(&mut sub);
        let three: Vec<_> = ["k1", "k2", "k3"].map(|key| member(key, "")).into();
        registry.update_presence(&id, three, vec![]).unwrap();
        next_diff(&mut sub);

        // Room for one more: k4 twice is one join, and k9, in both lists, none.
        let renew = vec![
            member("k4", "first"),
            member("k4", "second"),
            member("k9", ""),
        ];
        registry
            .update_presence(&id, renew, vec!["k9".into()])
            .unwrap();
        let (joins, leaves) = match sub.changes.next().now_or_never() {
            Some(Some(Change::PresenceDiff { joins, leaves })) => (joins, leaves),
            other => panic!("expected a presence diff, got {other:?}"),
        };
        assert_eq!((keys(&joins), keys(&leaves)), (vec!["k4"], vec![]));
        assert_eq!(joins[0].name, "first");
    }

    #[test]
    fn an_unknown_ended_or_expired_game_has_no_room() {
        let registry = registry(10, Duration::from_millis(50));
        let update = |id: &str| registry.update_presence(id, vec![member("k1", "")], vec![]);
        assert_eq!(update("nope"), Err(StoreError::NotFound));
        assert_eq!(update(""), Err(StoreError::EmptyId));
        let (ended, _) = registry.create(None).unwrap();
        update(&ended).unwrap();
        registry.end(&ended).unwrap();
        assert_eq!(update(&ended), Err(StoreError::NotFound));
        let (expired, _) = registry.create(None).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(update(&expired), Err(StoreError::NotFound));
        // The ended game's room is forgotten at the next visit.
        assert_eq!(registry.expire_presence(), 0);
        assert!(lock_rooms(&registry.rooms).is_empty());
    }

    #[test]
    fn renewing_is_not_game_activity() {
        let registry = registry(10, Duration::from_millis(60));
        let (id, _) = registry.create(None).unwrap();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(25));
            let _ = registry.update_presence(&id, vec![member("k1", "")], vec![]);
        }
        assert_eq!(registry.get(&id), Err(StoreError::NotFound));
    }

    #[test]
    fn members_whose_lease_ran_out_leave_together() {
        let registry = registry(10, Duration::from_secs(600));
        let lease = registry.limits.presence_lease;
        let (id, _) = registry.create(None).unwrap();
        let mut sub = registry.watch(&id, with_presence()).unwrap();
        next_state(&mut sub);
        registry
            .update_presence(
                &id,
                vec![member("k1", ""), member("k2", ""), member("k3", "")],
                vec![],
            )
            .unwrap();
        next_diff(&mut sub);
        std::thread::sleep(Duration::from_millis(5));
        let renewed = Instant::now();
        registry
            .update_presence(&id, vec![member("k2", "")], vec![])
            .unwrap();

        // k1 and k3 were last renewed before `renewed`; k2 after it.
        assert_eq!(
            registry.expire_presence_at(renewed + lease - Duration::from_millis(1)),
            2
        );
        assert_eq!(
            next_diff(&mut sub),
            (vec![], vec!["k1".into(), "k3".into()])
        );
        assert_eq!(registry.expire_presence(), 0);
        assert_eq!(registry.expire_presence_at(renewed + lease * 2), 1);
        assert_eq!(next_diff(&mut sub), (vec![], vec!["k2".into()]));
        assert!(
            lock_rooms(&registry.rooms).is_empty(),
            "an empty room is forgotten"
        );
    }

    #[test]
    fn a_presence_watcher_that_fell_behind_gets_the_tally_and_the_room_again() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        let mut plain = registry.watch(&id, WatchOptions::default()).unwrap();
        let mut sub = registry.watch(&id, with_presence()).unwrap();
        next_state(&mut sub);
        let tally = registry.make_move(&id, "a").unwrap();
        // Six diffs, four buffered: the tally is pushed out.
        for _ in 0..3 {
            registry
                .update_presence(&id, vec![member("k1", "")], vec![])
                .unwrap();
            registry
                .update_presence(&id, vec![], vec!["k1".into()])
                .unwrap();
        }
        registry
            .update_presence(&id, vec![member("k2", "")], vec![])
            .unwrap();

        assert_eq!(
            sub.changes.next().now_or_never(),
            Some(Some(Change::Tally(tally.clone())))
        );
        assert_eq!(keys(&next_state(&mut sub)), ["k2"]);
        assert_eq!(sub.changes.next().now_or_never(), None, "nothing more yet");
        // A watcher without presence is given the tally it missed, and no room.
        assert_eq!(
            plain.changes.next().now_or_never(),
            Some(Some(Change::Tally(tally)))
        );
        assert_eq!(plain.changes.next().now_or_never(), None);
    }

    #[test]
    fn a_room_without_presence_watchers_publishes_nothing() {
        let registry = registry(10, Duration::from_secs(60));
        let (id, _) = registry.create(None).unwrap();
        registry
            .update_presence(&id, vec![member("k1", "")], vec![])
            .unwrap();
        assert!(!holds_a_change_buffer(&registry, &id));
        let mut plain = registry.watch(&id, WatchOptions::default()).unwrap();
        for _ in 0..8 {
            registry
                .update_presence(&id, vec![], vec!["k1".into()])
                .unwrap();
            registry
                .update_presence(&id, vec![member("k1", "")], vec![])
                .unwrap();
        }
        let buffered = lock(&registry.slot(&id).unwrap().state)
            .changes
            .as_ref()
            .map(|changes| changes.len());
        assert_eq!(buffered, Some(0), "no diff was buffered");
        let tally = registry.make_move(&id, "h").unwrap();
        assert_eq!(
            plain.changes.next().now_or_never(),
            Some(Some(Change::Tally(tally)))
        );
    }

    /// What members cost: the process's resident memory before and after 100 000 members in
    /// 10 000 rooms, and the time one check of their leases takes.
    #[test]
    #[ignore = "a measurement: run it with --ignored --nocapture, in release"]
    fn measure_members() {
        fn resident_bytes() -> usize {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<usize>()
                .unwrap()
                * 1024
        }
        let registry = registry(10_000, Duration::from_secs(600));
        let registry = MemoryStore::new(
            registry.dictionary,
            Limits {
                max_members_per_game: 10,
                max_members: 1_000_000,
                ..registry.limits
            },
        );
        let ids: Vec<_> = (0..10_000)
            .map(|_| registry.create(None).unwrap().0)
            .collect();
        let before = resident_bytes();
        for id in &ids {
            // Keys and names the size of the gateway's: 32 and 15 characters.
            let members = (0..10)
                .map(|_| {
                    let key = format!("{:032x}", rand::random::<u128>());
                    member(&key, &format!("player-{:08x}", rand::random::<u32>()))
                })
                .collect();
            registry.update_presence(id, members, vec![]).unwrap();
        }
        let added = resident_bytes() - before;
        let started = Instant::now();
        assert_eq!(registry.expire_presence(), 0);
        println!(
            "100 000 members in 10 000 rooms: {} B each; one check of their leases: {:?}",
            added / 100_000,
            started.elapsed()
        );
    }
}
