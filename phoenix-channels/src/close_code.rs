//! The WebSocket close codes the server sends (RFC 6455 §7.4.1). Never 1000: the npm client
//! does not reconnect after a normal closure, and every close the server starts is one the
//! client should recover from.

/// Server shutting down, or the connection was idle too long.
pub const GOING_AWAY: u16 = 1001;
/// A frame that breaks RFC 6455: unmasked, a reserved opcode or bit, a control frame over
/// 125 bytes or fragmented, a continuation with nothing to continue.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text message that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Repeated abuse of the message rate limit.
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame larger than the configured maximum.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// Service restart (for a deployment that wants clients to reconnect elsewhere).
pub const SERVICE_RESTART: u16 = 1012;
