//! The gateway's side of the Phoenix Channels protocol: its flags reach the transport of
//! `phoenix-channels`, and the Hangman channels behind it answer as the protocol says. The
//! protocol itself (heartbeats, joins, leaves, refs, V1/V2/binary frames, malformed frames,
//! origins, the token subprotocol, limits, close codes) is tested in
//! `phoenix-channels/tests/` against an echo channel.

mod common;

use common::{Client, System, system, try_connect};
use serde_json::{Value, json};

#[tokio::test]
async fn the_transport_flags_reach_the_protocol_layer() {
    let sys = system(&[
        "--max-frame-size",
        "1024",
        "--allowed-origins",
        "https://app.example",
        "--max-connections",
        "2",
        "--idle-timeout",
        "300ms",
    ])
    .await;
    let url = sys.socket_url("vsn=2.0.0");
    let mut silent = sys.client().await;
    let other = sys.client().await;
    let over_the_cap = try_connect(&url, &[]).await;
    assert_eq!(
        over_the_cap.err().map(|s| s.as_u16()),
        Some(503),
        "--max-connections"
    );
    assert_eq!(silent.closed().await, Some(1001), "--idle-timeout");
    drop(other);
    while sys.gateway.connections() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let origin = |o: &'static str| [("origin", o)];
    let allowed = try_connect(&url, &origin("https://app.example")).await;
    assert!(allowed.is_ok(), "--allowed-origins");
    let refused = try_connect(&url, &origin("https://evil.example")).await;
    assert_eq!(refused.err().map(|s| s.as_u16()), Some(403));

    let mut big = sys.client().await;
    big.send_text(&format!("\"{}\"", "x".repeat(2000))).await;
    assert_eq!(big.closed().await, Some(1009), "--max-frame-size");
}

#[tokio::test]
async fn a_binary_push_to_a_hangman_channel_is_invalid_payload() {
    let sys = system(&[]).await;
    let mut client = sys.client().await;
    let (join_ref, _) = client.join_ok("hangman:game", json!({})).await;
    // A well-formed binary push reaches the channel, which wants JSON.
    let mut push = vec![0, join_ref.len() as u8, 2, 12, 9];
    push.extend_from_slice(join_ref.as_bytes());
    push.extend_from_slice(b"99hangman:gamemake_movea");
    client.send_binary(push).await;
    let (reply, _) = client.reply_to("99").await;
    assert_eq!(reply[4]["response"]["reason"], "invalid_payload");
}

/// `--max-open-connections` counts a WebSocket for as long as it is open: past it, a new
/// connection waits in the kernel's accept queue until one closes.
#[tokio::test]
async fn the_open_connection_cap_holds_a_new_connection_until_a_websocket_closes() {
    let sys = system(&["--max-open-connections", "2"]).await;
    let url = sys.socket_url("vsn=2.0.0");
    let first = sys.client().await;
    let _second = sys.client().await;
    let waiting = tokio::spawn(async move { try_connect(&url, &[]).await.is_ok() });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was taken past the cap"
    );
    drop(first);
    let connected = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await;
    assert!(connected.expect("taken once one closed").unwrap());
}

/// `--max-channels` reaches the socket's cap; how the cap treats a rejoin is the crate's, tested
/// there.
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
    client.burst(join_ref, &frames).await
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

/// `GET {base}/socket/longpoll?{query}`: the answer's HTTP status and JSON body.
async fn longpoll_get(base: &str, query: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}/socket/longpoll?{query}"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_long_poll_flags_reach_the_protocol_layer() {
    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!";
    let games = common::game_service().await;
    // Two replicas sharing a key, each advertising port 0: the port it bound.
    let flags = [
        "--transports",
        "longpoll",
        "--longpoll-secret",
        SECRET,
        "--longpoll-advertise",
        "127.0.0.1:0",
        "--longpoll-max-sessions",
        "1",
        "--longpoll-window",
        "200ms",
    ];
    let holder = common::gateway(&games.url(), &flags).await;
    let other = common::gateway(&games.url(), &flags).await;

    let websocket = try_connect(
        &format!("{}/socket/websocket?vsn=2.0.0", holder.ws_url()),
        &[],
    )
    .await;
    assert_eq!(
        websocket.err().map(|s| s.as_u16()),
        Some(404),
        "--transports"
    );

    let (_, opened) = longpoll_get(&holder.url(), "vsn=2.0.0&player=ann").await;
    assert_eq!(opened["status"], 410, "{opened}");
    let token = opened["token"].as_str().unwrap();
    let (status, _) = longpoll_get(&holder.url(), "vsn=2.0.0").await;
    assert_eq!(status, 503, "--longpoll-max-sessions");

    // Through the other replica, a join of a game and its reply: forwarded to the holder,
    // which is only reachable at the port it advertised.
    let join = json!(["1", "1", "hangman:game", "phx_join", {}]).to_string();
    let posted = reqwest::Client::new()
        .post(format!("{}/socket/longpoll?token={token}", other.url()))
        .header("content-type", "application/x-ndjson")
        .body(join)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.text().await.unwrap(), r#"{"status":200}"#);
    let (_, polled) = longpoll_get(&other.url(), &format!("token={token}")).await;
    assert_eq!(polled["status"], 200, "{polled}");
    let reply: Value = serde_json::from_str(polled["messages"][0].as_str().unwrap()).unwrap();
    assert_eq!(reply[3], "phx_reply");
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    assert_eq!(reply[4]["response"]["tally"]["turns_left"], 7);
    assert_eq!(
        (holder.longpoll_sessions(), other.longpoll_sessions()),
        (1, 0)
    );
    // Nothing more to say within the 200 ms window.
    let (_, empty) = longpoll_get(&other.url(), &format!("token={token}")).await;
    assert_eq!(empty["status"], 204, "--longpoll-window");
}
