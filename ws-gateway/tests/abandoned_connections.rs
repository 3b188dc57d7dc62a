//! 10 000 connections opened and abandoned (upgraded, then silent forever) do not hurt other
//! clients, and the idle timeout reaps them all.

mod common;

use std::time::Duration;

use common::{Client, GatewayProcess};
use futures::StreamExt;
use serde_json::json;

/// The soft limit on open files of this process, from `/proc/self/limits`.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test]
async fn ten_thousand_abandoned_connections_are_reaped_and_hurt_no_one() {
    let wanted = 10_000;
    let abandoned =
        open_files_limit().map_or(wanted, |limit| wanted.min(limit.saturating_sub(256)));
    if abandoned < wanted {
        eprintln!(
            "open-files limit allows only {abandoned} abandoned connections (raise `ulimit -n` for {wanted})"
        );
    }
    let games = common::game_service().await;
    let gateway = GatewayProcess::spawn(&games.url(), &["--idle-timeout", "15s"]).await;
    let url = gateway.socket_url();

    let clients: Vec<Client> = futures::stream::iter(0..abandoned)
        .map(|_| Client::connect(&url))
        .buffer_unordered(100)
        .collect()
        .await;
    assert_eq!(clients.len(), abandoned);

    let mut player = Client::connect(&url).await;
    let (join_ref, _) = player.join_ok("hangman:game", json!({})).await;
    let (reply, _) = player
        .call(&join_ref, "hangman:game", "make_move", json!("h"))
        .await;
    assert_eq!(
        reply["status"], "ok",
        "a new client plays while {abandoned} others sit silent"
    );
    assert!(gateway.metric("ws_gateway_connections").await >= (abandoned + 1) as f64);

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
