//! `hangman:game`: one private game per join. Join with `{}` for a new game or
//! `{"game_id": id}` to resume one (an id no game can have is `invalid_payload`, see
//! [`is_plausible_game_id`](super::is_plausible_game_id)); every event gets a reply carrying the
//! tally and, for the original course client that only listens for it, a `tally` push.

use serde_json::{Map, Value};

use super::{Player, error_reply, guess_of, is_plausible_game_id, tally};
use crate::upstream::{TraceContext, Upstream};
use phoenix_channels::channel::{Channel, ChannelContext, Crash, InfoSender, Join, Reply};
use phoenix_channels::message::Payload;

pub const TOPIC: &str = "hangman:game";

pub struct GameJoin {
    pub upstream: Upstream,
}

pub struct GameChannel {
    upstream: Upstream,
    trace: TraceContext,
    game_id: String,
}

/// The join payload: an object, with an optional string `game_id`.
pub(super) fn join_object(payload: &Payload) -> Result<&Map<String, Value>, Value> {
    match payload.as_json() {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(serde_json::json!({"reason": "invalid_payload"})),
    }
}

impl Join<Player> for GameJoin {
    type Channel = GameChannel;

    async fn join(
        &self,
        _topic: &str,
        payload: Payload,
        player: &Player,
        _info: &InfoSender<()>,
    ) -> Result<(GameChannel, Value), Value> {
        let params = join_object(&payload)?;
        let reason =
            |err: &crate::upstream::UpstreamError| serde_json::json!({"reason": err.reason()});
        let (game_id, tally) = match params.get("game_id") {
            None | Some(Value::Null) => self
                .upstream
                .create_game(&player.trace)
                .await
                .map_err(|e| reason(&e))?,
            // An id no game can have (blank, too long, outside the id alphabet) is refused
            // here: the game service would answer INVALID_ARGUMENT (which clients see as a bad
            // guess) or, for a huge one, refuse the message itself.
            Some(Value::String(id)) if !is_plausible_game_id(id) => {
                return Err(serde_json::json!({"reason": "invalid_payload"}));
            }
            Some(Value::String(id)) => {
                let tally = self
                    .upstream
                    .get_game(&player.trace, id)
                    .await
                    .map_err(|e| reason(&e))?;
                (id.clone(), tally)
            }
            Some(_) => return Err(serde_json::json!({"reason": "invalid_payload"})),
        };
        tracing::info!(trace_id = %player.trace.trace_id(), %game_id, "joined hangman:game");
        let response = tally::with_game_id(&game_id, &tally);
        let channel = GameChannel {
            upstream: self.upstream.clone(),
            trace: player.trace,
            game_id,
        };
        Ok((channel, response))
    }
}

impl Channel for GameChannel {
    type Info = ();

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &ChannelContext<()>,
    ) -> Result<Reply, Crash> {
        let (response, tally) = match event {
            "make_move" => {
                let guess = match guess_of(&payload) {
                    Ok(guess) => guess,
                    Err(reply) => return Ok(reply),
                };
                match self
                    .upstream
                    .make_move(&self.trace, &self.game_id, guess)
                    .await
                {
                    Ok(t) => {
                        let tally = tally::encoded(&t);
                        (tally.clone(), tally)
                    }
                    Err(err) => return Ok(error_reply(&err)),
                }
            }
            "tally" => match self.upstream.get_game(&self.trace, &self.game_id).await {
                Ok(t) => {
                    let tally = tally::encoded(&t);
                    (tally.clone(), tally)
                }
                Err(err) => return Ok(error_reply(&err)),
            },
            "new_game" => match self.upstream.create_game(&self.trace).await {
                Ok((game_id, t)) => {
                    self.game_id = game_id;
                    (
                        tally::with_game_id(&self.game_id, &t).into(),
                        tally::encoded(&t),
                    )
                }
                Err(err) => return Ok(error_reply(&err)),
            },
            _ => return Ok(Reply::error("unknown_event")),
        };
        ctx.push("tally", tally).await;
        Ok(Reply::Ok(response))
    }

    async fn handle_info(&mut self, _info: (), _ctx: &ChannelContext<()>) -> Result<(), Crash> {
        Ok(())
    }
}
