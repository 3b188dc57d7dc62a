//! Logging: `tracing` to stderr, human-readable or JSON lines, filtered by
//! `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init(log_json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}
