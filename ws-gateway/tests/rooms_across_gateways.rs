//! One `game:<id>` room across gateway replicas (issue 13): presence is kept by the game
//! service, as leases each gateway renews for its members, so players on different gateways
//! see each other come and go, and see each other's moves. Real gateways (in this process, and
//! the binary in its own), real game services (one in memory; two replicas over a Redis of the
//! test's own), real sockets.

mod common;
mod replicas;

use std::time::{Duration, Instant};

use common::{Client, GatewayProcess, diff_of, meta, names, until};
use replicas::{Redis, two_replicas};
use serde_json::{Value, json};

/// A player in a game's room.
struct Member {
    client: Client,
    join_ref: String,
    room: String,
}

impl Member {
    /// `name` joins the room of `game_id` through the gateway at `ws_url`; returns the member
    /// and the room's `presence_state` it was sent.
    async fn join(ws_url: &str, name: &str, game_id: &str) -> (Member, Value) {
        let mut client = common::player(ws_url, name).await;
        let room = format!("game:{game_id}");
        let (join_ref, _) = client.join_ok(&room, json!({})).await;
        let (state, _) = until(&mut client, |f| f[3] == "presence_state").await;
        let member = Member {
            client,
            join_ref,
            room,
        };
        (member, state[4].clone())
    }

    /// Plays `guess`; returns the tally of the reply.
    async fn play(&mut self, guess: &str) -> Value {
        self.play_seeing(guess).await.0
    }

    /// Plays `guess`; returns the tally of the reply and the frames received before it.
    async fn play_seeing(&mut self, guess: &str) -> (Value, Vec<Value>) {
        let (reply, before) = self
            .client
            .call(&self.join_ref, &self.room, "make_move", json!(guess))
            .await;
        assert_eq!(reply["status"], "ok", "{reply}");
        (reply["response"].clone(), before)
    }

    /// Waits for the `tally` push of `tally`'s version, and checks it is that tally; returns
    /// the frames received before it.
    async fn assert_pushed(&mut self, tally: &Value) -> Vec<Value> {
        let version = &tally["version"];
        let (pushed, before) = until(&mut self.client, |f| {
            f[3] == "tally" && f[4]["version"] == *version
        })
        .await;
        assert_eq!(pushed[4], *tally);
        before
    }
}

/// The presence lease of [`game_service_with_a_short_lease`].
const LEASE: Duration = Duration::from_secs(1);

/// A game service whose members leave [`LEASE`] after their last renewal (it looks for them
/// every 100 ms).
async fn game_service_with_a_short_lease() -> game_service::testing::TestGameService {
    common::game_service_with(&[
        "--listen",
        "127.0.0.1:0",
        "--presence-lease",
        "1s",
        "--presence-sweep-interval",
        "100ms",
    ])
    .await
}

/// A new game, made through the gateway at `ws_url`.
async fn new_game(ws_url: &str) -> String {
    let mut owner = common::player(ws_url, "owner").await;
    let (_, joined) = owner.join_ok("hangman:game", json!({})).await;
    joined["game_id"].as_str().expect("a game id").to_owned()
}

/// Alice on the gateway at `one`, Bob on the one at `two`, in one room: both are in the
/// `presence_state` each is sent, Alice sees Bob join, each gets the other's moves (with their
/// versions), and Alice sees Bob leave.
async fn players_on_two_gateways_share_a_room(one: &str, two: &str) {
    let game_id = new_game(one).await;
    let (mut alice, state) = Member::join(one, "alice", &game_id).await;
    assert_eq!(names(&state), ["alice"]);
    let alice_meta = meta(&state, "alice");

    let (mut bob, state) = Member::join(two, "bob", &game_id).await;
    assert_eq!(names(&state), ["alice", "bob"], "Bob's gateway lists Alice");
    assert_eq!(meta(&state, "alice"), alice_meta);
    let bob_meta = meta(&state, "bob");
    assert_eq!(diff_of(&mut alice.client, "bob", true).await, bob_meta);

    let moved = alice.play("h").await;
    assert_eq!(moved["version"], 1);
    bob.assert_pushed(&moved).await;
    let moved = bob.play("z").await;
    assert_eq!(moved["version"], 2);
    alice.assert_pushed(&moved).await;

    bob.client
        .push(Some(&bob.join_ref), &bob.room, "phx_leave", json!({}))
        .await;
    assert_eq!(diff_of(&mut alice.client, "bob", false).await, bob_meta);
}

#[tokio::test]
async fn players_on_two_gateways_of_one_game_service_see_each_other() {
    let games = common::game_service().await;
    let one = common::gateway(&games.url(), &[]).await;
    let two = common::gateway(&games.url(), &[]).await;
    players_on_two_gateways_share_a_room(&one.ws_url(), &two.ws_url()).await;
}

#[tokio::test]
async fn players_on_two_gateways_of_two_game_service_replicas_over_redis_see_each_other() {
    let redis = Redis::start();
    let (a, b) = two_replicas(&redis, &common::dictionary()).await;
    let one = common::gateway(&a.url(), &[]).await;
    let two = common::gateway(&b.url(), &[]).await;
    players_on_two_gateways_share_a_room(&one.ws_url(), &two.ws_url()).await;
}

/// A gateway killed with `kill -9` says goodbye to nobody: its members leave everyone else's
/// list when their lease runs out, which its renewals no longer extend.
#[tokio::test]
async fn the_players_of_a_gateway_killed_with_kill_9_leave_within_the_lease() {
    let games = game_service_with_a_short_lease().await;
    let gateway = common::gateway(&games.url(), &[]).await;
    let mut doomed = GatewayProcess::spawn(&games.url(), &[]).await;
    let game_id = new_game(&gateway.ws_url()).await;
    let (mut alice, _) = Member::join(&gateway.ws_url(), "alice", &game_id).await;
    let (_bob, _) = Member::join(&doomed.ws_url(), "bob", &game_id).await;
    let bob_meta = diff_of(&mut alice.client, "bob", true).await;
    // Several leases pass: the gateways renew Alice and Bob, so they stay.
    tokio::time::sleep(3 * LEASE).await;
    let (moved, mut seen) = alice.play_seeing("h").await;
    seen.extend(alice.assert_pushed(&moved).await);
    assert!(
        seen.iter().all(|f| f[3] != "presence_diff"),
        "nobody left while renewed: {seen:?}"
    );

    doomed.kill_9().await;
    let killed = Instant::now();
    assert_eq!(diff_of(&mut alice.client, "bob", false).await, bob_meta);
    let after = killed.elapsed();
    eprintln!("Bob left {after:?} after his gateway was killed (lease {LEASE:?})");
    assert!(
        after < 3 * LEASE,
        "Bob left {after:?} after the kill; the lease is {LEASE:?}"
    );
}

/// A gateway stopped gracefully (SIGTERM) sends its members' leaves as their sockets close:
/// the others see them leave at once, not a lease later (the default lease, 15 s, is longer
/// than the test waits).
#[tokio::test]
async fn the_players_of_a_gateway_shut_down_gracefully_leave_at_once() {
    let games = common::game_service().await;
    let one = common::gateway(&games.url(), &[]).await;
    let two = common::gateway(&games.url(), &[]).await;
    let game_id = new_game(&one.ws_url()).await;
    let (mut alice, _) = Member::join(&one.ws_url(), "alice", &game_id).await;
    let (_bob, _) = Member::join(&two.ws_url(), "bob", &game_id).await;
    let bob_meta = diff_of(&mut alice.client, "bob", true).await;
    two.stop().await;
    assert_eq!(diff_of(&mut alice.client, "bob", false).await, bob_meta);
}

/// More members of one room on one gateway than one `UpdatePresence` call lists: the gateway's
/// renewals are split over several calls, and every member stays over several leases.
#[tokio::test]
async fn a_room_with_more_members_on_a_gateway_than_one_call_lists_keeps_them_all() {
    let games = game_service_with_a_short_lease().await;
    let gateway = common::gateway(&games.url(), &[]).await;
    let ws_url = gateway.ws_url();
    let game_id = new_game(&ws_url).await;
    let many = ws_gateway::hangman::members::MAX_MEMBERS_PER_CALL + 8;
    let mut members = Vec::new();
    for i in 0..many {
        members.push(Member::join(&ws_url, &format!("p{i}"), &game_id).await.0);
    }
    tokio::time::sleep(3 * LEASE).await;
    let (_, state) = Member::join(&ws_url, "newcomer", &game_id).await;
    assert_eq!(names(&state).len(), many + 1, "{state}");
}
