//! The plumbing every Hangman service shares, kept in one place so the three services
//! cannot drift apart on it.
//!
//! - [`connections`]: admission of TCP connections: a cap on connections that have not yet
//!   sent a complete request, a deadline for that first request (the slowloris defence) and,
//!   optionally, a hard end of each connection's life.
//! - [`coalesce`]: batched writes for HTTP/2 connections: replies (or requests) ready in the
//!   same pass of the run queue leave in one write.
//! - [`http`]: the front ends' HTTP/1.1 server: [`connections`] plus hyper's header-read
//!   timeout on every later request, upgrades (WebSockets) and graceful shutdown.
//! - [`metrics`]: the process-wide Prometheus recorder and the upkeep that keeps it bounded.
//! - [`logging`]: the log subscriber (`RUST_LOG`, text or JSON lines, colour on a terminal only).
//! - [`shutdown`]: the signal that stops a service (SIGTERM or Ctrl-C).
//! - [`lifecycle`]: [`run`], the whole of each service's `main` after its flags are parsed:
//!   logs, start, serve until that signal, graceful stop.
//! - [`durations`]: the value parser of duration flags where zero makes no sense.
//! - [`trace_context`]: W3C `traceparent`, parsed, continued and written.
//! - [`unsent`]: whether a failed gRPC call never reached the server (safe to make again).
//! - [`testing`]: the helpers the services' tests of half-open connections share.
//!
//! The game service serves gRPC with tonic's own server; it takes [`connections`] through
//! tonic's `incoming` stream (feature `tonic`).

pub mod coalesce;
pub mod connections;
pub mod durations;
pub mod http;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod testing;
pub mod trace_context;
pub mod unsent;

pub use connections::ConnectionLimits;
pub use lifecycle::run;
