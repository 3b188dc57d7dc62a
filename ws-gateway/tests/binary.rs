//! The `ws-gateway` binary as an operator runs it: what it writes to a log that is not a
//! terminal, and a game-service URL it refuses at start.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn gateway(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-gateway"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A log collected from a pipe (a container's log, `scripts/run`'s files) has no colour codes:
/// they would show as `[2m…[0m` litter.
#[tokio::test]
async fn a_log_that_is_not_a_terminal_has_no_colour_codes() {
    let mut child = gateway(&[]).spawn().expect("ws-gateway starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a log line");
            if line.contains("listening on") {
                return line;
            }
        }
    })
    .await
    .expect("the gateway logs `listening on ADDR`");
    assert!(!listening.contains('\u{1b}'), "{listening:?}");
    assert!(listening.contains(" INFO "), "{listening:?}");
}
/// This build has no TLS: an `https://` game service is refused at start, with the reason,
/// rather than failing every call later.
#[tokio::test]
async fn an_https_game_service_is_refused_at_start() {
    let output = gateway(&["--game-service", "https://game-service.example:443"])
        .output()
        .await
        .expect("ws-gateway runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("https://game-service.example:443") && stderr.contains("TLS"),
        "{stderr}"
    );
}
