//! Entries that stay where they were written, and signatures that bind (issue 12, items 4 and
//! 5): an entry copied under another key is a counted miss, never the other key's value, and a
//! signed entry cannot be moved, made to live longer, replayed or flipped.

use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use steadycache::{Backend, Cache, Codec, Entry, MemoryBackend, Policy};

const SIGNING: &[u8] = b"a signing key of at least 16 bytes";

fn signed_cache(backend: Arc<dyn Backend>) -> Cache {
    Cache::builder()
        .backend(backend)
        .codec(Codec::bincode().signed(SIGNING).unwrap())
        .build()
}

#[tokio::test]
async fn a_signed_entry_copied_to_another_key_is_not_read() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let cache = signed_cache(backend.clone());
    let policy = Policy::expire_after(Duration::from_secs(60));
    cache.set("is_admin:alice", &true, &policy).await.unwrap();
    // An attacker with write access to the store copies alice's entry to mallory.
    let bytes = backend.get("is_admin:alice").await.unwrap().unwrap();
    backend.set("is_admin:mallory", bytes, None).await.unwrap();
    let v: bool = cache
        .get_or_compute("is_admin:mallory", &policy, || async { Ok::<_, ()>(false) })
        .await
        .unwrap();
    assert!(!v, "mallory is not admin");
    assert_eq!(cache.stats().corrupt, 1);
}

#[tokio::test]
async fn a_signed_entry_made_to_live_forever_is_not_read() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let cache = signed_cache(backend.clone());
    let policy = Policy::expire_after(Duration::from_secs(60));
    cache.set("k", &1u32, &policy).await.unwrap();
    let raw = backend.get("k").await.unwrap().unwrap();
    let mut e = Entry::decode(&raw).unwrap();
    e.expires_at = u64::MAX; // re-encoded: the checksum is recomputed
    e.flags ^= 1;
    backend.set("k", e.encode().unwrap(), None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    assert_eq!(cache.stats().corrupt, 1);
}

fn sealed(key: &str, created: u64, stale: u64, expires: u64, flags: u8, value: u64) -> Entry {
    let codec = Codec::json().signed(SIGNING).unwrap();
    let mut e = Entry::new(
        codec.encode(&value).unwrap(),
        codec.id(),
        Entry::key_hash_of(key),
    );
    (e.created_at, e.stale_at, e.expires_at, e.keep_until) = (created, stale, expires, expires);
    e.flags = flags;
    codec.seal(key, &mut e);
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any change of a header field (the envelope re-encoded, so its checksum is right) or of
    /// the key makes a signed entry fail to open.
    #[test]
    fn any_header_mutation_or_move_fails(
        key in "[a-z:]{1,12}", other in "[a-z:]{1,12}",
        created in any::<u64>(), stale in any::<u64>(), expires in any::<u64>(),
        flags in any::<u8>(), value in any::<u64>(), field in 0usize..8, delta in 1u64..u64::MAX,
    ) {
        let codec = Codec::json().signed(SIGNING).unwrap();
        let e = sealed(&key, created, stale, expires, flags, value);
        let e = Entry::decode(&e.encode().unwrap()).unwrap();
        prop_assert_eq!(codec.decode::<u64>(codec.open(&key, &e).unwrap()).unwrap(), value);
        if other != key {
            prop_assert!(codec.open(&other, &e).is_err());
        }
        let mut m = e.clone();
        match field {
            0 => m.created_at = m.created_at.wrapping_add(delta),
            1 => m.stale_at = m.stale_at.wrapping_add(delta),
            2 => m.expires_at = m.expires_at.wrapping_add(delta),
            3 => m.flags = m.flags.wrapping_add(delta as u8 | 1),
            4 => m.key_hash = m.key_hash.wrapping_add(delta),
            5 => m.keep_until = m.keep_until.wrapping_add(delta),
            6 => m.took_ms = m.took_ms.wrapping_add(delta as u32 | 1),
            _ => m.codec ^= 0x01,
        }
        let m = Entry::decode(&m.encode().unwrap());
        if let Ok(m) = m {
            prop_assert!(codec.open(&key, &m).is_err(), "field {}", field);
        }
    }
}
