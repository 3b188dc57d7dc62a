//! What can go wrong while answering a player, and the friendly page (with the
//! right status) each failure gets. No failure shows a stack trace or a blank page.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    pages::{ProblemPage, render},
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
}

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
            retry_href: Some(retry_href),
        },
    )
}

/// A page that explains a problem, for `session` (whose cookie it sets, so a
/// new session's New Game button works), with an optional "Try again" link.
pub fn problem_page(
    session: Session,
    status: StatusCode,
    title: &'static str,
    message: &'static str,
    offer_new_game: bool,
    retry_href: Option<&'static str>,
) -> Response {
    let page = render(
        status,
        &ProblemPage {
            csrf_token: session.csrf_token(),
            title,
            message,
            offer_new_game,
            retry_href,
        },
    );
    (session, page).into_response()
}

/// The page for `error`. `retry_href` is where "Try again" leads (a GET, so a
/// retry never replays a POST). A vanished game is also dropped from the session.
pub fn error_page(error: AppError, session: Session, retry_href: &'static str) -> Response {
    let (status, title, message, offer_new_game, retry) = match &error {
        AppError::Csrf(_) => (
            StatusCode::FORBIDDEN,
            "This form is out of date",
            "The form you sent does not belong to this browser's session (it may be \
             from an old page or another site), so nothing was played.",
            true,
            false,
        ),
        AppError::BadForm(_) => (
            StatusCode::BAD_REQUEST,
            "That form could not be read",
            "Nothing was played. Go back to your game and try again.",
            false,
            true,
        ),
        AppError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            TOO_LARGE_TITLE,
            TOO_LARGE_MESSAGE,
            false,
            true,
        ),
        AppError::Upstream(UpstreamError::GameNotFound) => (
            StatusCode::NOT_FOUND,
            "That game is over",
            "Your game has expired or no longer exists. Start a new one!",
            true,
            false,
        ),
        AppError::Upstream(UpstreamError::InvalidGuess(_)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "That guess was not accepted",
            "Please guess a single letter from a to z.",
            false,
            true,
        ),
        AppError::Upstream(UpstreamError::Full) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many games in play",
            "Every table is taken right now. Please try again in a moment.",
            true,
            false,
        ),
        AppError::Upstream(UpstreamError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The game is taking a break",
            "The game service is not answering right now; \
             please try again in a moment.",
            false,
            true,
        ),
        AppError::Upstream(UpstreamError::Failed(_)) => (
            StatusCode::BAD_GATEWAY,
            "Something went wrong",
            "The game service gave an answer we did not expect. Please try again.",
            false,
            true,
        ),
    };
    let session = match error {
        AppError::Upstream(UpstreamError::GameNotFound) => session.forget_game(),
        _ => session,
    };
    let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE)
        .then_some([(header::RETRY_AFTER, RETRY_AFTER_SECONDS)]);
    let page = problem_page(
        session,
        status,
        title,
        message,
        offer_new_game,
        retry.then_some(retry_href),
    );
    (retry_after, page).into_response()
}
