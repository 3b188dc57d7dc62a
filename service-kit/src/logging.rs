//! Log output: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`), as text
//! or as JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The target of the one line each service logs once it listens (`listening on ADDR`), shown
/// whatever `RUST_LOG` says ([`init`]).
pub const LISTENING: &str = "listening";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, the event's fields at its top level (as log pipelines expect).
    Json,
}

impl LogFormat {
    /// [`LogFormat::Json`] when a service's `--log-json` flag is set, [`LogFormat::Text`]
    /// otherwise.
    pub fn json_if(log_json: bool) -> Self {
        if log_json {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// Installs the process's `tracing` subscriber. Call once, first thing in `main`.
///
/// Colour codes only when stderr is a terminal: written into a file or a pipe (a container's
/// log, `scripts/run`) they come out as `[2m…[0m` litter, and they cost time on every span.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // Where a service listens is logged whatever RUST_LOG says: scripts/run, the tests'
        // harnesses and operators read the address from that line.
        .add_directive(
            format!("{LISTENING}=info")
                .parse()
                .expect("a valid directive"),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_flag_picks_the_format() {
        assert_eq!(LogFormat::json_if(true), LogFormat::Json);
        assert_eq!(LogFormat::json_if(false), LogFormat::Text);
    }
}
