//! Lifetimes from `Cache-Control`: max-age expiry, stale-while-revalidate, stale-if-error with
//! the upstream failing, and all of them with `Vary`. Time moves by the library's test clock
//! (`testing::clock`), never by sleeping through a max-age; every test here holds it.

mod common;

use common::{client, get_, request, serve, until};
use std::sync::atomic::Ordering;
use std::time::Duration;
use steadycache_api::testing::clock;
use steadycache_api::Cache;
use steadycache_tower::HttpCacheLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_age_expires() {
    let _clock = clock::exclusive();
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    assert_eq!(
        get_(&c, addr, "/expire/e").await.body,
        "expire/e n=1 lang=-"
    );
    assert_eq!(
        get_(&c, addr, "/expire/e").await.body,
        "expire/e n=1 lang=-"
    );
    assert_eq!(up.count("expire"), 1);
    clock::advance(Duration::from_secs(2));
    assert_eq!(
        get_(&c, addr, "/expire/e").await.body,
        "expire/e n=2 lang=-"
    );
    assert_eq!(
        get_(&c, addr, "/expire/e").await.body,
        "expire/e n=2 lang=-"
    );
    assert_eq!(up.count("expire"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_max_age_is_capped_by_max_ttl() {
    let _clock = clock::exclusive();
    let layer = HttpCacheLayer::new(Cache::memory()).max_ttl(Duration::from_secs(5));
    let (addr, up) = serve(layer).await;
    let c = client();
    assert_eq!(get_(&c, addr, "/hit/cap").await.body, "hit/cap n=1 lang=-");
    clock::advance(Duration::from_secs(6));
    assert_eq!(get_(&c, addr, "/hit/cap").await.body, "hit/cap n=2 lang=-");
    assert_eq!(up.count("hit"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once_in_the_background() {
    let _clock = clock::exclusive();
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    assert_eq!(get_(&c, addr, "/swr/s").await.body, "swr/s n=1 lang=-");
    clock::advance(Duration::from_secs(2));
    // Stale: served at once, while one background request refreshes it.
    for _ in 0..5 {
        let got = get_(&c, addr, "/swr/s").await;
        assert_eq!(got.status, 200);
        assert!(got.body == "swr/s n=1 lang=-" || got.body == "swr/s n=2 lang=-");
    }
    until(|| up.count("swr") == 2).await;
    until_body(&c, addr, "/swr/s", "swr/s n=2 lang=-").await;
    assert_eq!(up.count("swr"), 2, "one refresh for all the stale reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_answered_no_store_drops_the_stale_response() {
    let _clock = clock::exclusive();
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    assert_eq!(get_(&c, addr, "/turns/t").await.body, "turns/t n=1 lang=-");
    up.failing.store(true, Ordering::SeqCst); // from now on: no-store
    clock::advance(Duration::from_secs(2));
    assert_eq!(get_(&c, addr, "/turns/t").await.body, "turns/t n=1 lang=-");
    until(|| up.count("turns") == 2).await;
    // The stale response is gone once the refresh learned it must not be kept (the removal
    // follows the refresh's answer by a moment): every request now reaches the upstream.
    until_body(&c, addr, "/turns/t", "turns/t n=3 lang=-").await;
    let n = up.count("turns");
    assert_eq!(
        get_(&c, addr, "/turns/t").await.body,
        format!("turns/t n={} lang=-", n + 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_if_error_serves_the_stored_response_while_the_upstream_fails() {
    let _clock = clock::exclusive();
    let layer = HttpCacheLayer::new(Cache::memory()).fail_safe_throttle(Duration::ZERO);
    let (addr, up) = serve(layer).await;
    let c = client();
    assert_eq!(get_(&c, addr, "/flaky/f").await.body, "flaky/f n=1 lang=-");
    assert_eq!(
        get_(&c, addr, "/flakynosie/f").await.body,
        "flakynosie/f n=1 lang=-"
    );
    up.failing.store(true, Ordering::SeqCst);
    clock::advance(Duration::from_secs(2));
    for i in 2..=4 {
        // Expired: the upstream is asked (no throttle here), fails, and the stored
        // response is served in its place.
        let got = get_(&c, addr, "/flaky/f").await;
        assert_eq!((got.status, got.body.as_str()), (200, "flaky/f n=1 lang=-"));
        assert_eq!(up.count("flaky"), i);
        // Without stale-if-error the failure is the answer.
        let got = get_(&c, addr, "/flakynosie/f").await;
        assert_eq!(got.status, 500);
        assert_eq!(got.body, format!("flakynosie/f n={i} lang=-"));
    }
    up.failing.store(false, Ordering::SeqCst);
    assert_eq!(get_(&c, addr, "/flaky/f").await.body, "flaky/f n=5 lang=-");
    assert_eq!(get_(&c, addr, "/flaky/f").await.body, "flaky/f n=5 lang=-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fail_safe_throttle_spares_a_failing_upstream() {
    let _clock = clock::exclusive();
    let layer = HttpCacheLayer::new(Cache::memory()).fail_safe_throttle(Duration::from_secs(30));
    let (addr, up) = serve(layer).await;
    let c = client();
    assert_eq!(get_(&c, addr, "/flaky/t").await.body, "flaky/t n=1 lang=-");
    up.failing.store(true, Ordering::SeqCst);
    clock::advance(Duration::from_secs(2));
    for _ in 0..5 {
        assert_eq!(get_(&c, addr, "/flaky/t").await.body, "flaky/t n=1 lang=-");
    }
    assert_eq!(
        up.count("flaky"),
        2,
        "one failed request, then the throttle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swr_stale_if_error_and_vary_together() {
    let _clock = clock::exclusive();
    let layer = HttpCacheLayer::new(Cache::memory()).fail_safe_throttle(Duration::ZERO);
    let (addr, up) = serve(layer).await;
    let c = client();
    let (en, fr) = ([("accept-language", "en")], [("accept-language", "fr")]);
    let ask = |h: [(&'static str, &'static str); 1]| {
        let c = c.clone();
        async move { request(&c, "GET", addr, "/combined/c", &h).await }
    };
    // The record is learned, then each language stored.
    assert_eq!(ask(en).await.body, "combined/c n=1 lang=en");
    assert_eq!(ask(en).await.body, "combined/c n=2 lang=en");
    assert_eq!(ask(fr).await.body, "combined/c n=3 lang=fr");
    assert_eq!(ask(en).await.body, "combined/c n=2 lang=en");
    assert_eq!(up.count("combined"), 3);
    // Stale (within stale-while-revalidate): served at once, refreshed in the background,
    // per language.
    clock::advance(Duration::from_secs(2));
    assert_eq!(ask(en).await.body, "combined/c n=2 lang=en");
    until(|| up.count("combined") == 4).await;
    let refreshed = ask(en).await.body;
    assert_eq!(refreshed, "combined/c n=4 lang=en");
    assert!(ask(fr).await.body.ends_with("lang=fr"));
    until(|| up.count("combined") == 5).await;
    // Past stale-while-revalidate, within stale-if-error, the upstream down: each language
    // gets its own stored response, never the other's.
    up.failing.store(true, Ordering::SeqCst);
    clock::advance(Duration::from_secs(30));
    for _ in 0..3 {
        let got = ask(en).await;
        assert_eq!(
            (got.status, got.body.as_str()),
            (200, "combined/c n=4 lang=en")
        );
        let got = ask(fr).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "combined/c n=5 lang=fr");
    }
    assert_eq!(
        up.count("combined"),
        11,
        "each expired read asked the upstream (no throttle)"
    );
}

/// Ask until the body is `want` (a background refresh is stored a moment after it ran).
async fn until_body(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<bytes::Bytes>,
    >,
    addr: std::net::SocketAddr,
    path: &str,
    want: &str,
) {
    for _ in 0..1000 {
        if get_(c, addr, path).await.body == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never answered {want}");
}
