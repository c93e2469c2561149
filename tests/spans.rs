//! Tracing spans (issue 15, part 1): a call that misses the in-process tier runs inside a
//! `steadycache.call` span carrying the function's namespace and a short hash of its key, never
//! its arguments; a hit opens no span. (Its own test binary: it installs the global subscriber.)

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use steadycache::cached;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every span opened: its name and its fields as text.
struct Spans {
    next: AtomicU64,
    seen: &'static Mutex<Vec<(String, String)>>,
}

struct Fields(String);
impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut f = Fields(String::new());
        span.record(&mut f);
        let name = span.metadata().name().to_owned();
        self.seen.lock().unwrap().push((name, f.0));
        Id::from_u64(self.next.fetch_add(1, SeqCst) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

static SEEN: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

#[cached(ttl = "10m", key_prefix = "spans.lookup")]
fn lookup(secret: String) -> usize {
    secret.len()
}

#[test]
fn a_miss_is_a_span_with_the_namespace_and_a_key_hash_and_a_hit_is_none() {
    let spans = Spans {
        next: AtomicU64::new(0),
        seen: &SEEN,
    };
    tracing::subscriber::set_global_default(spans).unwrap();
    lookup("hunter2-password".into());
    let after_miss = SEEN.lock().unwrap().clone();
    lookup("hunter2-password".into());
    let after_hit = SEEN.lock().unwrap().clone();
    let calls: Vec<_> = after_miss
        .iter()
        .filter(|(n, _)| n == "steadycache.call")
        .collect();
    assert_eq!(calls.len(), 1, "{after_miss:?}");
    let fields = &calls[0].1;
    assert!(fields.contains("namespace=spans.lookup"), "{fields}");
    assert!(fields.contains("key="), "{fields}");
    assert!(
        after_miss.iter().all(|(_, f)| !f.contains("hunter2")),
        "arguments never reach a span: {after_miss:?}"
    );
    assert_eq!(after_hit.len(), after_miss.len(), "a hit opens no span");
}
