//! What can go wrong while answering a player, and the friendly page (with the
//! right status) each failure gets. No failure shows a stack trace or a blank page.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    pages::{ProblemPage, Retry, render},
    session::{CsrfMismatch, Session},
    upstream::UpstreamError,
};

/// Seconds a browser or crawler is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Csrf(#[from] CsrfMismatch),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the form could not be read: {0}")]
    BadForm(String),
    #[error("the form is larger than the body limit")]
    TooLarge,
    /// A guess was sent but its answer never came (the game service stopped
    /// answering or was too slow): it may have been played all the same.
    #[error("the guess went unanswered: {0}")]
    GuessUnanswered(String),
}

/// The heading and text of the page for a guess whose answer never came. The
/// game service may have played it (a request it received is acted on even when
/// its answer arrives too late), so the page cannot say it was not, and leads
/// back to the game, which tells. Playing the same letter again is harmless: a
/// letter tried twice costs no second turn.
pub const GUESS_UNANSWERED_TITLE: &str = "Your guess may have counted";
pub const GUESS_UNANSWERED_MESSAGE: &str = "The game service did not answer, so we cannot \
     tell whether your guess was played. Reload the game to see; a letter \
     tried twice never costs a second turn.";

/// The heading and text of the page for a request body over the limit.
const TOO_LARGE_TITLE: &str = "That form is too large";
const TOO_LARGE_MESSAGE: &str = "What was sent is far larger than any of our forms, \
     so nothing was played. Go back to your game and try again.";

/// The page for a request body over the limit, where no session is at hand
/// (the body-limit layer answers before any route runs): it offers only links.
pub fn too_large_page(retry_href: &'static str) -> Response {
    render(
        StatusCode::PAYLOAD_TOO_LARGE,
        &ProblemPage {
            csrf_token: "",
            title: TOO_LARGE_TITLE,
            message: TOO_LARGE_MESSAGE,
            offer_new_game: false,
            retry: Some(Retry::try_again(retry_href)),
        },
    )
}

/// The page for a guess whose answer never came, where no session is at hand
/// (the request timed out around the handler): it offers only links.
pub fn guess_unanswered_page(game_href: &'static str) -> Response {
    let page = render(
        StatusCode::SERVICE_UNAVAILABLE,
        &ProblemPage {
            csrf_token: "",
            title: GUESS_UNANSWERED_TITLE,
            message: GUESS_UNANSWERED_MESSAGE,
            offer_new_game: false,
            retry: Some(Retry::reload_game(game_href)),
        },
    );
    ([(header::RETRY_AFTER, RETRY_AFTER_SECONDS)], page).into_response()
}

/// A page that explains a problem, for `session` (whose cookie it sets, so a
/// new session's New Game button works), with an optional link onwards.
pub fn problem_page(
    session: Session,
    status: StatusCode,
    title: &'static str,
    message: &'static str,
    offer_new_game: bool,
    retry: Option<Retry>,
) -> Response {
    let page = render(
        status,
        &ProblemPage {
            csrf_token: session.csrf_token(),
            title,
            message,
            offer_new_game,
            retry,
        },
    );
    (session, page).into_response()
}

/// The page for `error`. `retry_href` is where "Try again" (or, after an
/// unanswered guess, "Reload the game") leads: a GET, so a retry never replays
/// a POST. A vanished game is also dropped from the session.
pub fn error_page(error: AppError, session: Session, retry_href: &'static str) -> Response {
    let try_again = Some(Retry::try_again(retry_href));
    let (status, title, message, offer_new_game, retry) = match &error {
        AppError::Csrf(_) => (
            StatusCode::FORBIDDEN,
            "This form is out of date",
            "The form you sent does not belong to this browser's session (it may be \
             from an old page or another site), so nothing was played.",
            true,
            None,
        ),
        AppError::BadForm(_) => (
            StatusCode::BAD_REQUEST,
            "That form could not be read",
            "Nothing was played. Go back to your game and try again.",
            false,
            try_again,
        ),
        AppError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            TOO_LARGE_TITLE,
            TOO_LARGE_MESSAGE,
            false,
            try_again,
        ),
        AppError::Upstream(UpstreamError::GameNotFound) => (
            StatusCode::NOT_FOUND,
            "That game is over",
            "Your game has expired or no longer exists. Start a new one!",
            true,
            None,
        ),
        AppError::Upstream(UpstreamError::InvalidGuess(_)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "That guess was not accepted",
            "Please guess a single letter from a to z.",
            false,
            try_again,
        ),
        AppError::Upstream(UpstreamError::Full) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many games in play",
            "Every table is taken right now. Please try again in a moment.",
            true,
            None,
        ),
        AppError::GuessUnanswered(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            GUESS_UNANSWERED_TITLE,
            GUESS_UNANSWERED_MESSAGE,
            false,
            Some(Retry::reload_game(retry_href)),
        ),
        AppError::Upstream(UpstreamError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The game is taking a break",
            "The game service is not answering right now; \
             please try again in a moment.",
            false,
            try_again,
        ),
        AppError::Upstream(UpstreamError::Failed(_)) => (
            StatusCode::BAD_GATEWAY,
            "Something went wrong",
            "The game service gave an answer we did not expect. Please try again.",
            false,
            try_again,
        ),
    };
    let session = match error {
        AppError::Upstream(UpstreamError::GameNotFound) => session.forget_game(),
        _ => session,
    };
    let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE)
        .then_some([(header::RETRY_AFTER, RETRY_AFTER_SECONDS)]);
    let page = problem_page(session, status, title, message, offer_new_game, retry);
    (retry_after, page).into_response()
}
