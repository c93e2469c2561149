//! Damaged entries seen through the engine, for every byte-level backend: each is a logged
//! miss, the function runs again, the caller gets the right value, and the rewritten entry is a
//! hit afterwards. A backend's test supplies the damage (a truncated file, a random blob in a
//! row, …); these functions check what the engine makes of it.

use crate::backend::Backend;
use crate::cache::Cache;
use crate::codec::Codec;
use crate::policy::Policy;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// The key every case writes and damages.
pub const KEY: &str = "heal:k";

fn cache(backend: Arc<dyn Backend>, codec: Codec) -> Cache {
    Cache::builder().backend(backend).codec(codec).build()
}

/// One memoized call of `cache` for [`KEY`]: returns `"v<run>"` where run counts the executions.
async fn call(cache: &Cache, runs: &AtomicUsize) -> String {
    let policy = Policy::expire_after(Duration::from_secs(600));
    let v = cache
        .get_or_compute(KEY, &policy, || async {
            let n = runs.fetch_add(1, SeqCst) + 1;
            Ok::<_, std::io::Error>(format!("v{n}"))
        })
        .await;
    match v {
        Ok(v) => v,
        Err(e) => panic!("the memoized call failed: {e}"),
    }
}

/// Fill [`KEY`], run `damage`, and check: a miss counted as corrupt, one recomputation with the
/// right value, and then a hit on the healed entry.
pub async fn heal_case(backend: Arc<dyn Backend>, damage: impl FnOnce()) {
    let c = cache(backend, Codec::bincode());
    let runs = AtomicUsize::new(0);
    assert_eq!(call(&c, &runs).await, "v1");
    assert_eq!(call(&c, &runs).await, "v1", "a hit before the damage");
    damage();
    assert_eq!(call(&c, &runs).await, "v2", "the damaged entry is a miss");
    assert_eq!(runs.load(SeqCst), 2);
    assert_eq!(c.stats().corrupt, 1, "the damage is counted");
    assert_eq!(call(&c, &runs).await, "v2", "healed: a hit again");
    assert_eq!(runs.load(SeqCst), 2);
}

/// An entry written through a JSON cache is foreign to a bincode cache on the same store: a
/// miss, recomputed, healed.
pub async fn foreign_codec_case(backend: Arc<dyn Backend>) {
    let json = cache(Arc::clone(&backend), Codec::json());
    let bincode = cache(backend, Codec::bincode());
    let runs = AtomicUsize::new(0);
    assert_eq!(call(&json, &runs).await, "v1");
    assert_eq!(
        call(&bincode, &runs).await,
        "v2",
        "never the other codec's bytes"
    );
    assert_eq!(bincode.stats().corrupt, 1);
    assert_eq!(call(&bincode, &runs).await, "v2", "healed");
    assert_eq!(runs.load(SeqCst), 2);
}
