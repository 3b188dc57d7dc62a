//! Connections that never finish their request (slowloris) are dropped after the header
//! read timeout, while a player goes on playing.

mod support;

use std::time::Duration;

use service_kit::testing::{assert_all_closed_within, half_sent_requests};
use support::{Browser, Stack};

#[tokio::test]
async fn half_sent_requests_are_dropped_after_the_header_read_timeout_while_a_player_plays() {
    let stack = Stack::start_with("otter", &[], &["--header-read-timeout", "300ms"]).await;
    let head = b"POST /hangman/current/guess HTTP/1.1\r\nHost: x\r\n";
    let mut stalled = half_sent_requests(stack.gallows.addr(), head, 100).await;
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;
    assert_all_closed_within(&mut stalled, Duration::from_secs(5)).await;
    browser.play(&game, "o").await;
}
