//! Logging: `tracing` to stderr, human-readable or JSON lines, filtered by
//! `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(log_json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person watching, never into files or pipes.
        .with_ansi(std::io::stderr().is_terminal());
    if log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}
