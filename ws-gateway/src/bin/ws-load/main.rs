//! `ws-load`: a bounded load generator for the gateway (loopback only; it stops by itself).
//!
//! Two modes, V2 JSON clients in both:
//! - [`moves`] (the default): `--clients` clients join `hangman:game` (or `--topic`) and each
//!   plays `--moves` `make_move` round trips; join latency, round-trip percentiles, moves/s,
//!   and with `--idle-clients` the gateway's RSS per idle joined connection.
//! - [`fanout`] (`--rooms R`): R rooms (shared `game:<id>` topics) of `--members` members,
//!   one of them moving; broadcast delivery latency, pushes/s, and whether every member got
//!   every tally ([`delivery`] checks each member's versions).
//!
//! This file holds what both share: the flags, the runtime, connecting, waiting for a reply and
//! reading a process's RSS and CPU time from `/proc`.

mod delivery;
mod fanout;
mod moves;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, Parser)]
#[command(
    name = "ws-load",
    about = "Load the ws-gateway with V2 clients: moves on hangman:game, or fan-out in game:<id> rooms (--rooms)"
)]
struct Args {
    /// The gateway's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:4000")]
    gateway: SocketAddr,
    /// The socket mount path.
    #[arg(long, default_value = "/socket")]
    mount: String,
    /// The topic the moves mode joins and sends `make_move` on (another server's, such as
    /// phoenix-channels' echo example, to measure it the same way).
    #[arg(long, default_value = "hangman:game", conflicts_with = "rooms")]
    topic: String,
    /// Clients that play moves.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// `make_move` round trips per client (per room's mover with `--rooms`).
    #[arg(long, default_value_t = 200)]
    moves: usize,
    /// Silent joined clients opened afterwards to measure memory per idle connection.
    #[arg(long, default_value_t = 0)]
    idle_clients: usize,
    /// Fan-out mode: this many rooms (games), each of `--members` members, one of whom plays
    /// `--moves` moves while every member reads the `tally` pushes.
    #[arg(long, conflicts_with_all = ["clients", "idle_clients"])]
    rooms: Option<usize>,
    /// Games per room in fan-out mode, every member joined to each: a mover whose game is won or
    /// lost goes on in the next, and stops after the last.
    #[arg(long, default_value_t = 1)]
    games: usize,
    /// Members per room in fan-out mode, the mover included.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// The gateway's process id, to read its RSS (and in fan-out mode its CPU time).
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// The game service's process id, to read its CPU time over the fan-out's moves.
    #[arg(long)]
    game_service_pid: Option<u32>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Gives up on any single reply after this long (in fan-out mode also on the pushes still
    /// due once the movers are done).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    reply_timeout: Duration,
    /// Runtime threads of the load tool. One (the default) keeps the tool's own cost low: it
    /// shares the cores with what it measures, and threads of its own would add cross-thread
    /// wake-ups to every round trip it times.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
    if !args.gateway.ip().is_loopback() {
        bail!("ws-load only targets loopback addresses");
    }
    let url = format!(
        "ws://{}{}/websocket?vsn=2.0.0",
        args.gateway,
        args.mount.trim_end_matches('/')
    );
    match args.rooms {
        Some(rooms) => runtime.block_on(fanout::run(&args, rooms, url)),
        None => runtime.block_on(moves::run(&args, url)),
    }
}

/// Opens one WebSocket client.
async fn connect(url: &str) -> anyhow::Result<Ws> {
    // tungstenite zero-fills its whole read buffer on every read: the default 128 KiB made the
    // load tool spend a third of its CPU in memset.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .context("connect")?;
    Ok(ws)
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

/// CPU time (user + system, every thread, living or exited) a process has used so far, from
/// `/proc/PID/stat`: the same scheduler accounting `perf stat -e task-clock` reads, in clock
/// ticks of 10 ms (`USER_HZ` is 100 in Linux's user ABI on x86 and ARM).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name, in parentheses, may hold spaces: the fields are counted after it.
    let after_name = stat
        .rsplit_once(')')
        .context("no command name in /proc/PID/stat")?
        .1;
    let mut fields = after_name.split_whitespace();
    // After the name come state (field 3) ... utime (field 14) and stime (field 15).
    let mut tick_field = |n: usize| -> anyhow::Result<u64> {
        fields
            .nth(n)
            .context("short /proc/PID/stat")?
            .parse()
            .context("a CPU time in /proc/PID/stat")
    };
    let user = tick_field(11)?;
    let system = tick_field(0)?;
    Ok(Duration::from_millis((user + system) * 10))
}
