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

#[test]
fn memory_stays_flat_across_two_runs_without_a_scrape() {
    let upkeep = Duration::from_millis(50);
    let _handle = service_kit::metrics::install(PrometheusBuilder::new(), upkeep);
    // A first run warms the allocator up to its working set.
    record_run();
    std::thread::sleep(upkeep * 6);
    let before = rss_bytes();
    record_run();
    std::thread::sleep(upkeep * 6);
    let grown = rss_bytes().saturating_sub(before);
    // Unfolded samples would add 8 MB; allow a quarter of it for allocator noise.
    assert!(
        grown < u64::from(SAMPLES) * 8 / 4,
        "RSS grew by {grown} bytes over a run of {SAMPLES} samples with no scrape"
    );
}
