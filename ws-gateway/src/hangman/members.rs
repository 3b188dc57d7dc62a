//! The `game:<id>` room members this gateway process carries, kept in the game service's
//! presence as leases.
//!
//! Presence lives in the game service (`UpdatePresence`, `WatchGame{presence}`), so a room
//! lists its members whatever gateway replica they are on. This registry knows which members
//! are this process's (game id → member key → name); one task renews them all before their
//! lease runs out, in one `UpdatePresence` call per game (more when a game has more than
//! [`MAX_MEMBERS_PER_CALL`] here), and sends the leaves of the channels that ended. If this
//! process dies, nobody renews its members and the game service lets them go within a lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use hangman_proto::v1::PresenceMember;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::upstream::{TraceContext, Upstream, UpstreamError};

/// The most members (renewed and leaving) one `UpdatePresence` call lists. A member is at most
/// about 300 bytes (a 32-byte key, a name of 64 characters of up to 4 bytes), so a call stays
/// well under the game service's default 16 KiB message limit.
pub const MAX_MEMBERS_PER_CALL: usize = 32;

/// The most `UpdatePresence` calls one renewal (or flush of leaves) has in flight at once.
pub const MAX_CONCURRENT_CALLS: usize = 8;

/// The shortest time between two renewals, whatever lease the game service gives: a tiny
/// lease must not make the task spin.
pub const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(100);

/// The registry of this process's room members; cloning it shares it.
#[derive(Clone)]
pub struct Members {
    inner: Arc<Inner>,
}

struct Inner {
    upstream: Upstream,
    rooms: Mutex<Rooms>,
    /// The lease the game service last answered, in milliseconds; 0 until its first answer.
    lease_ms: AtomicU64,
    /// The longest time between two renewals (`--presence-renew-interval`).
    max_renew_interval: Duration,
    /// Leaves are waiting to be sent, or the lease changed.
    wake: Notify,
}

#[derive(Default)]
struct Rooms {
    /// Game id → member key → the member's name.
    members: HashMap<String, HashMap<String, String>>,
    /// Game id → keys of members whose channel ended, not yet told to the game service.
    leaving: HashMap<String, Vec<String>>,
}

/// One member of a room, from its join until its channel ends: dropping it (the channel's
/// end, however it ends) takes the member out of the registry and queues its leave.
pub struct Membership {
    inner: Arc<Inner>,
    game_id: String,
    key: String,
    /// Whether the game service may hold the member (a leave is then owed).
    announced: bool,
}

impl Membership {
    /// The member's key in the game service's presence (the `phx_ref` clients see).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the game service keeps the member (it keeps presence).
    pub fn announced(&self) -> bool {
        self.announced
    }
}

/// A new member key: 128 random bits, as 32 hex digits (the contract allows 1 to 64 characters).
fn new_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Members {
    /// A registry renewing at most every `max_renew_interval` (sooner when a third of the lease
    /// the game service gives is shorter). Its task runs from [`Members::run`].
    pub fn new(upstream: Upstream, max_renew_interval: Duration) -> Self {
        Members {
            inner: Arc::new(Inner {
                upstream,
                rooms: Mutex::default(),
                lease_ms: AtomicU64::new(0),
                max_renew_interval,
                wake: Notify::new(),
            }),
        }
    }

    /// Puts a new member named `name` in the room of `game_id`: registers it, then has the game
    /// service add it (so that the watch opened next lists it). On an error the member is
    /// taken out again.
    pub async fn join(
        &self,
        trace: &TraceContext,
        game_id: &str,
        name: &str,
    ) -> Result<Membership, UpstreamError> {
        let key = new_key();
        self.inner
            .rooms()
            .members
            .entry(game_id.to_owned())
            .or_default()
            .insert(key.clone(), name.to_owned());
        let mut membership = Membership {
            inner: Arc::clone(&self.inner),
            game_id: game_id.to_owned(),
            key,
            announced: true,
        };
        let member = PresenceMember {
            key: membership.key.clone(),
            name: name.to_owned(),
            online_at: 0,
        };
        match self
            .inner
            .upstream
            .update_presence(trace, game_id, vec![member], Vec::new())
            .await
        {
            Ok(lease) => {
                self.inner.note_lease(lease);
                Ok(membership)
            }
            // A game service older than presence: the room plays without it (its lists stay
            // empty) rather than not at all, whatever order a rollout updates the services in.
            Err(UpstreamError::Unsupported(message)) => {
                tracing::warn!(%game_id, %message, "the game service keeps no presence; the room lists nobody");
                membership.announced = false;
                self.inner.rooms().forget(game_id, &membership.key);
                Ok(membership)
            }
            Err(err) => {
                // No such game: nothing to leave. Any other failure may have reached it.
                membership.announced = err != UpstreamError::GameNotFound;
                Err(err)
            }
        }
    }

    /// Starts the task that renews the members and sends their leaves, until `stop`; it sends
    /// the leaves queued by then before it ends.
    pub fn run(&self, stop: CancellationToken) -> JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                // Again each time round: a lease answered since may have brought it closer.
                let next_renewal = renewed + inner.renew_interval();
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    () = inner.wake.notified() => inner.update(false).await,
                    () = tokio::time::sleep_until(next_renewal) => {
                        renewed = Instant::now();
                        inner.update(true).await;
                    }
                }
            }
            inner.update(false).await;
        })
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.inner.rooms();
        // Not registered: the game was found gone, nothing to leave.
        if rooms.forget(&self.game_id, &self.key) && self.announced {
            let key = std::mem::take(&mut self.key);
            rooms
                .leaving
                .entry(std::mem::take(&mut self.game_id))
                .or_default()
                .push(key);
            drop(rooms);
            self.inner.wake.notify_one();
        }
    }
}

impl Rooms {
    /// Takes a member out of the registry; returns whether it was in.
    fn forget(&mut self, game_id: &str, key: &str) -> bool {
        let Some(room) = self.members.get_mut(game_id) else {
            return false;
        };
        let registered = room.remove(key).is_some();
        if room.is_empty() {
            self.members.remove(game_id);
        }
        registered
    }
}

impl Inner {
    fn rooms(&self) -> MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the lease the game service answered; a new one wakes the task, whose next
    /// renewal may be due sooner (the first lease, a game service restarted with another).
    fn note_lease(&self, lease: Duration) {
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        if self.lease_ms.swap(ms, Ordering::Relaxed) != ms {
            self.wake.notify_one();
        }
    }

    /// A third of the last lease answered (two renewals may fail before a member lapses), at
    /// most the configured interval, at least [`MIN_RENEW_INTERVAL`].
    fn renew_interval(&self) -> Duration {
        let lease = Duration::from_millis(self.lease_ms.load(Ordering::Relaxed));
        let interval = if lease.is_zero() {
            self.max_renew_interval
        } else {
            self.max_renew_interval.min(lease / 3)
        };
        interval.max(MIN_RENEW_INTERVAL)
    }

    /// Sends the queued leaves and, when `renew`, renews every member: one call per game (or
    /// per [`MAX_MEMBERS_PER_CALL`] of it), [`MAX_CONCURRENT_CALLS`] at once. The leaves and
    /// the members renewed are taken under one lock, so no call renews a member that left.
    async fn update(&self, renew: bool) {
        let calls = {
            let mut rooms = self.rooms();
            let leaving = std::mem::take(&mut rooms.leaving);
            let mut calls = Vec::new();
            if renew {
                for (game_id, members) in &rooms.members {
                    let members = members.iter().map(|(key, name)| PresenceMember {
                        key: key.clone(),
                        name: name.clone(),
                        online_at: 0,
                    });
                    let members: Vec<_> = members.collect();
                    for chunk in members.chunks(MAX_MEMBERS_PER_CALL) {
                        calls.push((game_id.clone(), chunk.to_vec(), Vec::new()));
                    }
                }
            }
            for (game_id, keys) in leaving {
                for chunk in keys.chunks(MAX_MEMBERS_PER_CALL) {
                    calls.push((game_id.clone(), Vec::new(), chunk.to_vec()));
                }
            }
            calls
        };
        if calls.is_empty() {
            return;
        }
        let trace = TraceContext::new();
        let results = futures::stream::iter(calls)
            .map(|(game_id, renew, leave)| {
                let trace = &trace;
                async move {
                    let result = self
                        .upstream
                        .update_presence(trace, &game_id, renew, leave)
                        .await;
                    (game_id, result)
                }
            })
            .buffer_unordered(MAX_CONCURRENT_CALLS);
        let mut results = std::pin::pin!(results);
        while let Some((game_id, result)) = results.next().await {
            match result {
                Ok(lease) => self.note_lease(lease),
                // The game is gone: so is its room, and its members' channels end with it.
                Err(UpstreamError::GameNotFound) => {
                    self.rooms().members.remove(&game_id);
                }
                // Kept: the next renewal tries again, before the lease runs out.
                Err(err) => tracing::warn!(%game_id, %err, "presence update failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamConfig;
    use game_service::testing::TestGameService;
    use hangman_proto::v1::EndGameRequest;

    /// A registry whose game service is at `url`.
    fn members(url: &str, max_renew_interval: Duration) -> Members {
        let upstream = Upstream::new(&UpstreamConfig {
            url: url.into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            keep_alive: Duration::from_secs(30),
            connections: 1,
            resolve_interval: Duration::from_secs(30),
        })
        .unwrap();
        Members::new(upstream, max_renew_interval)
    }

    #[test]
    fn renewals_come_every_third_of_the_lease_within_the_configured_bounds() {
        // Never called: a client connects at its first call.
        let members = members("http://game-service.invalid:50051", Duration::from_secs(5));
        let interval = || members.inner.renew_interval();
        assert_eq!(interval(), Duration::from_secs(5), "no lease answered yet");
        members.inner.note_lease(Duration::from_secs(3));
        assert_eq!(interval(), Duration::from_secs(1));
        members.inner.note_lease(Duration::from_secs(60));
        assert_eq!(interval(), Duration::from_secs(5), "the flag bounds it");
        members.inner.note_lease(Duration::from_millis(1));
        assert_eq!(interval(), MIN_RENEW_INTERVAL);
    }

    #[test]
    fn member_keys_are_random_and_fit_the_contract() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[tokio::test]
    async fn a_join_that_may_have_reached_the_game_service_owes_its_leave() {
        // A game service that takes the connection and never answers: the call times out,
        // and for all the gateway knows it added the member.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let members = members(&url, Duration::from_secs(5));
        let trace = TraceContext::new();
        let err = members.join(&trace, "g", "alice").await.err().unwrap();
        assert_eq!(err.reason(), "unavailable");
        let rooms = members.inner.rooms();
        assert!(rooms.members.is_empty());
        assert_eq!(rooms.leaving["g"].len(), 1);
    }

    #[tokio::test]
    async fn a_game_service_without_presence_lets_the_room_play_without_it() {
        // A gRPC server with no HangmanService answers UNIMPLEMENTED, as one older than
        // UpdatePresence does.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (_, health) = tonic_health::server::health_reporter();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(incoming),
        );
        let members = members(&url, Duration::from_secs(5));
        let alice = members.join(&TraceContext::new(), "g", "alice").await;
        assert!(alice.is_ok(), "the join goes on: {:?}", alice.err());
        assert!(members.inner.rooms().members.is_empty(), "nothing to renew");
        drop(alice);
        assert!(members.inner.rooms().leaving.is_empty(), "nothing to leave");
    }

    #[tokio::test]
    async fn a_renewal_that_finds_the_game_gone_drops_its_members_who_owe_no_leave() {
        let games = TestGameService::builder()
            .flags(&["--presence-lease", "300ms"])
            .spawn()
            .await;
        let members = members(&games.url(), Duration::from_secs(5));
        let stop = CancellationToken::new();
        let task = members.run(stop.clone());
        let trace = TraceContext::new();
        let (game_id, _) = members.inner.upstream.create_game(&trace).await.unwrap();
        let alice = members.join(&trace, &game_id, "alice").await.unwrap();
        let request = EndGameRequest { game_id };
        games.client().await.end_game(request).await.unwrap();
        // The next renewal (a third of the lease later) finds the game gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !members.inner.rooms().members.is_empty() {
            assert!(Instant::now() < deadline, "the game's members are dropped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(alice);
        assert!(members.inner.rooms().leaving.is_empty());
        stop.cancel();
        task.await.unwrap();
    }
}
