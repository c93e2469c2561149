//! Feature `metrics`: every memoized function reports through the [`metrics`] crate's facade,
//! to whatever recorder the application installs (Prometheus, StatsD, OpenTelemetry…).
//!
//! **Counters** (`steadycache_<counter>_total`, labelled `namespace` and `backend`) are the
//! function's own [`Stats`](crate::StatsSnapshot), published as increments since the last
//! publication: once a second by a task on the library's runtime, and at once by [`publish`]
//! (call it before rendering a scrape to read exact figures). So a hit costs nothing more with
//! the feature on: it only bumps the function's thread-local row, as without it. Two functions
//! with one namespace and backend add up; a `reset_stats` does not lower what was published.
//!
//! **Histograms**, recorded when they happen (never on a hit): `steadycache_compute_seconds`
//! (each computation whose value is stored) and `steadycache_backend_seconds` (each load and save in
//! the backend, labelled `op` too).
//!
//! A recorder installed after a function's first call still gets every figure: the metrics are
//! looked up in the recorder at each publication, not kept from the first.

use crate::manager::CacheManager;
use crate::stats::{HistogramKeys, Labels, Stats, StatsSnapshot};
use metrics::Key;
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

/// How often the counters are published in the background.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

struct Member {
    labels: Labels,
    stats: Weak<Stats>,
    /// What was published last, counter by counter.
    last: [u64; 16],
}

static MEMBERS: Mutex<Vec<Member>> = Mutex::new(Vec::new());

/// Report `stats` under `namespace` and the backend of `manager` from now on (a memoized
/// function's, at its first call).
pub(crate) fn register(namespace: &str, manager: &Arc<dyn CacheManager>, stats: &Arc<Stats>) {
    let labels = Labels {
        namespace: namespace.to_owned(),
        manager: Arc::downgrade(manager),
        histograms: HistogramKeys::new(namespace, manager.backend().name()),
    };
    let _ = stats.labels.set(labels.clone());
    let mut members = MEMBERS.lock().unwrap_or_else(|p| p.into_inner());
    members.retain(|m| m.stats.strong_count() > 0);
    members.push(Member {
        labels,
        stats: Arc::downgrade(stats),
        last: [0; 16],
    });
    drop(members);
    static START: Once = Once::new();
    START.call_once(|| {
        if let Ok(rt) = crate::runtime::library_runtime() {
            rt.spawn(async {
                let mut every = tokio::time::interval(PUBLISH_EVERY);
                loop {
                    every.tick().await;
                    publish();
                }
            });
        }
    });
}

/// The counters, by metric name.
fn figures(s: &StatsSnapshot) -> [(&'static str, u64); 16] {
    [
        ("steadycache_hits_total", s.hits),
        ("steadycache_misses_total", s.misses),
        ("steadycache_stale_total", s.stale),
        ("steadycache_refreshes_total", s.refreshes),
        ("steadycache_errors_total", s.errors),
        ("steadycache_backend_errors_total", s.backend_errors),
        ("steadycache_corrupt_total", s.corrupt),
        ("steadycache_coalesced_total", s.coalesced),
        ("steadycache_too_large_total", s.too_large),
        ("steadycache_lock_lost_total", s.lock_lost),
        ("steadycache_fail_safe_total", s.fail_safe),
        ("steadycache_early_refreshes_total", s.early_refreshes),
        ("steadycache_timeouts_total", s.timeouts),
        ("steadycache_not_admitted_total", s.not_admitted),
        ("steadycache_lock_waits_total", s.lock_waits),
        ("steadycache_lock_takeovers_total", s.lock_takeovers),
    ]
}

/// Publish every function's counters to the installed recorder now (they are also published
/// every [`PUBLISH_EVERY`] in the background).
pub fn publish() {
    let mut members = MEMBERS.lock().unwrap_or_else(|p| p.into_inner());
    for m in members.iter_mut() {
        let Some(stats) = m.stats.upgrade() else {
            continue;
        };
        let backend = m.labels.backend();
        for (i, (name, now)) in figures(&stats.snapshot()).into_iter().enumerate() {
            let Some(last) = m.last.get_mut(i) else {
                continue;
            };
            // After a `reset_stats`, the count starts again from zero.
            let delta = if now >= *last { now - *last } else { now };
            *last = now;
            metrics::counter!(
                name,
                "namespace" => m.labels.namespace.clone(),
                "backend" => backend.clone()
            )
            .increment(delta);
        }
    }
}

/// What `metrics::histogram!` passes the recorder, for histograms whose keys are built once.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn record(key: &Key, took: Duration) {
    metrics::with_recorder(|r| {
        r.register_histogram(key, &METADATA)
            .record(took.as_secs_f64())
    });
}

/// Record one computation of the function `stats` belongs to.
pub(crate) fn computed(stats: &Stats, took: Duration) {
    if let Some(l) = stats.labels.get() {
        record(&l.histograms.compute, took);
    }
}

/// An operation on the store, as the `op` label of `steadycache_backend_seconds` names it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StoreOp {
    /// A read of an entry.
    Load,
    /// A write of an entry.
    Save,
}

/// Record one call into the backend.
pub(crate) fn backend_call(stats: &Stats, op: StoreOp, took: Duration) {
    if let Some(l) = stats.labels.get() {
        let key = match op {
            StoreOp::Load => &l.histograms.load,
            StoreOp::Save => &l.histograms.save,
        };
        record(key, took);
    }
}
