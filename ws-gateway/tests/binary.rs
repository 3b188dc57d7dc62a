//! The `ws-gateway` binary as an operator runs it: what it writes to a log that is not a
//! terminal, and a game-service URL and paths it refuses at start.

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

/// A `--mount` or `--static-path` the router could not serve stops the start with an error
/// naming the flag and its value, not a panic deep in the router.
#[tokio::test]
async fn misconfigured_paths_stop_the_start_with_the_flag_and_value_named() {
    let on_route = "invalid --static-path \"/socket/websocket/\": /socket/websocket is the \
                    gateway's own route (of --mount \"/socket\")";
    for (args, error) in [
        (
            &["--static-path", "ws/v1/"][..],
            "invalid --static-path \"ws/v1/\": it must start with '/'",
        ),
        (
            &["--static-path", ""],
            "invalid --static-path \"\": it must start with '/'",
        ),
        (
            &["--mount", "socket"],
            "invalid --mount \"socket\": it must start with '/'",
        ),
        (
            &["--mount", "/a/", "--mount", "/a"],
            "invalid --mount \"/a\": it is the same mount as --mount \"/a/\"",
        ),
        (
            &[
                "--mount",
                "/socket",
                "--mount",
                "/v1",
                "--mount",
                "/socket//",
            ],
            "invalid --mount \"/socket//\": it is the same mount as --mount \"/socket\"",
        ),
        (
            &["--static-path", "/metrics"],
            "invalid --static-path \"/metrics\": /metrics is the gateway's own route",
        ),
        (
            &["--static-path", "/healthz/"],
            "invalid --static-path \"/healthz/\": /healthz is the gateway's own route",
        ),
        (
            &["--static-path", "/readyz/"],
            "/readyz is the gateway's own route",
        ),
        (
            &["--static-path", "/version"],
            "/version is the gateway's own route",
        ),
        (&["--static-path", "/socket/websocket/"], on_route),
        // The long-poll path is the mount's whether long-poll is on or not.
        (
            &[
                "--static-path",
                "/socket/longpoll",
                "--transports",
                "websocket",
            ],
            "/socket/longpoll is the gateway's own route (of --mount \"/socket\")",
        ),
        (
            &["--mount", "/", "--static-path", "/websocket/"],
            "/websocket is the gateway's own route (of --mount \"/\")",
        ),
        (
            &["--mount", "/:game"],
            "invalid --mount \"/:game\": a path segment may not start with ':' or '*'",
        ),
        (
            &["--static-path", "/app/*rest/"],
            "invalid --static-path \"/app/*rest/\": a path segment may not start",
        ),
        (
            &["--mount", "/{game}"],
            "invalid --mount \"/{game}\": a path segment may not start",
        ),
    ] {
        let output = gateway(args).output().await.expect("ws-gateway runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(error), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
