//! A long-poll session's token: which session, held by which replica, signed (HMAC-SHA256)
//! with the endpoint's key and bound to the mount that opened it.
//!
//! The token is all a client shows to resume its session, so it must not be forgeable: with a
//! guessable or unsigned one, a client could poll another's session, or (through forwarding)
//! make a replica send requests to an address of its choosing. Bound to its mount, as Phoenix
//! 1.8.10 binds it to its socket handler, a token from one mount resumes nothing at another.
//! A token carries nothing secret; it is only trusted once its signature checks out.
//!
//! A token is good for a limited time from when it was made (its issue time, in the payload):
//! each poll's answer brings a new one, and an old token must not go on naming an address to
//! forward to.
//!
//! Format: `base64url(payload) "." base64url(mac)`, where payload is a version byte, the
//! issue time (Unix seconds, 8 bytes big-endian), the session's 16-byte id and the holder's
//! address (UTF-8, possibly empty), and the MAC covers the mount, a zero byte, then the
//! payload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A session's id: 128 random bits.
pub(crate) type SessionId = [u8; 16];

const VERSION: u8 = 2;
/// The payload before the holder's address: version, issue time, session id.
const FIXED: usize = 1 + 8 + 16;

/// The shortest signing key accepted: HMAC-SHA256's own block of security.
pub const MIN_KEY_LEN: usize = 32;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) session: SessionId,
    /// The address of the replica holding the session (`host:port`), empty when the replica
    /// that made it advertises none.
    pub(crate) holder: String,
    /// When the token was made, in Unix seconds.
    pub(crate) issued_at: u64,
}

/// Now, in Unix seconds (wall-clock: the replicas that check each other's tokens share it).
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Why a token was not accepted (logged, and said in the answer's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidToken {
    #[error("the token is not a long-poll token")]
    Malformed,
    #[error("the token's signature does not match: forged, from another key, or for another mount")]
    Signature,
    #[error("the token has expired")]
    Expired,
}

/// The endpoint's signing key.
#[derive(Clone)]
pub(crate) struct Key(Hmac<Sha256>);

impl Key {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Key(Hmac::new_from_slice(secret).expect("HMAC takes a key of any length"))
    }

    fn mac(&self, mount: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(mount.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    pub(crate) fn sign(&self, mount: &str, claims: &Claims) -> String {
        let mut payload = Vec::with_capacity(FIXED + claims.holder.len());
        payload.push(VERSION);
        payload.extend_from_slice(&claims.issued_at.to_be_bytes());
        payload.extend_from_slice(&claims.session);
        payload.extend_from_slice(claims.holder.as_bytes());
        let tag = self.mac(mount, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// What `token` says, if this key made it for `mount` at most `max_age` ago.
    pub(crate) fn verify(
        &self,
        mount: &str,
        token: &str,
        max_age: Duration,
    ) -> Result<Claims, InvalidToken> {
        let (payload, tag) = token.split_once('.').ok_or(InvalidToken::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| InvalidToken::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| InvalidToken::Malformed)?;
        // Checked in constant time, before anything in the payload is believed.
        self.mac(mount, &payload)
            .verify_slice(&tag)
            .map_err(|_| InvalidToken::Signature)?;
        if payload.len() < FIXED || payload[0] != VERSION {
            return Err(InvalidToken::Malformed);
        }
        let (issued_at, rest) = payload[1..].split_at(8);
        let (session, holder) = rest.split_at(16);
        let claims = Claims {
            session: session.try_into().expect("16 bytes"),
            holder: String::from_utf8(holder.to_vec()).map_err(|_| InvalidToken::Malformed)?,
            issued_at: u64::from_be_bytes(issued_at.try_into().expect("8 bytes")),
        };
        // Whole seconds on both sides: an age is a second off at most, given to the client.
        if now().saturating_sub(claims.issued_at) > max_age.as_secs() + 1 {
            return Err(InvalidToken::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: Duration = Duration::from_secs(60);

    fn claims() -> Claims {
        Claims {
            session: [7; 16],
            holder: "10.0.0.5:4000".into(),
            issued_at: now(),
        }
    }

    #[test]
    fn a_token_gives_back_what_was_signed() {
        let key = Key::new(&[1; 32]);
        let token = key.sign("/socket", &claims());
        assert_eq!(key.verify("/socket", &token, AGE), Ok(claims()));
        let local = Claims {
            holder: String::new(),
            ..claims()
        };
        assert_eq!(
            key.verify("/socket", &key.sign("/socket", &local), AGE),
            Ok(local)
        );
    }

    #[test]
    fn another_key_or_mount_or_a_changed_byte_is_refused() {
        let key = Key::new(&[1; 32]);
        let token = key.sign("/socket", &claims());
        assert_eq!(
            Key::new(&[2; 32]).verify("/socket", &token, AGE),
            Err(InvalidToken::Signature)
        );
        assert_eq!(
            key.verify("/other", &token, AGE),
            Err(InvalidToken::Signature)
        );
        // Another holder, signed by nobody: a forwarding target chosen by the client.
        let (_, tag) = token.split_once('.').unwrap();
        let mut payload = vec![VERSION];
        payload.extend_from_slice(&now().to_be_bytes());
        payload.extend_from_slice(&[7; 16]);
        payload.extend_from_slice(b"169.254.169.254:80");
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&payload));
        assert_eq!(
            key.verify("/socket", &forged, AGE),
            Err(InvalidToken::Signature)
        );
        for malformed in ["", "abc", "abc.def", "!!.??", "."] {
            assert!(
                key.verify("/socket", malformed, AGE).is_err(),
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_token_older_than_its_max_age_is_refused() {
        let key = Key::new(&[1; 32]);
        let old = Claims {
            issued_at: now() - 62,
            ..claims()
        };
        let token = key.sign("/socket", &old);
        assert_eq!(
            key.verify("/socket", &token, AGE),
            Err(InvalidToken::Expired)
        );
        assert_eq!(
            key.verify("/socket", &token, Duration::from_secs(120)),
            Ok(old)
        );
    }
}
