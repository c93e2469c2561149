//! Clients whose clocks disagree, over one store (issue 12, item 2): for backends that judge
//! expiry in the client and offer a clock-skew knob (MongoDB, S3).

use crate::backend::Backend;
use std::time::Duration;

/// Two clients of one store whose clocks differ by a minute (`holder` and `other` opened with
/// different skews): neither takes over a lock, an entry or a counter the other holds for 30 s,
/// neither deletes the other's live entry on read, and the holder keeps (and extends) its lock.
pub async fn skewed_clients_leave_each_others_live_entries_alone(
    holder: &dyn Backend,
    other: &dyn Backend,
) {
    let ttl = Duration::from_secs(30);
    assert!(holder.acquire_lock("lock", "holder", ttl).await.unwrap());
    assert!(
        !other.acquire_lock("lock", "other", ttl).await.unwrap(),
        "took over a lock with 30 s to live"
    );
    holder.set("entry", b"v".to_vec(), Some(ttl)).await.unwrap();
    assert_eq!(
        other.get("entry").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "a live entry read as expired"
    );
    assert_eq!(
        holder.get("entry").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "the other's read deleted a live entry"
    );
    assert!(
        !other
            .set_if_absent("entry", b"w".to_vec(), Some(ttl))
            .await
            .unwrap(),
        "took over a live entry"
    );
    if other.capabilities().incr {
        assert_eq!(other.incr("count", 1, Some(ttl)).await.unwrap(), 1);
        assert_eq!(
            holder.incr("count", 1, Some(ttl)).await.unwrap(),
            2,
            "a live counter was taken for expired"
        );
    }
    other.set("theirs", b"w".to_vec(), Some(ttl)).await.unwrap();
    assert_eq!(
        holder.get("theirs").await.unwrap().as_deref(),
        Some(&b"w"[..])
    );
    assert!(
        holder.extend_lock("lock", "holder", ttl).await.unwrap(),
        "the holder lost its lock"
    );
    assert!(holder.release_lock("lock", "holder").await.unwrap());
}
