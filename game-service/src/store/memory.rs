//! Games in this process: live games by id, with an idle TTL, a maximum count and change
//! notification.
//!
//! Memory stays bounded whatever clients do: at most `max_games` games, each
//! dropped after `game_ttl` without a move or creation; at most
//! `max_watchers` watchers in all and `max_watchers_per_game` on one game,
//! those of a game sharing a buffer of
//! `watch_buffer` tallies (a watcher that falls further behind skips ahead
//! rather than growing the buffer).
//!
//! An unwatched game holds no change buffer: that buffer is most of what a
//! watched game costs (about 8 KiB of the default 64 tallies), and most games
//! are never watched, so the first watcher makes it and the last one to leave
//! drops it. An idle game is its state, its id and its map entry.
//!
//! Moves on one game are applied one at a time under the game's own lock, and
//! the change is published under that same lock, so watchers see changes in
//! the order they were applied.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock, Weak},
    time::Instant,
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
    receiver: Option<broadcast::Receiver<Tally>>,
    /// Weak, so that a watcher does not keep an ended or expired game alive:
    /// dropping the game drops its sender, which ends every watcher's changes.
    slot: Weak<Slot>,
    /// The watcher's place under `max_watchers`, given back with it.
    _permit: OwnedSemaphorePermit,
}

impl MemoryChanges {
    /// The next change, or `None` once the game has ended or expired. A
    /// watcher that fell more than `watch_buffer` changes behind skips those
    /// it missed and goes on with the oldest one still buffered, so order is
    /// kept and memory is bounded.
    async fn next(&mut self) -> Option<Tally> {
        let receiver = self.receiver.as_mut()?;
        loop {
            match receiver.recv().await {
                Ok(tally) => return Some(tally),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
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
    changes: Option<broadcast::Sender<Tally>>,
}

pub struct MemoryStore {
    games: RwLock<HashMap<GameId, Arc<Slot>>>,
    /// One permit per watcher, `max_watchers` in all.
    watchers: Arc<Semaphore>,
    dictionary: Dictionary,
    limits: Limits,
}

impl MemoryStore {
    pub fn new(dictionary: Dictionary, limits: Limits) -> MemoryStore {
        MemoryStore {
            games: RwLock::new(HashMap::new()),
            watchers: Arc::new(Semaphore::new(
                limits.max_watchers.min(Semaphore::MAX_PERMITS),
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
        if let Some(changes) = state.changes.as_ref().filter(|_| state.game != before) {
            // Cannot fail: the last watcher to leave takes the sender with it.
            let _ = changes.send(tally.clone());
        }
        Ok(tally)
    }

    /// The tally now and a receiver of every later change, taken under the
    /// game's lock so that no change falls between the two.
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
        let buffer = self.limits.watch_buffer.max(1);
        let changes = state
            .changes
            .get_or_insert_with(|| broadcast::channel(buffer).0);
        let changes = MemoryChanges {
            receiver: Some(changes.subscribe()),
            slot: Arc::downgrade(&slot),
            _permit: permit,
        };
        // Dropping the stream drops `changes`, which is how the watcher leaves.
        let changes = futures::stream::unfold(changes, |mut changes| async move {
            changes
                .next()
                .await
                .map(|tally| (Change::Tally(tally), changes))
        });
        Ok(Subscription {
            tally,
            recovery,
            changes: Changes::new(changes.boxed()),
        })
    }

    /// Adds or renews members of a game's room and removes others (see [`GameStore`]).
    ///
    /// [`GameStore`]: super::GameStore
    pub fn update_presence(
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
    pub fn expire_presence(&self) -> usize {
        0
    }

    /// Removes a game; its watchers' streams end.
    pub fn end(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let mut games = self.games.write().unwrap_or_else(|e| e.into_inner());
        let removed = games.remove(id).ok_or(StoreError::NotFound)?;
        metrics::gauge!("hangman_games_live").set(games.len() as f64);
        drop(games);
        // An expired game that was not swept yet no longer exists for clients.
        self.check_alive(&lock(&removed.state))
    }

    /// Drops every game idle for longer than the TTL; returns how many.
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
}
