//! A client that keeps sending but never reads what it is sent cannot hold its connection:
//! once a write to it has waited the idle timeout, the server drops it.

mod common;

use std::time::Duration;

use common::{config, serve};
use phoenix_channels::test_client::Client;

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_after_the_idle_timeout() {
    let mut config = config();
    config.limits.idle_timeout = Duration::from_secs(1);
    config.limits.messages_per_second = 1_000_000;
    let server = serve(config).await;
    let mut deaf = Client::connect(&server.socket_url("vsn=2.0.0")).await;
    // Heartbeats, each answered, until the replies the client never reads fill the socket
    // buffers both ways and the client's own sends stall.
    let heartbeat = r#"[null,"1","phoenix","heartbeat",{}]"#;
    let mut stalled = false;
    for sent_so_far in 0..1_000_000 {
        if sent_so_far % 1_000 == 0 && server.endpoint.connections() == 0 {
            break;
        }
        let sent = tokio::time::timeout(Duration::from_millis(500), deaf.try_send_text(heartbeat));
        if sent.await.is_err() {
            stalled = true;
            break;
        }
    }
    // (Or the server already dropped it, and the last sends went nowhere.)
    assert!(
        stalled || server.endpoint.connections() == 0,
        "the server took every message of a client that read no reply"
    );
    let dropped = tokio::time::timeout(Duration::from_secs(10), async {
        while server.endpoint.connections() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        dropped.is_ok(),
        "a client that read nothing was held past the idle timeout"
    );
    // Others are served as before.
    let mut other = server.client().await;
    other.join_ok("echo:a", serde_json::json!({})).await;
}
