//! `game:<id>`: a shared room on an existing game. Every member gets a `tally` push when anyone
//! moves, and Phoenix Presence (`presence_state`, `presence_diff`) lists who is in the room —
//! both from the game service's watch stream, so members on every gateway replica see the same
//! moves and each other. The members on this gateway share one watch ([`super::rooms`]).
//!
//! A join may carry `{"version": N}`, the version of the last tally the client saw: the reply
//! then says whether the changes since could be recovered and gives them (`recovered`,
//! `missed`), so a client that lost its socket misses no tally.

use std::time::{SystemTime, UNIX_EPOCH};

use hangman_proto::v1::PresenceMember;
use serde_json::{Value, json};

use super::game_channel::join_object;
use super::members::{Members, Membership};
use super::rooms::{RoomInfo, Rooms, Subscription};
use super::{Player, error_reply, guess_of, is_plausible_game_id, tally};
use crate::upstream::{Recovery, TraceContext, Upstream, UpstreamError};
use phoenix_channels::channel::{Channel, ChannelContext, Crash, InfoSender, Join, Reply};
use phoenix_channels::message::Payload;

pub const TOPIC_PATTERN: &str = "game:*";
const TOPIC_PREFIX: &str = "game:";

pub struct RoomJoin {
    pub upstream: Upstream,
    pub members: Members,
    pub rooms: Rooms,
}

pub struct RoomChannel {
    upstream: Upstream,
    trace: TraceContext,
    game_id: String,
    /// This member's place in the room's fan-out on this gateway.
    subscription: Subscription,
    /// Takes this member out of the room's presence when the channel ends, however it ends.
    _membership: Membership,
}

/// The `version` of a room join's payload: absent, or a non-negative integer.
fn since_version(payload: &Payload) -> Result<Option<u64>, Value> {
    let invalid = || json!({"reason": "invalid_payload"});
    match join_object(payload)?.get("version") {
        None => Ok(None),
        Some(version) => version.as_u64().map(Some).ok_or_else(invalid),
    }
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
        // In the game service's presence first, so that every replica's members see the joiner;
        // out again (the membership dropped) if joining the room fails.
        let membership = self
            .members
            .join(&player.trace, game_id, &player.key)
            .await
            .map_err(reason)?;
        // The joiner's own first `presence_state` lists it, even before the game service's
        // diff with its join reaches the room.
        let me = membership.announced().then(|| PresenceMember {
            key: membership.key().to_owned(),
            name: player.key.clone(),
            online_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        let (subscription, joined) = self
            .rooms
            .join(&player.trace, game_id, since_version, me, info)
            .await
            .map_err(reason)?;
        tracing::info!(trace_id = %player.trace.trace_id(), %game_id, player = %player.key, "joined room");
        let mut response = tally::with_game_id(game_id, &joined.tally);
        match joined.recovery {
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
            subscription,
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
            RoomInfo::Push((event, payload)) => {
                ctx.push(event, payload).await;
                // A member the room skipped (its socket fell behind) catches up here.
                for (event, payload) in self.subscription.handled() {
                    ctx.push(event, payload).await;
                }
                Ok(())
            }
            RoomInfo::Closed(reason) => Err(Crash {
                reason: reason.to_owned(),
            }),
        }
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
