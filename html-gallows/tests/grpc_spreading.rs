//! Spreading html-gallows' calls over game-service replicas (issue 11): a Kubernetes ClusterIP
//! Service balances connections, not calls, so html-gallows connects to every address of the
//! game service, and the game service retires connections by age so that clients reconnect.
//! Real game services (processes over a real Redis, or in-process), a real html-gallows.

#[path = "../../ws-gateway/tests/replicas/mod.rs"]
mod replicas;
mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use game_service::testing::TestGameService;
use replicas::{Redis, assert_both_served, counting_proxy, two_replicas};
use support::{Browser, COOKIE_KEY};

async fn gallows(game_service: &str) -> html_gallows::Server {
    gallows_with(game_service, &[]).await
}

async fn gallows_with(game_service: &str, flags: &[&str]) -> html_gallows::Server {
    let args = [
        "html-gallows",
        "--listen",
        "127.0.0.1:0",
        "--game-service",
        game_service,
        "--cookie-key",
        COOKIE_KEY,
    ];
    let args = args.iter().chain(flags);
    html_gallows::start(html_gallows::Config::parse_from(args))
        .await
        .unwrap()
}

/// Plays games of "gallows" (five guesses each, a-e: never over) until `enough(moves)`; every
/// guess must be counted and shown. Returns the moves made.
async fn play_until(browser: &Browser, mut enough: impl FnMut(usize) -> bool) -> usize {
    let mut moves = 0;
    while !enough(moves) {
        let mut page = browser.new_game().await;
        for guess in ["a", "b", "c", "d", "e"] {
            page = browser.play(&page, guess).await;
            moves += 1;
        }
        assert_eq!(page.turns_left(), 3, "{}", page.body);
    }
    moves
}

/// The one word of every game.
const WORDS: &[&str] = &["gallows"];

#[tokio::test]
async fn moves_reach_every_replica_of_the_game_service() {
    let redis = Redis::start();
    let (a, b) = two_replicas(&redis, WORDS).await;
    let server = gallows(&format!("{},{}", a.url(), b.url())).await;
    play_until(&Browser::at(&server.url()), |moves| moves >= 200).await;
    assert_both_served(&a, &b, 200).await;
}

#[tokio::test]
async fn connections_retired_by_age_are_reopened_without_a_failed_request() {
    let games = TestGameService::builder()
        .words(WORDS)
        .flags(&["--max-connection-age", "300ms"])
        .spawn()
        .await;
    let (proxy, connections) = counting_proxy(games.addr().to_string()).await;
    let server = gallows(&format!("http://{proxy}")).await;
    // Four players without pause for 2 s, through several retirements: every page is right.
    let started = Instant::now();
    let browsers: Vec<Browser> = (0..4).map(|_| Browser::at(&server.url())).collect();
    let player = |browser| play_until(browser, |_| started.elapsed() >= Duration::from_secs(2));
    let (one, two, three, four) = tokio::join!(
        player(&browsers[0]),
        player(&browsers[1]),
        player(&browsers[2]),
        player(&browsers[3]),
    );
    let moves = one + two + three + four;
    // Two channels (calls and watches), each reconnected after every retirement.
    let opened = connections.load(Ordering::Relaxed);
    assert!(
        opened >= 4,
        "connections were retired and reopened: {opened} for {moves} moves"
    );
    games.stop().await;
}

/// Plays `games` games of "gallows" one after another, and checks `/readyz` after each: every
/// page must be right (a failed call would be a 503 page).
async fn every_page_right(server: &html_gallows::Server, browser: &Browser, games: usize) {
    for _ in 0..games {
        play_until(browser, |moves| moves >= 5).await;
        let ready = reqwest::get(format!("{}/readyz", server.url()))
            .await
            .unwrap();
        assert_eq!(ready.status(), reqwest::StatusCode::OK);
    }
}

#[tokio::test]
async fn an_address_with_no_game_service_behind_it_gets_no_calls() {
    let redis = Redis::start();
    let (a, _b) = two_replicas(&redis, WORDS).await;
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", nothing.local_addr().unwrap());
    drop(nothing);
    let server = gallows(&format!("{},{dead}", a.url())).await;
    every_page_right(&server, &Browser::at(&server.url()), 20).await;
}

#[tokio::test]
async fn a_replica_that_shuts_down_or_crashes_gets_no_more_calls_and_no_page_fails() {
    let redis = Redis::start();
    let (a, mut b) = two_replicas(&redis, WORDS).await;
    let c = replicas::Replica::spawn(WORDS, &["--store", &redis.url()]);
    let server = gallows(&format!("{},{},{}", a.url(), b.url(), c.url())).await;
    let browser = Browser::at(&server.url());
    every_page_right(&server, &browser, 4).await;
    // A rollout: B goes gracefully; then C crashes. Players go on through A alone.
    b.terminate();
    every_page_right(&server, &browser, 10).await;
    drop(c);
    every_page_right(&server, &browser, 10).await;
    b.kill_9();
}

#[tokio::test]
async fn routing_follows_many_health_changes_that_no_watch_reads() {
    // Each replica over a Redis of its own: with its Redis killed a replica turns
    // NOT_SERVING, and SERVING again once it is back.
    let (mut redis_a, mut redis_b) = (Redis::start(), Redis::start());
    let flags = |redis: &Redis| {
        [
            "--store".to_owned(),
            redis.url(),
            "--store-timeout".to_owned(),
            "200ms".to_owned(),
        ]
    };
    let spawn = |redis: &Redis| {
        let flags = flags(redis);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        replicas::Replica::spawn(WORDS, &flags)
    };
    let (a, b) = (spawn(&redis_a), spawn(&redis_b));
    // No tally cache: no watch is ever made, so the watches' balanced channel never reads
    // its queue of changes, and B comes and goes more times than the queue holds (16).
    let server = gallows_with(
        &format!("{},{}", a.url(), b.url()),
        &[
            "--tally-cache-games",
            "0",
            "--grpc-resolve-interval",
            "100ms",
        ],
    )
    .await;
    for _ in 0..9 {
        redis_b.kill();
        tokio::time::sleep(Duration::from_millis(700)).await;
        redis_b.restart();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // Now only B serves: once A says so, and a probe round (every 100 ms) has seen it,
    // html-gallows plays on B alone.
    redis_a.kill();
    until_not_serving(&a).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    every_page_right(&server, &Browser::at(&server.url()), 2).await;
}

/// Waits until `replica`'s health check answers NOT_SERVING, for at most ten seconds.
async fn until_not_serving(replica: &replicas::Replica) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let channel = tonic::transport::Endpoint::from_shared(replica.url())
        .unwrap()
        .connect_lazy();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = HealthCheckRequest::default();
        let status = HealthClient::new(channel.clone()).check(request).await;
        if status.is_ok_and(|answer| answer.into_inner().status() == ServingStatus::NotServing) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never turned NOT_SERVING"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
