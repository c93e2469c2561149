//! The store's own tracking of changed keys ([`BusConfig::tracking`](super::BusConfig::tracking)):
//! a task that hears [`Backend::track`](crate::Backend::track) and drops the L1 copies of every
//! key the store reports, whoever wrote it.
//!
//! **Auto-recovery**, as for the bus: each report (the backend confirms every `grace / 4` that
//! it still hears the store) vouches for the copies for one grace more ([`Voucher::Tracking`]);
//! when the reports stop (the connection broke, the store restarted, a cluster's masters
//! changed) the copies are no longer served past that bound, and when tracking is back they are
//! flushed first (changes may have been missed), then trusted again.

use super::{Bus, Carrier, RETRY};
use crate::backend::{Tracked, Tracking};
use crate::error::Error;
use crate::tier::budget::Forget;
use crate::tier::watch::Voucher;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Start tracking for `bus`'s cache (on the library's runtime).
pub(super) fn start(bus: &Arc<Bus>) {
    let weak = Arc::downgrade(bus);
    if let Err(e) = crate::runtime::library_runtime().map(|rt| rt.spawn(run(weak))) {
        tracing::warn!(error = %e, "steadycache: the store's tracking cannot start; in-process copies are not served");
    }
}

/// Track until the cache is gone: again after each break.
async fn run(weak: Weak<Bus>) {
    let mut live_until = 0u64;
    let mut logged = false;
    loop {
        let (rx, silence) = {
            let Some(bus) = weak.upgrade() else { return };
            if bus.carrier() == Carrier::Local {
                // The store is not open yet (its memory fallback is not shared): wait for it.
                drop(bus);
                tokio::time::sleep(RETRY).await;
                continue;
            }
            let grace = bus.config.effective_grace();
            let track = bus.manager.backend().track(grace / 4);
            match tokio::time::timeout(grace, track).await {
                Ok(Ok(rx)) => (rx, grace.saturating_mul(2)),
                Ok(Err(e @ Error::Unsupported { .. })) => {
                    tracing::error!(error = %e, "steadycache: tracking is on but the store cannot track; L1 copies rely on the invalidation bus alone");
                    bus.watch.withdraw(Voucher::Tracking);
                    return;
                }
                Ok(Err(e)) => {
                    if !std::mem::replace(&mut logged, true) {
                        tracing::warn!(error = %e, "steadycache: the store's tracking is down; in-process copies are not served until it is back");
                    }
                    drop(bus);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(_) => {
                    drop(bus);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        };
        logged = false;
        if !hear(&weak, rx, silence, &mut live_until).await {
            return;
        }
        if let Some(bus) = weak.upgrade() {
            bus.watch.lapse(Voucher::Tracking);
        }
        live_until = 0;
        tokio::time::sleep(RETRY).await;
    }
}

/// Hear one tracking until it breaks or goes silent for `silence` (`true`), or the cache is
/// gone (`false`).
async fn hear(weak: &Weak<Bus>, mut rx: Tracking, silence: Duration, live_until: &mut u64) -> bool {
    loop {
        let next = tokio::time::timeout(silence, rx.recv()).await;
        let Some(bus) = weak.upgrade() else {
            return false;
        };
        match next {
            Ok(Some(report)) => bus.tracked(report, live_until),
            Ok(None) | Err(_) => return true,
        }
    }
}

impl Bus {
    /// Apply one report of the store's tracking: it is heard (a flush first if it had lapsed),
    /// then the copies of the keys it names are dropped. Internal keys (with `#`: locks,
    /// counters, marks) hold no copy.
    fn tracked(&self, report: Tracked, live_until: &mut u64) {
        self.heard(Voucher::Tracking, live_until);
        match report {
            Tracked::Keys(keys) => {
                if let Some(budget) = &self.budget {
                    for key in keys.iter().filter(|k| !k.contains('#')) {
                        budget.forget(Forget::Key(key));
                    }
                }
            }
            Tracked::All => self.flush(),
            Tracked::Beat => {}
        }
    }
}
