//! Spreading the gateway's calls over game-service replicas (issue 11): a Kubernetes ClusterIP
//! Service balances connections, not calls, so the gateway opens its connections across every
//! address of the game service, and the game service retires connections by age so that
//! clients reconnect. Real game services over a real Redis, a real gateway, real sockets.

mod common;
mod replicas;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::Client;
use replicas::{Redis, assert_both_served, counting_proxy, two_replicas};
use serde_json::json;

const GAME: &str = "hangman:game";

/// Plays `hangman:game` through `client` (letters a to z in turn, a new game when one ends)
/// until `enough(moves)`; every reply must be ok. Returns the moves made.
async fn play_until(client: &mut Client, mut enough: impl FnMut(usize) -> bool) -> usize {
    let (join_ref, _) = client.join_ok(GAME, json!({})).await;
    let (mut moves, mut letter) = (0, b'a');
    while !enough(moves) {
        let guess = (letter as char).to_string();
        let (reply, _) = client
            .call(&join_ref, GAME, "make_move", json!(guess))
            .await;
        assert_eq!(reply["status"], "ok", "move {moves} ({guess}): {reply}");
        moves += 1;
        letter += 1;
        if matches!(
            reply["response"]["game_state"].as_str(),
            Some("won" | "lost")
        ) {
            let (reply, _) = client.call(&join_ref, GAME, "new_game", json!({})).await;
            assert_eq!(
                reply["status"], "ok",
                "new game after {moves} moves: {reply}"
            );
            letter = b'a';
        }
    }
    moves
}

#[tokio::test]
async fn moves_through_the_gateway_reach_every_replica_of_the_game_service() {
    let redis = Redis::start();
    let dictionary = common::dictionary();
    let (a, b) = two_replicas(&redis, &dictionary).await;
    // Two replicas at fixed addresses, and fewer connections than addresses: each address
    // still gets one.
    let gateway = common::gateway(
        &format!("{},{}", a.url(), b.url()),
        &[
            "--grpc-connections",
            "1",
            "--max-pushes-per-second",
            "100000",
        ],
    )
    .await;
    let mut client =
        Client::connect(&format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url())).await;
    play_until(&mut client, |moves| moves == 200).await;
    assert_both_served(&a, &b, 200).await;
}

#[tokio::test]
async fn connections_retired_by_age_are_reopened_without_a_failed_call() {
    let games =
        common::game_service_with(&["--listen", "127.0.0.1:0", "--max-connection-age", "300ms"])
            .await;
    let (proxy, connections) = counting_proxy(games.addr().to_string()).await;
    let gateway = common::gateway(
        &format!("http://{proxy}"),
        &[
            "--grpc-connections",
            "1",
            "--max-pushes-per-second",
            "100000",
        ],
    )
    .await;
    // Eight players without pause for 2 s, through several retirements: every move is
    // answered ok (calls are in flight whenever the connection is retired).
    let url = format!("{}/socket/websocket?vsn=2.0.0", gateway.ws_url());
    let started = Instant::now();
    let players: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(&url).await;
                play_until(&mut client, |_| started.elapsed() >= Duration::from_secs(2)).await
            })
        })
        .collect();
    let mut moves = 0;
    for player in players {
        moves += player.await.expect("every move answered ok");
    }
    let opened = connections.load(Ordering::Relaxed);
    assert!(
        opened >= 3,
        "the one connection was retired and reopened: {opened} connections for {moves} moves"
    );
    games.stop().await;
}
