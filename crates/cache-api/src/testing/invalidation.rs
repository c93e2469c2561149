//! Conformance cases of the invalidation operations: `delete_matching` and pub/sub.

use crate::backend::Backend;
use crate::glob::Glob;
use std::time::Duration;

fn escaped(prefix: &str) -> String {
    let mut out = String::new();
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `delete_matching` removes exactly the keys the glob matches, never an internal key.
pub async fn delete_matching(b: &dyn Backend, p: &str) {
    for k in [
        "user:1:profile",
        "user:2:profile",
        "user:22:profile",
        "user:1:orders",
        "user:2:orders",
        "other:1:profile",
    ] {
        let v = super::ENTRY_LIKE.to_vec();
        b.set(&format!("{p}{k}"), v, None).await.unwrap();
    }
    let lock = format!("{p}user:3:profile#lock");
    b.set(&lock, vec![1], None).await.unwrap();
    let g = |s: &str| Glob::new(&format!("{}{s}", escaped(p))).unwrap();
    assert_eq!(b.delete_matching(&g("user:*:profile")).await.unwrap(), 3);
    for k in ["user:1:profile", "user:2:profile", "user:22:profile"] {
        assert_eq!(b.get(&format!("{p}{k}")).await.unwrap(), None, "{k}");
    }
    for k in ["user:1:orders", "user:2:orders", "other:1:profile"] {
        assert!(
            b.get(&format!("{p}{k}")).await.unwrap().is_some(),
            "{k} stays"
        );
    }
    assert!(
        b.get(&lock).await.unwrap().is_some(),
        "internal keys never match"
    );
    assert_eq!(b.delete_matching(&g("user:[!1]:orders")).await.unwrap(), 1);
    assert!(b.get(&format!("{p}user:1:orders")).await.unwrap().is_some());
    assert_eq!(b.delete_matching(&g("nothing:*")).await.unwrap(), 0);
    assert_eq!(b.delete_matching(&g("user:?:orders")).await.unwrap(), 1);
}

/// A subscriber hears every message published on its channel after it subscribed, in order,
/// and nothing of another channel.
pub async fn publish_subscribe(b: &dyn Backend, p: &str) {
    let chan = format!("{p}chan");
    let mut rx = b.subscribe(&chan).await.unwrap();
    b.publish(&format!("{p}other"), b"elsewhere").await.unwrap();
    for m in [&b"one"[..], b"two", b"three"] {
        b.publish(&chan, m).await.unwrap();
    }
    for want in [&b"one"[..], b"two", b"three"] {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.ok().flatten().as_deref(), Some(want));
    }
}
