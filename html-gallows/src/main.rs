use clap::Parser;

use html_gallows::{Config, shutdown_signal, start, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_json);
    let shutdown = shutdown_signal()?;
    let server = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}
