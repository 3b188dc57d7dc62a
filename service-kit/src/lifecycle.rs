//! A service's life from its `main`: logs, start, serve until SIGTERM or Ctrl-C, graceful stop.

use std::future::Future;

use crate::{
    logging::{self, LogFormat},
    shutdown,
};

/// Sets up logs in `log_format`, awaits `start`, serves until SIGTERM or Ctrl-C, then awaits
/// `stop` on the started server.
///
/// `start` is a future not yet polled, so the service starts with logs already set up; the
/// signal handlers are installed before it is polled, so a SIGTERM during start-up still
/// ends in a graceful stop.
pub async fn run<Server, StartError, Stopping>(
    log_format: LogFormat,
    start: impl Future<Output = Result<Server, StartError>>,
    stop: impl FnOnce(Server) -> Stopping,
) -> anyhow::Result<()>
where
    anyhow::Error: From<StartError>,
    Stopping: Future<Output = ()>,
{
    logging::init(log_format);
    let signal = shutdown::signal()?;
    let server = start.await?;
    signal.await;
    tracing::info!("shutting down");
    stop(server).await;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A SIGTERM while the service is still starting: it finishes starting, then is stopped,
    /// and `run` returns. (One test only: logs can be set up once in a process.)
    #[tokio::test]
    async fn a_sigterm_during_start_up_ends_in_a_graceful_stop() {
        let start = async {
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &std::process::id().to_string()])
                .status()?;
            assert!(sent.success());
            Ok::<_, std::io::Error>("the server")
        };
        let mut stopped = None;
        let stop = |server| {
            stopped = Some(server);
            std::future::ready(())
        };
        let life = tokio::time::timeout(Duration::from_secs(5), run(LogFormat::Text, start, stop));
        life.await
            .expect("the signal is seen")
            .expect("the service starts");
        assert_eq!(stopped, Some("the server"));
    }
}
