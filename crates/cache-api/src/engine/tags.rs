//! Tags: is a value still valid, given when each of its tags was last invalidated?
//!
//! Invalidating a tag is one write: its time, under `steadycache#tag:<tag>` (no ttl: it must
//! outlive every entry that may carry the tag; a clear of the whole cache removes it with the
//! entries). A value is valid when its computation started after every one of its tags was last
//! invalidated (`created_at - took_ms`, so a computation that read the old data before the
//! invalidation and stored after it is not kept). Tag times are read from the store once and
//! kept in process while the cache's bus is heard (see `tier::bus`); an unreadable tag time
//! counts as an invalidation (the function runs: fail open, never a stale value).

use crate::mode::Mode;
use crate::stats::backend_error;
use crate::stats::Stats;
use crate::tier::{CallTags, Place, L2};

/// How much later than a tag's invalidation a value's estimated start must be for the value to
/// count as computed after it. The start is estimated as `created_at - took_ms`, two whole
/// milliseconds read a little after the computation ended: it may be up to about a
/// millisecond later than the real start, and the invalidation time up to one earlier than the
/// real one. A value whose computation began within this margin after an invalidation is
/// judged invalid (computed once more), never the other way round.
pub(crate) const START_MARGIN_MS: u64 = 2;

/// The prefix of the internal keys holding tag times.
pub(crate) const TAG_KEY_PREFIX: &str = "steadycache#tag:";

/// The internal key holding `tag`'s invalidation time.
pub(crate) fn tag_key(tag: &str) -> String {
    format!("{TAG_KEY_PREFIX}{tag}")
}

/// A tag time as stored: decimal ms since the Unix epoch.
pub(crate) fn parse_time(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// Whether a value of `place`'s call whose computation started at `started_at` (ms since the
/// Unix epoch) is still valid (always, for an untagged call).
pub(crate) async fn valid<V>(mode: Mode, place: &Place<V>, started_at: u64, stats: &Stats) -> bool {
    let Some(tags) = &place.tags else {
        return true;
    };
    for name in tags.names.iter() {
        let at = match tags.bus.known_tag(name) {
            Some(at) => at,
            // Boxed: read once per tag, it should not size every lookup's future.
            None => match Box::pin(time_of(mode, place.l2.as_ref(), tags, name, stats)).await {
                Some(at) => at,
                None => return false,
            },
        };
        if at.saturating_add(START_MARGIN_MS) >= started_at {
            return false;
        }
    }
    true
}

/// Read `name`'s time from the store (0: never invalidated) and remember it; `None` when it
/// cannot be read (logged, counted).
async fn time_of(
    mode: Mode,
    l2: Option<&L2>,
    tags: &CallTags,
    name: &str,
    stats: &Stats,
) -> Option<u64> {
    let l2 = l2?;
    let gen = tags.bus.tags.generation();
    let key = tag_key(name);
    let read = l2
        .store
        .call(mode, &key, |m, k| async move { m.backend().get(&k).await });
    let at = match read.await {
        Ok(None) => 0,
        Ok(Some(bytes)) => match parse_time(&bytes) {
            Some(at) => at,
            None => {
                tracing::warn!(
                    tag = name,
                    "steadycache: a tag time cannot be read; counted as invalidated now"
                );
                return None;
            }
        },
        Err(e) => {
            backend_error(stats, &tag_key(name), "tag", &e);
            return None;
        }
    };
    tags.bus.read_tag(name, at, gen);
    Some(at)
}
