//! `ws-gateway`: parse flags, set up logs, serve until SIGTERM or Ctrl-C.

use clap::Parser;
use service_kit::logging::LogFormat;
use ws_gateway::{Config, Server};

/// glibc's malloc spent a fifth of the gateway's CPU under load (contention between worker
/// threads); mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let log_format = LogFormat::json_if(config.log_json);
    service_kit::run(log_format, ws_gateway::start(config), Server::stop).await
}
