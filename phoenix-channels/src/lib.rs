//! A Phoenix Channels server for axum, with no application in it: the wire protocol the npm
//! `phoenix` client speaks (V1 and V2 JSON, V2 binary), sockets, channels and Presence
//! payloads. An application declares its channels on a [`Router`](channel::Router), accepts or
//! refuses connections with a [`Connect`](transport::Connect) hook, and mounts the
//! [`Endpoint`](transport::Endpoint)'s routes in its axum app.
//!
//! Layers, outermost first:
//! - [`transport`]: `GET {mount}/websocket`, `vsn` negotiation, origin check, auth-token
//!   subprotocol, connection cap; the [`Connect`](transport::Connect) hook (a socket module's
//!   `connect/3`).
//! - [`longpoll`]: `GET`/`POST {mount}/longpoll`, Phoenix's long-poll transport: sessions
//!   resumed by signed tokens, each running the same socket as a WebSocket connection.
//! - `wire` (private): what a socket reads and writes, a WebSocket or a long-poll session.
//! - [`serializer`]: frames ⇄ [`message`]s (V1 objects, V2 arrays, V2 binary).
//! - `fragment` (private): large outgoing messages split into WebSocket fragments.
//! - [`socket`]: one connection: heartbeats, joins, leaves, routing, idle timeout; its
//!   message rate limit (`rate_limit`, a token bucket) and the [`close_code`]s it sends.
//! - [`channel`]: the [`Channel`](channel::Channel) trait and the topic [`Router`](channel::Router);
//!   `mailbox` (private) is the small queues between a socket and its channels.
//! - [`presence`]: Phoenix Presence's payloads (`presence_state`, `presence_diff`).
//! - [`telemetry`]: the [`Metrics`](telemetry::Metrics) recorded, under names the user chooses.
//! - `test_client` (feature `test-client`): a raw WebSocket client for tests of a server built
//!   on the crate, that writes and reads the wire format by hand.

pub mod channel;
pub mod close_code;
mod fragment;
pub mod longpoll;
mod mailbox;
pub mod message;
pub mod presence;
mod rate_limit;
pub mod serializer;
pub mod socket;
pub mod telemetry;
#[cfg(feature = "test-client")]
pub mod test_client;
pub mod transport;
mod wire;
