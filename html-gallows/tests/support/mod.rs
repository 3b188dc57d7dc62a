//! What the integration tests share: a real game service (in-process, every
//! game using one fixed word) behind a real html-gallows on port 0, and a
//! browser-like client that keeps cookies but not follow redirects, so that
//! each post/redirect/get step can be asserted.

#![allow(dead_code)] // Each test binary uses its own share of these helpers.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use game_service::testing::{self, TestGameService};
use reqwest::{StatusCode, header, redirect};
use scraper::{ElementRef, Html, Selector};

/// A secret long enough for the cookie key; tests that need a second, different
/// key use [`OTHER_COOKIE_KEY`].
pub const COOKIE_KEY: &str = "integration-test cookie key, long enough to sign with";
pub const OTHER_COOKIE_KEY: &str = "another cookie key, also long enough to sign cookies";

/// A game service and an html-gallows in front of it.
pub struct Stack {
    pub gallows: html_gallows::Server,
    pub game_service: Option<TestGameService>,
    game_service_addr: SocketAddr,
    /// How the game service was started, to start it again.
    game_service_builder: testing::Builder,
}

impl Stack {
    /// Every game plays `word`.
    pub async fn start(word: &str) -> Stack {
        Self::start_with(word, &[], &[]).await
    }

    /// Every game plays `word`; the flags are added to each server's command
    /// line (html-gallows signs cookies with [`COOKIE_KEY`] unless told otherwise).
    pub async fn start_with(
        word: &str,
        game_service_flags: &[&str],
        gallows_flags: &[&str],
    ) -> Stack {
        Self::start_through(word, game_service_flags, gallows_flags, None).await
    }

    /// As [`Stack::start_with`], but html-gallows reaches the game service
    /// through a [`Proxy`] that the test can make hold back the service's answers.
    pub async fn start_behind_proxy(
        word: &str,
        game_service_flags: &[&str],
        gallows_flags: &[&str],
    ) -> (Stack, Proxy) {
        let mut proxy = None;
        let stack =
            Self::start_through(word, game_service_flags, gallows_flags, Some(&mut proxy)).await;
        (stack, proxy.expect("the proxy started"))
    }

    async fn start_through(
        word: &str,
        game_service_flags: &[&str],
        gallows_flags: &[&str],
        proxy: Option<&mut Option<Proxy>>,
    ) -> Stack {
        let game_service_builder = TestGameService::builder()
            .words(&[word])
            .flags(game_service_flags);
        let game_service = game_service_builder.clone().spawn().await;
        let game_service_addr = game_service.addr();
        let game_service_url = match proxy {
            Some(slot) => {
                let started = Proxy::start(game_service_addr).await;
                let url = format!("http://{}", started.addr);
                *slot = Some(started);
                url
            }
            None => game_service.url(),
        };
        let mut gallows_args = vec![
            "html-gallows",
            "--listen",
            "127.0.0.1:0",
            "--game-service",
            &game_service_url,
        ];
        if !gallows_flags.contains(&"--cookie-key") {
            gallows_args.extend(["--cookie-key", COOKIE_KEY]);
        }
        gallows_args.extend(gallows_flags);
        let gallows = html_gallows::start(html_gallows::Config::parse_from(gallows_args))
            .await
            .unwrap();
        Stack {
            gallows,
            game_service: Some(game_service),
            game_service_addr,
            game_service_builder,
        }
    }

    /// Another html-gallows in front of the same game service, signing cookies
    /// with the same key (as the replicas of one deployment do).
    pub async fn start_replica(&self, gallows_flags: &[&str]) -> html_gallows::Server {
        let game_service_url = format!("http://{}", self.game_service_addr);
        let args = [
            "html-gallows",
            "--listen",
            "127.0.0.1:0",
            "--game-service",
            &game_service_url,
            "--cookie-key",
            COOKIE_KEY,
        ]
        .into_iter()
        .chain(gallows_flags.iter().copied());
        html_gallows::start(html_gallows::Config::parse_from(args))
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gallows.url())
    }

    /// Stops the game service (its games are lost with it).
    pub async fn stop_game_service(&mut self) {
        self.game_service
            .take()
            .expect("the game service is running")
            .stop()
            .await;
    }

    /// Starts a fresh game service on the address the old one had.
    pub async fn restart_game_service(&mut self) {
        let builder = self.game_service_builder.clone();
        self.game_service = Some(builder.listen(self.game_service_addr).spawn().await);
    }
}

/// A TCP proxy in front of the game service that can hold back what the service
/// sends: while answers are held, requests still reach the service (which acts
/// on them) but nothing it answers is delivered, as with a service too slow to
/// answer in time. Released, the held bytes are delivered in order.
pub struct Proxy {
    addr: SocketAddr,
    hold: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hold, held) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let held = held.clone();
                tokio::spawn(async move {
                    let Ok(service) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_reads, mut client_writes) = client.into_split();
                    let (mut service_reads, mut service_writes) = service.into_split();
                    let _ = tokio::join!(
                        tokio::io::copy(&mut client_reads, &mut service_writes),
                        copy_unless_held(&mut service_reads, &mut client_writes, held),
                    );
                });
            }
        });
        Proxy { addr, hold }
    }

    /// From now on, nothing the game service sends is delivered.
    pub fn hold_answers(&self) {
        self.hold.send_replace(true);
    }

    /// Delivers what was held, and everything after it.
    pub fn release_answers(&self) {
        self.hold.send_replace(false);
    }
}

async fn copy_unless_held(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    mut held: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        if held.wait_for(|held| !held).await.is_err() {
            return Ok(());
        }
        to.write_all(&buffer[..read]).await?;
    }
}

/// A browser without JavaScript: it keeps cookies and submits forms, and shows
/// the tests every redirect instead of following it.
pub struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    pub fn new(stack: &Stack) -> Browser {
        Browser::at(&stack.gallows.url())
    }

    pub fn at(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    /// The same browser (same cookies) talking to another server, as a load
    /// balancer may send it to another replica.
    pub fn at_replica(&self, server: &html_gallows::Server) -> Browser {
        Browser {
            http: self.http.clone(),
            base: server.url(),
        }
    }

    /// A request of this browser (with its cookies) to be finished by the caller.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    pub async fn get(&self, path: &str) -> Page {
        Page::from(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        Page::from(response).await
    }

    /// Opens the welcome page and presses New Game; returns the game page.
    pub async fn new_game(&self) -> Page {
        let welcome = self.get("/hangman").await;
        assert_eq!(welcome.status, StatusCode::OK);
        self.new_game_from(&welcome).await
    }

    /// Presses New Game on the page `on` and follows the redirect to the new
    /// game's page.
    pub async fn new_game_from(&self, on: &Page) -> Page {
        self.follow_to_game(self.press_new_game(on).await).await
    }

    /// Presses New Game on the page `on` (sending its form's CSRF token) and
    /// returns the answer itself.
    pub async fn press_new_game(&self, on: &Page) -> Page {
        let token = on.csrf_token();
        self.post("/hangman", &[("csrf_token", &token)]).await
    }

    /// Asserts that this browser's session holds no game: the game page leads
    /// to the welcome page.
    pub async fn assert_no_game(&self) {
        self.get("/hangman/current")
            .await
            .assert_redirect_to("/hangman");
    }

    /// Submits `guess` from the game page `on` (as a keyboard button or the text
    /// field would) and returns the redirect answer itself.
    pub async fn submit_guess(&self, on: &Page, guess: &str) -> Page {
        let token = on.csrf_token();
        self.post(
            "/hangman/current/guess",
            &[("csrf_token", &token), ("guess", guess)],
        )
        .await
    }

    /// Plays `guess` and follows the redirect back to the game page.
    pub async fn play(&self, on: &Page, guess: &str) -> Page {
        self.follow_to_game(self.submit_guess(on, guess).await)
            .await
    }

    /// Follows `answer`, which must be a redirect to the game page, and returns
    /// that page.
    async fn follow_to_game(&self, answer: Page) -> Page {
        answer.assert_redirect_to("/hangman/current");
        let page = self.get("/hangman/current").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page
    }
}

/// Views `path` until `ready(page)` holds, for at most five seconds; for states
/// reached by the passing of time (expiry), by a server going or coming back,
/// or by a change arriving on a watch stream.
pub async fn eventually(browser: &Browser, path: &str, ready: impl Fn(&Page) -> bool) -> Page {
    for _ in 0..100 {
        let page = browser.get(path).await;
        if ready(&page) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never reached the expected state");
}

/// The value of the Prometheus sample `name` whose labels include all of `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        (series_name == name && labels.iter().all(|label| series_labels.contains(label)))
            .then(|| value.parse().unwrap())
    })
}

/// How many game views the tally cache has served, by `result` (`hit` or `miss`).
pub async fn tally_cache_reads(browser: &Browser, result: &str) -> f64 {
    let metrics = browser.get("/metrics").await;
    let label = format!("result=\"{result}\"");
    sample(&metrics.body, "gallows_tally_cache_reads_total", &[&label]).unwrap_or(0.0)
}

/// Views the browser's current game until a view is served from the tally cache
/// (its watch has delivered), for at most a few seconds; the hits so far.
pub async fn view_until_a_cache_hit(browser: &Browser) -> f64 {
    for _ in 0..100 {
        browser.get("/hangman/current").await;
        let hits = tally_cache_reads(browser, "hit").await;
        if hits >= 1.0 {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no view of the game was served from the cache");
}

/// A response with its body parsed as HTML.
pub struct Page {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: String,
    pub html: Html,
}

impl Page {
    pub async fn from(response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        let html = Html::parse_document(&body);
        Page {
            status,
            headers,
            body,
            html,
        }
    }

    pub fn assert_redirect_to(&self, path: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.headers[header::LOCATION], path);
    }

    pub fn select(&self, selector: &str) -> Vec<ElementRef<'_>> {
        let selector = Selector::parse(selector).unwrap();
        self.html.select(&selector).collect()
    }

    /// The one element matching `selector`.
    pub fn one(&self, selector: &str) -> ElementRef<'_> {
        let found = self.select(selector);
        assert_eq!(found.len(), 1, "exactly one {selector} in {}", self.body);
        found[0]
    }

    pub fn text(&self, selector: &str) -> String {
        self.one(selector)
            .text()
            .collect::<String>()
            .trim()
            .to_owned()
    }

    /// The CSRF token of the page's forms (they all carry the same one).
    pub fn csrf_token(&self) -> String {
        let tokens: Vec<&str> = self
            .select("form input[name=csrf_token]")
            .iter()
            .map(|input| input.value().attr("value").unwrap())
            .collect();
        assert!(
            !tokens.is_empty(),
            "a form with a CSRF token in {}",
            self.body
        );
        assert!(tokens.iter().all(|t| *t == tokens[0]));
        tokens[0].to_owned()
    }

    pub fn status_message(&self) -> String {
        let status = self.one("#status");
        assert_eq!(status.value().attr("aria-live"), Some("polite"));
        self.text("#status")
    }

    /// The word as shown: one character per `span.letter`, `_` for blanks.
    pub fn word(&self) -> String {
        self.select("#word span.letter")
            .iter()
            .map(|span| {
                let letter: String = span.text().collect();
                assert_eq!(letter.chars().count(), 1, "one character per letter");
                letter
            })
            .collect()
    }

    pub fn turns_left(&self) -> u32 {
        self.text("#turns-left").parse().unwrap()
    }

    /// Names of the gallows parts drawn (class `shown`).
    pub fn parts_shown(&self) -> usize {
        let parts = self.select("svg#gallows .part");
        assert_eq!(parts.len(), 7, "seven parts, shown or hidden");
        let shown = self.select("svg#gallows .part.shown").len();
        let hidden = self.select("svg#gallows .part.hidden").len();
        assert_eq!(shown + hidden, 7);
        shown
    }

    /// The keyboard button for `letter`.
    pub fn key(&self, letter: char) -> ElementRef<'_> {
        self.one(&format!(
            "form[action='/hangman/current/guess'] button[type=submit][name=guess][value='{letter}']"
        ))
    }

    pub fn key_is_enabled(&self, letter: char) -> bool {
        self.key(letter).value().attr("disabled").is_none()
    }

    pub fn key_classes(&self, letter: char) -> Vec<String> {
        self.key(letter)
            .value()
            .classes()
            .map(String::from)
            .collect()
    }

    /// The friendly page of a game that no longer exists: 404, a title saying
    /// so, and a New Game button.
    pub fn assert_game_over(&self) {
        assert_eq!(self.status, StatusCode::NOT_FOUND, "{}", self.body);
        assert_eq!(self.title(), "That game is over");
        assert!(self.offers_new_game());
    }

    /// Whether the page has the New Game form.
    pub fn offers_new_game(&self) -> bool {
        let forms = self.select("form[method=post][action='/hangman']");
        forms.iter().any(|form| {
            Html::parse_fragment(&form.html())
                .select(&Selector::parse("button[type=submit]").unwrap())
                .next()
                .is_some()
        })
    }

    pub fn title(&self) -> String {
        self.text("h1")
    }
}
