//! html-gallows' guess form: `POST /hangman/current/guess` through the whole
//! app (layers, form extractor, CSRF check), with the session cookie or none.
//!
//! Input: one byte choosing the `Content-Type` (low 3 bits) and whether the
//! session cookie is sent (bit 3 clear), then the body.
#![no_main]

use axum::http::StatusCode;
use hangman_fuzz::gallows::{FORM_TOKEN, FormHarness, MAX_BODY_BYTES};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded; charset=UTF-8"),
    None,
    Some("text/plain"),
    Some("multipart/form-data; boundary=x"),
    Some("application/json"),
];

fuzz_target!(|data: &[u8]| {
    let [choice, body @ ..] = data else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(choice & 7) % CONTENT_TYPES.len()];
    let with_cookie = choice & 8 == 0;
    let (status, location) = FormHarness::get().post_guess(content_type, with_cookie, body);

    let pairs: Vec<_> = form_urlencoded::parse(body).collect();
    let count = |name: &str| pairs.iter().filter(|(key, _)| key == name).count();
    let carries_token = pairs
        .iter()
        .any(|(key, value)| key == "csrf_token" && value == FORM_TOKEN);
    let urlencoded =
        content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));

    match status {
        // Accepted: the session has no game, so the guess leads to the start.
        StatusCode::SEE_OTHER => {
            assert!(
                with_cookie && urlencoded && carries_token,
                "accepted without the token"
            );
            assert_eq!(location.as_deref(), Some("/hangman"));
        }
        StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN => {}
        StatusCode::PAYLOAD_TOO_LARGE => assert!(body.len() > MAX_BODY_BYTES),
        other => panic!("{other} for a form"),
    }
    // A well-formed form with this session's token, one guess at most, is
    // always accepted.
    let well_formed = count("csrf_token") == 1 && count("guess") <= 1;
    if with_cookie && urlencoded && carries_token && well_formed && body.len() <= MAX_BODY_BYTES {
        assert_eq!(status, StatusCode::SEE_OTHER, "a genuine form was refused");
    }
});
