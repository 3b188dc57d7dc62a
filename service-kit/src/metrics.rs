//! The process-wide Prometheus recorder, and its upkeep.
//!
//! The exporter keeps every histogram sample until upkeep folds it into the buckets. Upkeep
//! otherwise runs only when `/metrics` is rendered, so with nobody scraping, memory grew with
//! traffic (about 20 bytes a move, without bound). A thread runs it on a fixed interval.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How often histogram samples are folded into their buckets: about this many seconds of
/// samples are held at most.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the recorder `builder` describes as the global one, with its upkeep every
/// `upkeep_interval`, and returns its handle.
///
/// `metrics` has one global recorder per process, so the first call installs it and later
/// calls (tests start several services in one process) get the same handle: the first
/// caller's bucket settings hold for all.
pub fn install(builder: PrometheusBuilder, upkeep_interval: Duration) -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics will be empty");
        }
        let upkeep = handle.clone();
        // A thread, not a task: it must run whichever runtime (if any) the caller is on, and
        // for as long as the process.
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(upkeep_interval);
                    upkeep.run_upkeep();
                }
            })
            .expect("the metrics upkeep thread starts");
        handle
    })
}
