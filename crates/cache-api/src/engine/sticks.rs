//! An invalidation sticks: a value whose computation began before an invalidation that covers
//! it (its key, a prefix or pattern of its namespace, a clear) is never kept after it, in any
//! process. The rule tags follow (`engine::tags`), for every kind of invalidation.
//!
//! The protocol is "mark, then delete; save, then check":
//!
//! * an invalidation first writes its time under a mark (`<key>#inv` for one key,
//!   `steadycache#inv:ns:<namespace>` for a prefix or pattern within a namespace,
//!   `steadycache#inv:all` for anything wider and for a clear, written again after the clear,
//!   which removes marks too), with a ttl of [`MARK_TTL`], then removes the entries;
//! * a computation saves its value, then reads the marks that cover its key; if one is not
//!   older than its start (within `tags::START_MARGIN_MS`), it removes what it saved and keeps
//!   no in-process copy (its caller still gets the value).
//!
//! Either the computation's read sees the mark, or the read came before the mark was written,
//! and then the save came before the invalidation's removal, which takes the value away. The
//! cost is on a miss only (up to three reads after a save); a hit reads nothing more. A
//! computation that runs longer than [`MARK_TTL`] is not covered; a clear leaves a short window
//! (between its removal of the marks and its second write) in which a concurrent save may
//! survive.

use super::tags::{parse_time, START_MARGIN_MS};
use crate::mode::Mode;
use crate::stats::backend_error;
use crate::stats::Stats;
use crate::tier::L2;
use crate::time::unix_millis;
use std::time::Duration;

/// How long a mark is kept: the longest computation an invalidation is guaranteed to stick
/// against.
pub(crate) const MARK_TTL: Duration = Duration::from_secs(3600);

/// The mark of one key.
pub(crate) fn key_mark(key: &str) -> String {
    format!("{key}#inv")
}

/// The mark everything is covered by.
pub(crate) const ALL_MARK: &str = "steadycache#inv:all";

/// The mark of a removal by `prefix` (or of a pattern whose literal prefix it is): its
/// namespace's when it names one (`ns:…`), else [`ALL_MARK`].
pub(crate) fn prefix_mark(prefix: &str) -> String {
    match prefix.split_once(':') {
        Some((ns, _)) => format!("steadycache#inv:ns:{ns}"),
        None => ALL_MARK.to_owned(),
    }
}

/// A mark's value: the time of the invalidation.
pub(crate) fn mark_value() -> Vec<u8> {
    unix_millis().to_string().into_bytes()
}

/// Whether an invalidation covering `l2.key` was marked at or after `started_at` (ms), the
/// start of the computation that saved it. A mark that cannot be read counts as none (the value
/// was saved; the failure is logged and counted).
pub(crate) async fn invalidated_since(mode: Mode, l2: &L2, started_at: u64, stats: &Stats) -> bool {
    let marks = [key_mark(&l2.key), prefix_mark(&l2.key), ALL_MARK.to_owned()];
    for mark in marks {
        let read = l2
            .store
            .call(mode, &mark, |m, k| async move { m.backend().get(&k).await });
        match read.await {
            Ok(Some(bytes)) => {
                let at = parse_time(&bytes).unwrap_or(u64::MAX);
                if at.saturating_add(START_MARGIN_MS) >= started_at {
                    return true;
                }
            }
            Ok(None) => {}
            Err(e) => backend_error(stats, &l2.key, "mark", &e),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_by_scope() {
        assert_eq!(key_mark("ns:v1:ab"), "ns:v1:ab#inv");
        assert_eq!(prefix_mark("ns:v1:"), "steadycache#inv:ns:ns");
        assert_eq!(prefix_mark("ns:"), "steadycache#inv:ns:ns");
        assert_eq!(prefix_mark("n"), ALL_MARK);
        assert_eq!(prefix_mark(""), ALL_MARK);
    }
}
