//! Who is in a game's room, as a client sees it over gRPC: `UpdatePresence` keeps members as
//! leases, and a `WatchGame` that asks for presence streams the room, then its joins and
//! leaves in order between the tallies. A watch that does not ask sees tallies only. The suite
//! runs once with games in memory and once in a Redis of its own.

use std::time::Duration;

use game_service::testing::Client;
use hangman_proto::v1::{
    PresenceMember, UpdatePresenceRequest, UpdatePresenceResponse, WatchGameRequest,
    WatchGameResponse, watch_game_response::Presence,
};
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;

use crate::support::{Store, assert_refused, guess, new_game, next_message, server, store_suite};

fn member(key: &str, name: &str) -> PresenceMember {
    PresenceMember {
        key: key.into(),
        name: name.into(),
        online_at: 0,
    }
}

async fn update(
    client: &mut Client,
    game_id: &str,
    renew: &[PresenceMember],
    leave: &[&str],
) -> Result<UpdatePresenceResponse, Status> {
    let request = UpdatePresenceRequest {
        game_id: game_id.into(),
        renew: renew.to_vec(),
        leave: leave.iter().map(|key| key.to_string()).collect(),
    };
    Ok(client.update_presence(request).await?.into_inner())
}

/// A watch of the game that asks for presence (or not).
async fn watch(client: &mut Client, game_id: &str, presence: bool) -> Streaming<WatchGameResponse> {
    let request = WatchGameRequest {
        game_id: game_id.into(),
        presence,
        since_version: None,
    };
    client.watch_game(request).await.unwrap().into_inner()
}

/// The keys and names of the room in the next message, which must be a presence state.
async fn next_state(stream: &mut Streaming<WatchGameResponse>) -> Vec<(String, String)> {
    let message = next_message(stream).await;
    assert_eq!(message.tally, None, "a presence message carries no tally");
    match message.presence {
        Some(Presence::PresenceState(state)) => pairs(&state.members),
        other => panic!("expected presence_state, got {other:?}"),
    }
}

/// The joins and leaves (key, name) of the next message, which must be a presence diff.
async fn next_diff(
    stream: &mut Streaming<WatchGameResponse>,
) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let message = next_message(stream).await;
    assert_eq!(message.tally, None, "a presence message carries no tally");
    match message.presence {
        Some(Presence::PresenceDiff(diff)) => (pairs(&diff.joins), pairs(&diff.leaves)),
        other => panic!("expected presence_diff, got {other:?}"),
    }
}

fn pairs(members: &[PresenceMember]) -> Vec<(String, String)> {
    members
        .iter()
        .map(|member| (member.key.clone(), member.name.clone()))
        .collect()
}

fn pair(key: &str, name: &str) -> (String, String) {
    (key.into(), name.into())
}

async fn a_presence_watcher_sees_the_room_then_joins_and_leaves_between_tallies(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    let lease = update(&mut client, &id, &[member("k1", "ann")], &[])
        .await
        .unwrap();
    assert_eq!(lease.lease_ms, 15_000, "the default lease");

    let mut stream = watch(&mut client, &id, true).await;
    let first = next_message(&mut stream).await;
    assert_eq!(first.tally.unwrap().version, 0);
    assert_eq!(first.presence, None);
    let message = next_message(&mut stream).await;
    let Some(Presence::PresenceState(state)) = message.presence else {
        panic!("expected presence_state, got {message:?}");
    };
    assert_eq!(pairs(&state.members), [pair("k1", "ann")]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        state.members[0].online_at.abs_diff(now) < 60,
        "online_at is the join's time in Unix seconds: {}",
        state.members[0].online_at
    );

    // k1 again is a renewal, not a join.
    update(
        &mut client,
        &id,
        &[member("k1", "ann"), member("k2", "bob")],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        next_diff(&mut stream).await,
        (vec![pair("k2", "bob")], vec![])
    );
    let tally = guess(&mut client, &id, "t").await;
    assert_eq!(next_message(&mut stream).await.tally, Some(tally));
    update(
        &mut client,
        &id,
        &[member("k3", "cy")],
        &["k1", "never-joined"],
    )
    .await
    .unwrap();
    assert_eq!(
        next_diff(&mut stream).await,
        (vec![pair("k3", "cy")], vec![pair("k1", "ann")])
    );

    // A later presence watcher gets the room as it is now.
    let mut later = watch(&mut client, &id, true).await;
    next_message(&mut later).await;
    assert_eq!(
        next_state(&mut later).await,
        [pair("k2", "bob"), pair("k3", "cy")]
    );
    server.stop().await;
}

async fn a_member_whose_lease_runs_out_leaves(store: Store) {
    let flags = [
        "--presence-lease",
        "1s",
        "--presence-sweep-interval",
        "100ms",
    ];
    let server = server(store, &[&["--test-mode"][..], &flags].concat()).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    let members = [member("gone", "ann"), member("stays", "bob")];
    let lease = update(&mut client, &id, &members, &[]).await.unwrap();
    assert_eq!(lease.lease_ms, 1_000);
    let mut stream = watch(&mut client, &id, true).await;
    next_message(&mut stream).await;
    assert_eq!(next_state(&mut stream).await.len(), 2);

    // "stays" is renewed every 200 ms, "gone" never again.
    let renewing = {
        let mut client = server.client().await;
        let id = id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                update(&mut client, &id, &[member("stays", "bob")], &[])
                    .await
                    .unwrap();
            }
        })
    };
    assert_eq!(
        next_diff(&mut stream).await,
        (vec![], vec![pair("gone", "ann")])
    );
    renewing.abort();
    assert_eq!(
        next_diff(&mut stream).await,
        (vec![], vec![pair("stays", "bob")])
    );
    server.stop().await;
}

async fn a_watch_without_presence_sees_tallies_only(store: Store) {
    let server = server(store, &["--test-mode"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    update(&mut client, &id, &[member("k1", "ann")], &[])
        .await
        .unwrap();
    let mut stream = watch(&mut client, &id, false).await;
    let first = next_message(&mut stream).await;
    assert_eq!(first.tally.unwrap().version, 0);
    assert_eq!(first.presence, None);

    update(&mut client, &id, &[member("k2", "bob")], &["k1"])
        .await
        .unwrap();
    let tally = guess(&mut client, &id, "t").await;
    // Presence changes were made before the move: had they been sent, they would come first.
    let message = next_message(&mut stream).await;
    assert_eq!(message.tally, Some(tally));
    assert_eq!(message.presence, None);
    server.stop().await;
}

/// The request field a refusal names in its `google.rpc.BadRequest` detail.
fn refused_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|request| {
            request
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}

async fn bad_presence_updates_are_refused_and_change_nothing(store: Store) {
    let server = server(store, &["--test-mode", "--max-members-per-game", "3"]).await;
    let mut client = server.client().await;
    let id = new_game(&mut client, "otter").await;
    let three = [member("k1", ""), member("k2", ""), member("k3", "")];
    update(&mut client, &id, &three[..2], &[]).await.unwrap();
    // Keys and names are counted in characters, not bytes.
    let longest = member(&"é".repeat(64), &"é".repeat(64));
    update(&mut client, &id, std::slice::from_ref(&longest), &[])
        .await
        .unwrap();
    update(&mut client, &id, &[], &[&longest.key])
        .await
        .unwrap();

    for refused in [
        member("", "ann"),
        member(&"k".repeat(65), ""),
        member("k9", &"n".repeat(65)),
    ] {
        let status = update(&mut client, &id, &[member("k3", ""), refused], &[])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(refused_fields(&status), ["renew"]);
    }
    let four = [three.as_slice(), &[member("k4", "")]].concat();
    let status = update(&mut client, &id, &four, &[]).await.unwrap_err();
    assert_refused(&status, Code::ResourceExhausted, "maximum of 3 members");
    let status = update(&mut client, &id, &three[2..], &["a", "b", "c"])
        .await
        .unwrap_err();
    assert_refused(&status, Code::ResourceExhausted, "maximum of 3 members");
    update(&mut client, &id, &three[2..], &[]).await.unwrap();
    let status = update(&mut client, &id, &[member("k4", "")], &[])
        .await
        .unwrap_err();
    assert_refused(&status, Code::ResourceExhausted, "maximum of 3 members");

    let status = update(&mut client, "no-such-game", &three[..1], &[])
        .await
        .unwrap_err();
    assert_refused(&status, Code::NotFound, "no game with this id");
    let status = update(&mut client, "", &three[..1], &[]).await.unwrap_err();
    assert_eq!(refused_fields(&status), ["game_id"]);

    let mut stream = watch(&mut client, &id, true).await;
    next_message(&mut stream).await;
    assert_eq!(
        next_state(&mut stream).await,
        [pair("k1", ""), pair("k2", ""), pair("k3", "")],
        "only the accepted updates changed the room"
    );
    server.stop().await;
}

store_suite!(
    a_presence_watcher_sees_the_room_then_joins_and_leaves_between_tallies,
    a_member_whose_lease_runs_out_leaves,
    a_watch_without_presence_sees_tallies_only,
    bad_presence_updates_are_refused_and_change_nothing,
);
