//! `ws-gateway`: parse flags, set up logs, serve until SIGTERM or Ctrl-C.

use clap::Parser;
use service_kit::logging::{self, LogFormat};
use ws_gateway::Config;

/// glibc's malloc spent a fifth of the gateway's CPU under load (contention between worker
/// threads); mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    logging::init(LogFormat::json_if(config.log_json));
    let stop = service_kit::shutdown::signal()?;
    let server = ws_gateway::start(config).await?;
    stop.await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}
