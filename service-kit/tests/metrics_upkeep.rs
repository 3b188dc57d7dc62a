//! Histogram samples do not pile up when nobody scrapes `/metrics`.
//!
//! Its own test binary: `metrics` has one global recorder per process.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

/// Samples in one run: unfolded, they would hold 8 bytes each (8 MB a run).
const SAMPLES: u32 = 1_000_000;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn record_run() {
    let histogram = metrics::histogram!("test_seconds");
    for i in 0..SAMPLES {
        histogram.record(f64::from(i % 1000) / 1e6);
    }
}

/// Runs measured after the warm-up: without upkeep each adds a run's samples (8 MB), with it
/// the recorder only ever holds what arrived since the last upkeep.
const MEASURED_RUNS: u64 = 5;

#[test]
fn memory_stays_flat_across_runs_without_a_scrape() {
    let upkeep = Duration::from_millis(50);
    let _handle = service_kit::metrics::install(PrometheusBuilder::new(), upkeep);
    // Warm-up runs bring the allocator to its working set: the samples that arrive between
    // two upkeeps, which is a whole run when a busy machine leaves the upkeep thread waiting.
    for _ in 0..2 {
        record_run();
        std::thread::sleep(upkeep * 6);
    }
    let before = rss_bytes();
    for _ in 0..MEASURED_RUNS {
        record_run();
        std::thread::sleep(upkeep * 6);
    }
    let grown = rss_bytes().saturating_sub(before);
    // Unfolded, the measured runs would add 40 MB; allow two runs' worth for a starved upkeep
    // thread and allocator noise.
    let unfolded_run = u64::from(SAMPLES) * 8;
    assert!(
        grown < 2 * unfolded_run,
        "RSS grew by {grown} bytes over {MEASURED_RUNS} runs of {SAMPLES} samples with no scrape"
    );
}
