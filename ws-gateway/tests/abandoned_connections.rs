//! 10 000 connections opened and abandoned (upgraded, then silent forever) do not hurt other
//! clients, and the idle timeout reaps them all.
//!
//! Each connection is an open file in this process and another in the gateway, so the test
//! raises its soft limit on open files first (the gateway inherits it). Where the hard limit
//! is too low for that, it fails and says so: it never tests fewer connections than it says.

mod common;

use std::time::Duration;

use common::{Client, GatewayProcess, raise_open_files_limit};
use futures::StreamExt;
use serde_json::json;

const ABANDONED: usize = 10_000;

/// Open files besides the abandoned connections, in this process or the gateway: the
/// player, listeners, gRPC connections, metrics scrapes, the runtime, the binaries' own.
const OTHER_FILES: u64 = 1_024;

#[tokio::test]
async fn ten_thousand_abandoned_connections_are_reaped_and_hurt_no_one() {
    raise_open_files_limit(ABANDONED as u64 + OTHER_FILES);
    let games = common::game_service().await;
    let gateway = GatewayProcess::spawn(&games.url(), &["--idle-timeout", "15s"]).await;
    let url = gateway.socket_url();

    let clients: Vec<Client> = futures::stream::iter(0..ABANDONED)
        .map(|_| Client::connect(&url))
        .buffer_unordered(100)
        .collect()
        .await;
    assert_eq!(clients.len(), ABANDONED);

    let mut player = Client::connect(&url).await;
    let (join_ref, _) = player.join_ok("hangman:game", json!({})).await;
    let (reply, _) = player
        .call(&join_ref, "hangman:game", "make_move", json!("h"))
        .await;
    assert_eq!(
        reply["status"], "ok",
        "a new client plays while {ABANDONED} others sit silent"
    );
    assert!(gateway.metric("ws_gateway_connections").await >= (ABANDONED + 1) as f64);

    // Nobody sends anything any more: the idle timeout closes every connection.
    let mut open = f64::MAX;
    for _ in 0..600 {
        open = gateway.metric("ws_gateway_connections").await;
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0.0, "every idle connection is closed");
    drop(clients);
}
