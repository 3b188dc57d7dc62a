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
