//! The Hangman game service: the rules, a dictionary and a registry of live
//! games behind the `hangman.v1` gRPC API.
//!
//! - [`rules`]: the game itself, pure (no I/O, no async), and each game's history of
//!   changes (its version, and any earlier tally). Start here.
//! - [`dictionary`]: the word list and uniform random choice.
//! - [`store`]: where live games are kept (this process, or Redis shared by replicas): by
//!   id, with an idle TTL, a maximum count and change notification, and the members of
//!   each game's room as leases (presence).
//! - [`service`]: the gRPC API, translating messages and errors to and from the store.
//! - [`play`]: the `Play` stream, many moves over one call: per-game order, the moves in
//!   flight bounded.
//! - [`server`]: assembles the server (API, health, reflection, `/metrics`) and runs it.
//! - [`config`]: flags and their environment-variable twins.
//! - [`telemetry`]: logs (failed calls with `traceparent`), Prometheus metrics.
//! - [`oversized`]: a request over the size limit is answered `RESOURCE_EXHAUSTED`.
//! - `testing` (feature `test-support`, tests only): a game service with the words a test
//!   gives, a Redis of the test's own, the binary as a process.

pub mod config;
pub mod dictionary;
pub mod oversized;
pub mod play;
pub mod rules;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;

pub use config::Config;
pub use server::{RunningServer, StartError, start};
