//! Game-service replicas for the front ends' tests: a `redis-server` of the test's own and the
//! game-service binary in processes of their own over it. Shared by ws-gateway's and
//! html-gallows' tests (html-gallows includes this file by its path).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use game_service::testing::RedisServer as Redis;
use game_service::testing::{GameServiceProcess, game_service_binary};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A game-service replica in a process of its own, so that each has its own `/metrics`
/// (in-process servers would share one recorder); killed when dropped.
pub struct Replica(GameServiceProcess);

impl Replica {
    /// Starts the binary with the word list `words` and `flags`.
    pub fn spawn(words: &[&str], flags: &[&str]) -> Replica {
        Replica(GameServiceProcess::spawn(
            game_service_binary(),
            words,
            flags,
        ))
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    /// SIGTERM: it shuts down gracefully, as a pod in a rollout.
    pub fn terminate(&self) {
        self.0.terminate();
    }

    /// `kill -9`: it is gone at once, as a pod that crashed.
    pub fn kill_9(&mut self) {
        self.0.kill_9();
    }

    /// The moves this replica played (on `Play` streams or `MakeMove` calls), from its
    /// `/metrics`.
    pub async fn moves_served(&self) -> f64 {
        self.0.metric("hangman_moves_total").await
    }
}

/// A TCP proxy in front of `upstream` that counts the connections it is asked for.
pub async fn counting_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                // Each direction on its own, to its end: the game service's last replies on a
                // retired connection still reach the client when the other direction fails
                // (copy_bidirectional would drop both).
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                    let _ = to_server.shutdown().await;
                });
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                let _ = to_client.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

/// Two replicas over `redis` that retire connections after 300 ms, as deployed (front ends
/// reconnect all along).
pub async fn two_replicas(redis: &Redis, words: &[&str]) -> (Replica, Replica) {
    let store = redis.url();
    let flags = [
        "--store",
        &store,
        "--max-connection-age",
        "300ms",
        "--max-connection-age-grace",
        "1s",
    ];
    (Replica::spawn(words, &flags), Replica::spawn(words, &flags))
}

/// Both replicas served MakeMove calls, per their `/metrics`: `moves` in all.
pub async fn assert_both_served(a: &Replica, b: &Replica, moves: usize) {
    let (on_a, on_b) = (a.moves_served().await, b.moves_served().await);
    assert_eq!(on_a + on_b, moves as f64, "every move was served once");
    assert!(on_a > 0.0 && on_b > 0.0, "moves: {on_a} on A, {on_b} on B");
}
