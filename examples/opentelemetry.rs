//! The library's `tracing` spans exported to OpenTelemetry: `tracing-opentelemetry` turns them
//! into OpenTelemetry spans, an SDK tracer provider exports them, here to an in-memory exporter
//! (no collector, no network) whose spans are printed as trees. A real service puts an OTLP
//! exporter (`opentelemetry-otlp`) where the in-memory one is.
//!
//! Run: `cargo run --example opentelemetry`
//!
//! Three calls of a memoized function over a cache with the `Spans` store layer: a miss (a
//! `steadycache.call` span, the store's `steadycache.store` spans under it), a hit (no span at
//! all), and, once the value is stale, a read served at once whose background refresh is a
//! `steadycache.refresh` span under that read's call span.

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::time::{Duration, Instant};
use steadycache::layer::Spans;
use steadycache::{cached, Cache, LocalTier, MemoryBackend};
use tracing_subscriber::layer::SubscriberExt;

/// A byte store (in process here; Redis, files, ... alike) with a `steadycache.store` span
/// around each operation into it, and typed copies in process in front of it (so a hit is
/// served without the store, and without a span).
fn traced_cache() -> Cache {
    Cache::builder()
        .backend(MemoryBackend::default())
        .local_tier(LocalTier::new(16 << 20))
        .layer(Spans)
        .build()
}

#[cached(
    cache = traced_cache(),
    ttl = "200ms",
    stale_while_revalidate = "1h",
    key_prefix = "example.rate"
)]
fn exchange_rate(pair: String) -> f64 {
    std::thread::sleep(Duration::from_millis(20)); // the upstream call
    if pair == "EURUSD" {
        1.08
    } else {
        1.0
    }
}

fn main() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("steadycache-example"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    // Global, not per thread: a background refresh runs on the library's own threads.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))
        .expect("no other subscriber");

    println!("miss:  {}", exchange_rate("EURUSD".into()));
    println!("hit:   {}", exchange_rate("EURUSD".into()));
    std::thread::sleep(Duration::from_millis(250)); // past the ttl: stale
    println!("stale: {}", exchange_rate("EURUSD".into()));
    // The stale read's span ends with its last child, the background refresh.
    wait_for(&exporter, "steadycache.call", 2);

    let spans = exporter.get_finished_spans().expect("the exporter is open");
    println!("\n{} spans exported:", spans.len());
    for root in spans.iter().filter(|s| s.parent_span_id == SpanId::INVALID) {
        print_tree(&spans, root, 0);
    }
    provider.shutdown().expect("the provider shuts down");
}

/// Until `count` spans of that name have been exported (at most 10 s).
fn wait_for(exporter: &InMemorySpanExporter, name: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let spans = exporter.get_finished_spans().unwrap_or_default();
        if spans.iter().filter(|s| s.name == name).count() >= count {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `span`, its attributes, and the spans under it, indented.
fn print_tree(spans: &[SpanData], span: &SpanData, depth: usize) {
    let attributes: Vec<String> = span
        .attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    let took = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    println!(
        "{:indent$}{} [trace {:.8}] {} ({took:.1?})",
        "",
        span.name,
        span.span_context.trace_id().to_string(),
        attributes.join(" "),
        indent = depth * 2
    );
    let id = span.span_context.span_id();
    for child in spans.iter().filter(|s| s.parent_span_id == id) {
        print_tree(spans, child, depth + 1);
    }
}
