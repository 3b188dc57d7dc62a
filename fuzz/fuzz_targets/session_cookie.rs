//! html-gallows' session: the sealed `gallows_session` cookie read from a
//! `Cookie` header, and the CSRF check against it.
//!
//! Input: `[tamper_at, tamper_with]`, then four lines: the session's plain value
//! (`token` or `token.game_id`), the rest of the `Cookie` header before the
//! session cookie and after it, and the token a form sends. The target seals
//! the value with its key, changes one byte of the sealed text when
//! `tamper_at` is not zero, and reads the header as html-gallows does.
#![no_main]

use axum::http::HeaderValue;
use hangman_fuzz::gallows::{seal, session_from};
use html_gallows::session::COOKIE_NAME;
use libfuzzer_sys::fuzz_target;

/// How html-gallows' sessions are written: a token, then `.` and a game id when
/// a game is on; neither part empty.
fn expected(value: &str) -> Option<(&str, Option<&str>)> {
    let (token, game) = match value.split_once('.') {
        Some((token, game)) => (token, Some(game)),
        None => (value, None),
    };
    (!token.is_empty() && game != Some("")).then_some((token, game))
}

fuzz_target!(|data: &[u8]| {
    let [tamper_at, tamper_with, rest @ ..] = data else {
        return;
    };
    let mut lines = rest.split(|&byte| byte == b'\n');
    let mut line = || String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let (value, before, after, submitted) = (line(), line(), line(), line());

    let mut sealed = seal(&value).into_bytes();
    let tampered = *tamper_at != 0 && *tamper_with != 0;
    if tampered {
        let at = usize::from(tamper_at - 1) % sealed.len();
        sealed[at] ^= tamper_with;
    }
    let mut header = format!("{before}; {COOKIE_NAME}=").into_bytes();
    header.extend_from_slice(&sealed);
    header.extend_from_slice(format!("; {after}").as_bytes());
    // What cannot be a header value never reaches html-gallows.
    let Ok(header) = HeaderValue::from_bytes(&header) else {
        return;
    };
    let readable = header.to_str().is_ok();

    let session = session_from(Some(header));
    let token = session.csrf_token().to_owned();
    let is_new = session.verify_csrf(Some(&token)).is_err();
    if is_new {
        // A session started here: no game, and no form can match it.
        assert_eq!(session.game_id(), None);
        assert!(session.verify_csrf(Some(&submitted)).is_err());
        assert!(session.verify_csrf(None).is_err());
        assert_eq!(token.len(), 22);
    } else {
        // Only the sealed value can come out: nothing else in the header, and
        // no change to the sealed text, makes another session.
        let (want_token, want_game) = expected(&value).expect("an invalid value was accepted");
        assert_eq!(token, want_token);
        assert_eq!(session.game_id(), want_game);
        assert_eq!(
            session.verify_csrf(Some(&submitted)).is_ok(),
            submitted == token
        );
    }
    // Untouched, alone in a readable header, a valid value always comes back.
    let alone = ![&before, &after]
        .iter()
        .any(|part| part.contains(COOKIE_NAME) || part.contains('%'));
    if !tampered && readable && alone && expected(&value).is_some() {
        assert!(!is_new, "a genuine session cookie was refused: {value:?}");
    }
});
