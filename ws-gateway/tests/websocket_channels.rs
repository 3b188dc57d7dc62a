//! The Phoenix Channels protocol over a raw WebSocket, after Phoenix's own
//! `websocket_channels_test`: a real gateway on port 0 in front of a real game service.

mod common;

use base64::Engine;
use common::{Client, System, system, try_connect};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn heartbeat_is_answered_joined_or_not() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    client
        .send(json!([null, "7", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(
        client.recv().await,
        json!([null, "7", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
    client.join_ok("hangman:game", json!({})).await;
    client
        .send(json!([null, "8", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(client.recv().await[1], "8");
}

#[tokio::test]
async fn join_replies_with_the_join_ref_and_ref_of_the_join() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    client
        .send(json!(["3", "3", "hangman:game", "phx_join", {}]))
        .await;
    let reply = client.recv().await;
    assert_eq!(reply[0], "3");
    assert_eq!(reply[1], "3");
    assert_eq!(reply[2], "hangman:game");
    assert_eq!(reply[3], "phx_reply");
    assert_eq!(reply[4]["status"], "ok");
}

#[tokio::test]
async fn unmatched_topics_are_refused_with_a_null_join_ref() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    client
        .send(json!(["1", "1", "nope:topic", "phx_join", {}]))
        .await;
    assert_eq!(
        client.recv().await,
        json!([null, "1", "nope:topic", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
}

#[tokio::test]
async fn events_on_a_topic_not_joined_get_unmatched_topic() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    let msg_ref = client
        .push(Some("9"), "hangman:game", "make_move", json!("a"))
        .await;
    let (reply, _) = client.reply_to(&msg_ref).await;
    assert_eq!(
        reply[4],
        json!({"status": "error", "response": {"reason": "unmatched topic"}})
    );
}

#[tokio::test]
async fn duplicate_join_closes_the_old_channel_first() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    let (first_ref, _) = client.join_ok("hangman:game", json!({})).await;
    client
        .send(json!(["5", "5", "hangman:game", "phx_join", {}]))
        .await;
    assert_eq!(
        client.recv().await,
        json!([first_ref, first_ref, "hangman:game", "phx_close", {}])
    );
    let reply = client.recv().await;
    assert_eq!(
        (reply[0].clone(), reply[1].clone()),
        (json!("5"), json!("5"))
    );
    assert_eq!(reply[4]["status"], "ok");
}

#[tokio::test]
async fn leave_replies_ok_then_closes_and_the_topic_is_no_longer_joined() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    let (join_ref, _) = client.join_ok("hangman:game", json!({})).await;
    let (reply, _) = client
        .call(&join_ref, "hangman:game", "phx_leave", json!({}))
        .await;
    assert_eq!(reply, json!({"status": "ok", "response": {}}));
    assert_eq!(
        client.recv().await,
        json!([join_ref, join_ref, "hangman:game", "phx_close", {}])
    );
    let (reply, _) = client
        .call(&join_ref, "hangman:game", "tally", json!({}))
        .await;
    assert_eq!(reply["response"]["reason"], "unmatched topic");
    let (reply, _) = client
        .call(&join_ref, "hangman:game", "phx_leave", json!({}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "ok", "response": {}}),
        "leaving a topic not joined is answered ok, as Phoenix does"
    );
}

#[tokio::test]
async fn stale_join_refs_are_dropped_and_null_join_refs_accepted() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    let (old_ref, _) = client.join_ok("hangman:game", json!({})).await;
    let (new_ref, _) = client.join_ok("hangman:game", json!({})).await;
    assert_ne!(old_ref, new_ref);
    client
        .push(Some(&old_ref), "hangman:game", "tally", json!({}))
        .await;
    assert!(
        client.sync().await.is_empty(),
        "a push with a stale join_ref gets nothing back"
    );

    let msg_ref = client.push(None, "hangman:game", "tally", json!({})).await;
    let (reply, pushes) = client.reply_to(&msg_ref).await;
    assert_eq!(reply[0], new_ref, "replies carry the channel's join_ref");
    assert_eq!(reply[4]["status"], "ok");
    assert_eq!(pushes[0][3], "tally");
}

#[tokio::test]
async fn the_channel_cap_refuses_joins_beyond_it() {
    let sys = system(&["--max-channels", "2"]).await;
    let mut client = sys.client().await;
    let (_, game) = client.join_ok("hangman:game", json!({})).await;
    let room = format!("game:{}", game["game_id"].as_str().unwrap());
    client.join_ok(&room, json!({})).await;
    let (_, reply) = client.join(&format!("game:{}", "x"), json!({})).await;
    assert_eq!(
        reply[4]["response"],
        json!({"reason": "too many channels joined"})
    );
    // Rejoining a topic already joined replaces it, so it is not refused.
    client.join_ok("hangman:game", json!({})).await;
}

#[tokio::test]
async fn v1_objects_when_vsn_is_absent_or_1x() {
    let sys = system(&[]).await;
    for query in ["", "vsn=1.0.0"] {
        let mut client = Client::connect(&sys.socket_url(query)).await;
        client
            .send(json!({"topic": "hangman:game", "event": "phx_join", "payload": {}, "ref": "1", "join_ref": "1"}))
            .await;
        let reply = client.recv().await;
        assert_eq!(reply["event"], "phx_reply");
        assert_eq!(reply["ref"], "1");
        assert_eq!(reply["payload"]["status"], "ok");
        assert_eq!(
            reply["payload"]["response"]["tally"]["game_state"],
            "initializing"
        );
        client
            .send(json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "2"}))
            .await;
        assert_eq!(
            client.recv().await["payload"],
            json!({"status": "ok", "response": {}})
        );
    }
}

#[tokio::test]
async fn unknown_vsn_is_refused_before_the_upgrade() {
    let sys = system(&[]).await;
    for vsn in ["3.0.0", "banana", "2.0.0.0"] {
        let refused = try_connect(&sys.socket_url(&format!("vsn={vsn}")), &[]).await;
        assert_eq!(refused.err().map(|s| s.as_u16()), Some(403), "vsn {vsn}");
    }
}

/// The status of an upgrade request with these headers: 101 or the refusal's.
async fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    match try_connect(url, headers).await {
        Ok(_) => 101,
        Err(status) => status.as_u16(),
    }
}

#[tokio::test]
async fn by_default_only_loopback_origins_are_allowed_whatever_the_host_header_says() {
    let sys = system(&[]).await;
    let url = sys.socket_url("vsn=2.0.0");
    let port = sys.gateway.addr().port();
    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        "http://localhost:5173".to_owned(),
        "http://[::1]:4000".to_owned(),
    ] {
        assert_eq!(
            upgrade_status(&url, &[("origin", &origin)]).await,
            101,
            "{origin}"
        );
    }
    assert_eq!(upgrade_status(&url, &[]).await, 101, "no Origin header");
    // DNS rebinding: a page on evil.example whose name now resolves to this server. Its Host
    // header and its Origin agree, and neither is evidence that the page belongs here.
    let rebound = format!("evil.example:{port}");
    let rebound_origin = format!("http://{rebound}");
    let rebinding = [
        ("host", rebound.as_str()),
        ("origin", rebound_origin.as_str()),
    ];
    assert_eq!(upgrade_status(&url, &rebinding).await, 403, "DNS rebinding");
    for refused in ["http://evil.example", "null", "http://192.168.1.5:4000"] {
        assert_eq!(
            upgrade_status(&url, &[("origin", refused)]).await,
            403,
            "{refused}"
        );
    }
}

#[tokio::test]
async fn two_origin_headers_are_refused() {
    let sys = system(&["--allowed-origins", "*"]).await;
    let url = sys.socket_url("vsn=2.0.0");
    let two = [
        ("origin", "http://localhost:4000"),
        ("origin", "http://evil.example"),
    ];
    assert_eq!(upgrade_status(&url, &two).await, 403);
    assert_eq!(upgrade_status(&url, &two[1..]).await, 101, "one, with `*`");
}

#[tokio::test]
async fn configured_origins_are_allowed_besides_loopback_and_star_allows_any() {
    let sys = system(&[
        "--allowed-origins",
        "https://app.example,other.example:8443",
    ])
    .await;
    let url = sys.socket_url("vsn=2.0.0");
    for allowed in [
        "https://app.example",
        "https://other.example:8443",
        "http://localhost:4000",
    ] {
        assert_eq!(
            upgrade_status(&url, &[("origin", allowed)]).await,
            101,
            "{allowed}"
        );
    }
    for refused in ["https://evil.example", "http://app.example", "null"] {
        assert_eq!(
            upgrade_status(&url, &[("origin", refused)]).await,
            403,
            "{refused}"
        );
    }
    let public = [("host", "app.example"), ("origin", "https://evil.example")];
    assert_eq!(
        upgrade_status(&url, &public).await,
        403,
        "Host says nothing"
    );

    let any = system(&["--allowed-origins", "*"]).await;
    let url = any.socket_url("vsn=2.0.0");
    let rebinding = [("host", "evil.example"), ("origin", "http://evil.example")];
    assert_eq!(upgrade_status(&url, &rebinding).await, 101);
}

#[tokio::test]
async fn auth_token_subprotocol_is_answered_with_phoenix() {
    let sys = system(&[]).await;
    let url = sys.socket_url("vsn=2.0.0");
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("secret token");
    let offered = format!("phoenix, base64url.bearer.phx.{token}");
    let (mut client, protocol) = try_connect(&url, &[("sec-websocket-protocol", &offered)])
        .await
        .unwrap();
    assert_eq!(protocol.as_deref(), Some("phoenix"));
    client.join_ok("hangman:game", json!({})).await;

    let bad = "phoenix, base64url.bearer.phx.***";
    assert_eq!(
        try_connect(&url, &[("sec-websocket-protocol", bad)])
            .await
            .err()
            .map(|s| s.as_u16()),
        Some(403)
    );
}

#[tokio::test]
async fn malformed_frames_get_clear_errors_and_change_nothing() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    let (join_ref, joined) = client.join_ok("hangman:game", json!({})).await;
    let invalid = |frame: &Value| {
        assert_eq!(frame[3], "phx_reply", "{frame}");
        assert_eq!(frame[4]["status"], "error", "{frame}");
        assert_eq!(frame[4]["response"]["reason"], "invalid_message", "{frame}");
        frame[4]["response"]["detail"].as_str().unwrap().to_owned()
    };

    client.send_text("this is not json").await;
    let frame = client.recv().await;
    assert!(invalid(&frame).contains("not JSON"));
    assert_eq!(
        frame[2], "phoenix",
        "with nothing to salvage the error is a socket-level reply"
    );

    client.send(json!({"topic": "hangman:game"})).await;
    assert!(invalid(&client.recv().await).contains("array"));

    client.send(json!([join_ref, "41", "hangman:game"])).await;
    let frame = client.recv().await;
    assert!(invalid(&frame).contains("5-element"));
    assert_eq!(
        frame[1], "41",
        "the ref is kept so the client's push gets its answer"
    );

    for (bad, detail) in [
        (json!([join_ref, "42", 7, "tally", {}]), "topic"),
        (json!([join_ref, "43", "hangman:game", null, {}]), "event"),
        (
            json!([join_ref, "44", "hangman:game", ["tally"], {}]),
            "event",
        ),
        (json!([1, "45", "hangman:game", "tally", {}]), "join_ref"),
        (json!([join_ref, 46, "hangman:game", "tally", {}]), "ref"),
        (json!([join_ref, "47", "", "tally", {}]), "topic"),
        (
            json!([join_ref, "48", "x".repeat(300), "tally", {}]),
            "topic",
        ),
    ] {
        client.send(bad.clone()).await;
        let frame = client.recv().await;
        assert!(invalid(&frame).contains(detail), "{bad} -> {frame}");
    }

    let (reply, _) = client
        .call(&join_ref, "hangman:game", "tally", json!({}))
        .await;
    assert_eq!(reply["response"], joined["tally"], "the game is untouched");
}

#[tokio::test]
async fn binary_frames_with_bad_lengths_get_errors() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    for bad in [
        vec![],
        vec![0, 1],
        vec![0, 9, 9, 9, 9, b'x'],
        vec![1, 0, 0, 1, 1, b't', b'e'],
        vec![0, 0, 0, 0, 0],
    ] {
        client.send_binary(bad.clone()).await;
        let frame = client.recv().await;
        assert_eq!(frame[4]["response"]["reason"], "invalid_message", "{bad:?}");
    }
    // A well-formed binary push reaches the channel, which wants JSON.
    let (join_ref, _) = client.join_ok("hangman:game", json!({})).await;
    let mut push = vec![0, join_ref.len() as u8, 2, 12, 9];
    push.extend_from_slice(join_ref.as_bytes());
    push.extend_from_slice(b"99hangman:gamemake_movea");
    client.send_binary(push).await;
    let (reply, _) = client.reply_to("99").await;
    assert_eq!(reply[4]["response"]["reason"], "invalid_payload");
}

#[tokio::test]
async fn binary_frames_need_vsn_2() {
    let sys = system(&[]).await;
    let mut client = Client::connect(&sys.socket_url("vsn=1.0.0")).await;
    let mut push = vec![0, 0, 1, 7, 9];
    push.extend_from_slice(b"1phoenixheartbeat");
    client.send_binary(push).await;
    let frame = client.recv().await;
    assert_eq!(frame["payload"]["response"]["reason"], "invalid_message");
}

#[tokio::test]
async fn oversized_frames_close_that_socket_only() {
    let sys = system(&["--max-frame-size", "1024"]).await;
    let mut bystander = sys.client().await;
    let (join_ref, _) = bystander.join_ok("hangman:game", json!({})).await;
    let mut client = sys.client().await;
    client
        .send_text(&format!(
            "[null,\"1\",\"phoenix\",\"heartbeat\",\"{}\"]",
            "x".repeat(2000)
        ))
        .await;
    assert_eq!(client.closed().await, Some(1009));
    let (reply, _) = bystander
        .call(&join_ref, "hangman:game", "tally", json!({}))
        .await;
    assert_eq!(reply["status"], "ok");
}

#[tokio::test]
async fn floods_are_rate_limited_then_closed_with_1008() {
    let sys = system(&["--max-pushes-per-second", "100"]).await;
    let mut bystander = sys.client().await;
    let mut client = sys.client().await;
    // More than twice the rate at once: a burst's worth is answered, a second's worth refused,
    // then the socket is closed while most of the flood is still unread by the server.
    for i in 0..1000 {
        client
            .try_send_text(&json!([null, format!("{i}"), "phoenix", "heartbeat", {}]).to_string())
            .await;
    }
    let (mut ok, mut limited) = (0, 0);
    let close = loop {
        match client.next().await {
            Ok(Message::Text(text)) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    frame[1],
                    format!("{}", ok + limited),
                    "every message before the close is answered, in order"
                );
                if frame[4]["status"] == "ok" {
                    ok += 1;
                } else {
                    assert_eq!(frame[4]["response"], json!({"reason": "rate_limited"}));
                    limited += 1;
                }
            }
            Ok(other) => panic!("unexpected frame {other:?}"),
            Err(close) => break close.map(|c| u16::from(c.code)),
        }
    };
    assert_eq!(close, Some(1008), "after {ok} ok and {limited} refused");
    assert!(ok >= 100, "the burst is answered: {ok}");
    assert!(
        limited >= 1,
        "the excess is refused before the close: {limited}"
    );
    bystander
        .send(json!([null, "1", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(
        bystander.recv().await[4]["status"],
        "ok",
        "other clients are unaffected"
    );
}

#[tokio::test]
async fn a_channel_with_a_full_inbox_refuses_events_as_overloaded() {
    let sys = system(&["--max-pushes-per-second", "100000"]).await;
    let mut client = sys.client().await;
    let (join_ref, joined) = client.join_ok("hangman:game", json!({})).await;
    // Far more events than the channel's inbox holds (64), all waiting at once: the channel
    // handles one at a time, each a call to the game service.
    let (ok, overloaded) = burst_of_tally_events(&mut client, &join_ref, 300).await;
    assert!(overloaded > 0, "every one of 300 events was queued");
    assert!(
        ok >= 64,
        "the inbox's 64 events are answered, not refused: {ok}"
    );
    let (reply, _) = client
        .call(&join_ref, "hangman:game", "tally", json!({}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "ok", "response": joined["tally"]}),
        "the channel goes on once its backlog is done"
    );
}

#[tokio::test]
async fn the_channel_inbox_is_configurable() {
    let sys = system(&[
        "--max-pushes-per-second",
        "100000",
        "--channel-inbox",
        "1000",
    ])
    .await;
    let mut client = sys.client().await;
    let (join_ref, _) = client.join_ok("hangman:game", json!({})).await;
    let (ok, overloaded) = burst_of_tally_events(&mut client, &join_ref, 300).await;
    assert_eq!((ok, overloaded), (300, 0), "the same burst fits in 1000");
}

/// Sends `sent` `tally` events at once and counts the ok and `overloaded` replies.
async fn burst_of_tally_events(client: &mut Client, join_ref: &str, sent: usize) -> (usize, usize) {
    let frames: Vec<Value> = (0..sent)
        .map(|i| json!([join_ref, format!("e{i}"), "hangman:game", "tally", {}]))
        .collect();
    client.send_all(&frames).await;
    let (mut ok, mut overloaded) = (0, 0);
    while ok + overloaded < sent {
        let frame = client.recv().await;
        if frame[3] != "phx_reply" {
            continue;
        }
        assert_eq!(frame[0], join_ref, "{frame}");
        if frame[4]["status"] == "ok" {
            ok += 1;
        } else {
            assert_eq!(
                frame[4]["response"],
                json!({"reason": "overloaded"}),
                "{frame}"
            );
            overloaded += 1;
        }
    }
    (ok, overloaded)
}

#[tokio::test]
async fn a_1mb_frame_gets_1009_after_the_replies_before_it() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    client
        .send(json!([null, "1", "phoenix", "heartbeat", {}]))
        .await;
    client
        .try_send_text(&format!(
            "[null,\"2\",\"phoenix\",\"heartbeat\",\"{}\"]",
            "x".repeat(1 << 20)
        ))
        .await;
    let reply = client.recv().await;
    assert_eq!(
        (reply[1].as_str(), reply[4]["status"].as_str()),
        (Some("1"), Some("ok"))
    );
    assert_eq!(client.closed().await, Some(1009));
}

#[tokio::test]
async fn a_flood_of_refused_joins_holds_no_channel_slot() {
    // 40 joins fit the burst of 50, and none is accepted: the cap of 10 is never reached.
    let sys = system(&["--max-pushes-per-second", "50", "--max-channels", "10"]).await;
    let mut client = sys.client().await;
    for i in 0..40 {
        client
            .send(json!([
                format!("{i}"),
                format!("{i}"),
                format!("game:nope{i}"),
                "phx_join",
                {}
            ]))
            .await;
    }
    let mut reasons = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let frame = client.recv().await;
        reasons.insert(frame[4]["response"]["reason"].as_str().unwrap().to_owned());
    }
    assert!(reasons.contains("not_found"), "{reasons:?}");
    assert_eq!(
        reasons.len(),
        1,
        "neither rate-limited nor capped: {reasons:?}"
    );
    client.join_ok("hangman:game", json!({})).await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout_and_heartbeats_keep_it_open() {
    let sys = system(&["--idle-timeout", "400ms"]).await;
    let mut silent = sys.client().await;
    let mut beating = sys.client().await;
    for i in 0..10 {
        beating
            .send(json!([null, format!("{i}"), "phoenix", "heartbeat", {}]))
            .await;
        assert_eq!(beating.recv().await[4]["status"], "ok");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(silent.closed().await, Some(1001));
    beating
        .send(json!([null, "last", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(
        beating.recv().await[1],
        "last",
        "a client that sends heartbeats stays connected"
    );
}

#[tokio::test]
async fn a_client_that_never_answers_the_close_is_let_go_after_the_close_timeout() {
    let sys = system(&["--idle-timeout", "200ms", "--close-timeout", "300ms"]).await;
    let started = std::time::Instant::now();
    let mut client = sys.client().await;
    // The client reads nothing, so it never answers the gateway's close frame: the gateway
    // waits for that answer for the close timeout, not the default 2 s, then lets go.
    while sys.gateway.connections() > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_millis(1500),
            "the connection is still held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(400),
        "held for the idle timeout and then the close timeout"
    );
    assert_eq!(client.closed().await, Some(1001));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_going_away_never_1000() {
    let System { games, gateway } = system(&[]).await;
    let mut client =
        Client::connect(&format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url())).await;
    client.join_ok("hangman:game", json!({})).await;
    let stopping = tokio::spawn(gateway.stop());
    assert_eq!(client.closed().await, Some(1001));
    stopping.await.unwrap();
    games.stop().await;

    let games = common::game_service().await;
    let gateway = common::gateway(&games.url(), &["--shutdown-close-code", "1012"]).await;
    let mut client =
        Client::connect(&format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url())).await;
    client.sync().await;
    let stopping = tokio::spawn(gateway.stop());
    assert_eq!(client.closed().await, Some(1012));
    stopping.await.unwrap();
}

#[tokio::test]
async fn the_connection_cap_refuses_upgrades_with_503() {
    let sys = system(&["--max-connections", "2"]).await;
    let _a = sys.client().await;
    let b = sys.client().await;
    let refused = try_connect(&sys.socket_url("vsn=2.0.0"), &[]).await;
    assert_eq!(refused.err().map(|s| s.as_u16()), Some(503));
    b.close().await;
    // The slot frees once the server has seen the close.
    for _ in 0..100 {
        if sys.gateway.connections() < 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(try_connect(&sys.socket_url("vsn=2.0.0"), &[]).await.is_ok());
}

#[tokio::test]
async fn every_mount_serves_the_socket() {
    let sys = system(&["--mount", "/socket", "--mount", "/v1/socket"]).await;
    let mut client = Client::connect(&format!(
        "{}/v1/socket/websocket?vsn=2.0.0",
        sys.gateway.ws_url()
    ))
    .await;
    client.join_ok("hangman:game", json!({})).await;
    let mut client = sys.client().await;
    client.join_ok("hangman:game", json!({})).await;
}

#[tokio::test]
async fn pings_are_ponged() {
    let sys = system(&[]).await;
    let url = sys.socket_url("vsn=2.0.0");
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut tx, mut rx) = futures::StreamExt::split(ws);
    futures::SinkExt::send(&mut tx, Message::Ping(b"hi".to_vec().into()))
        .await
        .unwrap();
    let pong = futures::StreamExt::next(&mut rx).await.unwrap().unwrap();
    assert_eq!(pong, Message::Pong(b"hi".to_vec().into()));
}

#[tokio::test]
async fn a_client_close_is_answered_with_its_code() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    client.join_ok("hangman:game", json!({})).await;
    assert_eq!(client.close_handshake(1000).await, Ok(Some(1000)));
    let mut client = sys.client().await;
    client.sync().await;
    assert_eq!(client.close_handshake(4001).await, Ok(Some(4001)));
}
