//! Serve steadycache's figures as Prometheus text (feature `metrics`, on in `full`).
//!
//! Run: `cargo run -p steadycache-integration --example metrics_prometheus`. It installs the
//! Prometheus recorder, calls a memoized function (one miss, then hits), publishes the
//! counters and prints what a scrape of `/metrics` would return.

use std::time::Duration;
use steadycache::cached;

#[cached(ttl = "10m", key_prefix = "example.quote")]
fn quote(symbol: String) -> u64 {
    std::thread::sleep(Duration::from_millis(20)); // stands for a slow upstream
    symbol.len() as u64 * 100
}

fn main() {
    let handle = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cannot install the Prometheus recorder: {e}");
            std::process::exit(1);
        }
    };
    for _ in 0..5 {
        quote("ACME".into());
    }
    quote("GLOBEX".into());
    // The counters are published every second in the background; publish now for exact ones.
    steadycache::metrics::publish();
    // In a service, serve this from `GET /metrics`.
    print!("{}", handle.render());
}
