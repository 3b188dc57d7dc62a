//! Connections that never finish their HTTP request (slowloris) are dropped after the header
//! read timeout, and never crowd out players.

mod common;

use std::time::Duration;

use serde_json::json;
use service_kit::testing::{assert_all_closed_within, half_sent_requests};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[tokio::test]
async fn half_sent_upgrade_requests_are_dropped_while_a_player_plays() {
    let sys = common::system(&["--header-read-timeout", "300ms"]).await;
    let head = b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n";
    let mut stalled = half_sent_requests(sys.gateway.addr(), head, 100).await;
    let mut player = sys.client().await;
    let (join_ref, _) = player.join_ok("hangman:game", json!({})).await;
    assert_all_closed_within(&mut stalled, Duration::from_secs(5)).await;
    // The player's upgraded socket is not an HTTP request in waiting: it is still served.
    let (reply, _) = player
        .call(&join_ref, "hangman:game", "make_move", json!("e"))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(sys.gateway.connections(), 1);
}

#[tokio::test]
async fn at_the_pending_cap_a_player_waits_until_a_half_open_connection_is_dropped() {
    let sys = common::system(&[
        "--header-read-timeout",
        "2s",
        "--max-pending-connections",
        "8",
    ])
    .await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(TcpStream::connect(sys.gateway.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let connect = sys.client();
    tokio::pin!(connect);
    assert!(
        timeout(Duration::from_millis(500), &mut connect)
            .await
            .is_err(),
        "a ninth connection was admitted past the cap"
    );
    let mut player = timeout(Duration::from_secs(10), connect)
        .await
        .expect("admitted once the half-open connections are dropped");
    player.join_ok("hangman:game", json!({})).await;
}
