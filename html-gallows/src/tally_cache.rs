//! The tallies of the games this server's players are looking at, kept current
//! by the game service's `WatchGame` stream, so that showing a game (the
//! redirect after every guess, every reload) needs no call to the service.
//!
//! Why a cached tally can be trusted:
//!
//! - An entry holds a tally only while its watch stream is open, and the stream
//!   delivers every change of the game in order, whoever makes it (another tab,
//!   another replica, a gRPC client).
//! - A tally replaces the cached one only if it is not older. The watch and the
//!   players' replies race, and the contract gives a tally no version, so the
//!   cache orders a game's tallies by where they stand in its history
//!   (`position`): a late reply, or a late watch message, never undoes a newer
//!   change, a repeated letter (`already_used`) included.
//! - A tally the service has not confirmed for `max_age` is fetched again. This
//!   bounds anything the stream cannot tell, such as a game that has expired
//!   but is not swept yet (its stream ends only when it is removed).
//! - The end of the stream, an error on it, or the service answering that the
//!   game is unknown drops the entry.
//!
//! Limits: at most `capacity` games are watched at once (further games are
//! read from the service on every view), and a watch whose game nobody has
//! viewed for `idle` is closed.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hangman_proto::v1::{
    GameState, Tally, WatchGameRequest, hangman_service_client::HangmanServiceClient,
};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::metrics;

/// How many games are watched and for how long; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Most games watched at once; 0 turns the cache off.
    pub capacity: usize,
    /// A watch whose game nobody has viewed for this long is closed.
    pub idle: Duration,
    /// A tally not confirmed by the service for this long is fetched again.
    pub max_age: Duration,
}

/// A cheap-to-clone handle on the cache.
#[derive(Debug, Clone)]
pub struct TallyCache {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    games: Mutex<HashMap<String, Entry>>,
    limits: CacheLimits,
    /// Tells a watch task apart from a later one for the same game.
    next_generation: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    /// `None` until the watch stream's first message.
    tally: Option<Arc<Tally>>,
    /// When the service last vouched for `tally`.
    confirmed: Instant,
    /// When a page last showed this game.
    viewed: Instant,
}

/// Where a tally stands in its game's history: later tallies have a greater
/// position, and two tallies of one game at the same position are the same tally.
///
/// The rules (docs/design.md §3) change a game in two ways only. A new letter
/// adds one to `used`. A letter used before changes the state to `already_used`
/// and nothing else; the state leaves `already_used` only with the next new
/// letter, and a game won or lost changes no more. So along a game's history
/// (letters used, whether the last guess was a repeat) never goes down, and it
/// fixes the tally: the letters used fix `letters` and `turns_left`, and the
/// last new letter fixes the state unless a repeat followed it. Two tallies at
/// the same position are therefore equal, and which one the cache keeps does
/// not matter; it takes the one offered, as a fresh confirmation. The number of
/// letters alone is not enough: after a repeated letter the tally from before
/// the repeat has as many letters, and a late copy of it would hide the
/// `already_used` the player has just been shown.
fn position(tally: &Tally) -> (usize, bool) {
    let repeat = tally.game_state == GameState::AlreadyUsed as i32;
    (tally.used.len(), repeat)
}

impl TallyCache {
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                games: Mutex::new(HashMap::new()),
                limits,
                next_generation: AtomicU64::new(0),
            }),
        }
    }

    /// The game's tally, if a live watch feeds it and the service confirmed it
    /// within `max_age`.
    pub fn get(&self, game_id: &str) -> Option<Arc<Tally>> {
        let mut games = self.games();
        let entry = games.get_mut(game_id)?;
        let tally = entry.tally.as_ref()?;
        if entry.confirmed.elapsed() > self.shared.limits.max_age {
            return None;
        }
        entry.viewed = Instant::now();
        Some(Arc::clone(tally))
    }

    /// A tally the service has just returned for a player (from GetGame or
    /// MakeMove). It replaces the cached one unless it is older; a game whose
    /// watch has not delivered yet keeps waiting for it.
    pub fn confirm(&self, game_id: &str, tally: &Tally) {
        if let Some(entry) = self.games().get_mut(game_id) {
            entry.viewed = Instant::now();
            if entry.tally.is_some() {
                entry.offer(tally);
            }
        }
    }

    /// The service no longer knows the game.
    pub fn forget(&self, game_id: &str) {
        let mut games = self.games();
        if games.remove(game_id).is_some() {
            metrics::tally_cache_watched(games.len());
        }
    }

    /// Starts watching a game through `client`, unless it is watched already or
    /// as many games as allowed are. `request` makes the call (its metadata
    /// carries the trace of the page view that asked) only when one is started.
    pub fn watch(
        &self,
        game_id: &str,
        client: &HangmanServiceClient<Channel>,
        request: impl FnOnce() -> tonic::Request<WatchGameRequest>,
    ) {
        let Some(generation) = self.admit(game_id) else {
            return;
        };
        let cache = self.clone();
        let client = client.clone();
        let request = request();
        let game_id = game_id.to_owned();
        tokio::spawn(async move {
            cache.follow(client, request, generation).await;
            cache.remove(&game_id, generation);
        });
    }

    /// Makes room for a new watch; its generation, or `None` if there is none to start.
    fn admit(&self, game_id: &str) -> Option<u64> {
        let mut games = self.games();
        if games.contains_key(game_id) || games.len() >= self.shared.limits.capacity {
            return None;
        }
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        games.insert(
            game_id.to_owned(),
            Entry {
                generation,
                tally: None,
                confirmed: now,
                viewed: now,
            },
        );
        metrics::tally_cache_watched(games.len());
        Some(generation)
    }

    /// Applies the game's changes until the stream ends, fails, or nobody has
    /// viewed the game for `idle`.
    async fn follow(
        &self,
        mut client: HangmanServiceClient<Channel>,
        request: tonic::Request<WatchGameRequest>,
        generation: u64,
    ) {
        let game_id = request.get_ref().game_id.clone();
        let mut changes = match client.watch_game(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tracing::debug!(%status, "cannot watch the game; its views are fetched instead");
                return;
            }
        };
        while let Some(idle_from) = self.idle_deadline(&game_id, generation) {
            tokio::select! {
                change = changes.message() => match change {
                    Ok(Some(change)) => match change.tally {
                        Some(tally) => self.apply(&game_id, generation, &tally),
                        None => return,
                    },
                    // The game was ended or swept.
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%status, "the watch of a game ended");
                        return;
                    }
                },
                // The loop condition decides whether the game is idle now.
                () = tokio::time::sleep_until(idle_from) => {}
            }
        }
    }

    /// When the watch becomes idle; `None` if it is idle now or its entry is gone.
    fn idle_deadline(&self, game_id: &str, generation: u64) -> Option<Instant> {
        let games = self.games();
        let entry = games.get(game_id).filter(|e| e.generation == generation)?;
        let deadline = entry.viewed + self.shared.limits.idle;
        (deadline > Instant::now()).then_some(deadline)
    }

    fn apply(&self, game_id: &str, generation: u64, tally: &Tally) {
        let mut games = self.games();
        if let Some(entry) = games
            .get_mut(game_id)
            .filter(|e| e.generation == generation)
        {
            entry.offer(tally);
        }
    }

    fn remove(&self, game_id: &str, generation: u64) {
        let mut games = self.games();
        if games
            .get(game_id)
            .is_some_and(|e| e.generation == generation)
        {
            games.remove(game_id);
            metrics::tally_cache_watched(games.len());
        }
    }

    fn games(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // The map stays consistent even if a holder panicked: every update is one insert or remove.
        self.shared.games.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Entry {
    /// Takes `tally` unless the cached one is newer, and notes the confirmation.
    fn offer(&mut self, tally: &Tally) {
        match &self.tally {
            Some(cached) if position(cached) > position(tally) => {}
            _ => {
                self.tally = Some(Arc::new(tally.clone()));
                self.confirmed = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use game_service::{rules::Game, service::to_proto};
    use proptest::{prelude::*, sample::Index};

    use super::*;

    const GAME: &str = "0123456789abcdef0123456789abcdef";

    fn limits(capacity: usize) -> CacheLimits {
        CacheLimits {
            capacity,
            idle: Duration::from_secs(60),
            max_age: Duration::from_secs(10),
        }
    }

    /// The tally of a game of "gallows" after guessing `used`, in order.
    fn tally(used: &[&str]) -> Tally {
        let mut used: Vec<String> = used.iter().map(|s| s.to_string()).collect();
        used.sort();
        Tally {
            game_state: GameState::GoodGuess as i32,
            turns_left: 7,
            letters: vec!["_".to_owned(); 7],
            used,
            word: None,
            version: 0,
        }
    }

    /// A cache watching GAME whose watch has delivered `first`.
    fn watching(first: &Tally) -> (TallyCache, u64) {
        let cache = TallyCache::new(limits(10));
        let generation = cache.admit(GAME).unwrap();
        cache.apply(GAME, generation, first);
        (cache, generation)
    }

    #[tokio::test(start_paused = true)]
    async fn a_game_is_served_only_once_its_watch_has_delivered() {
        let cache = TallyCache::new(limits(10));
        let generation = cache.admit(GAME).unwrap();
        assert!(cache.get(GAME).is_none(), "nothing delivered yet");
        // What a player's GetGame returns does not stand in for the watch.
        cache.confirm(GAME, &tally(&["a"]));
        assert!(cache.get(GAME).is_none());
        cache.apply(GAME, generation, &tally(&["a"]));
        assert_eq!(*cache.get(GAME).unwrap(), tally(&["a"]));
    }

    #[tokio::test(start_paused = true)]
    async fn an_older_tally_never_replaces_a_newer_one() {
        let (cache, generation) = watching(&tally(&["a"]));
        // The player's MakeMove reply arrives before the watch's message for it...
        cache.confirm(GAME, &tally(&["a", "g"]));
        assert_eq!(*cache.get(GAME).unwrap(), tally(&["a", "g"]));
        // ...and a watch message from before the move arrives late.
        cache.apply(GAME, generation, &tally(&["a"]));
        assert_eq!(*cache.get(GAME).unwrap(), tally(&["a", "g"]));
        // Later changes still come through.
        cache.apply(GAME, generation, &tally(&["a", "g", "l"]));
        assert_eq!(*cache.get(GAME).unwrap(), tally(&["a", "g", "l"]));
    }

    /// The tallies of a game of "gallows" played by the game service's own rules:
    /// the new game's, then one after each guess.
    fn history(guesses: &[char]) -> Vec<Tally> {
        let mut game = Game::new("gallows").unwrap();
        let mut tallies = vec![to_proto(game.tally())];
        for guess in guesses {
            game.make_move(&guess.to_string()).unwrap();
            tallies.push(to_proto(game.tally()));
        }
        tallies
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_letter_is_shown_and_a_late_tally_from_before_it_does_not_hide_it() {
        let [_, g, g_again, a] = history(&['g', 'g', 'a']).try_into().unwrap();
        assert_eq!(g_again.game_state, GameState::AlreadyUsed as i32);
        assert_eq!(g_again.used, g.used, "a repeat changes the state alone");
        let (cache, generation) = watching(&g);
        // The reply to the repeated guess: the page says the letter was tried.
        cache.confirm(GAME, &g_again);
        assert_eq!(*cache.get(GAME).unwrap(), g_again);
        // The watch delivers the first `g` late, as many letters used: it is older.
        cache.apply(GAME, generation, &g);
        assert_eq!(*cache.get(GAME).unwrap(), g_again);
        // The repeat's own watch message changes nothing; the next letter replaces it.
        cache.apply(GAME, generation, &g_again);
        assert_eq!(*cache.get(GAME).unwrap(), g_again);
        cache.confirm(GAME, &a);
        assert_eq!(*cache.get(GAME).unwrap(), a);
        cache.apply(GAME, generation, &g_again);
        assert_eq!(*cache.get(GAME).unwrap(), a);
    }

    /// A tally reaching the cache: from the watch stream, or a player's reply.
    #[derive(Debug, Clone, Copy)]
    enum Delivery {
        Watch(usize),
        Reply(usize),
    }

    /// Guesses with repeats, wins and losses among them: a few letters of
    /// "gallows" and more than seven that are not in it.
    fn guesses() -> impl Strategy<Value = Vec<char>> {
        proptest::collection::vec(
            proptest::sample::select(
                &[
                    'g', 'a', 'l', 'o', 'w', 's', 'b', 'c', 'd', 'e', 'f', 'h', 'i', 'k', 'm',
                ][..],
            ),
            0..30,
        )
    }

    proptest! {
        /// Whatever order the watch's messages and the players' replies reach the
        /// cache in, it serves the newest tally it has been given: the watch
        /// delivers the game's changes in order (from the tally when it was
        /// opened, skipping some when it lags), and the reply to each move comes
        /// at any point, before or after the watch's message for it.
        #[test]
        fn whatever_order_tallies_arrive_in_the_newest_one_is_served(
            guesses in guesses(),
            opened in any::<Index>(),
            lagging in proptest::collection::vec(any::<bool>(), 30),
            replies in proptest::collection::vec(any::<Index>(), 30),
        ) {
            let history = history(&guesses);
            // The watch: the tally when it opened, then each change it does not skip.
            let opened = opened.index(history.len());
            let mut deliveries: Vec<Delivery> = (opened..history.len())
                .filter(|&k| k == opened || (history[k] != history[k - 1] && !lagging[k - 1]))
                .map(Delivery::Watch)
                .collect();
            // The reply to each move, somewhere among them.
            for (k, at) in (1..history.len()).zip(&replies) {
                deliveries.insert(at.index(deliveries.len() + 1), Delivery::Reply(k));
            }

            let cache = TallyCache::new(limits(1));
            let generation = cache.admit(GAME).unwrap();
            let mut newest: Option<usize> = None;
            for delivery in deliveries {
                match delivery {
                    Delivery::Watch(k) => {
                        cache.apply(GAME, generation, &history[k]);
                        newest = newest.max(Some(k));
                    }
                    Delivery::Reply(k) => {
                        cache.confirm(GAME, &history[k]);
                        // A reply counts only once the watch has delivered.
                        newest = newest.map(|n| n.max(k));
                    }
                }
                let served = cache.get(GAME);
                prop_assert_eq!(served.as_deref(), newest.map(|n| &history[n]), "after {:?}", delivery);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tally_the_service_has_not_confirmed_for_max_age_is_read_again() {
        let (cache, generation) = watching(&tally(&["a"]));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(cache.get(GAME).is_none(), "too old to trust");
        cache.confirm(GAME, &tally(&["a"]));
        assert!(cache.get(GAME).is_some(), "confirmed again");
        tokio::time::advance(Duration::from_secs(11)).await;
        cache.apply(GAME, generation, &tally(&["a", "b"]));
        assert!(cache.get(GAME).is_some(), "a change is a confirmation too");
    }

    #[tokio::test(start_paused = true)]
    async fn a_forgotten_game_is_not_served_and_its_watch_stops_counting() {
        let (cache, generation) = watching(&tally(&["a"]));
        cache.forget(GAME);
        assert!(cache.get(GAME).is_none());
        assert!(cache.games().is_empty());
        // A late message from the old watch does not bring the game back.
        cache.apply(GAME, generation, &tally(&["a", "b"]));
        assert!(cache.get(GAME).is_none());
        // A new watch of the same game is not removed by the old one's end.
        let renewed = cache.admit(GAME).unwrap();
        cache.remove(GAME, generation);
        cache.apply(GAME, renewed, &tally(&["a", "b"]));
        assert!(cache.get(GAME).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_games_than_the_capacity_are_watched() {
        let cache = TallyCache::new(limits(2));
        assert!(cache.admit("one").is_some());
        assert!(cache.admit("one").is_none(), "already watched");
        assert!(cache.admit("two").is_some());
        assert!(cache.admit("three").is_none(), "full");
        assert_eq!(cache.games().len(), 2);
        assert!(
            TallyCache::new(limits(0)).admit("one").is_none(),
            "0 is off"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_is_idle_once_nobody_has_viewed_its_game_for_the_idle_time() {
        let (cache, generation) = watching(&tally(&["a"]));
        tokio::time::advance(Duration::from_secs(59)).await;
        cache.confirm(GAME, &tally(&["a"])); // a view
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.idle_deadline(GAME, generation).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(cache.idle_deadline(GAME, generation).is_none());
    }
}
