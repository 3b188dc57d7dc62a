//! A room member: one client that joins every game of its room and reads its socket until it
//! has every tally, recording each push; the room's mover also plays the moves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{interval_at, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use super::Lasts;
use super::frame::{Frame, Tally};
use crate::{Ws, connect};

const LETTERS: &[u8] = b"etaoinshrdlcumwfgypbvkjxqz";

/// Sent by every member this often: the gateway closes a socket silent for its idle timeout
/// (60 s by default), and members only read.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// The guess of a game's `n`-th move (from 0): each letter twice in a row, the most frequent in
/// English first. A new letter changes the game (it joins `used`), and so does trying it again
/// right after (the state becomes `already_used`); a third try would change nothing, and give
/// no push.
fn guess(n: usize) -> char {
    LETTERS[n / 2 % LETTERS.len()] as char
}

/// What every member task shares.
#[derive(Clone)]
pub struct Links {
    pub url: Arc<str>,
    pub connecting: Arc<Semaphore>,
    /// Each member's join latencies, or why it could not join.
    pub joined: mpsc::UnboundedSender<anyhow::Result<Vec<u64>>>,
    pub moved: mpsc::UnboundedSender<MoverReport>,
    /// Set once every member has joined: the movers start.
    pub go: watch::Receiver<bool>,
    /// Set once every mover is done.
    pub lasts: watch::Receiver<Option<Arc<Lasts>>>,
    pub patience: Duration,
}

/// One game of a member's room, as the member saw it.
pub struct Watched {
    pub topic: String,
    /// The version of the tally in the join reply.
    pub joined_at: u64,
    /// The newest version received (or joined at).
    pub latest: u64,
    /// Each `tally` push's version, with when it arrived.
    pub received: Vec<(u64, Instant)>,
}

/// What a member got, for the check at the end.
pub struct MemberReport {
    /// Its socket, still open: a member closing makes the gateway and the game service work
    /// (a leave, presence diffs to the others), which is no part of the moves' cost.
    _socket: Ws,
    pub room: usize,
    pub games: Vec<Watched>,
    /// `phx_error` pushes: a channel that crashed sends nothing more.
    pub channel_errors: u64,
    /// Why it stopped reading before it had every tally, when it did.
    pub failure: Option<String>,
}

/// One member's whole life: connect, join, read (and move, for the mover), report.
pub async fn member(
    room: usize,
    topics: Arc<[String]>,
    mover: Option<Mover>,
    links: Links,
) -> Option<MemberReport> {
    let joining = {
        let _connecting = links.connecting.acquire().await.ok();
        Member::join(&links.url, &topics, links.patience).await
    };
    match joining {
        Ok((member, latencies)) => {
            links.joined.send(Ok(latencies)).ok();
            Some(member.live(room, mover, links).await)
        }
        Err(err) => {
            links.joined.send(Err(err)).ok();
            None
        }
    }
}

struct Member {
    ws: Ws,
    games: Vec<Watched>,
    channel_errors: u64,
}

/// What wakes a member up.
enum Event {
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Go,
    Lasts,
    Heartbeat,
    /// The movers are done and its tallies did not all come within `--reply-timeout`.
    GiveUp,
    /// Its move got no reply within `--reply-timeout`.
    MoveTimedOut,
}

impl Member {
    /// Connects and joins every topic at once (join ref and ref `k + 1` for the k-th): the
    /// member, with each join's latency in µs.
    async fn join(
        url: &str,
        topics: &[String],
        patience: Duration,
    ) -> anyhow::Result<(Member, Vec<u64>)> {
        let mut ws = connect(url).await?;
        let started = Instant::now();
        for (k, topic) in topics.iter().enumerate() {
            let join_ref = k + 1;
            ws.feed(Message::text(format!(
                r#"["{join_ref}","{join_ref}","{topic}","phx_join",{{}}]"#
            )))
            .await?;
        }
        ws.flush().await?;
        let mut member = Member {
            ws,
            games: topics
                .iter()
                .map(|topic| Watched {
                    topic: topic.clone(),
                    joined_at: 0,
                    latest: 0,
                    received: Vec::new(),
                })
                .collect(),
            channel_errors: 0,
        };
        let mut latencies = Vec::with_capacity(topics.len());
        while latencies.len() < topics.len() {
            let text = match timeout(patience, member.ws.next()).await {
                Err(_) => bail!("no join reply within {patience:?}"),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(close)))) => bail!("closed by the gateway: {close:?}"),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(err))) => return Err(err.into()),
                Ok(None) => bail!("connection ended while joining"),
            };
            let at = Instant::now();
            let Some((msg_ref, ok, response)) = member.take(&text, at)? else {
                continue;
            };
            let game = msg_ref
                .parse::<usize>()
                .ok()
                .and_then(|join_ref| member.games.get_mut(join_ref.wrapping_sub(1)))
                .with_context(|| format!("a reply to no join: {text}"))?;
            if !ok {
                bail!("join of {} refused: {}", game.topic, response.get());
            }
            #[derive(Deserialize)]
            struct Joined<'a> {
                #[serde(borrow)]
                tally: Tally<'a>,
            }
            let joined: Joined = serde_json::from_str(response.get())?;
            game.joined_at = joined.tally.version;
            game.latest = game.latest.max(joined.tally.version);
            latencies.push(at.duration_since(started).as_micros() as u64);
        }
        Ok((member, latencies))
    }

    /// Takes one text frame: a `tally` push is recorded; a reply is given back (ref, ok,
    /// response).
    fn take<'a>(
        &mut self,
        text: &'a str,
        at: Instant,
    ) -> anyhow::Result<Option<(&'a str, bool, &'a RawValue)>> {
        match Frame::parse(text)? {
            Frame::Reply {
                msg_ref,
                ok,
                response,
            } => return Ok(Some((msg_ref, ok, response))),
            Frame::Tally { topic, tally } => {
                if let Some(game) = self.games.iter_mut().find(|game| game.topic == topic) {
                    game.received.push((tally.version, at));
                    game.latest = game.latest.max(tally.version);
                }
            }
            Frame::ChannelError => self.channel_errors += 1,
            Frame::Other => {}
        }
        Ok(None)
    }

    /// Whether it has the last version of every game of its room.
    fn caught_up(&self, lasts: &[u64]) -> bool {
        self.games
            .iter()
            .zip(lasts)
            .all(|(game, &last)| game.latest >= last)
    }

    /// Reads until it has every tally of its room once the movers are done (or gives up
    /// `--reply-timeout` after that); the mover also plays its moves.
    async fn live(
        mut self,
        room: usize,
        mut mover: Option<Mover>,
        mut links: Links,
    ) -> MemberReport {
        let patience = links.patience;
        let mut heartbeat = interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        let mut give_up_at = None;
        let failure = loop {
            if let Some(lasts) = links.lasts.borrow().as_ref() {
                if self.caught_up(&lasts[room]) {
                    break None;
                }
                give_up_at.get_or_insert_with(|| tokio::time::Instant::now() + patience);
            }
            let waiting_to_move = mover.as_ref().is_some_and(|m| !m.started);
            let move_due = mover
                .as_ref()
                .and_then(|m| m.pending)
                .map(|(_, sent)| tokio::time::Instant::from_std(sent + patience));
            let event = tokio::select! {
                frame = self.ws.next() => Event::Frame(frame),
                Ok(()) = links.go.changed(), if waiting_to_move => Event::Go,
                Ok(()) = links.lasts.changed() => Event::Lasts,
                _ = heartbeat.tick() => Event::Heartbeat,
                _ = sleep_until(give_up_at.unwrap_or_else(tokio::time::Instant::now)), if give_up_at.is_some() => Event::GiveUp,
                _ = sleep_until(move_due.unwrap_or_else(tokio::time::Instant::now)), if move_due.is_some() => Event::MoveTimedOut,
            };
            let step = match event {
                Event::Frame(Some(Ok(Message::Text(text)))) => {
                    let at = Instant::now();
                    match self.take(&text, at) {
                        Ok(Some((msg_ref, ok, response))) => match mover.as_mut() {
                            Some(m) => match m.answered(msg_ref, ok, response, at) {
                                Ok(()) => self.next_move(&mut mover, &links).await,
                                Err(err) => Err(err),
                            },
                            None => Ok(()),
                        },
                        Ok(None) => Ok(()),
                        Err(err) => Err(err),
                    }
                }
                Event::Frame(Some(Ok(Message::Close(close)))) => {
                    Err(anyhow::anyhow!("closed by the gateway: {close:?}"))
                }
                Event::Frame(Some(Ok(_))) => Ok(()),
                Event::Frame(Some(Err(err))) => Err(err.into()),
                Event::Frame(None) => Err(anyhow::anyhow!("connection ended")),
                Event::Go => {
                    if let Some(m) = mover.as_mut() {
                        m.started = true;
                    }
                    self.next_move(&mut mover, &links).await
                }
                Event::Lasts => Ok(()),
                Event::Heartbeat => self
                    .ws
                    .send(Message::text(r#"[null,"hb","phoenix","heartbeat",{}]"#))
                    .await
                    .map_err(Into::into),
                // What it lacks shows as missed.
                Event::GiveUp => break None,
                Event::MoveTimedOut => {
                    let mut m = mover.take().expect("a move was pending");
                    m.failure = Some(format!("no reply to a move within {patience:?}"));
                    links.moved.send(m.report()).ok();
                    Ok(())
                }
            };
            if let Err(err) = step {
                if let Some(mut m) = mover.take() {
                    m.failure = Some(format!("{err:#}"));
                    links.moved.send(m.report()).ok();
                }
                break Some(format!("{err:#}"));
            }
        };
        MemberReport {
            _socket: self.ws,
            room,
            games: self.games,
            channel_errors: self.channel_errors,
            failure,
        }
    }

    /// Sends the mover's next move, or, when it has none left, hands in its report.
    async fn next_move(&mut self, mover: &mut Option<Mover>, links: &Links) -> anyhow::Result<()> {
        let Some(m) = mover.as_mut() else {
            return Ok(());
        };
        if m.pending.is_some() {
            return Ok(());
        }
        match m.next(&self.games) {
            Some(frame) => {
                self.ws.send(Message::text(frame)).await?;
                Ok(())
            }
            None => {
                links.moved.send(m.report()).ok();
                *mover = None;
                Ok(())
            }
        }
    }
}

/// The moving member of a room: what it has still to play and what it got.
pub struct Mover {
    room: usize,
    left: usize,
    started: bool,
    /// The game being played (index in the room's games) and the moves played in it.
    game: usize,
    in_game: usize,
    next_ref: u64,
    /// The move waiting for its reply: its ref and when it was sent.
    pending: Option<(u64, Instant)>,
    answered: Vec<Answered>,
    refused: u64,
    first_refusal: Option<String>,
    failure: Option<String>,
}

/// A move's reply: the version it made, and when it arrived.
pub struct Answered {
    pub game: usize,
    pub version: u64,
    pub at: Instant,
}

/// What a mover did.
pub struct MoverReport {
    pub room: usize,
    pub answered: Vec<Answered>,
    pub refused: u64,
    pub first_refusal: Option<String>,
    /// Moves it did not play: every game of its room had ended, or it failed.
    pub unplayed: usize,
    pub failure: Option<String>,
}

impl Mover {
    pub fn new(room: usize, moves: usize) -> Mover {
        Mover {
            room,
            left: moves,
            started: false,
            game: 0,
            in_game: 0,
            // Refs 1..=games are the joins'.
            next_ref: 1_000,
            pending: None,
            answered: Vec::with_capacity(moves),
            refused: 0,
            first_refusal: None,
            failure: None,
        }
    }

    /// The next move's frame, now pending; `None` when every move is played or every game has
    /// ended.
    fn next(&mut self, games: &[Watched]) -> Option<String> {
        if self.left == 0 {
            return None;
        }
        let topic = &games.get(self.game)?.topic;
        let (join_ref, msg_ref, guess) = (self.game + 1, self.next_ref, guess(self.in_game));
        self.next_ref += 1;
        self.pending = Some((msg_ref, Instant::now()));
        Some(format!(
            r#"["{join_ref}","{msg_ref}","{topic}","make_move",{{"guess":"{guess}"}}]"#
        ))
    }

    /// Takes a reply: the pending move's is recorded (a refused one counted apart); any other
    /// (heartbeats') is not the mover's.
    fn answered(
        &mut self,
        msg_ref: &str,
        ok: bool,
        response: &RawValue,
        at: Instant,
    ) -> anyhow::Result<()> {
        match self.pending {
            Some((pending, _)) if msg_ref.parse() == Ok(pending) => self.pending = None,
            _ => return Ok(()),
        }
        self.left -= 1;
        self.in_game += 1;
        if !ok {
            self.refused += 1;
            self.first_refusal
                .get_or_insert_with(|| response.get().to_owned());
            return Ok(());
        }
        let tally: Tally = serde_json::from_str(response.get())
            .with_context(|| format!("a move's reply is no tally: {}", response.get()))?;
        self.answered.push(Answered {
            game: self.game,
            version: tally.version,
            at,
        });
        if matches!(tally.game_state, "won" | "lost") {
            self.game += 1;
            self.in_game = 0;
        }
        Ok(())
    }

    fn report(&mut self) -> MoverReport {
        MoverReport {
            room: self.room,
            answered: std::mem::take(&mut self.answered),
            refused: self.refused,
            first_refusal: self.first_refusal.take(),
            unplayed: self.left,
            failure: self.failure.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_letter_is_guessed_twice_in_a_row() {
        let guesses: String = (0..6).map(guess).collect();
        assert_eq!(guesses, "eettaa");
    }
}
