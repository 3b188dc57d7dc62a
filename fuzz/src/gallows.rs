//! The html-gallows harness: a fixed cookie key, sealed session cookies, a
//! session read from a `Cookie` header, and the app in-process for forms.

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    sync::OnceLock,
    task::{Context, Poll, Waker},
};

use axum::{
    body::Body,
    extract::FromRequestParts,
    http::{HeaderValue, Method, Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use axum_extra::extract::{
    PrivateCookieJar,
    cookie::{Cookie, Key},
};
use clap::Parser;
use html_gallows::{
    Config,
    routes::{AppState, app},
    session::{COOKIE_NAME, CookieSettings, Session},
    upstream::GameService,
};
use tower::{ServiceExt, util::BoxCloneSyncService};

/// The fuzz targets' cookie secret (a deployment's comes from `--cookie-key`).
const SECRET: &str = "the fuzz targets' cookie key, long enough to sign with";

/// The settings every target seals and reads cookies with.
pub fn cookie_settings() -> CookieSettings {
    static KEY: OnceLock<Key> = OnceLock::new();
    CookieSettings {
        key: KEY
            .get_or_init(|| Key::derive_from(SECRET.as_bytes()))
            .clone(),
        secure: false,
    }
}

/// `value` sealed as html-gallows seals its session, as the browser sends it
/// back (the `Set-Cookie` value, percent-encoded where needed).
pub fn seal(value: &str) -> String {
    let jar = PrivateCookieJar::new(cookie_settings().key)
        .add(Cookie::new(COOKIE_NAME, value.to_owned()));
    let response = jar.into_response();
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let pair = set_cookie.split(';').next().unwrap();
    let (_, sealed) = pair.split_once('=').unwrap();
    sealed.to_owned()
}

/// Runs a future that never waits (the session extractor does not) to its end.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading a session waited"),
    }
}

/// The session html-gallows reads from a request carrying `cookie`.
pub fn session_from(cookie: Option<HeaderValue>) -> Session {
    let mut request = Request::builder().uri("/hangman/current");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let (mut parts, ()) = request.body(()).unwrap().into_parts();
    match now(Session::from_request_parts(&mut parts, &cookie_settings())) {
        Ok(session) => session,
        Err(never) => match never {},
    }
}

/// The CSRF token of [`FormHarness`]'s session (as html-gallows makes them:
/// 22 URL-safe characters). The seed corpus holds forms carrying it.
pub const FORM_TOKEN: &str = "fuzzTOKEN-fuzz_TOKEN00";

/// The largest form the harness's html-gallows reads (`--max-body-bytes`).
pub const MAX_BODY_BYTES: usize = 1024;

/// html-gallows' whole app (routes and layers), in-process, and a session
/// cookie (token [`FORM_TOKEN`], no game yet) to post forms with.
pub struct FormHarness {
    runtime: tokio::runtime::Runtime,
    app: BoxCloneSyncService<Request<Body>, Response, Infallible>,
    cookie: HeaderValue,
}

impl FormHarness {
    pub fn get() -> &'static FormHarness {
        static HARNESS: OnceLock<FormHarness> = OnceLock::new();
        HARNESS.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let max_body = MAX_BODY_BYTES.to_string();
            let config = Config::parse_from([
                "html-gallows",
                // Never called: a session with no game plays nothing.
                "--game-service",
                "http://127.0.0.1:9",
                "--cookie-key",
                SECRET,
                "--max-body-bytes",
                &max_body,
            ]);
            let app = {
                let _runtime = runtime.enter();
                let state = AppState {
                    games: GameService::connect_lazy(&config).unwrap(),
                    cookies: cookie_settings(),
                };
                BoxCloneSyncService::new(app(state, &config))
            };
            let cookie = format!("{COOKIE_NAME}={}", seal(FORM_TOKEN));
            FormHarness {
                runtime,
                app,
                cookie: HeaderValue::from_str(&cookie).unwrap(),
            }
        })
    }

    /// Posts `body` to the guess route, with the session cookie or without
    /// one; the status and `Location`.
    pub fn post_guess(
        &self,
        content_type: Option<&str>,
        with_cookie: bool,
        body: &[u8],
    ) -> (StatusCode, Option<String>) {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/hangman/current/guess");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if with_cookie {
            request = request.header(header::COOKIE, self.cookie.clone());
        }
        let request = request.body(Body::from(body.to_vec())).unwrap();
        let response = self
            .runtime
            .block_on(self.app.clone().oneshot(request))
            .unwrap_or_else(|never| match never {});
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|location| location.to_str().unwrap().to_owned());
        (response.status(), location)
    }
}
