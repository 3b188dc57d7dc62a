//! The Phoenix Channels protocol over a raw WebSocket, after Phoenix's own
//! `websocket_channels_test`: the echo app (tests/common) on port 0, real clients.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{config, serve, serve_at};
use phoenix_channels::test_client::{Client, try_connect, upgrade_status};
use phoenix_channels::transport::AllowedOrigins;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Asserts that the `echo:a` channel joined as `join_ref` answers an event: `why` says what
/// the test learns from it.
async fn assert_answers(client: &mut Client, join_ref: &str, why: &str) {
    let (reply, _) = client.call(join_ref, "echo:a", "echo", json!(1)).await;
    assert_eq!(reply, json!({"status": "ok", "response": 1}), "{why}");
}

/// Asserts that `topic` has no channel joined as `join_ref`: an event on it is refused as
/// `unmatched topic`.
async fn assert_not_joined(client: &mut Client, join_ref: &str, topic: &str, why: &str) {
    let (reply, _) = client.call(join_ref, topic, "echo", json!({})).await;
    assert_eq!(reply["response"]["reason"], "unmatched topic", "{why}");
}

#[tokio::test]
async fn heartbeat_is_answered_joined_or_not() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    client
        .send(json!([null, "7", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(
        client.recv().await,
        json!([null, "7", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
    client.join_ok("echo:a", json!({})).await;
    client
        .send(json!([null, "8", "phoenix", "heartbeat", {}]))
        .await;
    assert_eq!(client.recv().await[1], "8");
}

#[tokio::test]
async fn a_join_is_answered_on_its_join_ref_and_ref_or_a_null_join_ref_if_no_channel_matches() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    for (join, reply) in [
        (
            json!(["3", "3", "echo:a", "phx_join", {}]),
            json!(["3", "3", "echo:a", "phx_reply", {"status": "ok", "response": {"topic": "echo:a"}}]),
        ),
        // A join the channel refuses keeps its join_ref ...
        (
            json!(["4", "4", "echo:b", "phx_join", {"refuse": "nope"}]),
            json!(["4", "4", "echo:b", "phx_reply", {"status": "error", "response": {"reason": "nope"}}]),
        ),
        // ... one that no channel matches has none.
        (
            json!(["5", "5", "nope:topic", "phx_join", {}]),
            json!([null, "5", "nope:topic", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}]),
        ),
    ] {
        client.send(join).await;
        assert_eq!(client.recv().await, reply);
    }
    assert_not_joined(&mut client, "4", "echo:b", "a refused join joins nothing").await;
}

#[tokio::test]
async fn events_on_a_topic_not_joined_get_unmatched_topic() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    let msg_ref = client.push(Some("9"), "echo:a", "echo", json!("a")).await;
    let (reply, _) = client.reply_to(&msg_ref).await;
    assert_eq!(
        reply[4],
        json!({"status": "error", "response": {"reason": "unmatched topic"}})
    );
}

#[tokio::test]
async fn events_reach_the_channel_which_replies_and_pushes_on_its_join_ref() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    let msg_ref = client
        .push(Some(&join_ref), "echo:a", "echo", json!({"body": "hi"}))
        .await;
    assert_eq!(
        client.recv().await,
        json!([join_ref, msg_ref, "echo:a", "phx_reply", {"status": "ok", "response": {"body": "hi"}}])
    );
    let (reply, pushes) = client
        .call(&join_ref, "echo:a", "push", json!({"n": 1}))
        .await;
    assert_eq!(reply["status"], "ok");
    assert_eq!(
        pushes,
        [json!([join_ref, null, "echo:a", "pushed", {"n": 1}])]
    );
    let (reply, _) = client.call(&join_ref, "echo:a", "what", json!({})).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "unknown_event"}})
    );
}

#[tokio::test]
async fn large_messages_arrive_whole_before_and_after_an_idle_spell() {
    // A connection starts with a small read buffer and takes a large message in pieces; an
    // idle one keeps no large buffer. Neither may cut or reorder what it carries.
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    let large = |fill: &str| json!({"body": fill.repeat(60_000)});
    for (fill, pause) in [("a", 0), ("b", 300), ("c", 0)] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let (reply, _) = client.call(&join_ref, "echo:a", "echo", large(fill)).await;
        assert_eq!(
            reply,
            json!({"status": "ok", "response": large(fill)}),
            "{fill}"
        );
        assert_answers(&mut client, &join_ref, "a small message after a large one").await;
    }
}

#[tokio::test]
async fn a_burst_of_replies_and_pushes_larger_than_the_outbox_arrives_in_order() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    // 90 events, each answered with a push and a reply: 180 messages through an outbox of
    // 64, sent before the client reads any.
    let frames: Vec<Value> = (0..90)
        .map(|i| json!([join_ref, format!("p{i}"), "echo:a", "push", {"n": i}]))
        .collect();
    client.send_all(&frames).await;
    for i in 0..90 {
        assert_eq!(
            client.recv().await,
            json!([join_ref, null, "echo:a", "pushed", {"n": i}])
        );
        assert_eq!(
            client.recv().await,
            json!([join_ref, format!("p{i}"), "echo:a", "phx_reply", {"status": "ok", "response": {}}])
        );
    }
}

#[tokio::test]
async fn server_side_messages_reach_every_channel_on_the_topic() {
    let server = serve(config()).await;
    let (mut alice, mut bob) = (server.client().await, server.client().await);
    let (bob_ref, _) = bob.join_ok("echo:room", json!({})).await;
    let (alice_ref, _) = alice.join_ok("echo:room", json!({})).await;
    alice
        .call(&alice_ref, "echo:room", "shout", json!("hello"))
        .await;
    assert_eq!(
        bob.recv().await,
        json!([bob_ref, null, "echo:room", "shout", "hello"])
    );
    assert_eq!(
        alice.recv().await,
        json!([alice_ref, null, "echo:room", "shout", "hello"])
    );
}

#[tokio::test]
async fn a_crashed_channel_sends_phx_error_and_the_topic_can_be_joined_again() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    client
        .push(Some(&join_ref), "echo:a", "crash", json!({}))
        .await;
    assert_eq!(
        client.recv().await,
        json!([join_ref, join_ref, "echo:a", "phx_error", {"reason": "asked to"}])
    );
    assert_not_joined(
        &mut client,
        &join_ref,
        "echo:a",
        "the crashed channel is gone",
    )
    .await;
    client.join_ok("echo:a", json!({})).await;
}

#[tokio::test]
async fn duplicate_join_closes_the_old_channel_first() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (first_ref, _) = client.join_ok("echo:a", json!({})).await;
    client
        .send(json!(["5", "5", "echo:a", "phx_join", {}]))
        .await;
    assert_eq!(
        client.recv().await,
        json!([first_ref, first_ref, "echo:a", "phx_close", {}])
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
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    let (reply, _) = client
        .call(&join_ref, "echo:a", "phx_leave", json!({}))
        .await;
    assert_eq!(reply, json!({"status": "ok", "response": {}}));
    assert_eq!(
        client.recv().await,
        json!([join_ref, join_ref, "echo:a", "phx_close", {}])
    );
    assert_not_joined(&mut client, &join_ref, "echo:a", "the channel left").await;
    let (reply, _) = client
        .call(&join_ref, "echo:a", "phx_leave", json!({}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "ok", "response": {}}),
        "leaving a topic not joined is answered ok, as Phoenix does"
    );
}

#[tokio::test]
async fn stale_join_refs_are_dropped_and_null_join_refs_accepted() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (old_ref, _) = client.join_ok("echo:a", json!({})).await;
    let (new_ref, _) = client.join_ok("echo:a", json!({})).await;
    assert_ne!(old_ref, new_ref);
    client
        .push(Some(&old_ref), "echo:a", "push", json!({}))
        .await;
    assert!(
        client.sync().await.is_empty(),
        "a push with a stale join_ref gets nothing back"
    );

    let msg_ref = client.push(None, "echo:a", "push", json!({})).await;
    let (reply, pushes) = client.reply_to(&msg_ref).await;
    assert_eq!(reply[0], new_ref, "replies carry the channel's join_ref");
    assert_eq!(reply[4]["status"], "ok");
    assert_eq!(pushes[0][3], "pushed");
}

#[tokio::test]
async fn the_channel_cap_refuses_joins_beyond_it() {
    let mut config = config();
    config.limits.max_channels = 2;
    let server = serve(config).await;
    let mut client = server.client().await;
    client.join_ok("echo:a", json!({})).await;
    client.join_ok("echo:b", json!({})).await;
    let (_, reply) = client.join("echo:c", json!({})).await;
    assert_eq!(
        reply[4]["response"],
        json!({"reason": "too many channels joined"})
    );
    // Rejoining a topic already joined replaces it, so it is not refused.
    client.join_ok("echo:a", json!({})).await;
}

#[tokio::test]
async fn a_flood_of_refused_joins_holds_no_channel_slot() {
    // 40 joins fit the burst of 50, and none is accepted: the cap of 10 is never reached.
    let mut config = config();
    (
        config.limits.messages_per_second,
        config.limits.max_channels,
    ) = (50, 10);
    let server = serve(config).await;
    let mut client = server.client().await;
    for i in 0..40 {
        let join = json!([format!("{i}"), format!("{i}"), format!("echo:{i}"), "phx_join", {"refuse": "no"}]);
        client.send(join).await;
    }
    let mut reasons = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let frame = client.recv().await;
        reasons.insert(frame[4]["response"]["reason"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        reasons,
        ["no".to_owned()].into(),
        "neither rate-limited nor capped"
    );
    client.join_ok("echo:a", json!({})).await;
}

#[tokio::test]
async fn v1_objects_when_vsn_is_absent_or_1x() {
    let server = serve(config()).await;
    for query in ["", "vsn=1.0.0"] {
        let mut client = Client::connect(&server.socket_url(query)).await;
        client
            .send(json!({"topic": "echo:a", "event": "phx_join", "payload": {}, "ref": "1", "join_ref": "1"}))
            .await;
        assert_eq!(
            client.recv().await,
            json!({"topic": "echo:a", "event": "phx_reply", "ref": "1", "join_ref": "1",
                   "payload": {"status": "ok", "response": {"topic": "echo:a"}}})
        );
        // A V1 client may leave the payload out: it reads as {}.
        client
            .send(json!({"topic": "echo:a", "event": "echo", "ref": "2", "join_ref": "1"}))
            .await;
        assert_eq!(
            client.recv().await["payload"],
            json!({"status": "ok", "response": {}})
        );
        client
            .send(json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "3"}))
            .await;
        assert_eq!(
            client.recv().await["payload"],
            json!({"status": "ok", "response": {}})
        );
    }
}

#[tokio::test]
async fn unknown_vsn_is_refused_before_the_upgrade() {
    let server = serve(config()).await;
    for vsn in ["3.0.0", "banana", "2.0.0.0"] {
        let refused = try_connect(&server.socket_url(&format!("vsn={vsn}")), &[]).await;
        assert_eq!(refused.err().map(|s| s.as_u16()), Some(403), "vsn {vsn}");
    }
}

#[tokio::test]
async fn the_connect_hook_refuses_with_403_and_its_assigns_reach_the_channels() {
    let server = serve(config()).await;
    let refused = try_connect(&server.socket_url("vsn=2.0.0&refuse=1"), &[]).await;
    assert_eq!(refused.err().map(|s| s.as_u16()), Some(403));
    let mut alice = Client::connect(&server.socket_url("vsn=2.0.0&user=alice")).await;
    alice.join_ok("presence:lobby", json!({})).await;
    let state = alice.recv().await;
    assert_eq!(state[3], "presence_state");
    assert!(state[4].get("alice").is_some(), "{state}");
}

#[tokio::test]
async fn by_default_only_loopback_origins_are_allowed_whatever_the_host_header_says() {
    let server = serve(config()).await;
    let url = server.socket_url("vsn=2.0.0");
    let port = server.addr.port();
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

fn allowing(origins: &[&str]) -> phoenix_channels::transport::TransportConfig {
    let mut config = config();
    let list: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    config.allowed_origins = AllowedOrigins::new(&list, [127, 0, 0, 1].into());
    config
}

#[tokio::test]
async fn two_origin_headers_are_refused() {
    let server = serve(allowing(&["*"])).await;
    let url = server.socket_url("vsn=2.0.0");
    let two = [
        ("origin", "http://localhost:4000"),
        ("origin", "http://evil.example"),
    ];
    assert_eq!(upgrade_status(&url, &two).await, 403);
    assert_eq!(upgrade_status(&url, &two[1..]).await, 101, "one, with `*`");
}

#[tokio::test]
async fn configured_origins_are_allowed_besides_loopback_and_star_allows_any() {
    let server = serve(allowing(&["https://app.example", "other.example:8443"])).await;
    let url = server.socket_url("vsn=2.0.0");
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

    let any = serve(allowing(&["*"])).await;
    let url = any.socket_url("vsn=2.0.0");
    let rebinding = [("host", "evil.example"), ("origin", "http://evil.example")];
    assert_eq!(upgrade_status(&url, &rebinding).await, 101);
}

#[tokio::test]
async fn auth_token_subprotocol_is_answered_with_phoenix() {
    let server = serve(config()).await;
    let url = server.socket_url("vsn=2.0.0");
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("secret token");
    let offered = format!("phoenix, base64url.bearer.phx.{token}");
    let (mut client, protocol) = try_connect(&url, &[("sec-websocket-protocol", &offered)])
        .await
        .unwrap();
    assert_eq!(protocol.as_deref(), Some("phoenix"));
    client.join_ok("echo:a", json!({})).await;

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
async fn auth_tokens_in_the_npm_clients_standard_base64_or_in_base64url_are_decoded() {
    // The npm client encodes with `btoa(token).replace(/=/g, "")`: the standard alphabet
    // ('+', '/') without padding, whatever the prefix says, and Phoenix decodes it so.
    // Clients that follow the prefix's name send base64url; padding may be left on.
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let server = serve(config()).await;
    // (token, as a query value): the hook refuses unless the decoded token is the `auth` param.
    for (token, in_query) in [("hi?>~~", "hi%3F%3E~~"), ("a>b>c~d", "a%3Eb%3Ec~d")] {
        let url = server.socket_url(&format!("vsn=2.0.0&auth={in_query}"));
        for encoded in [
            STANDARD_NO_PAD.encode(token),
            STANDARD.encode(token),
            URL_SAFE_NO_PAD.encode(token),
        ] {
            let offered = format!("phoenix, base64url.bearer.phx.{encoded}");
            let (mut client, protocol) = try_connect(&url, &[("sec-websocket-protocol", &offered)])
                .await
                .unwrap_or_else(|status| panic!("{token:?} as {encoded}: {status}"));
            assert_eq!(protocol.as_deref(), Some("phoenix"), "{encoded}");
            client.join_ok("echo:a", json!({})).await;
        }
    }
    assert_eq!(
        STANDARD_NO_PAD.encode("hi?>~~"),
        "aGk/Pn5+",
        "both '+' and '/'"
    );

    let wrong = server.socket_url("vsn=2.0.0&auth=other");
    let offered = format!(
        "phoenix, base64url.bearer.phx.{}",
        STANDARD_NO_PAD.encode("hi?>~~")
    );
    assert_eq!(
        try_connect(&wrong, &[("sec-websocket-protocol", &offered)])
            .await
            .err()
            .map(|s| s.as_u16()),
        Some(403),
        "the hook sees the token"
    );
}

#[tokio::test]
async fn malformed_frames_get_clear_errors_and_change_nothing() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
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

    client.send(json!({"topic": "echo:a"})).await;
    assert!(invalid(&client.recv().await).contains("array"));

    client.send(json!([join_ref, "41", "echo:a"])).await;
    let frame = client.recv().await;
    assert!(invalid(&frame).contains("5-element"));
    assert_eq!(
        frame[1], "41",
        "the ref is kept so the client's push gets its answer"
    );

    for (bad, detail) in [
        (json!([join_ref, "42", 7, "echo", {}]), "topic"),
        (json!([join_ref, "43", "echo:a", null, {}]), "event"),
        (json!([join_ref, "44", "echo:a", ["echo"], {}]), "event"),
        (json!([1, "45", "echo:a", "echo", {}]), "join_ref"),
        (json!([join_ref, 46, "echo:a", "echo", {}]), "ref"),
        (json!([join_ref, "47", "", "echo", {}]), "topic"),
        (
            json!([join_ref, "48", "x".repeat(300), "echo", {}]),
            "topic",
        ),
    ] {
        client.send(bad.clone()).await;
        let frame = client.recv().await;
        assert!(invalid(&frame).contains(detail), "{bad} -> {frame}");
    }

    // A payload serde cannot read (a lone surrogate) on a push whose refs and topic it can.
    client
        .send_text(&format!(r#"["{join_ref}","49","echo:a","echo","\ud83d"]"#))
        .await;
    let frame = client.recv().await;
    assert_eq!((&frame[1], &frame[2]), (&json!("49"), &json!("echo:a")));
    assert_eq!(frame[4]["response"]["reason"], "invalid_payload", "{frame}");

    assert_answers(&mut client, &join_ref, "the channel is untouched").await;
}

#[tokio::test]
async fn binary_pushes_are_answered_in_binary_and_bad_ones_get_errors() {
    let server = serve(config()).await;
    let mut client = server.client().await;
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
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    let mut push = vec![0, join_ref.len() as u8, 2, 6, 4];
    push.extend_from_slice(join_ref.as_bytes());
    push.extend_from_slice(b"99echo:aecho\x00\xffdata");
    client.send_binary(push).await;
    // A reply (kind 1): join_ref, ref, topic, status, then the payload's bytes as they came.
    let mut reply = vec![1, join_ref.len() as u8, 2, 6, 2];
    reply.extend_from_slice(join_ref.as_bytes());
    reply.extend_from_slice(b"99echo:aok\x00\xffdata");
    assert_eq!(client.next_frame().await, Ok(Message::binary(reply)));
}

#[tokio::test]
async fn binary_frames_need_vsn_2() {
    let server = serve(config()).await;
    let mut client = Client::connect(&server.socket_url("vsn=1.0.0")).await;
    let mut push = vec![0, 0, 1, 7, 9];
    push.extend_from_slice(b"1phoenixheartbeat");
    client.send_binary(push).await;
    let frame = client.recv().await;
    assert_eq!(frame["payload"]["response"]["reason"], "invalid_message");
}

#[tokio::test]
async fn oversized_frames_close_that_socket_only() {
    let mut config = config();
    config.max_frame_size = 1024;
    let server = serve(config).await;
    let mut bystander = server.client().await;
    let (join_ref, _) = bystander.join_ok("echo:a", json!({})).await;
    let mut client = server.client().await;
    client
        .send_text(&format!(
            "[null,\"1\",\"phoenix\",\"heartbeat\",\"{}\"]",
            "x".repeat(2000)
        ))
        .await;
    assert_eq!(client.closed().await, Some(1009));
    assert_answers(
        &mut bystander,
        &join_ref,
        "another connection's channel is untouched",
    )
    .await;
}

#[tokio::test]
async fn a_1mb_frame_gets_1009_after_the_replies_before_it() {
    let server = serve(config()).await;
    let mut client = server.client().await;
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
async fn floods_are_rate_limited_then_closed_with_1008() {
    let server = serve(config()).await;
    let mut bystander = server.client().await;
    let mut client = server.client().await;
    // More than twice the rate (100) at once: a burst's worth is answered, a second's worth
    // refused, then the socket is closed while most of the flood is still unread.
    for i in 0..1000 {
        client
            .try_send_text(&json!([null, format!("{i}"), "phoenix", "heartbeat", {}]).to_string())
            .await;
    }
    let (mut ok, mut limited) = (0, 0);
    let close = loop {
        match client.next_frame().await {
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

/// Sends `sent` `slow` events at once and counts the ok and `overloaded` replies.
async fn burst_of_slow_events(client: &mut Client, join_ref: &str, sent: usize) -> (usize, usize) {
    let frames: Vec<Value> = (0..sent)
        .map(|i| json!([join_ref, format!("e{i}"), "echo:a", "slow", {"ms": 1}]))
        .collect();
    client.burst(join_ref, &frames).await
}

#[tokio::test]
async fn a_channel_with_a_full_inbox_refuses_events_as_overloaded() {
    let mut config = config();
    config.limits.messages_per_second = 100_000;
    let server = serve(config).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    // Far more events than the channel's inbox holds (64), all waiting at once: the channel
    // handles one at a time, each taking a millisecond at least.
    let (ok, overloaded) = burst_of_slow_events(&mut client, &join_ref, 300).await;
    assert!(overloaded > 0, "every one of 300 events was queued");
    assert!(
        ok >= 64,
        "the inbox's 64 events are answered, not refused: {ok}"
    );
    assert_answers(
        &mut client,
        &join_ref,
        "the channel goes on once its backlog is done",
    )
    .await;
}

#[tokio::test]
async fn the_channel_inbox_is_configurable() {
    let mut config = config();
    config.limits.messages_per_second = 100_000;
    config.limits.channel_inbox = 1000;
    let server = serve(config).await;
    let mut client = server.client().await;
    let (join_ref, _) = client.join_ok("echo:a", json!({})).await;
    let (ok, overloaded) = burst_of_slow_events(&mut client, &join_ref, 300).await;
    assert_eq!((ok, overloaded), (300, 0), "the same burst fits in 1000");
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout_and_heartbeats_keep_it_open() {
    let mut config = config();
    config.limits.idle_timeout = Duration::from_millis(400);
    let server = serve(config).await;
    let mut silent = server.client().await;
    let mut beating = server.client().await;
    for i in 0..10 {
        beating
            .send(json!([null, format!("{i}"), "phoenix", "heartbeat", {}]))
            .await;
        assert_eq!(beating.recv().await[4]["status"], "ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let mut config = config();
    config.limits.idle_timeout = Duration::from_millis(200);
    config.limits.close_timeout = Duration::from_millis(300);
    let server = serve(config).await;
    let started = std::time::Instant::now();
    let mut client = server.client().await;
    // The client reads nothing, so it never answers the server's close frame: the server
    // waits for that answer for the close timeout, then lets go.
    while server.endpoint.connections() > 0 {
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "the connection is still held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "held for the idle timeout and then the close timeout"
    );
    assert_eq!(client.closed().await, Some(1001));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_the_configured_code_never_1000() {
    for code in [1001, 1012] {
        let mut config = config();
        config.limits.shutdown_close_code = code;
        let server = serve(config).await;
        let mut client = server.client().await;
        client.join_ok("echo:a", json!({})).await;
        let endpoint = std::sync::Arc::clone(&server.endpoint);
        let stopping = tokio::spawn(async move { endpoint.shutdown().await });
        assert_eq!(client.closed().await, Some(code));
        stopping.await.unwrap();
        assert_eq!(
            upgrade_status(&server.socket_url("vsn=2.0.0"), &[]).await,
            503,
            "no new socket once shut down"
        );
    }
}

#[tokio::test]
async fn the_connection_cap_refuses_upgrades_with_503() {
    let mut config = config();
    config.max_connections = 2;
    let server = serve(config).await;
    let _a = server.client().await;
    let b = server.client().await;
    let refused = try_connect(&server.socket_url("vsn=2.0.0"), &[]).await;
    assert_eq!(refused.err().map(|s| s.as_u16()), Some(503));
    b.close().await;
    // The slot frees once the server has seen the close.
    server.connections_down_to(1).await;
    assert!(
        try_connect(&server.socket_url("vsn=2.0.0"), &[])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn every_mount_serves_the_socket() {
    let server = serve_at(config(), &["/socket", "/v1/socket"]).await;
    for mount in ["/socket", "/v1/socket"] {
        let url = format!("ws://{}{mount}/websocket?vsn=2.0.0", server.addr);
        let mut client = Client::connect(&url).await;
        client.join_ok("echo:a", json!({})).await;
    }
}

#[tokio::test]
async fn pings_are_ponged() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    client
        .send_message(Message::Ping(b"hi".to_vec().into()))
        .await;
    assert_eq!(
        client.raw_next().await,
        Message::Pong(b"hi".to_vec().into())
    );
}

#[tokio::test]
async fn a_client_close_is_answered_with_its_code() {
    let server = serve(config()).await;
    let mut client = server.client().await;
    client.join_ok("echo:a", json!({})).await;
    assert_eq!(client.close_handshake(1000).await, Ok(Some(1000)));
    let mut client = server.client().await;
    client.sync().await;
    assert_eq!(client.close_handshake(4001).await, Ok(Some(4001)));
}

#[tokio::test]
async fn presence_payloads_reach_the_client_in_the_npm_clients_format() {
    let server = serve(config()).await;
    let mut alice = Client::connect(&server.socket_url("vsn=2.0.0&user=alice")).await;
    let (alice_ref, _) = alice.join_ok("presence:lobby", json!({})).await;
    let alice_meta = json!({"metas": [{"phx_ref": alice_ref}]});
    assert_eq!(
        alice.recv().await,
        json!([alice_ref, null, "presence:lobby", "presence_state", {"alice": alice_meta}])
    );
    assert_eq!(
        alice.recv().await,
        json!([alice_ref, null, "presence:lobby", "presence_diff", {"joins": {"alice": alice_meta}, "leaves": {}}])
    );
}
