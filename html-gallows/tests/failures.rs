//! When things go wrong: vanished games, forms without a valid CSRF token,
//! forged cookies, and a game service that stops and comes back. Every case
//! gets a friendly page with the right status and changes nothing it should not.

mod support;

use std::collections::HashSet;

use reqwest::{StatusCode, header, redirect};
use support::{Browser, OTHER_COOKIE_KEY, Page, Stack, eventually};

const WORD: &str = "gallows";

#[tokio::test]
async fn an_expired_game_gets_a_friendly_page_offering_a_new_game() {
    let stack = Stack::start_with(
        WORD,
        &["--game-ttl", "1s", "--sweep-interval", "100ms"],
        &[],
    )
    .await;
    let browser = Browser::new(&stack);
    browser.play(&browser.new_game().await, "a").await;

    let expired = eventually(&browser, "/hangman/current", |page| {
        page.status != StatusCode::OK
    })
    .await;
    expired.assert_game_over();

    // The session forgets the game, and the page's New Game button works.
    browser.assert_no_game().await;
    let fresh = browser.new_game_from(&expired).await;
    assert_eq!(fresh.status_message(), "Let's play!");
}

#[tokio::test]
async fn a_guess_on_a_game_the_service_no_longer_knows_gets_the_same_page() {
    let mut stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;
    // A restarted game service has an empty registry: the session's game id is
    // now unknown to it.
    stack.stop_game_service().await;
    stack.restart_game_service().await;
    eventually(&browser, "/readyz", |page| page.status == StatusCode::OK).await;

    let answer = browser.submit_guess(&game, "a").await;
    answer.assert_game_over();
    browser.assert_no_game().await;
}

#[tokio::test]
async fn a_guess_without_a_valid_csrf_token_is_refused_and_changes_nothing() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.play(&browser.new_game().await, "a").await;
    let other_session_token = Browser::new(&stack).get("/hangman").await.csrf_token();

    for form in [
        vec![("guess", "g")],
        vec![("guess", "g"), ("csrf_token", "")],
        vec![("guess", "g"), ("csrf_token", "forged-token-forged-tok")],
        vec![("guess", "g"), ("csrf_token", &other_session_token)],
    ] {
        let refused = browser.post("/hangman/current/guess", &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
        assert_eq!(refused.title(), "This form is out of date");
        assert!(refused.offers_new_game());
    }
    let after = browser.get("/hangman/current").await;
    assert_eq!(after.word(), game.word(), "no letter was played");
    assert_eq!(after.text("#used"), "a");
}

#[tokio::test]
async fn a_new_game_without_a_valid_csrf_token_is_refused_and_the_game_kept() {
    let stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    browser.play(&browser.new_game().await, "a").await;

    let refused = browser
        .post("/hangman", &[("csrf_token", "forged-token-forged-tok")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = browser.post("/hangman", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let after = browser.get("/hangman/current").await;
    assert_eq!(after.word(), "_a_____", "still the same game");
}

#[tokio::test]
async fn a_form_from_a_browser_without_a_session_is_refused() {
    let stack = Stack::start(WORD).await;
    let stranger = Browser::new(&stack);
    let refused = stranger
        .post("/hangman", &[("csrf_token", "made-up-token-made-up-t")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // The refusal page starts a session, so its own New Game button works.
    stranger
        .press_new_game(&refused)
        .await
        .assert_redirect_to("/hangman/current");
}

/// A client that keeps no cookies: the tests hand it the ones they choose.
fn cookieless_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` part of the response's session cookie.
fn session_cookie(response: &reqwest::Response) -> String {
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Starts a game with a client that keeps no cookies; returns the session
/// cookie that holds the game.
async fn session_cookie_with_a_game(stack: &Stack) -> String {
    let client = cookieless_client();
    let welcome = client.get(stack.url("/hangman")).send().await.unwrap();
    let cookie = session_cookie(&welcome);
    let token = Page::from(welcome).await.csrf_token();
    let created = client
        .post(stack.url("/hangman"))
        .header(header::COOKIE, &cookie)
        .form(&[("csrf_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    session_cookie(&created)
}

async fn game_page_with_cookie(stack: &Stack, cookie: &str) -> reqwest::Response {
    cookieless_client()
        .get(stack.url("/hangman/current"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// The attributes (`HttpOnly`, `Path=/`, …) of the session cookie that the welcome
/// page sets.
async fn session_cookie_attributes(stack: &Stack) -> HashSet<String> {
    let response = cookieless_client()
        .get(stack.url("/hangman"))
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split("; ").skip(1).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_lax() {
    let stack = Stack::start(WORD).await;
    let attributes = session_cookie_attributes(&stack).await;
    assert!(attributes.contains("HttpOnly"), "{attributes:?}");
    assert!(attributes.contains("SameSite=Lax"), "{attributes:?}");
    assert!(attributes.contains("Path=/"), "{attributes:?}");
    assert!(!attributes.contains("Secure"), "not Secure unless asked");
}

#[tokio::test]
async fn secure_cookies_can_be_asked_for() {
    let stack = Stack::start_with(WORD, &[], &["--secure-cookies"]).await;
    let attributes = session_cookie_attributes(&stack).await;
    assert!(attributes.contains("Secure"), "{attributes:?}");
}

#[tokio::test]
async fn a_tampered_cookie_is_treated_as_no_game() {
    let stack = Stack::start(WORD).await;
    let cookie = session_cookie_with_a_game(&stack).await;
    assert_eq!(
        game_page_with_cookie(&stack, &cookie).await.status(),
        StatusCode::OK
    );

    let (name, value) = cookie.split_once('=').unwrap();
    let mut tampered: Vec<char> = value.chars().collect();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{name}={}", tampered.into_iter().collect::<String>());
    for forged in [
        tampered.as_str(),
        "gallows_session=forged",
        "gallows_session=",
    ] {
        let response = game_page_with_cookie(&stack, forged).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{forged}");
        assert_eq!(response.headers()[header::LOCATION], "/hangman");
    }
}

#[tokio::test]
async fn a_cookie_sealed_with_another_key_is_treated_as_no_game() {
    let ours = Stack::start(WORD).await;
    let theirs = Stack::start_with(WORD, &[], &["--cookie-key", OTHER_COOKIE_KEY]).await;
    let their_cookie = session_cookie_with_a_game(&theirs).await;
    assert_eq!(
        game_page_with_cookie(&theirs, &their_cookie).await.status(),
        StatusCode::OK
    );

    let response = game_page_with_cookie(&ours, &their_cookie).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/hangman");
}

#[tokio::test]
async fn a_stopped_game_service_gives_503_pages_and_play_resumes_when_it_returns() {
    let mut stack = Stack::start(WORD).await;
    let browser = Browser::new(&stack);
    let game = browser.play(&browser.new_game().await, "a").await;
    assert_eq!(browser.get("/readyz").await.status, StatusCode::OK);

    stack.stop_game_service().await;

    // The game on view is watched; the page stops showing it once the watch
    // stream's end (sent as the service stops) has arrived.
    let down = eventually(&browser, "/hangman/current", |page| {
        page.status != StatusCode::OK
    })
    .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.title(), "The game is taking a break");
    assert_eq!(
        down.one("a.retry").value().attr("href"),
        Some("/hangman/current")
    );
    assert!(down.headers.contains_key(header::RETRY_AFTER));
    let guess = browser.submit_guess(&game, "g").await;
    assert_eq!(guess.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        guess.one("a.retry").value().attr("href"),
        Some("/hangman/current")
    );
    let new_game = browser.press_new_game(&game).await;
    assert_eq!(new_game.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        browser.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        browser.get("/healthz").await.status,
        StatusCode::OK,
        "alive though not ready"
    );

    stack.restart_game_service().await;

    eventually(&browser, "/readyz", |page| page.status == StatusCode::OK).await;
    // The new game service never knew the old game: the page says so kindly.
    let gone = browser.get("/hangman/current").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.offers_new_game());
    let game = browser.play(&browser.new_game().await, "g").await;
    assert_eq!(game.word(), "g______");
}

/// The page for a guess whose answer never came: it may have been played, and
/// the page says so and leads back to the game (a GET) rather than to a replay.
fn assert_guess_may_have_counted(page: &Page) {
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert_eq!(page.title(), "Your guess may have counted");
    let message = page.status_message();
    assert!(
        message.contains("we cannot tell whether your guess was played"),
        "{message}"
    );
    assert!(message.contains("Reload the game to see"), "{message}");
    let reload = page.one("a.retry");
    assert_eq!(reload.attr("href"), Some("/hangman/current"));
    assert_eq!(reload.text().collect::<String>(), "Reload the game");
}

/// After a guess of `letter` went unanswered: once the service's answers flow
/// again the game shows the guess played (one turn spent), and guessing it
/// again, as an unsure player would, spends nothing more.
async fn assert_guess_counted_once(browser: &Browser, letter: &str) {
    let game = eventually(browser, "/hangman/current", |page| {
        page.status == StatusCode::OK && page.text("#used") == letter
    })
    .await;
    assert_eq!(game.turns_left(), 6, "{letter} is not in the word");
    let again = browser.play(&game, letter).await;
    assert_eq!(again.status_message(), "You already tried that letter");
    assert_eq!(again.turns_left(), 6);
}

#[tokio::test]
async fn a_guess_the_game_service_answers_too_late_may_have_counted_and_the_page_says_so() {
    let (stack, proxy) =
        Stack::start_behind_proxy(WORD, &[], &["--grpc-request-timeout", "1s"]).await;
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;

    // The service gets the guess and plays it; its answer is what never comes.
    proxy.hold_answers();
    let unanswered = browser.submit_guess(&game, "z").await;
    assert_guess_may_have_counted(&unanswered);
    assert!(unanswered.headers.contains_key(header::RETRY_AFTER));

    proxy.release_answers();
    assert_guess_counted_once(&browser, "z").await;
}

#[tokio::test]
async fn a_guess_that_outlasts_the_request_timeout_gets_the_same_page() {
    // The game service's call would wait longer than the request may take.
    let (stack, proxy) = Stack::start_behind_proxy(
        WORD,
        &[],
        &["--request-timeout", "1s", "--grpc-request-timeout", "1h"],
    )
    .await;
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;

    proxy.hold_answers();
    let unanswered = browser.submit_guess(&game, "z").await;
    assert_guess_may_have_counted(&unanswered);
    // A new game that outlasts it is only "too long": no move was in flight.
    let new_game = browser.press_new_game(&game).await;
    assert_eq!(new_game.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(new_game.title(), "That took too long");

    proxy.release_answers();
    assert_guess_counted_once(&browser, "z").await;
}

#[tokio::test]
async fn an_oversized_form_is_refused_and_changes_nothing() {
    let stack = Stack::start_with(WORD, &[], &["--max-body-bytes", "256"]).await;
    let browser = Browser::new(&stack);
    let game = browser.new_game().await;
    let token = game.csrf_token();
    let padding = "x".repeat(1024);
    let refused = browser
        .post(
            "/hangman/current/guess",
            &[
                ("csrf_token", &token),
                ("guess", "a"),
                ("padding", &padding),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        refused.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        refused.headers
    );
    assert_eq!(refused.title(), "That form is too large");
    assert!(
        refused.status_message().contains("nothing was played"),
        "{}",
        refused.body
    );
    assert_eq!(
        refused.one("a.retry").attr("href"),
        Some("/hangman/current"),
        "a retry link back to the game (a GET)"
    );
    let after = browser.get("/hangman/current").await;
    assert_eq!(after.word(), "_______");
    assert_eq!(after.text("#used"), "none yet");
}

#[tokio::test]
async fn an_oversized_chunked_form_without_a_length_gets_the_same_page() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // No Content-Length, so the body-limit layer cannot refuse it up front: the
    // limit trips while the form is read.
    let stack = Stack::start_with(WORD, &[], &["--max-body-bytes", "256"]).await;
    let mut connection = tokio::net::TcpStream::connect(stack.gallows.addr())
        .await
        .unwrap();
    let body = format!("guess=a&padding={}", "x".repeat(1024));
    let request = format!(
        "POST /hangman/current/guess HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        stack.gallows.addr(),
        body.len(),
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    connection.read_to_string(&mut response).await.unwrap();

    let (head, html) = response.split_once("\r\n\r\n").expect("a full response");
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    let page = scraper::Html::parse_document(html);
    let heading = scraper::Selector::parse("h1").unwrap();
    let title: String = page.select(&heading).next().unwrap().text().collect();
    assert_eq!(title.trim(), "That form is too large");
}
