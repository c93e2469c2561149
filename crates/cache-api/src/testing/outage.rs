//! Conformance cases that need a server the test controls: a store that goes down and comes
//! back, seen through the engine.

use super::unique_prefix;
use crate::backend::Backend;
use crate::cache::Cache;
use crate::policy::Policy;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A store that goes down and comes back, through the engine: while it is down every call
/// still gets its value (the function runs) and the failures are counted as backend errors;
/// once it is back, caching resumes in the same process. `set_up(false)` stops the store,
/// `set_up(true)` starts it again (on the same address). Not in [`conformance_tests!`](crate::conformance_tests): it
/// needs a server the test controls.
pub async fn outage_fails_open(cache: &Cache, mut set_up: impl FnMut(bool)) {
    let policy = Policy::expire_after(Duration::from_secs(600));
    let key = unique_prefix("outage") + "k";
    let runs = AtomicUsize::new(0);
    let call = || async {
        cache
            .get_or_compute(&key, &policy, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(42u64)
            })
            .await
            .unwrap()
    };
    assert_eq!(call().await, 42);
    assert_eq!(call().await, 42);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "cached while the store is up"
    );
    let errors_before = cache.stats().backend_errors;

    set_up(false);
    for i in 0..3 {
        assert_eq!(
            call().await,
            42,
            "call {i} during the outage still gets its value"
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "the function ran for every call while the store was down"
    );
    let errors = cache.stats().backend_errors - errors_before;
    assert!(
        errors >= 3,
        "the outage is counted: {errors} backend errors"
    );

    set_up(true);
    for _ in 0..100 {
        let before = runs.load(Ordering::SeqCst);
        assert_eq!(call().await, 42);
        if runs.load(Ordering::SeqCst) == before {
            return; // served from the store again
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("caching did not resume after the store came back");
}

/// The backend itself through a restart: while the store is down an operation fails with a
/// transient error (never a panic, never a hang past the backend's timeouts); once it is back
/// the same backend value works again, without being rebuilt. `set_up` as in
/// [`outage_fails_open`]. `keeps_data`: the store comes back with what it held (a store on disk)
/// rather than empty (a server in memory).
pub async fn recovers_after_restart(
    b: &dyn Backend,
    keeps_data: bool,
    mut set_up: impl FnMut(bool),
) {
    let k = unique_prefix("restart") + "k";
    b.set(&k, b"v".to_vec(), None).await.unwrap();
    set_up(false);
    let e = b.get(&k).await.unwrap_err();
    assert!(
        e.is_transient(),
        "a store that is down is a transient error: {e}"
    );
    set_up(true);
    let mut back = None;
    for _ in 0..50 {
        match b.get(&k).await {
            Ok(v) => {
                back = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let expected = keeps_data.then(|| b"v".to_vec());
    assert_eq!(
        back,
        Some(expected),
        "reconnected to the restarted store (keeps its data: {keeps_data})"
    );
    b.set(&k, b"again".to_vec(), None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&b"again"[..]));
}
