//! The moves mode: `--clients` clients join `--topic` (`hangman:game`), then each plays `--moves`
//! `make_move` round trips (send, wait for the reply); join latency, round-trip percentiles and
//! moves/s. With `--idle-clients N` and `--gateway-pid PID` it then opens N more joined clients
//! that stay silent and prints the gateway's RSS growth per idle joined connection (VmRSS from
//! `/proc/PID/status`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::{Args, Ws, connect, print_latency, reply_to, vm_rss_kib};

const LETTERS: &[u8] = b"etaoinshrdlcumwfgypbvkjxqz";

pub async fn run(args: &Args, url: String) -> anyhow::Result<()> {
    let started = Instant::now();
    let clients = open_joined(&url, args.clients, args).await?;
    let mut joins = Histogram::<u64>::new(3)?;
    let mut sockets = Vec::with_capacity(clients.len());
    for (ws, join_us) in clients {
        joins.record(join_us)?;
        sockets.push(ws);
    }
    println!(
        "connections:      {} joined in {:.2?}",
        sockets.len(),
        started.elapsed()
    );
    print_latency("join latency", &joins);

    if args.moves > 0 {
        let started = Instant::now();
        let tasks: Vec<_> = sockets
            .into_iter()
            .map(|ws| tokio::spawn(play(ws, args.topic.clone(), args.moves, args.reply_timeout)))
            .collect();
        let mut rtt = Histogram::<u64>::new(3)?;
        let mut played = Vec::new();
        for task in tasks {
            let (ws, samples) = task.await??;
            for us in samples {
                rtt.record(us)?;
            }
            played.push(ws);
        }
        let elapsed = started.elapsed();
        println!(
            "moves:            {} in {:.2?} = {:.0} moves/s",
            rtt.len(),
            elapsed,
            rtt.len() as f64 / elapsed.as_secs_f64()
        );
        print_latency("move round trip", &rtt);
        sockets = played;
    }

    if args.idle_clients > 0 {
        let pid = args
            .gateway_pid
            .context("--idle-clients needs --gateway-pid")?;
        drop(sockets);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = vm_rss_kib(pid)?;
        let started = Instant::now();
        let idle = open_joined(&url, args.idle_clients, args).await?;
        println!(
            "idle clients:     {} joined in {:.2?}",
            idle.len(),
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = vm_rss_kib(pid)?;
        println!(
            "gateway RSS:      {before} KiB before, {after} KiB with {} idle joined clients = {:.1} KiB per connection",
            idle.len(),
            (after.saturating_sub(before)) as f64 / idle.len() as f64
        );
        drop(idle);
    }
    Ok(())
}

/// Opens `n` clients, each joined to `--topic`, with the join latency in µs; as many at
/// once as `--connect-concurrency`, each waiting `--reply-timeout` at most for its join reply.
async fn open_joined(url: &str, n: usize, args: &Args) -> anyhow::Result<Vec<(Ws, u64)>> {
    let patience = args.reply_timeout;
    futures::stream::iter(0..n)
        .map(|_| async move {
            let mut ws = connect(url).await?;
            let started = Instant::now();
            ws.send(Message::text(format!(
                r#"["1","1","{}","phx_join",{{}}]"#,
                args.topic
            )))
            .await?;
            let reply = reply_to(&mut ws, "1", patience).await?;
            if !reply.contains(r#""status":"ok""#) {
                bail!("join refused: {reply}");
            }
            Ok((ws, started.elapsed().as_micros() as u64))
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// `moves` round trips on one client, in µs.
///
/// Plain samples, put in one histogram at the end: a histogram per client (tens of KiB
/// each) made recording a cache miss, several per cent of the load tool's CPU.
async fn play(
    mut ws: Ws,
    topic: String,
    moves: usize,
    patience: Duration,
) -> anyhow::Result<(Ws, Vec<u64>)> {
    let mut rtt = Vec::with_capacity(moves);
    for i in 0..moves {
        let msg_ref = (i + 2).to_string();
        let guess = LETTERS[i % LETTERS.len()] as char;
        let frame = format!(r#"["1","{msg_ref}","{topic}","make_move",{{"guess":"{guess}"}}]"#);
        let started = Instant::now();
        ws.send(Message::text(frame)).await?;
        let reply = reply_to(&mut ws, &msg_ref, patience).await?;
        rtt.push(started.elapsed().as_micros() as u64);
        if !reply.contains(r#""status":"ok""#) {
            bail!("move refused: {reply}");
        }
    }
    Ok((ws, rtt))
}
