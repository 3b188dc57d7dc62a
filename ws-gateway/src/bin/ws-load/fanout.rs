//! The fan-out mode (`--rooms R --members M`): how fast and how completely a move in a shared
//! room reaches every member.
//!
//! 1. Games: one client per room joins `hangman:game` (its join reply carries a new game's id,
//!    as the SPA gets one), asks `new_game` for more when `--games` is over one, and closes.
//! 2. Members: R × M clients (at most `--connect-concurrency` connecting at once), each joined
//!    to `game:<id>` of every game of its room; the join reply's tally gives the version it
//!    joined at. From its join on, every client reads its socket all the time, recording each
//!    `tally` push's version and arrival, and ignoring presence.
//! 3. Moves: once every member has joined, the first member of each room (the mover) plays
//!    up to `--moves` `make_move` round trips on its room's game (see `member::guess`: every move
//!    changes the game, so each is one `tally` push to every member, with the next version).
//!    A game won or lost takes no more moves: the mover goes on in the room's next game, and
//!    stops when there is none. With this order of guesses a game of the game service's
//!    built-in dictionary lasts 11 to 33 moves, 20 or more for 59 % of its words.
//! 4. When the movers are done, every member reads until it has the last version of every
//!    game of its room, or `--reply-timeout` has passed; then [`Delivery`] checks each member's
//!    versions and the run fails if any tally was missed.
//!
//! Broadcast delivery latency is, for each move, from the mover getting its reply to the last
//! member of the room getting the push of that version, on the one monotonic clock of this
//! process. The mover is a member too: it gets the push as well as the reply.
//!
//! Here the run and its report; [`member`]: one member's client (the mover's moves too);
//! [`frame`]: the frames a member reads.

mod frame;
mod member;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::delivery::Delivery;
use crate::{Args, connect, cpu_time, print_latency, reply_to, vm_rss_kib};
use frame::Frame;
use member::{Links, MemberReport, Mover, MoverReport, member};

/// The last version of each game of a room, by room, once the movers are done.
pub type Lasts = Vec<Vec<u64>>;

pub async fn run(args: &Args, rooms: usize, url: String) -> anyhow::Result<()> {
    if rooms == 0 || args.members == 0 {
        bail!("--rooms and --members must be at least 1");
    }
    let patience = args.reply_timeout;
    let per_room = args.games;
    if per_room == 0 {
        bail!("--games must be at least 1");
    }
    let started = Instant::now();
    let games = create_games(&url, rooms, per_room, args).await?;
    println!(
        "games:            {} ({per_room} per room) created in {:.2?}",
        rooms * per_room,
        started.elapsed()
    );
    let rss_before = args.gateway_pid.map(vm_rss_kib).transpose()?;

    let (go, go_rx) = watch::channel(false);
    let (lasts, lasts_rx) = watch::channel(None);
    let (joined_tx, mut joined) = mpsc::unbounded_channel();
    let (moved_tx, mut moved) = mpsc::unbounded_channel();
    let links = Links {
        url: url.into(),
        connecting: Arc::new(Semaphore::new(args.connect_concurrency.max(1))),
        joined: joined_tx,
        moved: moved_tx,
        go: go_rx,
        lasts: lasts_rx,
        patience,
    };
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(rooms * args.members);
    for (room, topics) in games.into_iter().enumerate() {
        for index in 0..args.members {
            let mover = (index == 0).then(|| Mover::new(room, args.moves));
            tasks.push(tokio::spawn(member(
                room,
                topics.clone(),
                mover,
                links.clone(),
            )));
        }
    }
    drop(links);
    let mut joins = Histogram::<u64>::new(3)?;
    for _ in 0..tasks.len() {
        for us in joined.recv().await.context("a member ended unjoined")?? {
            joins.record(us)?;
        }
    }
    println!(
        "members:          {} in {rooms} rooms, joined to {per_room} game(s) each, in {:.2?}",
        tasks.len(),
        started.elapsed()
    );
    print_latency("join latency", &joins);
    let rss_joined = args.gateway_pid.map(vm_rss_kib).transpose()?;
    let cpu_before = CpuTimes::read(args)?;

    let go_at = Instant::now();
    go.send_replace(true);
    let mut movers = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        movers.push(
            moved
                .recv()
                .await
                .context("a mover ended without a report")?,
        );
    }
    movers.sort_by_key(|mover| mover.room);
    let mut last_versions: Lasts = vec![vec![0; per_room]; rooms];
    for mover in &movers {
        for answered in &mover.answered {
            let last = &mut last_versions[mover.room][answered.game];
            *last = (*last).max(answered.version);
        }
    }
    lasts.send_replace(Some(Arc::new(last_versions.clone())));
    let mut members = Vec::with_capacity(tasks.len());
    for task in tasks {
        members.push(task.await?.context("a member ended unjoined")?);
    }
    let cpu_after = CpuTimes::read(args)?;

    report(
        args,
        go_at,
        &movers,
        &members,
        CpuTimes::spent(cpu_before, cpu_after),
    )?;
    if let (Some(before), Some(joined)) = (rss_before, rss_joined) {
        let after = vm_rss_kib(args.gateway_pid.expect("an RSS was read"))?;
        println!(
            "gateway RSS:      {before} KiB before the members, {joined} KiB with them joined \
             (+{:.1} KiB per member), {after} KiB after the moves",
            joined.saturating_sub(before) as f64 / members.len() as f64
        );
    }
    verdict(&movers, &members, &last_versions)
}

/// The topics (`game:<id>`) of each room's games: `per_room` new games, made by one client per
/// room.
async fn create_games(
    url: &str,
    rooms: usize,
    per_room: usize,
    args: &Args,
) -> anyhow::Result<Vec<Arc<[String]>>> {
    let patience = args.reply_timeout;
    futures::stream::iter(0..rooms)
        .map(|_| async move {
            let mut ws = connect(url).await?;
            ws.send(Message::text(r#"["1","1","hangman:game","phx_join",{}]"#))
                .await?;
            let mut games = vec![game_id(&reply_to(&mut ws, "1", patience).await?)?];
            for n in 2..=per_room {
                ws.send(Message::text(format!(
                    r#"["1","{n}","hangman:game","new_game",{{}}]"#
                )))
                .await?;
                games.push(game_id(
                    &reply_to(&mut ws, &n.to_string(), patience).await?,
                )?);
            }
            // Closed, so that its channel's watch of the last game is gone before members join.
            ws.close(None).await.ok();
            Ok(games.iter().map(|id| format!("game:{id}")).collect())
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The `game_id` of a `hangman:game` join or `new_game` reply.
fn game_id(reply: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Created {
        game_id: String,
    }
    match Frame::parse(reply)? {
        Frame::Reply {
            ok: true, response, ..
        } => Ok(serde_json::from_str::<Created>(response.get())?.game_id),
        _ => bail!("no game created: {reply}"),
    }
}

/// CPU time used so far by the gateway and the game service (when their pids are given) and
/// by this tool.
#[derive(Clone, Copy)]
struct CpuTimes {
    gateway: Option<Duration>,
    game_service: Option<Duration>,
    tool: Duration,
}

impl CpuTimes {
    fn read(args: &Args) -> anyhow::Result<CpuTimes> {
        Ok(CpuTimes {
            gateway: args.gateway_pid.map(cpu_time).transpose()?,
            game_service: args.game_service_pid.map(cpu_time).transpose()?,
            tool: cpu_time(std::process::id())?,
        })
    }

    fn spent(before: CpuTimes, after: CpuTimes) -> CpuTimes {
        let between = |b: Option<Duration>, a: Option<Duration>| Some(a?.saturating_sub(b?));
        CpuTimes {
            gateway: between(before.gateway, after.gateway),
            game_service: between(before.game_service, after.game_service),
            tool: after.tool.saturating_sub(before.tool),
        }
    }
}

/// Prints moves, pushes and delivery latency.
fn report(
    args: &Args,
    go_at: Instant,
    movers: &[MoverReport],
    members: &[MemberReport],
    cpu: CpuTimes,
) -> anyhow::Result<()> {
    let answered: usize = movers.iter().map(|m| m.answered.len()).sum();
    let refused: u64 = movers.iter().map(|m| m.refused).sum();
    let unplayed: usize = movers.iter().map(|m| m.unplayed).sum();
    let last_reply = movers
        .iter()
        .flat_map(|m| m.answered.iter().map(|a| a.at))
        .max()
        .unwrap_or(go_at);
    let moving = last_reply.duration_since(go_at);
    println!(
        "moves:            {answered} answered in {moving:.2?} = {:.0} moves/s; {refused} refused, \
         {unplayed} not played (a room's games all ended, or its mover failed)",
        answered as f64 / moving.as_secs_f64()
    );
    if let Some(refusal) = movers.iter().find_map(|m| m.first_refusal.as_deref()) {
        println!("first refusal:    {refusal}");
    }

    // For each room, game and version: when its last member got the push, and how many did.
    let mut arrivals: HashMap<(usize, usize, u64), (Instant, usize)> = HashMap::new();
    let mut pushes = 0usize;
    let mut last_push = go_at;
    for member in members {
        for (game, watched) in member.games.iter().enumerate() {
            for &(version, at) in &watched.received {
                pushes += 1;
                last_push = last_push.max(at);
                let arrival = arrivals
                    .entry((member.room, game, version))
                    .or_insert((at, 0));
                arrival.0 = arrival.0.max(at);
                arrival.1 += 1;
            }
        }
    }
    let delivering = last_push.duration_since(go_at);
    println!(
        "tally pushes:     {pushes} received in {delivering:.2?} = {:.0} pushes/s",
        pushes as f64 / delivering.as_secs_f64()
    );
    let mut latency = Histogram::<u64>::new(3)?;
    let mut short = 0;
    for mover in movers {
        for answered in &mover.answered {
            match arrivals.get(&(mover.room, answered.game, answered.version)) {
                Some(&(last, count)) if count >= args.members => {
                    latency.record(last.saturating_duration_since(answered.at).as_micros() as u64)?
                }
                _ => short += 1,
            }
        }
    }
    if !latency.is_empty() {
        print_latency("delivery to all", &latency);
    }
    if short > 0 {
        println!("moves not delivered to every member of their room: {short}");
    }
    let per_push = |cpu: Duration| cpu.as_secs_f64() * 1e6 / pushes.max(1) as f64;
    let line = |who: &str, cpu: Option<Duration>| {
        if let Some(cpu) = cpu {
            println!(
                "CPU {who:<13} {:.0} ms over the moves = {:.2} µs per push",
                cpu.as_secs_f64() * 1e3,
                per_push(cpu)
            );
        }
    };
    line("gateway:", cpu.gateway);
    line("game service:", cpu.game_service);
    line("ws-load:", Some(cpu.tool));
    Ok(())
}

/// Checks every member's tallies; an error (a non-zero exit) when any was missed or any member
/// or mover failed.
fn verdict(movers: &[MoverReport], members: &[MemberReport], lasts: &Lasts) -> anyhow::Result<()> {
    let mut total = Delivery::default();
    let mut short_members = 0;
    for member in members {
        let mut delivery = Delivery::default();
        for (watched, &last) in member.games.iter().zip(&lasts[member.room]) {
            let versions: Vec<u64> = watched.received.iter().map(|&(v, _)| v).collect();
            delivery += Delivery::of(watched.joined_at, last, &versions);
        }
        short_members += usize::from(delivery.missed > 0);
        total += delivery;
    }
    let channel_errors: u64 = members.iter().map(|m| m.channel_errors).sum();
    println!(
        "delivery:         {} tallies due to members, {} missed (by {short_members} members), \
         {} duplicated, {} unexpected; {channel_errors} channel errors",
        total.due, total.missed, total.duplicated, total.unexpected
    );
    let failed_members: Vec<_> = members
        .iter()
        .filter_map(|m| m.failure.as_deref())
        .collect();
    let failed_movers: Vec<_> = movers.iter().filter_map(|m| m.failure.as_deref()).collect();
    if let Some(first) = failed_members.first() {
        println!(
            "members failed:   {} (first: {first})",
            failed_members.len()
        );
    }
    if let Some(first) = failed_movers.first() {
        println!("movers failed:    {} (first: {first})", failed_movers.len());
    }
    if total.missed > 0 || !failed_members.is_empty() || !failed_movers.is_empty() {
        bail!(
            "{} tallies missed, {} members and {} movers failed",
            total.missed,
            failed_members.len(),
            failed_movers.len()
        );
    }
    Ok(())
}
