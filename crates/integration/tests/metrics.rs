//! Feature `metrics` (issue 15, part 1): after known traffic, a Prometheus scrape shows each
//! function's hits and misses under its namespace and backend, and the compute and backend
//! latency histograms. (Its own test binary: it installs the process's global recorder.)

use std::sync::LazyLock;
use steadycache::{cached, Cache};

static FILES: LazyLock<Cache> = LazyLock::new(|| {
    let dir = steadycache_api::testing::temp_dir("metrics");
    Cache::from_url(&format!("file://{}", dir.display())).unwrap()
});

#[cached(ttl = "10m", key_prefix = "metrics.square")]
fn square(n: u64) -> u64 {
    n * n
}

#[cached(cache = &*FILES, ttl = "10m", key_prefix = "metrics.cube")]
fn cube(n: u64) -> u64 {
    n * n * n
}

/// The value of the sample `name{...}` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (lbls, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|want| lbls.split(',').any(|have| have == *want))
            .then(|| value.trim().parse().ok())?
    })
}

#[test]
fn a_scrape_shows_each_functions_figures() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    for n in 0..3 {
        for _ in 0..4 {
            square(n);
        }
    }
    for _ in 0..2 {
        cube(2);
    }
    steadycache::metrics::publish();
    let text = handle.render();
    let square_labels = ["namespace=\"metrics.square\"", "backend=\"memory\""];
    assert_eq!(
        sample(&text, "steadycache_misses_total", &square_labels),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "steadycache_hits_total", &square_labels),
        Some(9.0),
        "{text}"
    );
    let cube = ["namespace=\"metrics.cube\"", "backend=\"file\""];
    assert_eq!(
        sample(&text, "steadycache_misses_total", &cube),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "steadycache_hits_total", &cube),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "steadycache_errors_total", &cube),
        Some(0.0),
        "{text}"
    );
    // One computation of cube, timed; its save and its loads in the file backend, timed (the
    // miss looks twice: before and after it takes the key's flight; the hit once).
    assert_eq!(
        sample(&text, "steadycache_compute_seconds_count", &cube),
        Some(1.0),
        "{text}"
    );
    let save = ["namespace=\"metrics.cube\"", "op=\"save\""];
    assert_eq!(
        sample(&text, "steadycache_backend_seconds_count", &save),
        Some(1.0),
        "{text}"
    );
    // A reset of the function's stats does not lower what was published: counting resumes.
    square_cache().reset_stats();
    square(0);
    square(1);
    steadycache::metrics::publish();
    let text = handle.render();
    assert_eq!(
        sample(&text, "steadycache_hits_total", &square_labels),
        Some(11.0),
        "{text}"
    );
    let load = ["namespace=\"metrics.cube\"", "op=\"load\""];
    assert_eq!(
        sample(&text, "steadycache_backend_seconds_count", &load),
        Some(3.0),
        "{text}"
    );
}
