//! The grpcurl and `buf curl` walkthroughs of game-service/README.md, run as written against a
//! real game service with the real tools: grpcurl 1.8.6 (v1alpha reflection,
//! from `.venv`) and `buf curl` (v1 reflection, from `tools/node_modules`).
//! `scripts/setup` installs both. The grpcurl walkthrough and the presence one (UpdatePresence,
//! WatchGame with presence and recovery) also run with games in Redis.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::{Store, server};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The shell block of game-service/README.md between `<!-- walkthrough:NAME -->` and the
/// next `<!-- /walkthrough -->`, without its code fences.
fn walkthrough(name: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("game-service/README.md")).unwrap();
    let start = format!("<!-- walkthrough:{name} -->");
    let block = readme
        .split_once(&start)
        .unwrap_or_else(|| panic!("game-service/README.md has no {start}"))
        .1
        .split_once("<!-- /walkthrough -->")
        .unwrap()
        .0;
    block
        .lines()
        .filter(|line| !line.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tool(path: &str, install_hint: &str) -> PathBuf {
    let tool = repo_root().join(path);
    assert!(
        tool.exists(),
        "{} is missing: {install_hint} (scripts/setup does both)",
        tool.display()
    );
    tool
}

/// Runs a walkthrough against `addr` in place of the default address, with the
/// repository's tools first on PATH; returns what it printed.
fn run(script: &str, addr: &str) -> String {
    let grpcurl = tool(
        ".venv/bin/grpcurl",
        "python3 -m venv .venv && .venv/bin/pip install -r tools/requirements.txt",
    );
    let buf = tool("tools/node_modules/.bin/buf", "npm ci --prefix tools");
    let path = format!(
        "{}:{}:{}",
        grpcurl.parent().unwrap().display(),
        buf.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = script.replace("127.0.0.1:50051", addr);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the walkthrough failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs the walkthrough `name` against a fresh server on port 0.
async fn run_against_a_server(name: &str, store: Store) -> String {
    let server = server(store, &[]).await;
    let script = walkthrough(name);
    let addr = server.addr().to_string();
    let out = tokio::task::spawn_blocking(move || run(&script, &addr))
        .await
        .unwrap();
    server.stop().await;
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grpcurl_walkthrough_works_as_written() {
    let out = run_against_a_server("grpcurl", Store::Memory).await;
    assert_the_grpcurl_walkthrough_printed(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grpcurl_walkthrough_works_as_written_with_games_in_redis() {
    let out = run_against_a_server("grpcurl", Store::Redis).await;
    assert_the_grpcurl_walkthrough_printed(&out);
}

fn assert_the_grpcurl_walkthrough_printed(out: &str) {
    for service in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "hangman.v1.HangmanService",
    ] {
        assert!(out.contains(service), "list lacks {service}:\n{out}");
    }
    assert!(
        out.contains(
            "rpc MakeMove ( .hangman.v1.MakeMoveRequest ) returns ( .hangman.v1.MakeMoveResponse )"
        ),
        "describe:\n{out}"
    );
    assert!(
        out.contains("\"gameState\": \"GAME_STATE_INITIALIZING\""),
        "{out}"
    );
    assert!(
        out.contains("\"gameState\": \"GAME_STATE_GOOD_GUESS\"")
            || out.contains("\"gameState\": \"GAME_STATE_BAD_GUESS\""),
        "the move's tally:\n{out}"
    );
    assert!(out.contains("\"used\": [\n      \"e\"\n    ]"), "{out}");
    assert!(out.contains("\"status\": \"SERVING\""), "health:\n{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_presence_walkthrough_works_as_written() {
    for store in [Store::Memory, Store::Redis] {
        let out = run_against_a_server("presence", store).await;
        assert_the_presence_walkthrough_printed(&out);
    }
}

fn assert_the_presence_walkthrough_printed(out: &str) {
    assert_eq!(out.matches("\"leaseMs\": \"15000\"").count(), 2, "{out}");
    // The stream's first message: the tally at version 2, then (in field order) what was
    // missed since version 0: version 1 only. The room comes next.
    let (first, room) = out.split_once("\"presenceState\"").expect("the room");
    let (current, missed) = first.split_once("\"recovered\": true").expect("recovered");
    assert!(current.contains("\"version\": \"2\""), "{out}");
    assert!(missed.contains("\"version\": \"1\""), "{out}");
    assert!(!missed.contains("\"version\": \"2\""), "{out}");
    assert!(
        room.contains("\"key\": \"k1\"") && room.contains("\"name\": \"ann\""),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_buf_curl_walkthrough_works_as_written() {
    let out = run_against_a_server("buf", Store::Memory).await;
    assert!(out.contains("hangman.v1.HangmanService"), "{out}");
    assert!(out.contains("hangman.v1.HangmanService/MakeMove"), "{out}");
    assert!(
        out.contains("\"gameState\": \"GAME_STATE_INITIALIZING\""),
        "{out}"
    );
}
