//! The polled bus, for shared stores without a native one (files, SQLite, MongoDB, S3): a feed
//! of messages kept in the store itself.
//!
//! On a store with an atomic `incr`, a message takes a sequence number
//! (`incr("steadycache#bus:seq")`) and is written under `steadycache#bus:<n>` for
//! [`SLOT_TTL`]; a reader polls the sequence (one `incr` by 0 each interval) and reads the slots
//! it has not seen. A slot not written yet (its writer is between the two steps) is looked at
//! again at the next poll; one still missing then, a gap of more than [`MAX_GAP`] messages, or a
//! sequence that went back (the store was cleared) means messages were lost: the reader flushes
//! its copies. On a store without `incr` (S3), a message rewrites `steadycache#bus:mark` with a
//! random value, and a reader that sees the mark change flushes its copies: coarse, but never
//! stale past the poll.

use crate::backend::Backend;
use crate::error::Result;
use std::time::Duration;

const SEQ: &str = "steadycache#bus:seq";
const MARK: &str = "steadycache#bus:mark";

/// How long a message stays readable in the feed.
pub(crate) const SLOT_TTL: Duration = Duration::from_secs(120);

/// The most messages a reader catches up on in one poll; more means it flushes instead.
pub(crate) const MAX_GAP: i64 = 1024;

fn slot(n: i64) -> String {
    format!("steadycache#bus:{n}")
}

/// Post `message` to the feed.
pub(crate) async fn post(backend: &dyn Backend, message: Vec<u8>) -> Result<()> {
    if backend.capabilities().incr {
        let n = backend.incr(SEQ, 1, None).await?;
        backend.set(&slot(n), message, Some(SLOT_TTL)).await
    } else {
        let mark = format!("{:032x}", fastrand::u128(..)).into_bytes();
        backend.set(MARK, mark, None).await
    }
}

/// Where a reader is in the feed.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    seq: Option<i64>,
    mark: Option<Option<Vec<u8>>>,
    /// A slot found missing at the last poll (looked at once more).
    missing: Option<i64>,
}

/// What a poll found.
#[derive(Debug, Default)]
pub(crate) struct Polled {
    /// The new messages, in order.
    pub(crate) messages: Vec<Vec<u8>>,
    /// Messages were lost: flush every copy.
    pub(crate) lost: bool,
}

/// Read what was posted since the last poll.
pub(crate) async fn poll(backend: &dyn Backend, cursor: &mut Cursor) -> Result<Polled> {
    let mut out = Polled::default();
    if !backend.capabilities().incr {
        let mark = backend.get(MARK).await?;
        if cursor.mark.as_ref().is_some_and(|m| *m != mark) {
            out.lost = true;
        }
        cursor.mark = Some(mark);
        return Ok(out);
    }
    let now = backend.incr(SEQ, 0, None).await?;
    let Some(last) = cursor.seq else {
        cursor.seq = Some(now); // a new reader starts from here (its copies are fresh)
        return Ok(out);
    };
    if now < last || now.checked_sub(last).is_none_or(|gap| gap > MAX_GAP) {
        cursor.seq = Some(now);
        cursor.missing = None;
        out.lost = true;
        return Ok(out);
    }
    let mut seen = last;
    for n in last.saturating_add(1)..=now {
        match backend.get(&slot(n)).await? {
            Some(m) => out.messages.push(m),
            None if cursor.missing == Some(n) => out.lost = true, // still missing: lost
            None => {
                cursor.missing = Some(n); // its writer may be between incr and set
                break;
            }
        }
        seen = n;
    }
    if seen == now || out.lost {
        cursor.missing = None;
        seen = now.max(seen);
    }
    cursor.seq = Some(seen);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryBackend, MemoryConfig};

    #[tokio::test]
    async fn a_reader_gets_each_message_once_in_order_and_notices_losses() {
        let b = MemoryBackend::new(MemoryConfig::default());
        let mut c = Cursor::default();
        assert!(poll(&b, &mut c).await.unwrap().messages.is_empty());
        post(&b, b"one".to_vec()).await.unwrap();
        post(&b, b"two".to_vec()).await.unwrap();
        let p = poll(&b, &mut c).await.unwrap();
        assert_eq!(p.messages, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(!p.lost);
        assert!(poll(&b, &mut c).await.unwrap().messages.is_empty());
        // A writer between its two steps: the slot is waited for once.
        b.incr(SEQ, 1, None).await.unwrap();
        let p = poll(&b, &mut c).await.unwrap();
        assert!(p.messages.is_empty() && !p.lost);
        let p = poll(&b, &mut c).await.unwrap();
        assert!(p.lost, "a slot still missing was lost");
        post(&b, b"three".to_vec()).await.unwrap();
        assert_eq!(
            poll(&b, &mut c).await.unwrap().messages,
            vec![b"three".to_vec()]
        );
        b.delete_prefix("").await.unwrap();
        assert!(
            poll(&b, &mut c).await.unwrap().lost,
            "the sequence went back"
        );
    }
}
