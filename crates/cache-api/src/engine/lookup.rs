//! Looking a call up in its tiers: L1 (typed copies), then L2 (the manager), with the checks a
//! value passes before it is served (freshness, tags, which copy is newer).

use super::io::{backend_error, drop_corrupt, load_entry, Found, Mode};
use super::job::Value;
use super::plan::Plan;
use super::tags;
use crate::envelope::Freshness;
use crate::stats::Stats;
use crate::tier::{Deadlines, Place};
use crate::time::unix_millis;

/// How far a lookup goes when L1 holds a fresh copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// A fresh copy in L1 is the answer (a call).
    FirstFresh,
    /// A fresh or stale copy in L1 is the answer: a call that serves a stale value at once and
    /// refreshes it in the background (stale-while-revalidate), on a cache whose bus carries
    /// what other processes store, so a newer value stored elsewhere would have dropped this
    /// copy. (Its refresh reads L2 first, with [`Look::Newest`].) Without this, every stale
    /// read waited for a store round trip before serving what it already held.
    Servable,
    /// Any copy L1 holds is the answer, fresh or not, and L2 is read only when L1 holds none:
    /// a caller that holds an old value under a `soft_timeout`, on a cache whose bus carries
    /// what other processes store (so L1's copy is as new as L2's, or gone). Such a caller waits
    /// for nothing longer than its soft timeout: not for a store round trip before it decides.
    Held,
    /// L2 is read too and the newer of the two wins (a refresh looking for a value newer than
    /// the one it has).
    Newest,
}

/// Look the call up: L1, then L2 (an L2 value is copied into L1 with the same deadlines, and
/// the early-refresh window `plan` gives it); how far is `look`. Expired entries are absent;
/// backend errors are logged and read as absent (fail open).
pub(crate) async fn lookup<V>(
    mode: Mode,
    place: &Place<V>,
    plan: &Plan,
    look: Look,
    stats: &Stats,
) -> Option<Found<V>>
where
    V: Value,
{
    let mut in_l1 = None;
    if let Some(l1) = &place.l1 {
        if let Some(held) = l1.store.lookup(l1.hash) {
            let started = held.created_at.saturating_sub(u64::from(held.took_ms));
            if held.unchecked && !tags::valid(mode, place, started, stats).await {
                l1.store.remove(l1.hash);
                return lookup_l2(mode, place, plan, None, stats).await;
            }
            if held.unchecked {
                l1.store
                    .restamp(l1.hash, held.created_at, place.tag_stamp());
            }
            let now = unix_millis();
            let freshness = held.freshness;
            let found = Found {
                value: held.value,
                freshness,
                at: held.at.to_unix(now),
                created_at: held.created_at,
                took_ms: held.took_ms,
            };
            let answer = match look {
                Look::FirstFresh => freshness == Freshness::Fresh,
                Look::Servable => matches!(freshness, Freshness::Fresh | Freshness::Stale),
                Look::Held => true,
                Look::Newest => false,
            };
            if answer || place.l2.is_none() {
                return Some(found);
            }
            // Stale (or kept for fail-safe) here: another process may have stored a newer
            // value in L2 since. It is read, and this copy served only if L2 has nothing.
            in_l1 = Some(found);
        }
    }
    lookup_l2(mode, place, plan, in_l1, stats).await
}

/// The L2 half of [`lookup`]: what L2 holds, unless `in_l1` (L1's copy) is newer.
async fn lookup_l2<V>(
    mode: Mode,
    place: &Place<V>,
    plan: &Plan,
    in_l1: Option<Found<V>>,
    stats: &Stats,
) -> Option<Found<V>>
where
    V: Value,
{
    let Some(l2) = place.l2.as_ref() else {
        return in_l1;
    };
    let entry = match load_entry(mode, l2, stats).await {
        Ok(Some(e)) => e,
        Ok(None) => return in_l1,
        Err(e) => {
            backend_error(stats, &l2.key, "load", &e);
            return in_l1;
        }
    };
    let now = unix_millis();
    let freshness = entry.freshness(now);
    if freshness == Freshness::Expired {
        return in_l1;
    }
    if in_l1
        .as_ref()
        .is_some_and(|f| f.created_at > entry.created_at)
    {
        return in_l1; // this process's own copy is the newer one
    }
    let started = entry.created_at.saturating_sub(u64::from(entry.took_ms));
    if !tags::valid(mode, place, started, stats).await {
        return in_l1; // a tag of it was invalidated after it was computed: gone
    }
    let codec = l2.store.manager().codec();
    let opened = codec.open(&l2.key, &entry);
    let value = match opened.and_then(|body| place.bytes.decode(codec, body)) {
        Ok(v) => v,
        Err(e) => {
            Box::pin(drop_corrupt(mode, l2, &e, stats)).await; // rare: kept out of the hit's future
            return in_l1;
        }
    };
    let stale_at = entry.stale_at.min(entry.expires_at);
    let at = plan.with_early(
        Deadlines {
            early_at: stale_at,
            stale_at,
            expires_at: entry.expires_at,
            keep_until: entry.keep_until.max(entry.expires_at),
        },
        entry.took_ms,
    );
    if let Some(l1) = &place.l1 {
        let stamp = (entry.created_at, entry.took_ms, place.tag_stamp());
        l1.store
            .store(l1.hash, &value, at.to_tier(now), stamp, l1.gen, stats);
    }
    Some(Found {
        value,
        freshness,
        at,
        created_at: entry.created_at,
        took_ms: entry.took_ms,
    })
}
