//! `game:<id>`: a shared room on an existing game. Every member gets a `tally` push when anyone
//! moves, and Phoenix Presence (`presence_state`, `presence_diff`) lists who is in the room —
//! both from the game service's watch stream, so members on every gateway replica see the same
//! moves and each other.
//!
//! A join may carry `{"version": N}`, the version of the last tally the client saw: the reply
//! then says whether the changes since could be recovered and gives them (`recovered`,
//! `missed`), so a client that lost its socket misses no tally.

use hangman_proto::v1::PresenceMember;
use serde_json::{Value, json};

use super::game_channel::join_object;
use super::members::{Members, Membership};
use super::{Player, error_reply, guess_of, is_plausible_game_id, tally};
use crate::upstream::{Recovery, TraceContext, Upstream, UpstreamError, WatchEvent, WatchOptions};
use phoenix_channels::channel::{Channel, ChannelContext, Crash, InfoSender, Join, Reply};
use phoenix_channels::message::Payload;
use phoenix_channels::presence::{self, Presence};

pub const TOPIC_PATTERN: &str = "game:*";
const TOPIC_PREFIX: &str = "game:";

pub struct RoomJoin {
    pub upstream: Upstream,
    pub members: Members,
}

pub struct RoomChannel {
    upstream: Upstream,
    trace: TraceContext,
    game_id: String,
    /// Takes this member out of the room when the channel ends, however it ends.
    _membership: Membership,
}

/// What reaches a room channel besides its client's events: the watch stream.
pub enum RoomInfo {
    Watch(Result<WatchEvent, UpstreamError>),
    /// The watch stream ended: the game was ended or expired.
    GameEnded,
}

/// The `version` of a room join's payload: absent, or a non-negative integer.
fn since_version(payload: &Payload) -> Result<Option<u64>, Value> {
    let invalid = || json!({"reason": "invalid_payload"});
    match join_object(payload)?.get("version") {
        None => Ok(None),
        Some(version) => version.as_u64().map(Some).ok_or_else(invalid),
    }
}

/// A presence member as the npm client's `Presence` reads it: grouped by the player's name,
/// one meta per connection, `phx_ref` its member key.
fn presence_of(member: PresenceMember) -> Presence {
    Presence::new(member.name, member.key).with("online_at", member.online_at.to_string())
}

impl Join<Player> for RoomJoin {
    type Channel = RoomChannel;

    async fn join(
        &self,
        topic: &str,
        payload: Payload,
        player: &Player,
        info: &InfoSender<RoomInfo>,
    ) -> Result<(RoomChannel, Value), Value> {
        let since_version = since_version(&payload)?;
        let game_id = topic.strip_prefix(TOPIC_PREFIX).unwrap_or_default();
        // The topic names the game: one no game can have (empty, too long, outside the id
        // alphabet) is not found, without asking the game service.
        if !is_plausible_game_id(game_id) {
            return Err(json!({"reason": "not_found"}));
        }
        let reason = |err: UpstreamError| json!({"reason": err.reason()});
        // In the room before the watch opens, so that its first `presence_state` lists the
        // joiner; out again (the membership dropped) if either call fails.
        let membership = self
            .members
            .join(&player.trace, game_id, &player.key)
            .await
            .map_err(reason)?;
        let options = WatchOptions {
            presence: true,
            since_version,
        };
        let (watched, watch) = self
            .upstream
            .watch_game(&player.trace, game_id, options)
            .await
            .map_err(reason)?;
        info.forward(watch, RoomInfo::Watch, Some(RoomInfo::GameEnded));
        tracing::info!(trace_id = %player.trace.trace_id(), %game_id, player = %player.key, "joined room");
        let mut response = tally::with_game_id(game_id, &watched.tally);
        match watched.recovery {
            // A game service older than versions answers no recovery: nothing was recovered.
            None if since_version.is_some() => response["recovered"] = json!(false),
            None => {}
            Some(Recovery::Recovered(missed)) => {
                response["recovered"] = json!(true);
                response["missed"] = missed.iter().map(tally::to_json).collect();
            }
            Some(Recovery::Gap) => response["recovered"] = json!(false),
        }
        let channel = RoomChannel {
            upstream: self.upstream.clone(),
            trace: player.trace,
            game_id: game_id.to_owned(),
            _membership: membership,
        };
        Ok((channel, response))
    }
}

impl Channel for RoomChannel {
    type Info = RoomInfo;

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &ChannelContext<RoomInfo>,
    ) -> Result<Reply, Crash> {
        match event {
            // Every member, this one included, gets the new tally from the watch stream.
            "make_move" => {
                let guess = match guess_of(&payload) {
                    Ok(guess) => guess,
                    Err(reply) => return Ok(reply),
                };
                Ok(
                    match self
                        .upstream
                        .make_move(&self.trace, &self.game_id, guess)
                        .await
                    {
                        Ok(t) => Reply::Ok(tally::encoded(&t)),
                        Err(err) => error_reply(&err),
                    },
                )
            }
            "tally" => match self.upstream.get_game(&self.trace, &self.game_id).await {
                Ok(t) => {
                    let tally = tally::encoded(&t);
                    ctx.push("tally", tally.clone()).await;
                    Ok(Reply::Ok(tally))
                }
                Err(err) => Ok(error_reply(&err)),
            },
            _ => Ok(Reply::error("unknown_event")),
        }
    }

    async fn handle_info(
        &mut self,
        info: RoomInfo,
        ctx: &ChannelContext<RoomInfo>,
    ) -> Result<(), Crash> {
        match info {
            RoomInfo::Watch(Ok(WatchEvent::Tally(t))) => {
                ctx.push("tally", tally::encoded(&t)).await
            }
            RoomInfo::Watch(Ok(WatchEvent::PresenceState(members))) => {
                let state = presence::state(members.into_iter().map(presence_of));
                ctx.push("presence_state", state).await;
            }
            RoomInfo::Watch(Ok(WatchEvent::PresenceDiff { joins, leaves })) => {
                let diff = presence::diff(
                    joins.into_iter().map(presence_of),
                    leaves.into_iter().map(presence_of),
                );
                ctx.push("presence_diff", diff).await;
            }
            RoomInfo::Watch(Err(err)) => {
                return Err(Crash {
                    reason: err.reason().to_owned(),
                });
            }
            RoomInfo::GameEnded => {
                return Err(Crash {
                    reason: "game_ended".to_owned(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_may_give_a_non_negative_integer_version() {
        let version = |payload: Value| since_version(&Payload::from(payload));
        assert_eq!(version(json!({})), Ok(None));
        assert_eq!(version(json!({"version": 0})), Ok(Some(0)));
        assert_eq!(version(json!({"version": u64::MAX})), Ok(Some(u64::MAX)));
        for bad in [
            json!({"version": -1}),
            json!({"version": 1.5}),
            json!({"version": "3"}),
            json!({"version": null}),
            json!({"version": [3]}),
            json!([]),
        ] {
            assert_eq!(
                version(bad.clone()),
                Err(json!({"reason": "invalid_payload"})),
                "{bad}"
            );
        }
    }
}
