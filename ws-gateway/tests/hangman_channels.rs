//! The Hangman channels of docs/design.md §5 over a raw WebSocket, against a real game service
//! whose dictionary holds one word, so games are deterministic.

mod common;

use std::time::Duration;

use common::{
    Client, System, WORD, diff_of, game_service_with, gateway, meta, names, player, system, until,
};
use hangman_proto::v1::EndGameRequest;
use hangman_proto::v1::hangman_service_client::HangmanServiceClient;
use serde_json::{Value, json};

const GAME: &str = "hangman:game";

/// A client of `sys` joined to a new private game: `(client, join_ref, join response)`.
async fn on_a_new_game(sys: &System) -> (Client, String, Value) {
    let mut client = sys.client().await;
    let (join_ref, joined) = client.join_ok(GAME, json!({})).await;
    (client, join_ref, joined)
}

#[tokio::test]
async fn a_join_starts_a_private_game() {
    let sys = system(&[]).await;
    let (_client, _, joined) = on_a_new_game(&sys).await;
    assert!(joined["game_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        joined["tally"],
        json!({"game_state": "initializing", "turns_left": 7, "letters": vec!["_"; WORD.len()], "used": [], "version": 0})
    );
    let (_, _, other) = on_a_new_game(&sys).await;
    assert_ne!(
        other["game_id"], joined["game_id"],
        "each join gets its own game"
    );
}

#[tokio::test]
async fn moves_reply_with_the_tally_and_push_it_for_the_original_client() {
    let sys = system(&[]).await;
    let (mut client, join_ref, _) = on_a_new_game(&sys).await;

    // The original course client sends the bare letter and only listens for `tally`.
    let (reply, pushes) = client.call(&join_ref, GAME, "make_move", json!("l")).await;
    let expected = json!({"game_state": "good_guess", "turns_left": 7, "letters": ["_", "_", "l", "l", "_"], "used": ["l"], "version": 1});
    assert_eq!(reply, json!({"status": "ok", "response": expected}));
    assert_eq!(
        pushes,
        vec![json!([join_ref, null, GAME, "tally", expected])]
    );

    // Modern clients send an object.
    let (reply, _) = client
        .call(&join_ref, GAME, "make_move", json!({"guess": "z"}))
        .await;
    assert_eq!(reply["response"]["game_state"], "bad_guess");
    assert_eq!(reply["response"]["turns_left"], 6);
    assert_eq!(reply["response"]["version"], 2);

    let (reply, _) = client
        .call(&join_ref, GAME, "make_move", json!({"guess": "z"}))
        .await;
    assert_eq!(reply["response"]["game_state"], "already_used");
    assert_eq!(reply["response"]["turns_left"], 6);
    assert_eq!(
        reply["response"]["version"], 3,
        "a repeated guess changes the state"
    );

    let (reply, pushes) = client.call(&join_ref, GAME, "tally", json!({})).await;
    assert_eq!(reply["response"]["used"], json!(["l", "z"]));
    assert_eq!(pushes[0][3], "tally");
}

#[tokio::test]
async fn a_whole_game_to_won_reveals_the_word() {
    let sys = system(&[]).await;
    let (mut client, join_ref, _) = on_a_new_game(&sys).await;
    let mut last = Value::Null;
    for letter in ["h", "e", "l", "o"] {
        last = client
            .call(&join_ref, GAME, "make_move", json!(letter))
            .await
            .0["response"]
            .clone();
    }
    assert_eq!(last["game_state"], "won");
    assert_eq!(last["word"], WORD);
    let (reply, _) = client.call(&join_ref, GAME, "make_move", json!("q")).await;
    assert_eq!(
        reply["response"]["game_state"], "won",
        "nothing changes after the game is over"
    );
}

#[tokio::test]
async fn a_lost_game_reveals_the_word_and_the_word_is_never_sent_earlier() {
    let sys = system(&[]).await;
    let (mut client, join_ref, _) = on_a_new_game(&sys).await;
    for letter in ["a", "b", "c", "d", "f", "g"] {
        let (reply, _) = client
            .call(&join_ref, GAME, "make_move", json!(letter))
            .await;
        assert!(reply["response"].get("word").is_none());
    }
    let (reply, _) = client.call(&join_ref, GAME, "make_move", json!("i")).await;
    assert_eq!(reply["response"]["game_state"], "lost");
    assert_eq!(reply["response"]["turns_left"], 0);
    assert_eq!(reply["response"]["word"], WORD);
}

#[tokio::test]
async fn bad_guesses_and_payloads_get_error_replies_and_change_nothing() {
    let sys = system(&[]).await;
    let (mut client, join_ref, joined) = on_a_new_game(&sys).await;
    for (payload, reason) in [
        (json!("ab"), "invalid_guess"),
        (json!("1"), "invalid_guess"),
        (json!(""), "invalid_guess"),
        (json!({"guess": "é"}), "invalid_guess"),
        (json!("x".repeat(1000)), "invalid_guess"),
        (json!({"guess": 5}), "invalid_payload"),
        (json!({}), "invalid_payload"),
        (json!(5), "invalid_payload"),
        (json!(null), "invalid_payload"),
        (json!(["a"]), "invalid_payload"),
    ] {
        let (reply, pushes) = client
            .call(&join_ref, GAME, "make_move", payload.clone())
            .await;
        assert_eq!(
            reply,
            json!({"status": "error", "response": {"reason": reason}}),
            "{payload}"
        );
        assert!(pushes.is_empty(), "no tally push for a refused move");
    }
    let (reply, _) = client.call(&join_ref, GAME, "dance", json!({})).await;
    assert_eq!(reply["response"], json!({"reason": "unknown_event"}));
    let (reply, _) = client.call(&join_ref, GAME, "tally", json!({})).await;
    assert_eq!(reply["response"], joined["tally"]);
}

#[tokio::test]
async fn new_game_replaces_the_game_of_the_channel() {
    let sys = system(&[]).await;
    let (mut client, join_ref, joined) = on_a_new_game(&sys).await;
    client.call(&join_ref, GAME, "make_move", json!("h")).await;
    let (reply, pushes) = client.call(&join_ref, GAME, "new_game", json!({})).await;
    assert_eq!(reply["status"], "ok");
    assert_ne!(reply["response"]["game_id"], joined["game_id"]);
    assert_eq!(reply["response"]["tally"]["game_state"], "initializing");
    assert_eq!(pushes[0][4]["game_state"], "initializing");
    let (reply, _) = client.call(&join_ref, GAME, "make_move", json!("h")).await;
    assert_eq!(reply["response"]["used"], json!(["h"]));
}

#[tokio::test]
async fn rejoining_with_the_game_id_resumes_the_game() {
    let sys = system(&[]).await;
    let (mut first, join_ref, joined) = on_a_new_game(&sys).await;
    let game_id = joined["game_id"].clone();
    first.call(&join_ref, GAME, "make_move", json!("e")).await;
    first.close().await;

    let mut second = sys.client().await;
    let (join_ref, resumed) = second.join_ok(GAME, json!({"game_id": game_id})).await;
    assert_eq!(resumed["game_id"], game_id);
    assert_eq!(
        resumed["tally"]["used"],
        json!(["e"]),
        "leaving never ends the game"
    );
    let (reply, _) = second.call(&join_ref, GAME, "make_move", json!("h")).await;
    assert_eq!(reply["response"]["used"], json!(["e", "h"]));
}

/// Game ids are 22 characters of URL-safe base64; the gateway accepts at most 64 characters of
/// that alphabet and refuses any other id without asking the game service.
#[tokio::test]
async fn game_ids_no_game_can_have_are_refused_by_the_gateway_itself() {
    async fn assert_refused(client: &mut Client, when: &str) {
        let huge = "a".repeat(60_000);
        let too_long = "a".repeat(65);
        for id in [&huge, &too_long, "a b", "a/b", "a+b", "a=", "é"] {
            let (_, reply) = client.join(GAME, json!({"game_id": id})).await;
            assert_eq!(
                reply[4],
                json!({"status": "error", "response": {"reason": "invalid_payload"}}),
                "a game id of {} bytes, {when}",
                id.len()
            );
        }
        for room in [format!("game:{}", "a".repeat(240)), "game:a b".to_owned()] {
            let (_, reply) = client.join(&room, json!({})).await;
            assert_eq!(
                reply[4]["response"]["reason"], "not_found",
                "{room}, {when}"
            );
        }
    }

    let sys = system(&[]).await;
    let mut client = sys.client().await;
    assert_refused(&mut client, "game service up").await;
    // With the game service down, the same answers: they cannot have come from it. An id of the
    // right alphabet and length is still forwarded (and gets `unavailable`).
    sys.games.stop().await;
    assert_refused(&mut client, "game service down").await;
    let (_, reply) = client.join(GAME, json!({"game_id": "a".repeat(64)})).await;
    assert_eq!(reply[4]["response"]["reason"], "unavailable");
}

#[tokio::test]
async fn a_request_too_large_for_the_game_service_is_invalid_payload_not_unavailable() {
    // A game service taking 32-byte messages at most: a GetGame for a 64-character id is
    // over it, though the gateway forwards the id (its own bound is 64).
    let games =
        common::game_service_with(&["--listen", "127.0.0.1:0", "--max-message-size", "32"]).await;
    let gateway = common::gateway(&games.url(), &[]).await;
    let mut client =
        Client::connect(&format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url())).await;
    let (_, reply) = client.join(GAME, json!({"game_id": "a".repeat(64)})).await;
    assert_eq!(
        reply[4],
        json!({"status": "error", "response": {"reason": "invalid_payload"}})
    );
    let (_, reply) = client.join(GAME, json!({"game_id": "a".repeat(8)})).await;
    assert_eq!(
        reply[4]["response"]["reason"], "not_found",
        "a smaller one is asked"
    );
}

/// The game service answers INVALID_ARGUMENT for more than a bad guess (an empty game id, a
/// fixed word outside test mode): only a refused guess is `invalid_guess`. The channels never
/// forward an empty id, so the gateway's game-service client is asked for one directly.
#[tokio::test]
async fn only_a_refused_guess_is_invalid_guess_an_invalid_game_id_is_invalid_payload() {
    use ws_gateway::upstream::{TraceContext, Upstream, UpstreamConfig};
    let games = common::game_service().await;
    let upstream = Upstream::new(&UpstreamConfig {
        url: games.url(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        keep_alive: Duration::from_secs(30),
        connections: 1,
        resolve_interval: Duration::from_secs(30),
    })
    .unwrap();
    let trace = TraceContext::new();
    let (game_id, _) = upstream.create_game(&trace).await.unwrap();
    let bad_guess = upstream
        .make_move(&trace, &game_id, "ab")
        .await
        .unwrap_err();
    assert_eq!(bad_guess.reason(), "invalid_guess", "{bad_guess}");
    let refusals = [
        upstream.make_move(&trace, "", "a").await.unwrap_err(),
        upstream.get_game(&trace, "").await.unwrap_err(),
        upstream
            .watch_game(&trace, "", Default::default())
            .await
            .err()
            .unwrap(),
        upstream
            .update_presence(&trace, "", Vec::new(), Vec::new())
            .await
            .unwrap_err(),
    ];
    for refusal in refusals {
        assert_eq!(refusal.reason(), "invalid_payload", "{refusal}");
    }
}

#[tokio::test]
async fn join_payloads_of_the_wrong_shape_and_unknown_games_are_refused() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    for (topic, payload, reason) in [
        (GAME, json!({"game_id": "no-such-game"}), "not_found"),
        (GAME, json!({"game_id": 42}), "invalid_payload"),
        (GAME, json!({"game_id": ""}), "invalid_payload"),
        (GAME, json!({"game_id": "  \t"}), "invalid_payload"),
        (GAME, json!("game"), "invalid_payload"),
        (GAME, json!([]), "invalid_payload"),
        ("game:no-such-game", json!({}), "not_found"),
        ("game:", json!({}), "not_found"),
        ("game:x", json!(7), "invalid_payload"),
    ] {
        let (join_ref, reply) = client.join(topic, payload.clone()).await;
        assert_eq!(
            reply,
            json!([join_ref, join_ref, topic, "phx_reply", {"status": "error", "response": {"reason": reason}}]),
            "{topic} {payload}"
        );
    }
    let msg_ref = client.push(None, GAME, "tally", json!({})).await;
    assert_eq!(
        client.reply_to(&msg_ref).await.0[4]["response"]["reason"],
        "unmatched topic",
        "a refused join joins nothing"
    );
}

/// The game id in a `hangman:game` join reply, and the topic of that game's shared room.
fn room_of(joined: &Value) -> (String, String) {
    let game_id = joined["game_id"].as_str().expect("a game id").to_owned();
    let room = format!("game:{game_id}");
    (game_id, room)
}

#[tokio::test]
async fn a_shared_room_pushes_every_move_to_every_member_with_presence() {
    let sys = system(&[]).await;
    let (mut owner, _, joined) = on_a_new_game(&sys).await;
    let (game_id, room) = room_of(&joined);

    let mut alice = Client::connect(&sys.socket_url("vsn=2.0.0&player=%20alice%20")).await;
    let (alice_ref, room_joined) = alice.join_ok(&room, json!({})).await;
    assert_eq!(
        room_joined,
        json!({"game_id": game_id, "tally": joined["tally"]}),
        "without a version, the reply is the game and its tally"
    );
    // The joiner is in the room before its first `presence_state`.
    let (state, _) = until(&mut alice, |f| f[3] == "presence_state").await;
    assert_eq!(state[0], alice_ref);
    assert_eq!(names(&state[4]), ["alice"]);
    let alice_meta = meta(&state[4], "alice");

    let mut bob = Client::connect(&sys.socket_url("vsn=2.0.0&player=bob")).await;
    let (bob_ref, _) = bob.join_ok(&room, json!({})).await;
    let (state, _) = until(&mut bob, |f| f[3] == "presence_state").await;
    assert_eq!(names(&state[4]), ["alice", "bob"]);
    assert_eq!(meta(&state[4], "alice"), alice_meta);
    let bob_meta = meta(&state[4], "bob");
    assert_eq!(diff_of(&mut alice, "bob", true).await, bob_meta);

    // Bob moves: everyone in the room gets the tally, Bob gets his reply too.
    let (reply, _) = bob
        .call(&bob_ref, &room, "make_move", json!({"guess": "o"}))
        .await;
    assert_eq!(
        reply["response"]["letters"],
        json!(["_", "_", "_", "_", "o"])
    );
    assert_eq!(reply["response"]["version"], 1);
    let (pushed, _) = until(&mut alice, |f| f[3] == "tally").await;
    assert_eq!(
        pushed,
        json!([alice_ref, null, room, "tally", reply["response"]])
    );
    until(&mut bob, |f| f[3] == "tally").await;

    // A move on the private channel of the same game reaches the room as well.
    owner.sync().await;
    let msg_ref = owner.push(None, GAME, "make_move", json!("h")).await;
    owner.reply_to(&msg_ref).await;
    let (pushed, _) = until(&mut alice, |f| f[3] == "tally").await;
    assert_eq!(pushed[4]["used"], json!(["h", "o"]));
    assert_eq!(pushed[4]["version"], 2);

    bob.close().await;
    assert_eq!(diff_of(&mut alice, "bob", false).await, bob_meta);
}

/// Two tabs of one player are two members of one name: the npm client lists the name once,
/// with both metas, and one tab leaving leaves the other.
#[tokio::test]
async fn one_player_in_two_tabs_is_one_name_with_two_metas() {
    let sys = system(&[]).await;
    let (_owner, _, joined) = on_a_new_game(&sys).await;
    let (_, room) = room_of(&joined);
    let mut tab1 = Client::connect(&sys.socket_url("vsn=2.0.0&player=carol")).await;
    tab1.join_ok(&room, json!({})).await;
    let (state, _) = until(&mut tab1, |f| f[3] == "presence_state").await;
    let first = meta(&state[4], "carol");
    let mut tab2 = Client::connect(&sys.socket_url("vsn=2.0.0&player=carol")).await;
    tab2.join_ok(&room, json!({})).await;
    let (state, _) = until(&mut tab2, |f| f[3] == "presence_state").await;
    assert_eq!(names(&state[4]), ["carol"]);
    let metas = state[4]["carol"]["metas"].as_array().unwrap();
    assert_eq!(metas.len(), 2, "{state}");
    assert_ne!(metas[0]["phx_ref"], metas[1]["phx_ref"]);
    // Tab 1 may be told of its own join too (as Phoenix tells a tracked channel): wait for
    // the second tab's.
    let second = loop {
        let joined = diff_of(&mut tab1, "carol", true).await;
        if joined["phx_ref"] != first["phx_ref"] {
            break joined;
        }
    };
    tab2.close().await;
    assert_eq!(diff_of(&mut tab1, "carol", false).await, second);
}

/// A client that lost its socket rejoins with the version of the last tally it saw and gets
/// every tally it missed, oldest first, then the current one in the reply.
#[tokio::test]
async fn a_rejoin_with_the_last_version_seen_recovers_every_missed_tally_in_order() {
    let sys = system(&[]).await;
    let (mut owner, owner_ref, joined) = on_a_new_game(&sys).await;
    let (game_id, room) = room_of(&joined);
    let mut member = sys.client().await;
    let (_, room_joined) = member.join_ok(&room, json!({})).await;
    let seen = room_joined["tally"]["version"].clone();
    assert_eq!(seen, 0);
    member.close().await;

    let mut moves = Vec::new();
    for letter in ["h", "z", "z", "e"] {
        let (reply, _) = owner
            .call(&owner_ref, GAME, "make_move", json!(letter))
            .await;
        moves.push(reply["response"].clone());
    }
    let versions: Vec<_> = moves.iter().map(|t| t["version"].clone()).collect();
    assert_eq!(versions, [1, 2, 3, 4], "a repeated guess is a change too");

    let mut member = sys.client().await;
    let (_, rejoined) = member.join_ok(&room, json!({"version": seen})).await;
    assert_eq!(
        rejoined,
        json!({"game_id": game_id, "tally": moves[3], "recovered": true, "missed": moves[..3]})
    );
    // Up to date: nothing missed.
    let mut member = sys.client().await;
    let (_, rejoined) = member.join_ok(&room, json!({"version": 4})).await;
    assert_eq!(
        rejoined,
        json!({"game_id": game_id, "tally": moves[3], "recovered": true, "missed": []})
    );
    // A version this game never had: the gap cannot be filled, the tally now is all there is.
    let mut member = sys.client().await;
    let (_, rejoined) = member.join_ok(&room, json!({"version": 99})).await;
    assert_eq!(
        rejoined,
        json!({"game_id": game_id, "tally": moves[3], "recovered": false})
    );
}

/// A room join's `version` is a non-negative integer; anything else is refused before any call,
/// and joins nothing: no channel, no member in the room.
#[tokio::test]
async fn a_room_join_with_a_version_that_is_not_a_count_is_invalid_payload() {
    let sys = system(&[]).await;
    let (_owner, _, joined) = on_a_new_game(&sys).await;
    let (_, room) = room_of(&joined);
    let mut client = Client::connect(&sys.socket_url("vsn=2.0.0&player=dave")).await;
    for version in [
        json!(-1),
        json!(1.5),
        json!("3"),
        json!(null),
        json!([1]),
        json!({}),
    ] {
        let (join_ref, reply) = client.join(&room, json!({"version": version})).await;
        assert_eq!(
            reply,
            json!([join_ref, join_ref, room, "phx_reply", {"status": "error", "response": {"reason": "invalid_payload"}}]),
            "version {version}"
        );
    }
    let msg_ref = client.push(None, &room, "tally", json!({})).await;
    assert_eq!(
        client.reply_to(&msg_ref).await.0[4]["response"]["reason"],
        "unmatched topic"
    );
    let (_, _) = client.join_ok(&room, json!({})).await;
    let (state, _) = until(&mut client, |f| f[3] == "presence_state").await;
    assert_eq!(
        state[4]["dave"]["metas"].as_array().map(Vec::len),
        Some(1),
        "only the accepted join is a member: {state}"
    );
}

#[tokio::test]
async fn a_join_past_the_rooms_maximum_of_members_is_room_full_and_joins_nothing() {
    let games = game_service_with(&["--max-members-per-game", "1"]).await;
    let gateway = gateway(&games.url(), &[]).await;
    let sys = System { games, gateway };
    let (_owner, _, joined) = on_a_new_game(&sys).await;
    let (_, room) = room_of(&joined);
    let mut alice = player(&sys.gateway.ws_url(), "alice").await;
    alice.join_ok(&room, json!({})).await;
    let mut bob = player(&sys.gateway.ws_url(), "bob").await;
    let (join_ref, reply) = bob.join(&room, json!({})).await;
    assert_eq!(
        reply,
        json!([join_ref, join_ref, room, "phx_reply", {"status": "error", "response": {"reason": "room_full"}}]),
    );
    let (state, _) = until(&mut alice, |f| f[3] == "presence_state").await;
    assert_eq!(names(&state[4]), ["alice"]);
}

#[tokio::test]
async fn a_dead_game_service_gives_unavailable_and_the_gateway_recovers_when_it_returns() {
    let sys = system(&[
        "--grpc-request-timeout",
        "1s",
        "--grpc-connect-timeout",
        "500ms",
    ])
    .await;
    let games_addr = sys.games.addr();
    let (mut client, join_ref, joined) = on_a_new_game(&sys).await;
    let (_, room) = room_of(&joined);
    let mut member = sys.client().await;
    let (member_ref, _) = member.join_ok(&room, json!({})).await;
    assert_eq!(common::http_get(&sys.gateway.url(), "/readyz").await.0, 200);

    sys.games.stop().await;
    let (reply, _) = client.call(&join_ref, GAME, "make_move", json!("h")).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "unavailable"}})
    );
    // A guess past the gateway's 16 bytes is refused without asking the game service (so the
    // answer is the same while it is down); one of 16 is still the game service's to judge.
    let (reply, _) = client
        .call(&join_ref, GAME, "make_move", json!("x".repeat(17)))
        .await;
    assert_eq!(reply["response"]["reason"], "invalid_guess");
    let (reply, _) = client
        .call(&join_ref, GAME, "make_move", json!("x".repeat(16)))
        .await;
    assert_eq!(reply["response"]["reason"], "unavailable");
    let (_, reply) = client.join("hangman:game", json!({})).await;
    assert_eq!(reply[4]["response"]["reason"], "unavailable");
    // The room lost its watch stream: the channel errors and the client would rejoin.
    let (error, _) = until(&mut member, |f| f[3] == "phx_error").await;
    assert_eq!(
        (error[0].clone(), error[1].clone()),
        (json!(member_ref), json!(member_ref))
    );
    assert_eq!(common::http_get(&sys.gateway.url(), "/readyz").await.0, 503);
    assert_eq!(
        common::http_get(&sys.gateway.url(), "/healthz").await.0,
        200
    );

    let games = common::game_service_on(&games_addr.to_string()).await;
    let mut ready = false;
    for _ in 0..100 {
        if common::http_get(&sys.gateway.url(), "/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway reconnects by itself");
    let (join_ref, _) = client.join_ok(GAME, json!({})).await;
    let (reply, _) = client.call(&join_ref, GAME, "make_move", json!("h")).await;
    assert_eq!(reply["status"], "ok");
    games.stop().await;
}

#[tokio::test]
async fn a_room_whose_game_ends_gets_phx_error_and_is_left() {
    let sys = system(&[]).await;
    let (_owner, _, joined) = on_a_new_game(&sys).await;
    let (game_id, room) = room_of(&joined);
    let mut member = sys.client().await;
    let (member_ref, _) = member.join_ok(&room, json!({})).await;

    let mut games = HangmanServiceClient::connect(sys.games.url())
        .await
        .unwrap();
    games
        .end_game(EndGameRequest {
            game_id: game_id.clone(),
        })
        .await
        .expect("the game ends");
    let (error, _) = until(&mut member, |f| f[3] == "phx_error").await;
    assert_eq!(
        error,
        json!([member_ref, member_ref, room, "phx_error", {"reason": "game_ended"}])
    );
    let msg_ref = member.push(None, &room, "tally", json!({})).await;
    assert_eq!(
        member.reply_to(&msg_ref).await.0[4]["response"]["reason"],
        "unmatched topic",
        "the crashed channel is no longer joined"
    );
    let (_, rejoin) = member.join(&room, json!({})).await;
    assert_eq!(rejoin[4]["response"]["reason"], "not_found");
}

#[tokio::test]
async fn a_full_game_service_refuses_new_games_with_game_limit() {
    let games = common::game_service_with(&["--listen", "127.0.0.1:0", "--max-games", "1"]).await;
    let gateway = common::gateway(&games.url(), &[]).await;
    let url = format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url());
    let mut client = Client::connect(&url).await;
    let (join_ref, _) = client.join_ok(GAME, json!({})).await;

    let (_, refused) = Client::connect(&url).await.join(GAME, json!({})).await;
    assert_eq!(
        refused[4],
        json!({"status": "error", "response": {"reason": "game_limit"}})
    );
    let (reply, pushes) = client.call(&join_ref, GAME, "new_game", json!({})).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "game_limit"}})
    );
    assert!(pushes.is_empty(), "no tally push for a refused new game");
    let (reply, _) = client.call(&join_ref, GAME, "make_move", json!("h")).await;
    assert_eq!(
        reply["response"]["used"],
        json!(["h"]),
        "the game held goes on"
    );
    games.stop().await;
}
