use clap::Parser;

use html_gallows::{Config, start};
use service_kit::logging::{self, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    logging::init(LogFormat::json_if(config.log_json));
    let stop = service_kit::shutdown::signal()?;
    let server = start(config).await?;
    stop.await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}
