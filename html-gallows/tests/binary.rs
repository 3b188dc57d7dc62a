//! The `html-gallows` binary as an operator runs it: flags and environment
//! twins, the `listening on ADDR` line, probes, and a clean exit on SIGTERM.

use std::{process::Stdio, time::Duration};

use reqwest::StatusCode;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

/// The binary running, with its stderr lines arriving on `lines`.
struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_html-gallows"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = command(args, env).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let (sender, lines) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Running {
    /// Reads stderr up to the `listening on ADDR` line; returns ADDR.
    async fn address(&mut self) -> String {
        let wait = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if let Some((_, rest)) = line.split_once("listening on ") {
                    // Up to white space, or the closing quote of a JSON string.
                    return rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                }
            }
            panic!("stderr ended before `listening on`: {:?}", self.seen);
        });
        wait.await.expect("the server announces its address")
    }

    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server stops on SIGTERM")
            .unwrap()
    }
}

/// A game service address where nothing listens.
const NOWHERE: &str = "http://127.0.0.1:9";

#[tokio::test]
async fn it_announces_its_address_serves_probes_and_stops_on_sigterm() {
    let mut server = spawn(&["--listen", "127.0.0.1:0", "--game-service", NOWHERE], &[]);
    let addr = server.address().await;
    assert!(
        server
            .seen
            .iter()
            .any(|line| line.contains("fresh random key")),
        "a missing cookie key is warned about: {:?}",
        server.seen
    );
    let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready while the game service is unreachable"
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gallows_http_requests_total"), "{metrics}");

    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn flags_have_environment_twins_and_json_logs() {
    let mut server = spawn(
        &[],
        &[
            ("HTML_GALLOWS_LISTEN", "127.0.0.1:0"),
            ("HTML_GALLOWS_GAME_SERVICE", NOWHERE),
            (
                "HTML_GALLOWS_COOKIE_KEY",
                "a cookie key from the environment, long enough",
            ),
            // Any of clap's boolish words: 1, yes, on, true.
            ("HTML_GALLOWS_LOG_JSON", "1"),
        ],
    );
    let addr = server.address().await;
    for line in &server.seen {
        let _: serde_json::Value = serde_json::from_str(line).expect("each log line is JSON");
        assert!(!line.contains("fresh random key"), "the key was given");
    }
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn a_cookie_key_file_is_read() {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), "a cookie key from a mounted secret file\n").unwrap();
    let key_path = key_file.path().to_str().unwrap();
    let mut server = spawn(
        &["--listen", "127.0.0.1:0", "--cookie-key-file", key_path],
        &[],
    );
    server.address().await;
    assert!(
        !server
            .seen
            .iter()
            .any(|line| line.contains("fresh random key"))
    );
    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn a_short_cookie_key_is_refused_with_a_clear_error() {
    let output = command(&["--listen", "127.0.0.1:0", "--cookie-key", "short"], &[])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
}

#[tokio::test]
async fn a_game_service_address_without_a_scheme_is_refused_with_a_clear_error() {
    for (args, env) in [
        (
            &["--listen", "127.0.0.1:0", "--game-service", "not-a-url"][..],
            &[][..],
        ),
        (
            &["--listen", "127.0.0.1:0"][..],
            &[("HTML_GALLOWS_GAME_SERVICE", "127.0.0.1:50051")][..],
        ),
    ] {
        let output = command(args, env).output().await.unwrap();
        assert!(!output.status.success(), "{args:?} {env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--game-service"), "{stderr}");
        assert!(stderr.contains("HTML_GALLOWS_GAME_SERVICE"), "{stderr}");
        assert!(stderr.contains("http://127.0.0.1:50051"), "{stderr}");
        assert!(!stderr.contains("listening on"), "{stderr}");
    }
}
