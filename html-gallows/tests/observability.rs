//! What operators see: the W3C trace context reaching the game service, the
//! Prometheus metrics, the probes and the security headers.

mod support;

use std::{
    io::Write,
    sync::{Arc, Mutex, Once},
};

use reqwest::{StatusCode, header};
use support::{Browser, Page, Stack, sample, view_until_a_cache_hit};

const WORD: &str = "gallows";

/// Log lines of every server in this test process.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(CapturedLogs::default)
}

/// Captures debug logs, and installs html-gallows' metrics recorder before the
/// game service can install its own (a process has one global recorder).
fn observe_this_process() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        html_gallows::metrics::handle();
        tracing_subscriber::fmt()
            .with_env_filter("debug,h2=info,hyper=info,tower=info")
            .with_ansi(false)
            .with_writer(|| logs().clone())
            .init();
    });
}

fn log_lines() -> Vec<String> {
    String::from_utf8_lossy(&logs().0.lock().unwrap())
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn the_callers_trace_is_continued_into_the_game_service() {
    observe_this_process();
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let incoming = format!("00-{trace_id}-b7ad6b7169203331-01");
    let answer = guess_with_traceparent(&browser, &stack, &game, &incoming).await;
    assert_eq!(answer, StatusCode::SEE_OTHER);

    let lines = log_lines();
    let received: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("HangmanService/MakeMove"))
        .filter(|line| line.contains(&format!("traceparent=00-{trace_id}-")))
        .collect();
    assert!(
        !received.is_empty(),
        "the game service logged the caller's trace"
    );
    assert!(
        received
            .iter()
            .all(|line| !line.contains("b7ad6b7169203331")),
        "the parent id is html-gallows' own span, not the caller's"
    );
    // Every game-service call carries a trace context, sent or not.
    let calls: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("call{method=/hangman.v1.HangmanService/"))
        .collect();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|line| line.contains("traceparent=00-")));
}

/// A guess from the browser's session carrying a `traceparent` header.
async fn guess_with_traceparent(
    browser: &Browser,
    stack: &Stack,
    game: &Page,
    traceparent: &str,
) -> StatusCode {
    let token = game.csrf_token();
    browser
        .request(reqwest::Method::POST, &stack.url("/hangman/current/guess"))
        .header("traceparent", traceparent)
        .form(&[("csrf_token", token.as_str()), ("guess", "g")])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn metrics_count_requests_games_moves_and_upstream_errors() {
    observe_this_process();
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.play(&browser.new_game().await, "a").await;
    browser.submit_guess(&game, "7").await;

    let metrics = browser.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = &metrics.body;
    let at_least_one = |name: &str, labels: &[&str]| {
        let value =
            sample(text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in {text}"));
        assert!(value >= 1.0, "{name} {labels:?} = {value}");
    };
    at_least_one(
        "gallows_http_requests_total",
        &[
            r#"method="GET""#,
            r#"route="/hangman/current""#,
            r#"status="200""#,
        ],
    );
    at_least_one(
        "gallows_http_requests_total",
        &[r#"route="/hangman/current/guess""#, r#"status="422""#],
    );
    at_least_one(
        "gallows_http_request_duration_seconds_count",
        &[r#"route="/hangman/current""#],
    );
    at_least_one("gallows_games_created_total", &[]);
    at_least_one("gallows_moves_total", &[r#"state="good_guess""#]);
    at_least_one("gallows_moves_total", &[r#"state="refused""#]);
    at_least_one(
        "gallows_upstream_errors_total",
        &[r#"call="make_move""#, r#"code="InvalidArgument""#],
    );
}

#[tokio::test]
async fn probes_say_alive_and_ready() {
    observe_this_process();
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let health = browser.get("/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
    assert_eq!(browser.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn pages_forbid_scripts_and_framing() {
    observe_this_process();
    let stack = Stack::start(WORD).await;
    let game = Browser::new(&stack).new_game().await;
    let policy = game.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(game.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(game.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(game.select("script").is_empty());
}

#[tokio::test]
async fn metrics_show_the_tally_cache_at_work() {
    observe_this_process();
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    browser.new_game().await; // a miss: the game is read and then watched

    let metrics = browser.get("/metrics").await;
    assert!(
        sample(
            &metrics.body,
            "gallows_tally_cache_reads_total",
            &[r#"result="miss""#]
        )
        .is_some()
    );
    assert!(
        sample(&metrics.body, "gallows_tally_cache_watched_games", &[]).is_some_and(|n| n >= 1.0)
    );
    // Once the watch has delivered, views are hits.
    view_until_a_cache_hit(&browser).await;
}
