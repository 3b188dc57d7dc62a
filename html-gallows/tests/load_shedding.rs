//! `--max-concurrent-requests`: a request beyond the limit is not queued; it is refused at
//! once with 503 and `Retry-After`, and the slot is free again when the request holding it
//! ends.

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_request_past_the_limit_is_refused_at_once_not_queued() {
    let server = html_gallows::start(html_gallows::Config::parse_from([
        "html-gallows",
        "--listen",
        "127.0.0.1:0",
        "--max-concurrent-requests",
        "1",
    ]))
    .await
    .expect("html-gallows starts");

    // The one slot: a form whose body never finishes arriving (the handler waits for it).
    let mut holder = TcpStream::connect(server.addr()).await.unwrap();
    holder
        .write_all(
            b"POST /hangman HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\ncsrf",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    let refused = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "refused at once, not after waiting for the slot (--request-timeout is 10 s): {:?}",
        asked.elapsed()
    );

    drop(holder);
    let served = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let response = reqwest::get(format!("{}/healthz", server.url()))
                .await
                .unwrap();
            if response.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "the slot is free once its request is gone");
    server.stop().await;
}
