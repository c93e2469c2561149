//! Conformance case of `list_keys`.

use crate::backend::Backend;
use std::collections::BTreeSet;

/// Listing a prefix page by page gives each of its keys (internal ones too) and nothing
/// else, with sizes no smaller than the values, and ends.
pub async fn list_keys(b: &dyn Backend, p: &str) {
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let k = format!("{p}ls:{i:02}");
        b.set(&k, vec![7; i + 1], None).await.unwrap();
        expected.insert(k);
    }
    let lock = format!("{p}ls:05#lock");
    b.set(&lock, b"token".to_vec(), None).await.unwrap();
    expected.insert(lock);
    b.set(&format!("{p}lsx:1"), vec![1], None).await.unwrap();
    b.set(&format!("{p}other:1"), vec![1], None).await.unwrap();

    let prefix = format!("{p}ls:");
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let page = b.list_keys(&prefix, cursor.as_deref(), 5).await.unwrap();
        for k in page.keys {
            assert!(
                k.key.starts_with(&prefix),
                "{} is not under {prefix}",
                k.key
            );
            if let Some(size) = k.size {
                let value = b.get(&k.key).await.unwrap().unwrap_or_default();
                assert!(size >= value.len() as u64, "{}: size {size}", k.key);
            }
            seen.insert(k.key);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(cursor.is_some());
    }
    assert_eq!(
        seen, expected,
        "every key of the prefix, once the listing ended"
    );

    // A prefix with nothing under it lists nothing.
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let page = b
            .list_keys(&format!("{p}nothing:"), cursor.as_deref(), 5)
            .await
            .unwrap();
        assert!(page.keys.is_empty(), "{:?}", page.keys);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return,
        }
    }
    panic!("an empty listing never ended");
}
