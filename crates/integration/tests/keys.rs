//! Keys nobody can forge (issue 12, item 3): a template renders distinct arguments to distinct
//! keys, no argument can address an internal key (a lock), and namespaces are prefix-free.

use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use steadycache::{cached, Cache};

#[cached(key = "{a}:{b}", ttl = "10m")]
fn two(a: String, b: String) -> String {
    format!("{a}|{b}")
}

#[cached(key = "user-{id}/{page}", ttl = "10m")]
fn paged(id: String, page: u32) -> String {
    format!("{id}/{page}")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every other way to read the same `{a}:{b}` text as two arguments (each `:` of it as
    /// the separator) must give another key, and arbitrary pairs collide only when equal.
    #[test]
    fn template_keys_are_injective(
        a in "[a:%#3A ]{0,5}", b in "[a:%#3A ]{0,5}", a2 in ".{0,6}", b2 in ".{0,6}",
    ) {
        let key = |x: &str, y: &str| two_cache().key(x.to_owned(), y.to_owned()).unwrap();
        let k = key(&a, &b);
        let text = format!("{a}:{b}");
        for (i, _) in text.match_indices(':') {
            let (x, y) = (&text[..i], &text[i + 1..]);
            if (x, y) != (a.as_str(), b.as_str()) {
                prop_assert_ne!(&key(x, y), &k, "{:?} and {:?}", (x, y), (&a, &b));
            }
        }
        prop_assert_eq!(key(&a2, &b2) == k, (a2.as_str(), b2.as_str()) == (a.as_str(), b.as_str()));
    }

    #[test]
    fn no_argument_addresses_an_internal_key(a in "[a-z0-9:#%]{0,12}", b in "[a-z0-9:#%]{0,12}") {
        let k = two_cache().key(a, b).unwrap();
        prop_assert!(!k.contains('#'), "{}", k);
        let k = paged_cache().key(format!("5#lock{}", k.len()), 1).unwrap();
        prop_assert!(!k.contains('#'), "{}", k);
    }
}

#[test]
fn the_reported_collisions_are_gone() {
    let x = two_cache().key("x:y".into(), "z".into()).unwrap();
    let y = two_cache().key("x".into(), "y:z".into()).unwrap();
    assert_ne!(x, y, "one tenant cannot read another's value");
    // A value that names another key's lock.
    let five = paged_cache().key("5".into(), 1).unwrap();
    let forged = paged_cache().key("5#lock".into(), 1).unwrap();
    assert_ne!(forged, format!("{five}#lock"));
}

static APP_RUNS: AtomicUsize = AtomicUsize::new(0);
static USERS_RUNS: AtomicUsize = AtomicUsize::new(0);

fn shared() -> Cache {
    static C: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = steadycache_api::testing::temp_dir("keys");
        Cache::from_url(&format!("file://{}", dir.display())).unwrap()
    })
    .clone()
}

#[cached(cache = shared(), key_prefix = "app", ttl = "10m")]
fn app(i: u32) -> u32 {
    APP_RUNS.fetch_add(1, SeqCst);
    i
}

#[cached(cache = shared(), key_prefix = "app:users", ttl = "10m")]
fn app_users(i: u32) -> u32 {
    USERS_RUNS.fetch_add(1, SeqCst);
    i
}

#[test]
fn clearing_a_namespace_leaves_one_it_is_a_prefix_of() {
    app(1);
    app_users(1);
    app_cache().clear_sync().unwrap();
    app(1);
    app_users(1);
    assert_eq!(APP_RUNS.load(SeqCst), 2, "app was cleared");
    assert_eq!(USERS_RUNS.load(SeqCst), 1, "app:users was not");
}

#[test]
fn keys_of_distinct_arguments_stay_distinct_in_bulk() {
    let mut seen = HashMap::new();
    for a in ["", ":", "::", "a:", ":a", "%3A", "%", "#", "a b", "é"] {
        for b in ["", ":", "b", "%3A", "#lock"] {
            let k = two_cache().key(a.into(), b.into()).unwrap();
            if let Some(prev) = seen.insert(k.clone(), (a, b)) {
                panic!("{k} for both {prev:?} and {:?}", (a, b));
            }
        }
    }
}
