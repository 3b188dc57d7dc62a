//! `ws-load`: a bounded load generator for the gateway (loopback only; it stops by itself).
//!
//! Opens `--clients` WebSocket clients speaking V2 JSON, joins `hangman:game` on each, then
//! plays `--moves` `make_move` round trips per client (send, wait for the reply) and prints
//! join latency, round-trip percentiles and moves/s. With `--idle-clients N` and
//! `--gateway-pid PID` it then opens N more joined clients that stay silent and prints the
//! gateway's RSS growth per idle joined connection (VmRSS from `/proc/PID/status`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, Parser)]
#[command(
    name = "ws-load",
    about = "Load the ws-gateway with V2 clients playing hangman:game"
)]
struct Args {
    /// The gateway's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:4000")]
    gateway: SocketAddr,
    /// The socket mount path.
    #[arg(long, default_value = "/socket")]
    mount: String,
    /// Clients that play moves.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// `make_move` round trips per client.
    #[arg(long, default_value_t = 200)]
    moves: usize,
    /// Silent joined clients opened afterwards to measure memory per idle connection.
    #[arg(long, default_value_t = 0)]
    idle_clients: usize,
    /// The gateway's process id, to read its RSS.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Gives up on any single reply after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    reply_timeout: Duration,
    /// Runtime threads of the load tool. One (the default) keeps the tool's own cost low: it
    /// shares the cores with what it measures, and threads of its own would add cross-thread
    /// wake-ups to every round trip it times.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const TOPIC: &str = "hangman:game";
const LETTERS: &[u8] = b"etaoinshrdlcumwfgypbvkjxqz";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = match args.threads {
        0 => bail!("--threads must be at least 1"),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !args.gateway.ip().is_loopback() {
        bail!("ws-load only targets loopback addresses");
    }
    let url = format!(
        "ws://{}{}/websocket?vsn=2.0.0",
        args.gateway,
        args.mount.trim_end_matches('/')
    );

    let started = Instant::now();
    let clients = open_joined(&url, args.clients, &args).await?;
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
            .map(|ws| tokio::spawn(play(ws, args.moves, args.reply_timeout)))
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
        let idle = open_joined(&url, args.idle_clients, &args).await?;
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

/// Opens `n` clients, each joined to `hangman:game`, with the join latency in µs; as many at
/// once as `--connect-concurrency`, each waiting `--reply-timeout` at most for its join reply.
async fn open_joined(url: &str, n: usize, args: &Args) -> anyhow::Result<Vec<(Ws, u64)>> {
    let patience = args.reply_timeout;
    futures::stream::iter(0..n)
        .map(|_| async move {
            // tungstenite zero-fills its whole read buffer on every read: the default 128 KiB
            // made the load tool spend a third of its CPU in memset.
            let config = WebSocketConfig::default().read_buffer_size(4096);
            let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                .await
                .context("connect")?;
            let started = Instant::now();
            ws.send(Message::text(format!(
                r#"["1","1","{TOPIC}","phx_join",{{}}]"#
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
async fn play(mut ws: Ws, moves: usize, patience: Duration) -> anyhow::Result<(Ws, Vec<u64>)> {
    let mut rtt = Vec::with_capacity(moves);
    for i in 0..moves {
        let msg_ref = (i + 2).to_string();
        let guess = LETTERS[i % LETTERS.len()] as char;
        let frame = format!(r#"["1","{msg_ref}","{TOPIC}","make_move",{{"guess":"{guess}"}}]"#);
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

/// Reads frames until the reply to `msg_ref` (`["1","<ref>",...,"phx_reply",...]`); pushes are skipped.
async fn reply_to(ws: &mut Ws, msg_ref: &str, patience: Duration) -> anyhow::Result<String> {
    let prefix = format!(r#"["1","{msg_ref}","#);
    loop {
        let frame = tokio::time::timeout(patience, ws.next())
            .await
            .context("no reply in time")?;
        match frame {
            Some(Ok(Message::Text(text))) if text.starts_with(&prefix) => {
                return Ok(text.to_string());
            }
            Some(Ok(Message::Close(close))) => bail!("closed by the gateway: {close:?}"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => bail!("connection ended"),
        }
    }
}

fn print_latency(what: &str, h: &Histogram<u64>) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{what:<17} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    );
}

fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("read the gateway's /proc status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    line.split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()
        .context("VmRSS number")
}
