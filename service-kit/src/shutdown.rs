//! The signal that stops a service: SIGTERM (what Kubernetes and `scripts/run` send) or
//! Ctrl-C.

use std::future::Future;

/// Starts listening for SIGTERM and Ctrl-C (SIGINT) now, and returns a future that resolves
/// on the first of them.
///
/// The handlers are installed by this call rather than when the future is first polled, so a
/// signal that arrives while the service is still starting is not lost to the default action
/// (which would end the process without a graceful stop).
pub fn signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            tokio::signal::ctrl_c().await.ok();
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The process's own SIGTERM: the test binary must not die of it, and the future resolves.
    #[tokio::test]
    async fn sigterm_resolves_the_future_instead_of_ending_the_process() {
        let stop = signal().expect("the handlers install");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(5), stop)
            .await
            .expect("the signal is seen");
    }
}
