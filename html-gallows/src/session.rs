//! The session: one private (encrypted and authenticated) cookie holding a
//! per-browser CSRF token and, once a game is started, its id.
//!
//! Every form carries the session's CSRF token and the POST handlers refuse a
//! request whose token does not match the cookie's. A cookie that fails to decrypt
//! (tampered, forged, or made with another key) is ignored: the browser simply has
//! no session, hence no game.

use std::convert::Infallible;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header::COOKIE, request::Parts},
    response::{IntoResponseParts, ResponseParts},
};
use axum_extra::extract::{
    PrivateCookieJar,
    cookie::{Cookie, Key, SameSite},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "gallows_session";

/// Separates the CSRF token from the game id in the cookie's value; neither the
/// token nor a game id (URL-safe base64) contains it.
const SEPARATOR: char = '.';

/// How session cookies are sealed and marked, from the configuration.
#[derive(Clone)]
pub struct CookieSettings {
    pub key: Key,
    pub secure: bool,
}

/// The form's CSRF token did not match the session's.
#[derive(Debug, thiserror::Error)]
#[error("the form's CSRF token does not match the session")]
pub struct CsrfMismatch;

/// A browser's session, read from (or, when absent, started for) a request.
/// Returned as part of a response, it writes the cookie when it changed.
pub struct Session {
    csrf_token: String,
    game_id: Option<String>,
    /// True when the request brought no valid session cookie.
    is_new: bool,
    changed: bool,
    /// Empty: it only seals the cookie when the session changed.
    jar: PrivateCookieJar,
    secure: bool,
}

impl Session {
    /// The token every form of this session must send back.
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// The game this browser plays, if any.
    pub fn game_id(&self) -> Option<&str> {
        self.game_id.as_deref()
    }

    /// Checks a submitted form token against the session's. A session started by
    /// this very request has no token the form could know, so it never matches.
    pub fn verify_csrf(&self, submitted: Option<&str>) -> Result<(), CsrfMismatch> {
        let submitted = submitted.unwrap_or_default().as_bytes();
        let matches: bool = submitted.ct_eq(self.csrf_token.as_bytes()).into();
        if matches && !self.is_new {
            Ok(())
        } else {
            Err(CsrfMismatch)
        }
    }

    /// The session now plays `game_id`.
    pub fn play(mut self, game_id: String) -> Self {
        self.game_id = Some(game_id);
        self.changed = true;
        self
    }

    /// The session's game is gone (expired or unknown); keep the CSRF token.
    pub fn forget_game(mut self) -> Self {
        if self.game_id.take().is_some() {
            self.changed = true;
        }
        self
    }

    fn cookie_value(&self) -> String {
        match &self.game_id {
            Some(game_id) => format!("{}{SEPARATOR}{game_id}", self.csrf_token),
            None => self.csrf_token.clone(),
        }
    }
}

impl<S> FromRequestParts<S> for Session
where
    CookieSettings: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let settings = CookieSettings::from_ref(state);
        // Only the session cookie is decrypted, once. (`PrivateCookieJar::from_headers`
        // would decrypt every cookie, seal each again into its jar, and `get`
        // would decrypt it once more: three AES-GCM passes per request.)
        let jar = PrivateCookieJar::new(settings.key);
        let stored = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse_encoded)
            .filter_map(Result::ok)
            .filter(|cookie| cookie.name() == COOKIE_NAME)
            // As a jar would: of several such cookies, the last valid one counts.
            .filter_map(|cookie| jar.decrypt(cookie.into_owned()))
            .last()
            .and_then(|cookie| parse_cookie_value(cookie.value()));
        let is_new = stored.is_none();
        let (csrf_token, game_id) = stored.unwrap_or_else(|| (new_csrf_token(), None));
        Ok(Self {
            csrf_token,
            game_id,
            is_new,
            changed: is_new,
            jar,
            secure: settings.secure,
        })
    }
}

impl IntoResponseParts for Session {
    type Error = Infallible;

    fn into_response_parts(self, parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if !self.changed {
            return Ok(parts);
        }
        let cookie = Cookie::build((COOKIE_NAME, self.cookie_value()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .build();
        self.jar.add(cookie).into_response_parts(parts)
    }
}

#[cfg(test)]
impl Session {
    /// A session read from a valid cookie holding `csrf_token` (or, when
    /// `is_new`, one started by the request), for tests of what uses it.
    pub(crate) fn for_tests(csrf_token: &str, is_new: bool) -> Self {
        Self {
            csrf_token: csrf_token.to_owned(),
            game_id: None,
            is_new,
            changed: is_new,
            jar: PrivateCookieJar::new(Key::generate()),
            secure: false,
        }
    }
}

fn parse_cookie_value(value: &str) -> Option<(String, Option<String>)> {
    let (csrf_token, game_id) = match value.split_once(SEPARATOR) {
        Some((csrf_token, game_id)) => (csrf_token, Some(game_id.to_owned())),
        None => (value, None),
    };
    (!csrf_token.is_empty() && game_id.as_ref().is_none_or(|id| !id.is_empty()))
        .then(|| (csrf_token.to_owned(), game_id))
}

/// 128 random bits, URL-safe.
fn new_csrf_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_parse_back() {
        assert_eq!(
            parse_cookie_value("token.game"),
            Some(("token".to_owned(), Some("game".to_owned())))
        );
        assert_eq!(
            parse_cookie_value("token"),
            Some(("token".to_owned(), None))
        );
        assert_eq!(parse_cookie_value(""), None);
        assert_eq!(parse_cookie_value(".game"), None);
        assert_eq!(parse_cookie_value("token."), None);
    }

    #[test]
    fn csrf_tokens_are_fresh_and_url_safe() {
        let (first, second) = (new_csrf_token(), new_csrf_token());
        assert_ne!(first, second);
        assert_eq!(first.len(), 22);
        assert!(!first.contains(SEPARATOR));
    }
}

/// Property tests: whatever a browser sends as its cookie, the session read from
/// it is either the one html-gallows sealed or a new one that no form matches.
#[cfg(test)]
mod properties {
    use std::{
        pin::pin,
        task::{Context, Poll, Waker},
    };

    use axum::{
        http::{HeaderValue, Request, header::SET_COOKIE},
        response::IntoResponse,
    };
    use proptest::prelude::*;

    use super::*;

    fn settings() -> CookieSettings {
        CookieSettings {
            key: Key::derive_from(b"the property tests' cookie key, long enough to sign"),
            secure: false,
        }
    }

    /// The session html-gallows reads from a request with this `Cookie` header.
    fn read(cookie: Option<HeaderValue>) -> Session {
        let mut request = Request::builder();
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        let settings = settings();
        let mut reading = pin!(Session::from_request_parts(&mut parts, &settings));
        // Reading a session never waits.
        match reading
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(Ok(session)) => session,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => panic!("reading a session waited"),
        }
    }

    /// The `name=value` the browser sends back after this session's response.
    fn cookie_of(session: Session) -> String {
        let response = (session, ()).into_response();
        let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    }

    fn header(cookie: &str) -> Option<HeaderValue> {
        Some(HeaderValue::from_str(cookie).unwrap())
    }

    /// A session no form can match: started here, no game.
    fn assert_new(session: &Session, submitted: Option<&str>) {
        assert_eq!(session.game_id(), None);
        assert!(session.verify_csrf(submitted).is_err());
        assert!(session.verify_csrf(Some(session.csrf_token())).is_err());
        assert!(session.verify_csrf(None).is_err());
    }

    /// A genuine cookie: a session started by html-gallows, maybe playing `game`.
    fn genuine(game: Option<String>) -> (String, String) {
        let session = read(None);
        let token = session.csrf_token().to_owned();
        let session = match game {
            Some(game) => session.play(game),
            None => session,
        };
        (cookie_of(session), token)
    }

    proptest! {
        #[test]
        fn any_cookie_header_gives_a_new_session(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            submitted in proptest::option::of(".{0,40}"),
        ) {
            if let Ok(cookie) = HeaderValue::from_bytes(&bytes) {
                assert_new(&read(Some(cookie)), submitted.as_deref());
            }
        }

        #[test]
        fn any_session_cookie_value_gives_a_new_session(
            value in "[!-~]{0,300}",
            others in "([a-z_]{1,8}=[a-zA-Z0-9%.]{0,10}; ){0,3}",
            submitted in proptest::option::of("[A-Za-z0-9_-]{0,30}"),
        ) {
            let cookie = format!("{others}{COOKIE_NAME}={value}");
            assert_new(&read(header(&cookie)), submitted.as_deref());
        }

        #[test]
        fn a_genuine_cookie_round_trips(
            game in proptest::option::of("\\PC{1,40}"),
            others in "([a-z]{1,8}=[a-zA-Z0-9.]{0,10}; ){0,3}",
        ) {
            let (cookie, token) = genuine(game.clone());
            let session = read(header(&format!("{others}{cookie}")));
            prop_assert_eq!(session.csrf_token(), token.as_str());
            prop_assert_eq!(session.game_id(), game.as_deref());
            prop_assert!(session.verify_csrf(Some(&token)).is_ok());
            // Unchanged, the session does not set its cookie again.
            let response = (session, ()).into_response();
            prop_assert!(!response.headers().contains_key(SET_COOKIE));
        }

        #[test]
        fn a_changed_sealed_cookie_is_refused(
            game in proptest::option::of("[A-Za-z0-9_-]{22}"),
            at in any::<proptest::sample::Index>(),
            replacement in "[!-~]",
        ) {
            let (cookie, token) = genuine(game.clone());
            let (name, value) = cookie.split_once('=').unwrap();
            let at = at.index(value.len());
            prop_assume!(value[at..=at] != replacement);
            let changed = format!("{name}={}{replacement}{}", &value[..at], &value[at + 1..]);
            let session = read(header(&changed));
            // The value is what was sealed, byte for byte, or nothing at all. A changed
            // character can leave the decoded bytes as they were (base64's unused low bits
            // of the last character): then it is the genuine session, whole.
            let unchanged_bytes = session.verify_csrf(Some(&token)).is_ok();
            if unchanged_bytes {
                prop_assert_eq!(session.game_id(), game.as_deref());
            } else {
                assert_new(&session, None);
            }
        }

        #[test]
        fn a_token_from_another_session_or_a_changed_one_is_refused(
            at in any::<proptest::sample::Index>(),
            replacement in "[A-Za-z0-9_-]",
        ) {
            let (cookie, token) = genuine(Some("game".to_owned()));
            let (_, other_token) = genuine(Some("game".to_owned()));
            let session = read(header(&cookie));
            prop_assert!(session.verify_csrf(Some(&token)).is_ok());
            prop_assert!(session.verify_csrf(Some(&other_token)).is_err());
            let at = at.index(token.len());
            prop_assume!(token[at..=at] != replacement);
            let changed = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
            prop_assert!(session.verify_csrf(Some(&changed)).is_err());
            prop_assert!(session.verify_csrf(Some(&token[..at])).is_err());
        }

        #[test]
        fn a_cookie_value_parses_only_as_html_gallows_writes_them(value in "\\PC{0,60}") {
            if let Some((token, game)) = parse_cookie_value(&value) {
                prop_assert!(!token.is_empty() && !token.contains(SEPARATOR));
                prop_assert!(game.as_ref().is_none_or(|game| !game.is_empty()));
                let written = match game {
                    Some(game) => format!("{token}{SEPARATOR}{game}"),
                    None => token,
                };
                prop_assert_eq!(written, value);
            }
        }
    }
}
