//! A room's members on one gateway share one watch of the game: the game service serves a
//! gateway, not each member, so a room holds more members than the game service lets watch
//! one game, and a room of 5 000 members on one gateway gets every tally to every member. The
//! watch ends with the room's last member here, and a member that falls behind is caught up.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Client, GatewayProcess, PATIENCE, names, raise_open_files_limit, system, until};
use serde_json::{Value, json};
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;

const GAME: &str = "hangman:game";

/// Letters of the test word ("hello") in an order where each changes the tally.
const MOVES: [&str; 3] = ["h", "e", "l"];

/// A room member's view of who is in the room: the `phx_ref`s of every meta, kept from its
/// `presence_state` and `presence_diff` pushes as the npm client's `Presence` keeps them.
#[derive(Default)]
struct PresenceView(HashSet<String>);

impl PresenceView {
    fn refs(presences: &Value) -> impl Iterator<Item = String> + '_ {
        presences
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
            .flat_map(|presence| presence["metas"].as_array().into_iter().flatten())
            .map(|meta| meta["phx_ref"].as_str().expect("a phx_ref").to_owned())
    }

    /// Takes in a frame; any other than a presence push changes nothing.
    fn apply(&mut self, frame: &Value) {
        match frame[3].as_str() {
            Some("presence_state") => self.0 = Self::refs(&frame[4]).collect(),
            Some("presence_diff") => {
                self.0.extend(Self::refs(&frame[4]["joins"]));
                for gone in Self::refs(&frame[4]["leaves"]) {
                    self.0.remove(&gone);
                }
            }
            _ => {}
        }
    }
}

/// The owner of a new game: its private channel, and the game's room topic.
async fn new_game(owner: &mut Client) -> (String, String) {
    let (join_ref, joined) = owner.join_ok(GAME, json!({})).await;
    let game_id = joined["game_id"].as_str().expect("a game id");
    (join_ref, format!("game:{game_id}"))
}

/// Plays every move of [`MOVES`] on the owner's private channel; checks their versions.
async fn play_all_moves(owner: &mut Client, join_ref: &str) {
    for (version, guess) in (1..).zip(MOVES) {
        let (reply, _) = owner.call(join_ref, GAME, "make_move", json!(guess)).await;
        assert_eq!(reply["status"], "ok", "{reply}");
        assert_eq!(reply["response"]["version"], version, "{reply}");
    }
}

/// Reads `member`'s pushes until the tally of the last move; returns the versions of the
/// tallies it was pushed, in order. Only tallies are decoded: in a room of thousands the
/// presence pushes are most of the bytes.
async fn tallies_until_the_last_move(member: &mut Client) -> Vec<u64> {
    let mut versions = Vec::new();
    while versions.last() != Some(&(MOVES.len() as u64)) {
        let text = next_text(member).await;
        if text.contains(r#","tally","#) {
            let tally: Value = serde_json::from_str(&text).expect("a JSON frame");
            versions.push(tally[4]["version"].as_u64().expect("a version"));
        }
    }
    versions
}

async fn next_text(member: &mut Client) -> String {
    match member.next_frame().await {
        Ok(Message::Text(text)) => text.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_room_holds_more_members_than_the_game_service_lets_watch_one_game() {
    let games = common::game_service_with(&["--max-watchers-per-game", "2"]).await;
    let gateway = common::gateway(&games.url(), &[]).await;
    let url = format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url());
    let mut owner = Client::connect(&url).await;
    let (owner_ref, room) = new_game(&mut owner).await;

    let mut members = Vec::new();
    for n in 0..10 {
        let mut member = Client::connect(&format!("{url}&player=m{n}")).await;
        let (_, joined) = member.join_ok(&room, json!({})).await;
        assert_eq!(joined["tally"]["version"], 0, "{joined}");
        members.push(member);
    }
    play_all_moves(&mut owner, &owner_ref).await;
    for member in &mut members {
        assert_eq!(tallies_until_the_last_move(member).await, [1, 2, 3]);
    }
}

/// The watch is the room's, not a member's: the game service lets one watcher at a time watch
/// the game, so a second gateway's room can open only once the first gateway's closed.
#[tokio::test]
async fn a_room_closes_its_watch_with_its_last_member() {
    let games = common::game_service_with(&["--max-watchers-per-game", "1"]).await;
    let (one, two) = (
        common::gateway(&games.url(), &[]).await,
        common::gateway(&games.url(), &[]).await,
    );
    let url =
        |gateway: &ws_gateway::Server| format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url());
    let mut owner = Client::connect(&url(&one)).await;
    let (_, room) = new_game(&mut owner).await;
    let mut alice = Client::connect(&url(&one)).await;
    let (alice_ref, _) = alice.join_ok(&room, json!({})).await;
    let mut bob = Client::connect(&url(&two)).await;
    let (_, refused) = bob.join(&room, json!({})).await;
    assert_eq!(
        refused[4]["status"], "error",
        "the game's one watcher is gateway one's: {refused}"
    );

    alice.call(&alice_ref, &room, "phx_leave", json!({})).await;
    // The watch ends as the room closes; the game service frees its watcher soon after.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, reply) = bob.join(&room, json!({})).await;
        if reply[4]["status"] == "ok" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused: {reply}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Past `--room-member-backlog` messages waiting for a member, the room skips it, and sends it
/// the tally and everyone present once it has caught up: it misses no state.
#[tokio::test]
async fn a_member_past_its_backlog_is_skipped_then_sent_the_room_state() {
    // One message may wait; joins after the first diff are held for the next move.
    let sys = system(&[
        "--room-member-backlog",
        "1",
        "--presence-batch-interval",
        "1m",
    ])
    .await;
    let mut owner = sys.client().await;
    let (owner_ref, room) = new_game(&mut owner).await;
    let mut members = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut member =
            Client::connect(&sys.socket_url(&format!("vsn=2.0.0&player={name}"))).await;
        member.join_ok(&room, json!({})).await;
        members.push(member);
    }
    // The move's tally follows the held diff of carol's join, one message more than alice
    // may have waiting: she gets the diff, then the tally and everyone, as the room is now.
    let (reply, _) = owner.call(&owner_ref, GAME, "make_move", json!("h")).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let alice = &mut members[0];
    let (tally, _) = until(alice, |f| f[3] == "tally").await;
    assert_eq!(tally[4]["version"], 1, "{tally}");
    let state = alice.recv().await;
    assert_eq!(state[3], "presence_state", "{state}");
    assert_eq!(names(&state[4]), ["alice", "bob", "carol"]);
}

const ROOM_OF: usize = 5_000;

/// Members joining at once.
const JOINS_AT_ONCE: usize = 100;

/// Open files besides the members' connections, in this process or the gateway.
const OTHER_FILES: u64 = 1_024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_of_5000_members_on_one_gateway_gets_every_tally_and_lists_everyone() {
    raise_open_files_limit(ROOM_OF as u64 + OTHER_FILES);
    let games = common::game_service().await;
    // The members send no heartbeats: the idle timeout must outlast the joins.
    let gateway = GatewayProcess::spawn(&games.url(), &["--idle-timeout", "10m"]).await;
    let url = gateway.socket_url();
    let mut owner = Client::connect(&url).await;
    let (owner_ref, room) = new_game(&mut owner).await;

    // Every member reads its socket from its join on (presence diffs keep coming while the
    // others join), waits for everyone to be in, then collects the tallies of the moves.
    let all_joined = Arc::new(Barrier::new(ROOM_OF + 1));
    let joining = Arc::new(Semaphore::new(JOINS_AT_ONCE));
    let members: Vec<_> = (0..ROOM_OF)
        .map(|n| {
            let (url, room) = (url.clone(), room.clone());
            let (all_joined, joining) = (all_joined.clone(), joining.clone());
            tokio::spawn(async move {
                let joining = joining.acquire().await.expect("the semaphore stays open");
                let mut member = Client::connect(&format!("{url}&player=m{n}")).await;
                let (_, joined) = member.join_ok(&room, json!({})).await;
                assert_eq!(joined["tally"]["version"], 0, "{joined}");
                drop(joining);
                // Drains the presence pushes of the others' joins meanwhile.
                let drained = async {
                    loop {
                        let text = next_text(&mut member).await;
                        assert!(
                            text.contains(r#","presence_"#),
                            "only presence before the moves: {text}"
                        );
                    }
                };
                tokio::select! {
                    // Done draining once everyone is in, before the moves' tallies.
                    biased;
                    _ = all_joined.wait() => {}
                    _ = drained => unreachable!(),
                }
                (tallies_until_the_last_move(&mut member).await, member)
            })
        })
        .collect();
    all_joined.wait().await;
    play_all_moves(&mut owner, &owner_ref).await;

    let mut late = Client::connect(&format!("{url}&player=late")).await;
    late.join_ok(&room, json!({})).await;
    for member in members {
        let (versions, _member) = member.await.expect("a member's reader");
        assert_eq!(
            versions,
            [1, 2, 3],
            "every member gets every tally, in order"
        );
    }
    // A member joining now is told of everyone: the 5 000, and itself.
    let mut presence = PresenceView::default();
    while presence.0.len() < ROOM_OF + 1 {
        let frame = late.recv().await;
        presence.apply(&frame);
    }
    assert_eq!(presence.0.len(), ROOM_OF + 1);
}
