//! `game:<id>`: a shared room on an existing game. Every member gets a `tally` push when anyone
//! moves — fed by the game service's watch stream, so members on other gateway replicas see
//! the same moves — and Phoenix Presence (`presence_state`, `presence_diff`) lists who is in.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hangman_proto::v1::Tally;
use serde_json::{Map, Value, json};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::game_channel::join_object;
use super::{Player, error_reply, guess_of, is_plausible_game_id, tally};
use crate::upstream::{TraceContext, Upstream, UpstreamError};
use phoenix_channels::channel::{Channel, ChannelContext, Crash, InfoSender, Join, Reply};
use phoenix_channels::message::Payload;
use phoenix_channels::presence::{Presence, Tracked};

pub const TOPIC_PATTERN: &str = "game:*";
const TOPIC_PREFIX: &str = "game:";

pub struct RoomJoin {
    pub upstream: Upstream,
    pub presence: Arc<Presence>,
}

pub struct RoomChannel {
    upstream: Upstream,
    presence: Arc<Presence>,
    trace: TraceContext,
    game_id: String,
    /// Untracks this member when the channel ends.
    _tracked: Tracked,
}

/// What reaches a room channel besides its client's events.
pub enum RoomInfo {
    /// Right after the join reply: send the member the room's presence state.
    AfterJoin,
    /// Someone moved (from the watch stream).
    Tally(Result<Tally, UpstreamError>),
    /// The watch stream ended: the game was ended or expired.
    GameEnded,
    Presence(Result<Arc<Value>, BroadcastStreamRecvError>),
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
        join_object(&payload)?;
        let game_id = topic.strip_prefix(TOPIC_PREFIX).unwrap_or_default();
        // The topic names the game: one no game can have (empty, too long, outside the id
        // alphabet) is not found, without asking the game service.
        if !is_plausible_game_id(game_id) {
            return Err(json!({"reason": "not_found"}));
        }
        let (now, watch) = self
            .upstream
            .watch_game(&player.trace, game_id)
            .await
            .map_err(|err| json!({"reason": err.reason()}))?;
        info.send(RoomInfo::AfterJoin);
        info.forward(watch, RoomInfo::Tally, Some(RoomInfo::GameEnded));
        let online_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let meta = Map::from_iter([("online_at".to_owned(), json!(online_at.to_string()))]);
        let (tracked, diffs) = self.presence.track(topic, &player.key, meta);
        info.forward(BroadcastStream::new(diffs), RoomInfo::Presence, None);
        tracing::info!(trace_id = %player.trace.trace_id(), %game_id, player = %player.key, "joined room");
        let channel = RoomChannel {
            upstream: self.upstream.clone(),
            presence: Arc::clone(&self.presence),
            trace: player.trace,
            game_id: game_id.to_owned(),
            _tracked: tracked,
        };
        Ok((channel, tally::with_game_id(game_id, &now)))
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
            RoomInfo::AfterJoin | RoomInfo::Presence(Err(BroadcastStreamRecvError::Lagged(_))) => {
                // A member that missed diffs resynchronises from the full state.
                ctx.push("presence_state", self.presence.list(ctx.topic()))
                    .await;
            }
            RoomInfo::Presence(Ok(diff)) => ctx.push("presence_diff", (*diff).clone()).await,
            RoomInfo::Tally(Ok(t)) => ctx.push("tally", tally::encoded(&t)).await,
            RoomInfo::Tally(Err(err)) => {
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
