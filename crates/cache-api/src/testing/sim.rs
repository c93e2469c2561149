//! A multi-process simulator without servers: K independent [`Cache`]s over one store, each
//! behind its own [`Faulty`] layer, standing for K processes of a fleet. Each "process" has its
//! own single-flight, stats and faults (its own clock offset, latency, outages), and they share
//! only the store, as real processes share Redis. Scenarios report what a fleet is judged on:
//! how many times the function ran, whether every caller got the value, and the worst wait.
//!
//! ```
//! use steadycache_api::testing::sim::Fleet;
//! use steadycache_api::{Lock, Policy};
//! use std::time::Duration;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let fleet = Fleet::new(4);
//! let policy = Policy::expire_after(Duration::from_secs(60))
//!     .with_lock(Lock::Distributed)
//!     .with_lock_ttl(Duration::from_millis(100));
//! // 4 processes x 5 callers on one cold key; the work takes 3 lock ttls.
//! let s = fleet.stampede("report", 5, &policy, Duration::from_millis(300)).await;
//! assert_eq!(s.runs, 1);
//! assert_eq!(s.served, 20);
//! # });
//! ```
//!
//! Outcomes (run counts, who got the value) are deterministic wherever the store's operations
//! are atomic; waits depend on the machine's scheduling and are reported, not asserted to the
//! millisecond.

use super::fault::{Faults, Faulty};
use crate::backend::{Backend, Capabilities};
use crate::cache::Cache;
use crate::memory::MemoryBackend;
use crate::policy::Policy;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// K caches ("processes") over one store.
pub struct Fleet {
    store: Arc<dyn Backend>,
    members: Vec<(Cache, Faults)>,
}

/// What a [`Fleet::stampede`] came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stampede {
    /// How many times the function ran, across the fleet.
    pub runs: usize,
    /// How many callers got the value.
    pub served: usize,
    /// The longest any caller waited for its value.
    pub worst_wait: Duration,
    /// Leases lost while computing, across the fleet (see `lock_lost` in the stats).
    pub lock_lost: u64,
    /// The most runs of the function that were under way at one time: 1 when the runs went
    /// one after another.
    pub most_at_once: usize,
}

impl Fleet {
    /// `processes` caches over one in-memory store, which they see as shared (as a Redis).
    pub fn new(processes: usize) -> Fleet {
        let store: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        Fleet::over(store, processes, Some(Capabilities::all()))
    }

    /// `processes` caches over `store`; `capabilities`, when given, replace the store's own
    /// in every member's view.
    pub fn over(
        store: Arc<dyn Backend>,
        processes: usize,
        capabilities: Option<Capabilities>,
    ) -> Fleet {
        let members = (0..processes)
            .map(|_| {
                let layer = Faulty::new(store.clone());
                let faults = layer.faults();
                if let Some(c) = capabilities {
                    faults.capabilities(c);
                }
                (Cache::builder().backend(layer).build(), faults)
            })
            .collect();
        Fleet { store, members }
    }

    /// The shared store.
    pub fn store(&self) -> &Arc<dyn Backend> {
        &self.store
    }

    /// How many processes.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the fleet has no process.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Process `i`'s cache.
    pub fn cache(&self, i: usize) -> Option<&Cache> {
        self.members.get(i).map(|m| &m.0)
    }

    /// Process `i`'s faults (its view of the store).
    pub fn faults(&self, i: usize) -> Option<&Faults> {
        self.members.get(i).map(|m| &m.1)
    }

    /// Every process calls `key` from `callers` tasks at once; the function takes `work` and
    /// returns 42. Must run inside a tokio runtime.
    pub async fn stampede(
        &self,
        key: &str,
        callers: usize,
        policy: &Policy,
        work: Duration,
    ) -> Stampede {
        let runs = Arc::new(AtomicUsize::new(0));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let lost_before: u64 = self.members.iter().map(|m| m.0.stats().lock_lost).sum();
        let mut tasks = Vec::new();
        for (cache, _) in &self.members {
            for _ in 0..callers {
                let (cache, runs, policy, key) =
                    (cache.clone(), runs.clone(), policy.clone(), key.to_owned());
                let (running, most) = (running.clone(), most.clone());
                tasks.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let v = cache
                        .get_or_compute(&key, &policy, || async {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(work).await;
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok::<u64, Infallible>(42)
                        })
                        .await;
                    (v.ok() == Some(42), started.elapsed())
                }));
            }
        }
        let (mut served, mut worst_wait) = (0, Duration::ZERO);
        for t in tasks {
            if let Ok((ok, waited)) = t.await {
                served += usize::from(ok);
                worst_wait = worst_wait.max(waited);
            }
        }
        let lost_after: u64 = self.members.iter().map(|m| m.0.stats().lock_lost).sum();
        Stampede {
            runs: runs.load(Ordering::SeqCst),
            served,
            worst_wait,
            lock_lost: lost_after.saturating_sub(lost_before),
            most_at_once: most.load(Ordering::SeqCst),
        }
    }
}
