//! The frames a member reads, parsed as far as the fan-out needs: replies, `tally` pushes and
//! channel errors; presence and the rest pass unread.

use anyhow::Context;
use serde::Deserialize;
use serde_json::value::RawValue;

/// One frame from the gateway, as a member reads it: `[join_ref, ref, topic, event, payload]`.
pub enum Frame<'a> {
    Reply {
        msg_ref: &'a str,
        ok: bool,
        response: &'a RawValue,
    },
    Tally {
        topic: &'a str,
        tally: Tally<'a>,
    },
    /// The channel of `topic` crashed: it pushes nothing more.
    ChannelError,
    /// Presence, and heartbeat replies.
    Other,
}

/// The fields of a tally the check and the mover read.
#[derive(Deserialize)]
pub struct Tally<'a> {
    pub game_state: &'a str,
    pub version: u64,
}

impl<'a> Frame<'a> {
    pub fn parse(text: &'a str) -> anyhow::Result<Frame<'a>> {
        #[derive(Deserialize)]
        struct ReplyPayload<'a> {
            status: &'a str,
            #[serde(borrow)]
            response: &'a RawValue,
        }
        let (_join_ref, msg_ref, topic, event, payload): (
            Option<&str>,
            Option<&str>,
            &str,
            &str,
            &RawValue,
        ) = serde_json::from_str(text).with_context(|| format!("not a V2 frame: {text}"))?;
        Ok(match (event, msg_ref) {
            ("phx_reply", Some(msg_ref)) => {
                let reply: ReplyPayload = serde_json::from_str(payload.get())
                    .with_context(|| format!("not a reply: {text}"))?;
                Frame::Reply {
                    msg_ref,
                    ok: reply.status == "ok",
                    response: reply.response,
                }
            }
            ("tally", _) => Frame::Tally {
                topic,
                tally: serde_json::from_str(payload.get())
                    .with_context(|| format!("not a tally: {text}"))?,
            },
            ("phx_error", _) => Frame::ChannelError,
            _ => Frame::Other,
        })
    }
}
