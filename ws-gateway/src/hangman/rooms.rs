//! The `game:<id>` rooms this process carries: one game-service watch per game, however many of
//! its members are on this gateway, fanned out to their channels.
//!
//! A room opens with its first member here and closes with its last. Its watch asks for
//! presence and for every tally since version 0, so the room knows the game's recent tallies
//! and answers a rejoining member's `version` itself, as the game service would. Each change
//! is encoded once for the whole room; a member's channel gets the shared payload.
//!
//! Presence diffs that arrive together (members joining in a burst) go out as one diff, worked
//! out from who was in the room before and after them, so a burst of joins costs each member
//! one push rather than one per joiner.
//!
//! A member whose socket falls behind by [`RoomLimits::member_backlog`] messages is skipped,
//! and once it has caught up it gets the room's state (the tally and everyone present): a slow
//! socket never holds up the room nor makes it buffer without bound. When the watch ends (the
//! game ended or expired, or the game service went away) every member's channel ends with the
//! reason, as each member's own watch ending did before; clients rejoin.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use hangman_proto::v1::{PresenceMember, Tally};
use tokio::sync::{Notify, OnceCell};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::tally;
use crate::upstream::{
    Recovery, TraceContext, Upstream, UpstreamError, WatchEvent, WatchOptions, Watched,
};
use phoenix_channels::channel::InfoSender;
use phoenix_channels::message::Payload;
use phoenix_channels::presence::{self, Presence};

/// The most tallies a room keeps to answer rejoins; a game has at most 52 changes.
const MAX_HISTORY: usize = 64;

/// The most watch messages a room takes in one go before it sends what they changed.
const MAX_BATCH: usize = 256;

/// What a room may hold for one member.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// How long a room's opening waits for the game service's first list of who is in the
    /// room, so that its first members are sent everyone (the gRPC call timeout).
    pub presence_wait: Duration,
    /// The shortest time between two `presence_diff` pushes of a room: the joins and leaves of
    /// a burst go out together, so a burst of joins costs each member a push per interval
    /// rather than one per joiner.
    pub presence_batch: Duration,
    /// Room messages that may wait for one member's socket before the member is skipped (it
    /// gets the room's state once it has caught up).
    pub member_backlog: usize,
}

/// An event to push to a member, its payload encoded once for the whole room.
pub type Push = (&'static str, Payload);

/// What a room sends to a member's channel.
pub enum RoomInfo {
    Push(Push),
    /// The room's watch ended: the channel ends with this reason.
    Closed(&'static str),
}

/// The rooms of this process; cloning it shares them.
#[derive(Clone)]
pub struct Rooms {
    hub: Arc<Hub>,
}

struct Hub {
    upstream: Upstream,
    limits: RoomLimits,
    /// Game id → its room and how many joins and members hold it.
    rooms: Mutex<HashMap<String, Held>>,
}

struct Held {
    room: Arc<Room>,
    holders: usize,
}

struct Room {
    game_id: String,
    limits: RoomLimits,
    /// Set once the watch is open and the state below filled from its first messages.
    opened: OnceCell<()>,
    state: Mutex<RoomState>,
    /// Woken when who is in the room changes.
    presence_changed: Notify,
}

#[derive(Default)]
struct RoomState {
    /// The tallies the room knows, oldest first; the last is the game's tally now.
    tallies: VecDeque<Tally>,
    /// The room knows every tally after this version (`None`: the game service keeps no
    /// versions, so the room recovers nothing).
    complete_after: Option<u64>,
    /// Who is in the room, by member key.
    presence: HashMap<String, PresenceMember>,
    /// The joins and leaves not sent to the members yet.
    unsent: PresenceChange,
    /// When the last `presence_diff` went out.
    last_diff_at: Option<Instant>,
    /// [`RoomState::presence`] as a `presence_state` payload, encoded once for every member
    /// joining until it changes.
    presence_payload: Option<Payload>,
    members: HashMap<u64, Subscriber>,
    next_member: u64,
    /// Why the watch ended, once it has.
    ended: Option<&'static str>,
    /// The task reading the watch.
    reader: Option<AbortHandle>,
}

struct Subscriber {
    info: InfoSender<RoomInfo>,
    backlog: Arc<Backlog>,
}

/// What a member's join found in the room.
pub struct Joined {
    pub tally: Tally,
    /// What the member missed since the version it gave; `None` when it gave none or the game
    /// service keeps no versions.
    pub recovery: Option<Recovery>,
}

/// A member's place in a room, from its join until its channel ends: dropping it takes the
/// member out, and the room closes with its last member.
pub struct Subscription {
    hold: Hold,
    id: u64,
    backlog: Arc<Backlog>,
}

/// Holds a room open while a join is under way; becomes part of the [`Subscription`].
struct Hold {
    hub: Arc<Hub>,
    room: Arc<Room>,
}

impl Rooms {
    pub fn new(upstream: Upstream, limits: RoomLimits) -> Self {
        Rooms {
            hub: Arc::new(Hub {
                upstream,
                limits,
                rooms: Mutex::default(),
            }),
        }
    }

    /// Puts a member in the room of `game_id`, opening the room (its watch) if it is the
    /// first here. The member's channel then gets the room's pushes through `info`, first a
    /// `presence_state` of everyone (with `me`, the member itself, when presence is kept).
    pub async fn join(
        &self,
        trace: &TraceContext,
        game_id: &str,
        since_version: Option<u64>,
        me: Option<PresenceMember>,
        info: &InfoSender<RoomInfo>,
    ) -> Result<(Subscription, Joined), UpstreamError> {
        let hold = self.hub.hold(game_id);
        hold.room
            .opened
            .get_or_try_init(|| open(&self.hub, trace, &hold.room, me.is_some()))
            .await?;
        if let Some(me) = &me {
            hold.room
                .await_member(&me.key, self.hub.limits.presence_wait)
                .await;
        }
        let mut state = hold.room.state();
        if let Some(reason) = state.ended {
            return Err(ended_error(reason));
        }
        let backlog = Arc::new(Backlog::default());
        let id = state.next_member;
        state.next_member += 1;
        if let Some(me) = me {
            // The room's list, which has the joiner unless the game service's word of its
            // join is late: then the joiner is added to its own copy.
            let everyone = if state.presence.contains_key(&me.key) {
                state.presence_payload()
            } else {
                let mut everyone: Vec<_> = state.presence.values().cloned().collect();
                everyone.push(me);
                presence_state(everyone)
            };
            if backlog.offer(self.hub.limits.member_backlog) {
                info.send(RoomInfo::Push(("presence_state", everyone)));
            }
        }
        state.members.insert(
            id,
            Subscriber {
                info: info.clone(),
                backlog: Arc::clone(&backlog),
            },
        );
        let joined = Joined {
            tally: state.tallies.back().cloned().unwrap_or_default(),
            recovery: since_version.and_then(|since| state.recovery(since)),
        };
        drop(state);
        Ok((Subscription { hold, id, backlog }, joined))
    }
}

/// A watch that ended as the error a join then gets.
fn ended_error(reason: &'static str) -> UpstreamError {
    match reason {
        "game_ended" => UpstreamError::GameNotFound,
        _ => UpstreamError::Unavailable(format!("the game's watch ended: {reason}")),
    }
}

/// Opens the room's watch, fills its state from the first messages and starts the task that
/// reads the rest. With `presence` (the game service keeps it), the room waits for the game service's first
/// list of who is in it, which follows the first tally.
async fn open(
    hub: &Arc<Hub>,
    trace: &TraceContext,
    room: &Arc<Room>,
    presence: bool,
) -> Result<(), UpstreamError> {
    let options = WatchOptions {
        presence: true,
        since_version: Some(0),
    };
    let (watched, watch) = hub
        .upstream
        .watch_game(trace, &room.game_id, options)
        .await?;
    let mut watch = Box::pin(watch);
    let mut first = None;
    if presence {
        let wait = hub.limits.presence_wait;
        if let Ok(Some(message)) = tokio::time::timeout(wait, watch.next()).await {
            first = Some(message);
        }
    }
    let mut state = room.state();
    state.start(watched);
    // Anything but the expected list is the reader's first message.
    if let Some(Ok(WatchEvent::PresenceState(members))) = first {
        state.presence = members.into_iter().map(|m| (m.key.clone(), m)).collect();
        first = None;
    }
    let watch = futures::stream::iter(first).chain(watch);
    // The joiner opening the room holds it, so the room cannot close before the reader's
    // handle is in place.
    let reader = tokio::spawn(read_watch(Arc::clone(hub), Arc::clone(room), watch));
    state.reader = Some(reader.abort_handle());
    Ok(())
}

/// Reads the room's watch until it ends, sending each batch of changes to the members.
async fn read_watch(
    hub: Arc<Hub>,
    room: Arc<Room>,
    watch: impl futures::Stream<Item = Result<WatchEvent, UpstreamError>> + Send + 'static,
) {
    let mut watch = std::pin::pin!(watch);
    let mut batch = Vec::new();
    let mut flush_at = None;
    loop {
        let next = match flush_at {
            None => watch.next().await,
            Some(at) => tokio::select! {
                next = watch.next() => next,
                () = tokio::time::sleep_until(at) => {
                    room.flush_presence();
                    flush_at = None;
                    continue;
                }
            },
        };
        let mut end = match next {
            None => Some("game_ended"),
            Some(Err(err)) => Some(err.reason()),
            Some(Ok(event)) => {
                batch.push(event);
                None
            }
        };
        // Whatever else has arrived already goes out with it: one diff for a burst of joins.
        while end.is_none() && batch.len() < MAX_BATCH {
            match watch.next().now_or_never() {
                None => break,
                Some(None) => end = Some("game_ended"),
                Some(Some(Err(err))) => end = Some(err.reason()),
                Some(Some(Ok(event))) => batch.push(event),
            }
        }
        if !batch.is_empty() {
            flush_at = room.apply(batch.drain(..)).or(flush_at);
        }
        if let Some(reason) = end {
            room.end(reason);
            hub.forget(&room);
            return;
        }
    }
}

impl Room {
    fn state(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits, at most `wait`, until the room lists the member `key` or its watch ended: the
    /// game service has added the member, and its word of that is on the way.
    async fn await_member(&self, key: &str, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let changed = self.presence_changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.state();
                if state.ended.is_some() || state.presence.contains_key(key) {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Applies a batch of watch messages and sends the members what changed, in order.
    fn apply(&self, events: impl Iterator<Item = WatchEvent>) -> Option<Instant> {
        let mut guard = self.state();
        let state = &mut *guard;
        let mut pushes = Vec::new();
        let mut presence_changed = false;
        for event in events {
            match event {
                WatchEvent::Tally(tally) => {
                    // The members hear who came and went before the move that follows.
                    pushes.extend(state.take_presence_diff());
                    let payload = state.add_tally(tally);
                    pushes.push(("tally", payload));
                }
                WatchEvent::PresenceDiff { joins, leaves } => {
                    presence_changed = true;
                    for member in leaves {
                        state.unsent.touch(&state.presence, &member.key);
                        state.presence.remove(&member.key);
                    }
                    for member in joins {
                        state.unsent.touch(&state.presence, &member.key);
                        state.presence.insert(member.key.clone(), member);
                    }
                }
                // Everyone, again (the watch fell behind in the game service): the members
                // get the difference from what they were sent.
                WatchEvent::PresenceState(members) => {
                    presence_changed = true;
                    let keys = state.presence.keys().chain(members.iter().map(|m| &m.key));
                    for key in keys {
                        state.unsent.touch(&state.presence, key);
                    }
                    state.presence = members.into_iter().map(|m| (m.key.clone(), m)).collect();
                }
            }
        }
        // A diff goes out at once unless one went out less than the batch interval ago: then
        // it waits for the end of the interval, gathering the joins and leaves meanwhile.
        let now = Instant::now();
        let due = state
            .last_diff_at
            .map_or(now, |last| last + self.limits.presence_batch);
        let flush_at = if state.unsent.is_empty() || due <= now {
            pushes.extend(state.take_presence_diff());
            None
        } else {
            Some(due)
        };
        state.send(&pushes, self.limits.member_backlog);
        if presence_changed {
            state.presence_payload = None;
        }
        drop(guard);
        if presence_changed {
            self.presence_changed.notify_waiters();
        }
        flush_at
    }

    /// Sends the joins and leaves gathered since the last diff.
    fn flush_presence(&self) {
        let mut state = self.state();
        let diff: Vec<_> = state.take_presence_diff().into_iter().collect();
        state.send(&diff, self.limits.member_backlog);
    }

    /// The watch ended: every member's channel ends with `reason`.
    fn end(&self, reason: &'static str) {
        let mut state = self.state();
        state.ended = Some(reason);
        for member in state.members.values() {
            member.info.send(RoomInfo::Closed(reason));
        }
        drop(state);
        self.presence_changed.notify_waiters();
    }
}

impl RoomState {
    /// The state of a room just opened: the tally now, the tallies before it the watch
    /// recovered, and nobody present yet (the watch's presence follows).
    fn start(&mut self, watched: Watched) {
        let now = watched.tally.version;
        self.complete_after = match watched.recovery {
            None => None,
            Some(Recovery::Gap) => Some(now),
            Some(Recovery::Recovered(missed)) => {
                self.tallies.extend(missed);
                Some(0)
            }
        };
        self.tallies.push_back(watched.tally);
        self.trim_history();
    }

    /// The `presence_diff` of the joins and leaves not sent yet, if there are any.
    fn take_presence_diff(&mut self) -> Option<Push> {
        let diff = self.unsent.take(&self.presence)?;
        self.last_diff_at = Some(Instant::now());
        Some(diff)
    }

    fn add_tally(&mut self, tally: Tally) -> Payload {
        if let Some(complete_after) = &mut self.complete_after {
            let last = self.tallies.back().map_or(0, |t| t.version);
            // A watch that fell behind in the game service skips tallies: the room knows
            // none before this one any more.
            if tally.version != last + 1 {
                self.tallies.clear();
                *complete_after = tally.version.saturating_sub(1).max(*complete_after);
            }
        }
        let payload = tally::encoded(&tally);
        self.tallies.push_back(tally);
        self.trim_history();
        payload
    }

    fn trim_history(&mut self) {
        while self.tallies.len() > MAX_HISTORY {
            if let Some(dropped) = self.tallies.pop_front()
                && let Some(complete_after) = &mut self.complete_after
            {
                *complete_after = dropped.version;
            }
        }
    }

    /// What a member that last saw `since` missed, as the game service answers it: nothing
    /// for the version now, a gap for a version the game never had or one older than the
    /// room knows.
    fn recovery(&self, since: u64) -> Option<Recovery> {
        let complete_after = self.complete_after?;
        let now = self.tallies.back().map_or(0, |t| t.version);
        Some(if since == now {
            Recovery::Recovered(Vec::new())
        } else if since > now || since < complete_after {
            Recovery::Gap
        } else {
            let missed = self
                .tallies
                .iter()
                .filter(|t| t.version > since && t.version < now)
                .cloned()
                .collect();
            Recovery::Recovered(missed)
        })
    }

    /// The room's state for a member that fell behind: the tally now and everyone present.
    fn resync(&mut self) -> Vec<Push> {
        let mut pushes: Vec<Push> = self
            .tallies
            .back()
            .map(|now| ("tally", tally::encoded(now)))
            .into_iter()
            .collect();
        pushes.push(("presence_state", self.presence_payload()));
        pushes
    }

    /// Everyone in the room as a `presence_state` payload, encoded once until it changes.
    fn presence_payload(&mut self) -> Payload {
        self.presence_payload
            .get_or_insert_with(|| presence_state(self.presence.values().cloned()))
            .clone()
    }

    /// Sends `pushes` to every member that is keeping up; one that is not is skipped from
    /// the first push it has no room for.
    fn send(&self, pushes: &[Push], member_backlog: usize) {
        if pushes.is_empty() {
            return;
        }
        for member in self.members.values() {
            for push in pushes {
                if !member.backlog.offer(member_backlog) {
                    break;
                }
                member.info.send(RoomInfo::Push(push.clone()));
            }
        }
    }
}

/// The presence joins and leaves of a batch: each member key touched, with what the room had
/// for it before the batch. The diff is then before against after, so a member that joined
/// and left within the batch is never sent.
#[derive(Default)]
struct PresenceChange {
    before: HashMap<String, Option<PresenceMember>>,
}

impl PresenceChange {
    fn is_empty(&self) -> bool {
        self.before.is_empty()
    }

    fn touch(&mut self, presence: &HashMap<String, PresenceMember>, key: &str) {
        if !self.before.contains_key(key) {
            self.before
                .insert(key.to_owned(), presence.get(key).cloned());
        }
    }

    /// The `presence_diff` push of the change so far, if anything changed; starts a new one.
    fn take(&mut self, presence: &HashMap<String, PresenceMember>) -> Option<Push> {
        let mut joins = Vec::new();
        let mut leaves = Vec::new();
        for (key, before) in self.before.drain() {
            let after = presence.get(&key);
            match (before, after) {
                (None, Some(after)) => joins.push(after.clone()),
                (Some(before), None) => leaves.push(before),
                (Some(before), Some(after)) if before.name != after.name => {
                    leaves.push(before);
                    joins.push(after.clone());
                }
                _ => {}
            }
        }
        if joins.is_empty() && leaves.is_empty() {
            return None;
        }
        let diff = presence::diff(
            joins.into_iter().map(presence_of),
            leaves.into_iter().map(presence_of),
        );
        Some(("presence_diff", Payload::encode(&diff)))
    }
}

/// A presence member as the npm client's `Presence` reads it: grouped by the player's name,
/// one meta per connection, `phx_ref` its member key.
fn presence_of(member: PresenceMember) -> Presence {
    Presence::new(member.name, member.key).with("online_at", member.online_at.to_string())
}

fn presence_state(members: impl IntoIterator<Item = PresenceMember>) -> Payload {
    Payload::encode(&presence::state(members.into_iter().map(presence_of)))
}

impl Hub {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room of `game_id`, held open until the hold (or the subscription it becomes) goes.
    fn hold(self: &Arc<Self>, game_id: &str) -> Hold {
        let mut rooms = self.rooms();
        let held = rooms.entry(game_id.to_owned()).or_insert_with(|| Held {
            room: Arc::new(Room {
                game_id: game_id.to_owned(),
                limits: self.limits,
                opened: OnceCell::new(),
                state: Mutex::default(),
                presence_changed: Notify::new(),
            }),
            holders: 0,
        });
        held.holders += 1;
        Hold {
            hub: Arc::clone(self),
            room: Arc::clone(&held.room),
        }
    }

    /// One holder of `room` fewer; the last one closes it (stops its watch).
    fn release(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms();
        let Some(held) = rooms.get_mut(&room.game_id) else {
            return;
        };
        if !Arc::ptr_eq(&held.room, room) {
            return; // a newer room of the same game; this one ended and was forgotten
        }
        held.holders -= 1;
        if held.holders == 0 {
            rooms.remove(&room.game_id);
            drop(rooms);
            if let Some(reader) = room.state().reader.take() {
                reader.abort();
            }
        }
    }

    /// Forgets `room` (its watch ended) so that the next join opens a new one; its holders
    /// then release nothing.
    fn forget(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms();
        if rooms
            .get(&room.game_id)
            .is_some_and(|held| Arc::ptr_eq(&held.room, room))
        {
            rooms.remove(&room.game_id);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.hub.release(&self.room);
    }
}

impl Subscription {
    /// Call after pushing each [`Push`] this member got: the pushes the member
    /// should send next to catch up, if it fell behind and was skipped.
    pub fn handled(&self) -> Vec<Push> {
        if !self.backlog.handled() {
            return Vec::new();
        }
        // Under the room's lock: what changed before is in the state sent now, what changes
        // after reaches the member again.
        let mut state = self.hold.room.state();
        self.backlog.reset();
        state.resync()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Then the hold, a field, releases the room.
        self.hold.room.state().members.remove(&self.id);
    }
}

/// How many room messages wait for one member, and whether it was skipped.
#[derive(Default)]
struct Backlog(AtomicUsize);

/// The backlog's flag: the member was skipped and gets the room's state once caught up.
const SKIPPED: usize = 1 << (usize::BITS - 1);

impl Backlog {
    /// Counts one more message for the member, unless it is skipped or has `limit` waiting
    /// (it is then skipped).
    fn offer(&self, limit: usize) -> bool {
        let mut counted = false;
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                counted = false;
                if waiting & SKIPPED != 0 {
                    None
                } else if waiting >= limit {
                    Some(waiting | SKIPPED)
                } else {
                    counted = true;
                    Some(waiting + 1)
                }
            });
        counted
    }

    /// One message handled; `true` when it was the last waiting of a skipped member.
    fn handled(&self) -> bool {
        let before = self.0.fetch_sub(1, Ordering::AcqRel);
        before == SKIPPED | 1
    }

    fn reset(&self) {
        self.0.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangman_proto::v1::GameState;

    fn tally(version: u64) -> Tally {
        Tally {
            version,
            game_state: GameState::GoodGuess as i32,
            ..Tally::default()
        }
    }

    fn member(key: &str, name: &str) -> PresenceMember {
        PresenceMember {
            key: key.into(),
            name: name.into(),
            online_at: 1,
        }
    }

    /// A room opened on a game at `now` whose watch recovered every tally since version 0.
    fn room_at(now: u64) -> RoomState {
        let mut state = RoomState::default();
        state.start(Watched {
            tally: tally(now),
            recovery: Some(Recovery::Recovered((1..now).map(tally).collect())),
        });
        state
    }

    fn versions(recovery: Option<Recovery>) -> Option<Vec<u64>> {
        match recovery? {
            Recovery::Recovered(missed) => Some(missed.iter().map(|t| t.version).collect()),
            Recovery::Gap => None,
        }
    }

    #[test]
    fn a_room_answers_a_rejoin_as_the_game_service_would() {
        let mut state = room_at(3);
        state.add_tally(tally(4));
        state.add_tally(tally(5));
        assert_eq!(versions(state.recovery(5)), Some(vec![]));
        assert_eq!(versions(state.recovery(2)), Some(vec![3, 4]));
        assert_eq!(versions(state.recovery(0)), Some(vec![1, 2, 3, 4]));
        assert_eq!(
            state.recovery(6),
            Some(Recovery::Gap),
            "a version the game never had"
        );
    }

    #[test]
    fn a_room_recovers_nothing_before_a_gap_nor_from_a_game_service_without_versions() {
        let mut gap = RoomState::default();
        gap.start(Watched {
            tally: tally(7),
            recovery: Some(Recovery::Gap),
        });
        assert_eq!(gap.recovery(6), Some(Recovery::Gap));
        assert_eq!(versions(gap.recovery(7)), Some(vec![]));
        gap.add_tally(tally(8));
        assert_eq!(versions(gap.recovery(7)), Some(vec![]));

        // The watch skipped tallies (it fell behind in the game service).
        let mut skipped = room_at(2);
        skipped.add_tally(tally(5));
        assert_eq!(skipped.recovery(1), Some(Recovery::Gap));
        assert_eq!(versions(skipped.recovery(4)), Some(vec![]));

        let mut unversioned = RoomState::default();
        unversioned.start(Watched {
            tally: tally(0),
            recovery: None,
        });
        assert_eq!(unversioned.recovery(0), None);
    }

    #[test]
    fn a_room_keeps_a_bounded_history() {
        let mut state = room_at(1);
        for version in 2..=200 {
            state.add_tally(tally(version));
        }
        assert_eq!(state.tallies.len(), MAX_HISTORY);
        assert_eq!(versions(state.recovery(198)), Some(vec![199]));
        assert_eq!(state.recovery(100), Some(Recovery::Gap));
    }

    fn diff_of(push: Option<Push>) -> Option<serde_json::Value> {
        let Some(("presence_diff", Payload::Encoded(raw))) = push else {
            return None;
        };
        Some(serde_json::from_str(raw.get()).unwrap())
    }

    #[test]
    fn a_batch_of_joins_and_leaves_is_one_diff_of_before_against_after() {
        let mut presence = HashMap::from([("k1".to_owned(), member("k1", "ann"))]);
        let mut change = PresenceChange::default();
        // k2 joins then leaves within the batch; k1 leaves; k3 joins.
        for (key, joined) in [("k2", true), ("k1", false), ("k3", true), ("k2", false)] {
            change.touch(&presence, key);
            if joined {
                presence.insert(key.to_owned(), member(key, "bob"));
            } else {
                presence.remove(key);
            }
        }
        let diff = diff_of(change.take(&presence)).expect("a diff");
        assert_eq!(diff["joins"]["bob"]["metas"][0]["phx_ref"], "k3");
        assert_eq!(diff["joins"]["bob"]["metas"].as_array().unwrap().len(), 1);
        assert_eq!(diff["leaves"]["ann"]["metas"][0]["phx_ref"], "k1");
        assert!(change.is_empty());
        // A member that came and went within a batch is no change at all.
        change.touch(&presence, "k4");
        assert!(diff_of(change.take(&presence)).is_none());
    }

    #[test]
    fn a_member_that_falls_behind_is_skipped_then_caught_up_once() {
        let backlog = Backlog::default();
        assert!(backlog.offer(2));
        assert!(backlog.offer(2));
        assert!(!backlog.offer(2), "a third message waiting is one too many");
        assert!(!backlog.offer(2), "skipped until caught up");
        assert!(!backlog.handled(), "one still waits");
        assert!(
            backlog.handled(),
            "the last waiting: send the room's state now"
        );
        backlog.reset();
        assert!(backlog.offer(2), "counted again after the catch-up");
        assert!(
            !backlog.handled(),
            "a member that kept up needs no catch-up"
        );
    }
}
