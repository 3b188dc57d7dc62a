//! The Hangman application on top of the protocol layer: the socket's connect hook and the two
//! channels of docs/design.md §5.
//!
//! - [`game_channel`]: `hangman:game`, a private game per join (or resumed by id).
//! - [`room_channel`]: `game:<id>`, a shared room with Presence, and recovery of the tallies a
//!   rejoining client missed.
//! - [`rooms`]: the rooms this process carries, one game-service watch each, fanned out to
//!   their members.
//! - [`members`]: the room members this process carries, kept in the game service's presence.
//! - [`tally`]: the tally as channel JSON.

pub mod game_channel;
pub mod members;
pub mod room_channel;
pub mod rooms;
pub mod tally;

use rand::Rng;
use serde_json::Value;

use crate::upstream::{TraceContext, Upstream, UpstreamError};
use phoenix_channels::channel::{Reply, Router};
use phoenix_channels::message::Payload;
use phoenix_channels::transport::{Connect, ConnectInfo, ConnectRefused};

/// The longest presence key kept from the `player` connect param, in characters.
pub const MAX_PLAYER_LEN: usize = 64;

/// What a connection carries: who the player is and the trace its calls belong to.
#[derive(Debug, Clone)]
pub struct Player {
    /// The player's name, the key presence groups by: the `player` param (trimmed, bounded)
    /// or a random id.
    pub key: String,
    pub trace: TraceContext,
}

/// The socket module: `connect/3` accepts everyone; the auth token, if any, is only logged as
/// present (the game has no accounts).
pub struct HangmanSocket;

impl Connect for HangmanSocket {
    type Assigns = Player;

    fn connect(&self, info: &ConnectInfo) -> Result<Player, ConnectRefused> {
        let name: String = info
            .params
            .get("player")
            .map(|p| p.trim().chars().take(MAX_PLAYER_LEN).collect())
            .unwrap_or_default();
        let name = name.trim();
        let key = if name.is_empty() {
            format!("player-{:08x}", rand::rng().random::<u32>())
        } else {
            name.to_owned()
        };
        let trace = TraceContext::new();
        tracing::info!(trace_id = %trace.trace_id(), player = %key, token = info.auth_token.is_some(), "socket connected");
        Ok(Player { key, trace })
    }
}

/// `channel "hangman:game"` and `channel "game:*"`.
pub fn router(
    upstream: Upstream,
    members: members::Members,
    rooms: rooms::Rooms,
) -> Router<Player> {
    Router::new()
        .channel(
            game_channel::TOPIC,
            game_channel::GameJoin {
                upstream: upstream.clone(),
            },
        )
        .channel(
            room_channel::TOPIC_PATTERN,
            room_channel::RoomJoin {
                upstream,
                members,
                rooms,
            },
        )
}

/// The longest game id forwarded to the game service. Its ids are 128 random bits as
/// URL-safe base64 without padding, 22 characters; the bound leaves room for a longer id format
/// while a 60 000-character id is refused here, never sent.
pub const MAX_GAME_ID_LEN: usize = 64;

/// Whether `id` could name a game: 1 to [`MAX_GAME_ID_LEN`] characters of the URL-safe base64
/// alphabet (`A-Z a-z 0-9 - _`). Anything else names no game, so it is refused without a call.
pub fn is_plausible_game_id(id: &str) -> bool {
    (1..=MAX_GAME_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The longest guess forwarded to the game service; longer ones are invalid without asking.
const MAX_GUESS_LEN: usize = 16;

/// Reads a guess from a `make_move` payload: a bare string (the original course client) or
/// `{"guess": "a"}`.
fn guess_of(payload: &Payload) -> Result<&str, Reply> {
    let guess = match payload.as_json() {
        Some(Value::String(guess)) => guess,
        Some(Value::Object(map)) => match map.get("guess") {
            Some(Value::String(guess)) => guess,
            _ => return Err(Reply::error("invalid_payload")),
        },
        _ => return Err(Reply::error("invalid_payload")),
    };
    if guess.len() > MAX_GUESS_LEN {
        return Err(Reply::error("invalid_guess"));
    }
    Ok(guess)
}

/// An upstream failure as an error reply (`{"reason": ...}`).
fn error_reply(err: &UpstreamError) -> Reply {
    Reply::error(err.reason())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_for(player: Option<&str>) -> String {
        let mut info = ConnectInfo::default();
        if let Some(player) = player {
            info.params.insert("player".into(), player.into());
        }
        HangmanSocket.connect(&info).expect("everyone connects").key
    }

    #[test]
    fn the_player_param_is_trimmed_and_cut_to_its_limit_in_characters() {
        assert_eq!(key_for(Some("  alice \t")), "alice");
        let exactly = "é".repeat(MAX_PLAYER_LEN);
        assert_eq!(key_for(Some(&exactly)), exactly);
        let longer = format!("{exactly}xyz");
        assert_eq!(key_for(Some(&longer)), exactly);
        // Cut first, trimmed again: no trailing blank left by the cut.
        let spaced = format!("{} tail", "a".repeat(MAX_PLAYER_LEN - 1));
        assert_eq!(key_for(Some(&spaced)), "a".repeat(MAX_PLAYER_LEN - 1));
    }

    #[test]
    fn game_ids_are_bounded_url_safe_base64() {
        assert!(is_plausible_game_id("AbC-_09xyzAbC-_09xyzAb"));
        assert!(is_plausible_game_id(&"a".repeat(MAX_GAME_ID_LEN)));
        for bad in ["", " ", "abc def", "abc/def", "abc=", "é", "a\u{0}"] {
            assert!(!is_plausible_game_id(bad), "{bad:?}");
        }
        assert!(!is_plausible_game_id(&"a".repeat(MAX_GAME_ID_LEN + 1)));
    }

    #[test]
    fn a_missing_or_blank_player_gets_a_random_key() {
        for player in [None, Some(""), Some("   ")] {
            let key = key_for(player);
            let hex = key.strip_prefix("player-").expect("a generated key");
            assert_eq!(hex.len(), 8, "{key}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        }
        assert_ne!(key_for(None), key_for(None));
    }
}
