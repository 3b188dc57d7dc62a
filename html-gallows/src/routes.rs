//! The HTTP interface: routes, handlers, and the layers every request passes.
//!
//! The game follows post/redirect/get: the two POST routes check the form's
//! CSRF token, act through the game service, and answer `303 See Other`, so a
//! reload never plays a letter twice.

use std::convert::Infallible;

use axum::{
    Extension, Form, Router,
    error_handling::HandleErrorLayer,
    extract::{FromRef, Request, State, rejection::FormRejection},
    http::{HeaderValue, Method, StatusCode, Uri, header},
    middleware,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tower::{BoxError, Service, ServiceBuilder, limit::GlobalConcurrencyLimitLayer};
use tower_http::{limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer};

use crate::{
    config::Config,
    error::{AppError, error_page, guess_unanswered_page, problem_page, too_large_page},
    metrics,
    pages::{GamePage, ProblemPage, Retry, WelcomePage, render},
    session::{CookieSettings, Session},
    trace_context::{TraceContext, trace_requests},
    upstream::{GameService, UpstreamError},
};

const WELCOME: &str = "/hangman";
const CURRENT_GAME: &str = "/hangman/current";
const GUESS: &str = "/hangman/current/guess";
const STYLESHEET: &str = include_str!("../static/gallows.css");
/// No scripts anywhere: the pages need none, so the policy forbids them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub games: GameService,
    pub cookies: CookieSettings,
}

impl FromRef<AppState> for CookieSettings {
    fn from_ref(state: &AppState) -> Self {
        state.cookies.clone()
    }
}

/// What the two forms post: the session's CSRF token and, from the guess
/// forms, a letter (a keyboard button's value or the text field's).
#[derive(Debug, Deserialize)]
struct PostedForm {
    csrf_token: Option<String>,
    #[serde(default)]
    guess: String,
}

/// The form, once it is readable and carries this session's CSRF token.
fn accept_form(
    session: &Session,
    form: Result<Form<PostedForm>, FormRejection>,
) -> Result<PostedForm, AppError> {
    let Form(form) = form.map_err(|rejection| {
        // A body without a Content-Length passes the body-limit layer and
        // fails here, once reading it goes over the limit.
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::BadForm(rejection.body_text())
        }
    })?;
    session.verify_csrf(form.csrf_token.as_deref())?;
    Ok(form)
}

/// The whole application: the routes inside the layers every request passes.
///
/// The layers wrap the router once, as one statically composed stack, rather
/// than through `Router::layer`, which wraps (and boxes, and clones per request)
/// every route separately. Only the metrics middleware sits inside the router,
/// where the matched route is known.
pub fn app(
    state: AppState,
    config: &Config,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    ServiceBuilder::new()
        .layer(middleware::from_fn(trace_requests))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(
            config.max_concurrent_requests,
        ))
        .timeout(config.request_timeout)
        .map_response(friendly_too_large)
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .service(router(state))
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(WELCOME) }))
        .route(WELCOME, get(welcome).post(new_game))
        .route(CURRENT_GAME, get(show_game))
        // A guess address opened as a page (a bookmark, a retyped URL) shows the game.
        .route(
            GUESS,
            post(guess).get(|| async { Redirect::to(CURRENT_GAME) }),
        )
        .route("/static/gallows.css", get(stylesheet))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readiness))
        .route("/metrics", get(|| async { metrics::handle().render() }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn(metrics::track_requests))
        .with_state(state)
}

async fn welcome(session: Session) -> Response {
    let page = render(
        StatusCode::OK,
        &WelcomePage {
            csrf_token: session.csrf_token(),
        },
    );
    (session, page).into_response()
}

async fn new_game(
    State(app): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    session: Session,
    form: Result<Form<PostedForm>, FormRejection>,
) -> Response {
    if let Err(error) = accept_form(&session, form) {
        return error_page(error, session, WELCOME);
    }
    match app.games.create_game(&trace).await {
        Ok(game) => {
            metrics::game_created();
            (session.play(game.game_id), Redirect::to(CURRENT_GAME)).into_response()
        }
        Err(error) => error_page(error.into(), session, WELCOME),
    }
}

async fn show_game(
    State(app): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    session: Session,
) -> Response {
    let Some(game_id) = session.game_id() else {
        return (session, Redirect::to(WELCOME)).into_response();
    };
    match app.games.get_game(game_id, &trace).await {
        Ok(tally) => {
            let page = render(StatusCode::OK, &GamePage::new(session.csrf_token(), &tally));
            (session, page).into_response()
        }
        Err(error) => error_page(error.into(), session, CURRENT_GAME),
    }
}

async fn guess(
    State(app): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    session: Session,
    form: Result<Form<PostedForm>, FormRejection>,
) -> Response {
    let guess = match accept_form(&session, form) {
        Ok(form) => form.guess,
        Err(error) => return error_page(error, session, CURRENT_GAME),
    };
    let Some(game_id) = session.game_id().map(str::to_owned) else {
        return (session, Redirect::to(WELCOME)).into_response();
    };
    match app.games.make_move(&game_id, &guess, &trace).await {
        Ok(tally) => {
            metrics::move_played(tally.game_state());
            (session, Redirect::to(CURRENT_GAME)).into_response()
        }
        Err(UpstreamError::InvalidGuess(reason)) => {
            metrics::move_refused();
            tracing::debug!(%reason, "guess refused");
            // Nothing changed: show the game as it stands, and why.
            match app.games.get_game(&game_id, &trace).await {
                Ok(tally) => {
                    let page = render(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &GamePage::refused(session.csrf_token(), &tally),
                    );
                    (session, page).into_response()
                }
                Err(error) => error_page(error.into(), session, CURRENT_GAME),
            }
        }
        // The service may have received the guess and played it; only its
        // answer is missing. The page says so rather than "try again".
        Err(UpstreamError::Unavailable(reason)) => {
            error_page(AppError::GuessUnanswered(reason), session, CURRENT_GAME)
        }
        Err(error) => error_page(error.into(), session, CURRENT_GAME),
    }
}

async fn readiness(
    State(app): State<AppState>,
    Extension(trace): Extension<TraceContext>,
) -> (StatusCode, &'static str) {
    if app.games.is_serving(&trace).await {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the game service is not serving\n",
        )
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

async fn not_found(session: Session) -> Response {
    problem_page(
        session,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
        false,
        None,
    )
}

async fn method_not_allowed(session: Session) -> Response {
    problem_page(
        session,
        StatusCode::METHOD_NOT_ALLOWED,
        "Not something this page does",
        "This address does not take that kind of request.",
        false,
        None,
    )
}

/// The body-limit layer refuses a declared Content-Length over the limit with a
/// bare text 413; the player gets the problem page instead (status kept).
fn friendly_too_large<B>(response: Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large_page(CURRENT_GAME)
    } else {
        response.map(axum::body::Body::new)
    }
}

/// The answer when a request is shed (too many at once) or runs out of time.
/// A guess that ran out of time may have been played (its call was under way),
/// and gets the page that says so.
async fn overloaded(method: Method, uri: Uri, error: BoxError) -> Response {
    let timed_out = error.is::<tower::timeout::error::Elapsed>();
    if timed_out && method == Method::POST && uri.path() == GUESS {
        tracing::warn!(%error, "guess not answered in time");
        return guess_unanswered_page(CURRENT_GAME);
    }
    let (title, message) = if timed_out {
        (
            "That took too long",
            "The game did not answer in time. Please try again.",
        )
    } else {
        (
            "Too busy right now",
            "Too many players at once. Please try again in a moment.",
        )
    };
    tracing::warn!(%error, "request not served");
    let page = render(
        StatusCode::SERVICE_UNAVAILABLE,
        &ProblemPage {
            // No session is read here: the page offers only links.
            csrf_token: "",
            title,
            message,
            offer_new_game: false,
            retry: Some(Retry::try_again(CURRENT_GAME)),
        },
    );
    ([(header::RETRY_AFTER, "5")], page).into_response()
}

/// Property tests of the forms: whatever is posted, a form is read only when it
/// carries this session's token, and a genuine one is read as it was sent.
#[cfg(test)]
mod properties {
    use axum::{body::Body, extract::FromRequest};
    use proptest::prelude::*;

    use super::*;

    const TOKEN: &str = "kqF3x1mO0a9Hn3vEw1bWPg";
    const URLENCODED: &str = "application/x-www-form-urlencoded";

    /// The form as the POST handlers read it, for `session`.
    fn read_form(
        content_type: &str,
        body: Vec<u8>,
        session: &Session,
    ) -> Result<PostedForm, AppError> {
        let request = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        accept_form(session, runtime.block_on(Form::from_request(request, &())))
    }

    /// Every byte as `%XX`: a valid encoding of any text.
    fn percent_encoded(text: &str) -> String {
        text.bytes().map(|byte| format!("%{byte:02X}")).collect()
    }

    /// A field of a form: a name the handlers read or another one, and a value,
    /// written plainly (when it needs no escaping) or percent-encoded.
    fn field() -> impl Strategy<Value = (String, String, bool)> {
        let name = prop_oneof![
            Just("csrf_token".to_owned()),
            Just("guess".to_owned()),
            "[a-z_]{1,12}",
        ];
        let value = prop_oneof![Just(TOKEN.to_owned()), "[a-zA-Z]{0,3}", "\\PC{0,12}"];
        (name, value, any::<bool>())
    }

    proptest! {
        #[test]
        fn any_body_is_read_only_with_the_sessions_token(
            body in proptest::collection::vec(any::<u8>(), 0..400),
            content_type in prop_oneof![
                Just(URLENCODED),
                Just("application/x-www-form-urlencoded; charset=UTF-8"),
                Just("text/plain"),
                Just("multipart/form-data; boundary=x"),
            ],
        ) {
            match read_form(content_type, body, &Session::for_tests(TOKEN, false)) {
                Ok(form) => prop_assert_eq!(form.csrf_token.as_deref(), Some(TOKEN)),
                Err(AppError::BadForm(_) | AppError::Csrf(_)) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn a_form_is_read_as_sent_when_its_token_is_the_sessions(
            fields in proptest::collection::vec(field(), 0..6),
        ) {
            let body = fields
                .iter()
                .map(|(name, value, encode)| {
                    let plain = value.bytes().all(|b| b.is_ascii_alphanumeric());
                    if *encode || !plain {
                        format!("{name}={}", percent_encoded(value))
                    } else {
                        format!("{name}={value}")
                    }
                })
                .collect::<Vec<_>>()
                .join("&");
            let values = |wanted: &str| -> Vec<&String> {
                fields.iter().filter(|(name, ..)| name == wanted).map(|(_, value, _)| value).collect()
            };
            let (tokens, guesses) = (values("csrf_token"), values("guess"));
            let answer = read_form(URLENCODED, body.clone().into_bytes(), &Session::for_tests(TOKEN, false));
            if tokens.len() == 1 && tokens[0] == TOKEN && guesses.len() <= 1 {
                let form = answer.map_err(|error| TestCaseError::fail(format!("{body}: {error}")))?;
                let sent = guesses.first().map_or("", |guess| guess.as_str());
                prop_assert_eq!(form.guess, sent);
            } else {
                prop_assert!(answer.is_err(), "{} was read", body);
            }
        }

        #[test]
        fn a_token_from_another_session_or_a_new_one_is_refused(
            guess in "[a-z]",
            other in "[A-Za-z0-9_-]{22}",
        ) {
            prop_assume!(other != TOKEN);
            let body = format!("csrf_token={other}&guess={guess}").into_bytes();
            let answer = read_form(URLENCODED, body, &Session::for_tests(TOKEN, false));
            prop_assert!(matches!(answer, Err(AppError::Csrf(_))));
            // A session started by this very request matches no form, not even
            // one that carries its token.
            let body = format!("csrf_token={other}&guess={guess}").into_bytes();
            let answer = read_form(URLENCODED, body, &Session::for_tests(&other, true));
            prop_assert!(matches!(answer, Err(AppError::Csrf(_))));
        }
    }
}
