use clap::Parser;
use html_gallows::{Config, Server};
use service_kit::logging::LogFormat;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let log_format = LogFormat::json_if(config.log_json);
    service_kit::run(log_format, html_gallows::start(config), Server::stop).await
}
