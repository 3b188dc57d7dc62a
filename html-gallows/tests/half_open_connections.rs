//! Connections that never finish their request (slowloris) are dropped after the header
//! read timeout, while a player goes on playing.

mod support;

use std::time::Duration;

use service_kit::testing::closed_within;
use support::{Browser, Stack};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn half_sent_requests_are_dropped_after_the_header_read_timeout_while_a_player_plays() {
    let stack = Stack::start_with("otter", &[], &["--header-read-timeout", "300ms"]).await;
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(stack.gallows.addr()).await.unwrap();
        stream
            .write_all(b"POST /hangman/current/guess HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;
    for stream in &mut stalled {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "a half-sent request was held past the header read timeout"
        );
    }
    browser.play(&game, "o").await;
}
