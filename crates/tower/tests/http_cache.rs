//! The layer on a real axum server on loopback, asked by a real HTTP client: what is stored,
//! under which key, and how concurrent requests coalesce. Counts, never timings.

mod common;

use common::{client, get_, request, serve};
use std::sync::Arc;
use steadycache_api::Cache;
use steadycache_tower::HttpCacheLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_response_is_a_hit() {
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    let first = get_(&c, addr, "/hit/a").await;
    let second = get_(&c, addr, "/hit/a").await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.body, "hit/a n=1 lang=-");
    assert_eq!(second.body, first.body);
    assert!(second.headers.contains_key("age"), "{:?}", second.headers);
    assert_eq!(
        second.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"max-age=600"[..])
    );
    assert_eq!(up.count("hit"), 1);
    // Another URI is another entry; the query is part of the key.
    assert_eq!(get_(&c, addr, "/hit/b").await.body, "hit/b n=2 lang=-");
    assert_eq!(get_(&c, addr, "/hit/a?x=1").await.body, "hit/a n=3 lang=-");
    assert_eq!(get_(&c, addr, "/hit/a?x=1").await.body, "hit/a n=3 lang=-");
    assert_eq!(up.count("hit"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_is_keyed_apart_and_served_without_a_body() {
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    let head = request(&c, "HEAD", addr, "/hit/h", &[]).await;
    let again = request(&c, "HEAD", addr, "/hit/h", &[]).await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!((again.status, again.body.as_str()), (200, ""));
    assert_eq!(up.count("hit"), 1);
    let get = get_(&c, addr, "/hit/h").await;
    assert_eq!(
        get.body, "hit/h n=2 lang=-",
        "a GET never reads a HEAD's entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn responses_vary_on_the_headers_their_vary_names() {
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    // The first response teaches the variants record (and is not stored: it was looked up
    // without its Vary); from then on each language has its entry.
    assert_eq!(
        request(&c, "GET", addr, "/vary/v", &en).await.body,
        "vary/v n=1 lang=en"
    );
    assert_eq!(
        request(&c, "GET", addr, "/vary/v", &en).await.body,
        "vary/v n=2 lang=en"
    );
    assert_eq!(
        request(&c, "GET", addr, "/vary/v", &fr).await.body,
        "vary/v n=3 lang=fr"
    );
    for _ in 0..3 {
        assert_eq!(
            request(&c, "GET", addr, "/vary/v", &en).await.body,
            "vary/v n=2 lang=en"
        );
        assert_eq!(
            request(&c, "GET", addr, "/vary/v", &fr).await.body,
            "vary/v n=3 lang=fr"
        );
    }
    // No header is a value of its own.
    assert_eq!(get_(&c, addr, "/vary/v").await.body, "vary/v n=4 lang=-");
    assert_eq!(get_(&c, addr, "/vary/v").await.body, "vary/v n=4 lang=-");
    assert_eq!(up.count("vary"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_must_not_be_stored_is_passed_through() {
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    for kind in ["nostore", "private", "cookie", "plain"] {
        for i in 1..=3 {
            let got = get_(&c, addr, &format!("/{kind}/x")).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.body, format!("{kind}/x n={i} lang=-"));
        }
        assert_eq!(up.count(kind), 3, "{kind}");
    }
    // 404s are stored by their max-age... and the router's own 404 has none: not stored.
    assert_eq!(get_(&c, addr, "/nothing/x").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_asks_for_no_cache_bypasses_it() {
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    assert_eq!(get_(&c, addr, "/hit/n").await.body, "hit/n n=1 lang=-");
    let fresh = request(&c, "GET", addr, "/hit/n", &[("cache-control", "no-cache")]).await;
    assert_eq!(fresh.body, "hit/n n=2 lang=-");
    let auth = request(&c, "GET", addr, "/hit/n", &[("authorization", "Bearer t")]).await;
    assert_eq!(auth.body, "hit/n n=3 lang=-");
    // The bypasses stored nothing: the first response is still the entry.
    assert_eq!(get_(&c, addr, "/hit/n").await.body, "hit/n n=1 lang=-");
    assert_eq!(up.count("hit"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_over_the_limit_streams_through_unstored() {
    let layer = HttpCacheLayer::new(Cache::memory()).max_body(4096);
    let (addr, up) = serve(layer).await;
    let c = client();
    for _ in 0..2 {
        let got = get_(&c, addr, "/big/b").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body.len(), 64 * 1024, "the whole body, prefix included");
        let expected: String = (0..64)
            .map(|i| ((b'a' + (i % 26) as u8) as char).to_string().repeat(1024))
            .collect();
        assert!(got.body == expected, "the body arrives intact and in order");
    }
    assert_eq!(up.count("big"), 2);
    // Under the limit, the same route is stored.
    let layer = HttpCacheLayer::new(Cache::memory()).max_body(64 * 1024);
    let (addr, up) = serve(layer).await;
    for _ in 0..2 {
        assert_eq!(get_(&c, addr, "/big/b").await.body.len(), 64 * 1024);
    }
    assert_eq!(up.count("big"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_requests_for_one_cold_url_ask_the_upstream_once() {
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get_(&c, addr, "/slow/cold").await })
        })
        .collect();
    for t in tasks {
        let got = t.await.expect("task");
        assert_eq!(
            (got.status, got.body.as_str()),
            (200, "slow/cold n=1 lang=-")
        );
    }
    assert_eq!(up.count("slow"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_waiters_on_an_unstorable_response_each_get_their_own() {
    let (addr, up) = serve(HttpCacheLayer::new(Cache::memory())).await;
    let c = client();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get_(&c, addr, "/slownostore/x").await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let got = t.await.expect("task");
        assert_eq!(got.status, 200);
        bodies.push(got.body);
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        20,
        "every caller got a response of its own: {bodies:?}"
    );
    assert_eq!(up.count("slownostore"), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributed_lock_coalesces_two_caches_over_one_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = || {
        let backend =
            steadycache_file::FileBackend::open(steadycache_file::FileConfig::new(dir.path()))
                .expect("file backend");
        Cache::builder().backend(backend).build()
    };
    // Two caches (two flight maps, as two processes have) over one directory, two servers,
    // one upstream. The servers' hosts differ (their ports): the key function leaves the
    // host out, as a fleet behind one name would.
    let layer = |c: Cache| {
        HttpCacheLayer::new(c)
            .lock(steadycache_api::Lock::Distributed)
            .key_with(|p| Some(p.uri.path().to_owned()))
    };
    let (a, up) = serve(layer(cache())).await;
    let (b, _) = common::serve_with(layer(cache()), Arc::clone(&up)).await;
    let c = client();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let c = c.clone();
            let addr = if i % 2 == 0 { a } else { b };
            tokio::spawn(async move { get_(&c, addr, "/slow/shared").await })
        })
        .collect();
    for t in tasks {
        let got = t.await.expect("task");
        assert_eq!(
            (got.status, got.body.as_str()),
            (200, "slow/shared n=1 lang=-")
        );
    }
    assert_eq!(up.count("slow"), 1);
}
