//! html-gallows: the Hangman game as server-rendered HTML that needs no
//! JavaScript, played through the game service's `hangman.v1` gRPC API.
//!
//! How a request flows, module by module:
//!
//! - [`config`]: the flags (each with an `HTML_GALLOWS_*` environment twin).
//! - [`server`]: binds the listener, serves, stops gracefully.
//! - [`routes`]: the routes, their handlers, and the layers around them (limits,
//!   security headers).
//! - [`trace_context`]: gives each request a W3C `traceparent` and a log span.
//! - [`session`]: the private session cookie (CSRF token and game id).
//! - [`upstream`]: the game-service client; every call carries the traceparent.
//! - [`tally_cache`]: the tallies of the games being viewed, kept current by
//!   the service's watch streams, so showing a game needs no call.
//! - [`pages`]: askama templates (in `templates/`) and the view of a tally.
//! - [`error`]: failures and the friendly page each one gets.
//! - [`metrics`]: Prometheus counters and histograms, served at `/metrics`.
//!
//! Log output, the shutdown signal and duration flags are `service_kit`'s, shared with the
//! other two services.

pub mod config;
pub mod error;
pub mod metrics;
pub mod pages;
pub mod routes;
pub mod server;
pub mod session;
pub mod tally_cache;
pub mod trace_context;
pub mod upstream;

pub use config::Config;
pub use server::{Server, start};
