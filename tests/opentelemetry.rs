//! The library's `tracing` spans exported to OpenTelemetry (issue 25, item 6) through
//! `tracing-opentelemetry` and the SDK's in-memory exporter: a miss exports one
//! `steadycache.call` span with the namespace and a key hash (never the arguments) and a hit
//! none; with `layer::Spans` the store's `steadycache.store` spans are in the call's trace,
//! under its span; a background refresh is a child of the call that started it.
//!
//! Its own test binary: the subscriber is the global one, since store operations and refreshes
//! of a sync call run on the library's own threads, which a per-thread `set_default` does not
//! reach. The tests share its exporter and take turns. Counts are asserted, times only as a
//! generous deadline for what finishes in the background.

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use steadycache::layer::Spans;
use steadycache::{cached, Cache, LocalTier, MemoryBackend};
use steadycache_api::testing::clock;
use tracing_subscriber::layer::SubscriberExt;

/// The exporter every span goes to when it closes, emptied, and this test's turn.
fn exporting() -> (&'static InMemorySpanExporter, MutexGuard<'static, ()>) {
    static TURN: Mutex<()> = Mutex::new(());
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let exporter = EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("steadycache-test"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))
            .expect("the only subscriber");
        exporter
    });
    exporter.reset();
    (exporter, turn)
}

/// Until `done` holds of the exported spans (at most 10 s); those spans.
fn wait_until(
    exporter: &InMemorySpanExporter,
    done: impl Fn(&[SpanData]) -> bool,
) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = finished(exporter);
        if done(&spans) || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn finished(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
    exporter.get_finished_spans().expect("the exporter is open")
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Whether `span` is `ancestor` or under it (by parent span ids within the exported spans).
fn descends_from(spans: &[SpanData], span: &SpanData, ancestor: &SpanData) -> bool {
    let target = ancestor.span_context.span_id();
    let mut at = span;
    loop {
        if at.span_context.span_id() == target {
            return true;
        }
        if at.parent_span_id == SpanId::INVALID {
            return false;
        }
        match spans
            .iter()
            .find(|s| s.span_context.span_id() == at.parent_span_id)
        {
            Some(parent) => at = parent,
            None => return false,
        }
    }
}

#[cached(ttl = "10m", key_prefix = "otel.lookup")]
fn lookup(secret: String) -> usize {
    secret.len()
}

#[test]
fn a_miss_exports_a_call_span_with_namespace_and_key_hash_and_a_hit_exports_none() {
    let (exporter, _turn) = exporting();
    lookup("hunter2-password".into());
    let after_miss = finished(exporter);
    let calls = named(&after_miss, "steadycache.call");
    assert_eq!(calls.len(), 1, "{after_miss:#?}");
    assert_eq!(
        attribute(calls[0], "namespace").as_deref(),
        Some("otel.lookup")
    );
    let key = attribute(calls[0], "key").expect("a key attribute");
    assert_eq!(key.len(), 16, "a 16-hex-digit hash: {key}");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    for span in &after_miss {
        for kv in &span.attributes {
            let value = kv.value.to_string();
            assert!(!value.contains("hunter2"), "an argument in {span:#?}");
        }
    }

    lookup("hunter2-password".into());
    assert_eq!(
        finished(exporter).len(),
        after_miss.len(),
        "a hit exports no span"
    );
}

/// A byte store with a span around each operation into it, and typed copies in process (so a
/// hit does not reach the store).
fn layered() -> Cache {
    Cache::builder()
        .backend(MemoryBackend::default())
        .local_tier(LocalTier::new(16 << 20))
        .layer(Spans)
        .build()
}

#[cached(cache = layered(), ttl = "10m", key_prefix = "otel.stored")]
fn stored(n: u64) -> u64 {
    n * 2
}

#[test]
fn store_spans_are_in_the_call_s_trace_under_its_span() {
    let (exporter, _turn) = exporting();
    assert_eq!(stored(21), 42);
    let spans = finished(exporter);
    let calls = named(&spans, "steadycache.call");
    assert_eq!(calls.len(), 1, "{spans:#?}");
    let call = calls[0];
    let stores = named(&spans, "steadycache.store");
    assert!(!stores.is_empty(), "the Spans layer exports store spans");
    for store in &stores {
        assert_eq!(
            store.span_context.trace_id(),
            call.span_context.trace_id(),
            "{store:#?}"
        );
        assert_ne!(store.parent_span_id, SpanId::INVALID, "{store:#?}");
        assert!(descends_from(&spans, store, call), "{store:#?}");
    }
    let ops: Vec<_> = stores.iter().filter_map(|s| attribute(s, "op")).collect();
    assert!(ops.iter().any(|op| op == "load"), "a read: {ops:?}");
    assert!(ops.iter().any(|op| op == "save"), "a write: {ops:?}");

    assert_eq!(stored(21), 42);
    assert_eq!(
        finished(exporter).len(),
        spans.len(),
        "a hit exports no span"
    );
}

static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = "1s", stale_while_revalidate = "1h", key_prefix = "otel.swr")]
fn rate(pair: String) -> u64 {
    let _ = pair;
    RUNS.fetch_add(1, SeqCst) + 1
}

#[test]
fn a_background_refresh_is_a_child_of_the_call_that_started_it() {
    let (exporter, _turn) = exporting();
    let _clock = clock::exclusive();
    assert_eq!(rate("EURUSD".into()), 1);
    clock::advance(Duration::from_secs(2));
    assert_eq!(rate("EURUSD".into()), 1, "the stale value, at once");
    // The trigger's span ends with its last child, the refresh.
    let spans = wait_until(exporter, |s| {
        named(s, "steadycache.refresh").len() == 1 && named(s, "steadycache.call").len() == 2
    });
    let refreshes = named(&spans, "steadycache.refresh");
    assert_eq!(refreshes.len(), 1, "{spans:#?}");
    assert_eq!(RUNS.load(SeqCst), 2, "one refresh");
    let calls = named(&spans, "steadycache.call");
    assert_eq!(calls.len(), 2, "the miss and the stale read: {spans:#?}");
    let trigger = calls[1];
    let refresh = refreshes[0];
    assert_eq!(refresh.parent_span_id, trigger.span_context.span_id());
    assert_eq!(
        refresh.span_context.trace_id(),
        trigger.span_context.trace_id()
    );
    assert_ne!(
        trigger.span_context.trace_id(),
        calls[0].span_context.trace_id(),
        "each call is a trace of its own"
    );
}
