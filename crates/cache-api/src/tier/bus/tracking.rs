//! The store's own tracking of changed keys ([`BusConfig::tracking`](super::BusConfig::tracking)):
//! a task that hears [`Backend::track`](crate::Backend::track) and drops the L1 copies of every
//! key the store reports, whoever wrote it.
//!
//! **Auto-recovery**, as for the bus: each report (the backend confirms every `grace / 4` that
//! it still hears the store) vouches for the copies for one grace more ([`Voucher::Tracking`]);
//! when the reports stop (the connection broke, the store restarted, a cluster's masters
//! changed) the copies are no longer served past that bound, and when tracking is back they are
//! flushed first (changes may have been missed), then trusted again.

use super::{keep_hearing, Bus, Carrier, RETRY};
use crate::backend::{Tracked, Tracking};
use crate::error::Error;
use crate::tier::budget::Forget;
use crate::tier::watch::Voucher;
use std::sync::{Arc, Weak};

/// Start tracking for `bus`'s cache (on the library's runtime).
pub(super) fn start(bus: &Arc<Bus>) {
    let weak = Arc::downgrade(bus);
    if let Err(e) = crate::runtime::library_runtime().map(|rt| rt.spawn(run(weak))) {
        tracing::warn!(error = %e, "steadycache: the store's tracking cannot start; in-process copies are not served");
    }
}

/// Track until the cache is gone: again after each break.
async fn run(weak: Weak<Bus>) {
    // The store is not open yet (its memory fallback is not shared): wait for it.
    while weak
        .upgrade()
        .is_some_and(|b| b.carrier() == Carrier::Local)
    {
        tokio::time::sleep(RETRY).await;
    }
    let track = |bus: Arc<Bus>| async move {
        let beat = bus.config.effective_grace() / 4;
        match bus.manager.backend().track(beat).await {
            Ok(rx) => Ok(Some(rx)),
            Err(e @ Error::Unsupported { .. }) => {
                tracing::error!(error = %e, "steadycache: tracking is on but the store cannot track; L1 copies rely on the invalidation bus alone");
                bus.watch.withdraw(Voucher::Tracking);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    };
    let down = "steadycache: the store's tracking is down; in-process copies are not served until it is back";
    keep_hearing(weak, Voucher::Tracking, down, track, hear).await;
}

/// Hear one tracking until it breaks or goes silent for two graces (`true`), or the cache is
/// gone (`false`).
async fn hear(weak: &Weak<Bus>, mut rx: Tracking, live_until: &mut u64) -> bool {
    let Some(silence) = weak
        .upgrade()
        .map(|b| b.config.effective_grace().saturating_mul(2))
    else {
        return false;
    };
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
            Tracked::Keys(mut keys) => {
                keys.retain(|k| !k.contains('#'));
                if let (Some(budget), false) = (&self.budget, keys.is_empty()) {
                    budget.forget(Forget::Keys(&keys));
                }
            }
            Tracked::All => self.flush(),
            Tracked::Beat => {}
        }
    }
}
