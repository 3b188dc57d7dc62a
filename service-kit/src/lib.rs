//! The plumbing every Hangman service shares, kept in one place so the three services
//! cannot drift apart on it.
//!
//! - [`connections`]: admission of TCP connections: a cap on connections that have not yet
//!   sent a complete request, and a deadline for that first request (the slowloris defence).
//! - [`http`]: the front ends' HTTP/1.1 server: [`connections`] plus hyper's header-read
//!   timeout on every later request, upgrades (WebSockets) and graceful shutdown.
//! - [`metrics`]: the process-wide Prometheus recorder and the upkeep that keeps it bounded.
//! - [`testing`]: a helper the services' tests of half-open connections share.
//!
//! The game service serves gRPC with tonic's own server; it takes [`connections`] through
//! tonic's `incoming` stream (feature `tonic`).

pub mod connections;
pub mod http;
pub mod metrics;
pub mod testing;

pub use connections::ConnectionLimits;
