//! Methods and generics (issue 13, option 10): field access in key templates (`{q.page}`,
//! `{self.id}`), generic functions with an explicit `key` or `convert`, and methods that say
//! whether instances share entries (the compile errors are in `tests/ui`). A method has every
//! control a free function's handle has, beside it (`name_refresh`, `name_prime`, …).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use steadycache::cached;

/// Not `Serialize`: only its fields are in the key.
pub struct Query {
    pub page: u32,
    pub filter: Filter,
}

/// A nested field.
pub struct Filter {
    pub tag: String,
}

static PAGE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "user:{id}:{q.page}:{q.filter.tag}", ttl = "10m")]
fn page(id: u32, q: &Query) -> u32 {
    PAGE_RUNS.fetch_add(1, SeqCst);
    id * 100 + q.page
}

#[test]
fn templates_read_fields_of_arguments() {
    let q = |page, tag: &str| Query {
        page,
        filter: Filter { tag: tag.into() },
    };
    assert_eq!(page(7, &q(2, "a")), 702);
    assert_eq!(page(7, &q(2, "a")), 702);
    assert_eq!(PAGE_RUNS.load(SeqCst), 1, "same fields, same entry");
    assert_eq!(page(7, &q(3, "a")), 703);
    assert_eq!(page(7, &q(2, "b")), 702);
    assert_eq!(PAGE_RUNS.load(SeqCst), 3, "each field is in the key");
    let key = page_cache().key(7, &q(2, "a")).unwrap();
    assert!(key.ends_with(":user:7:2:a"), "{key}");
}

pub struct Account {
    pub id: u64,
    pub region: &'static str,
}

static ACCOUNT_RUNS: AtomicUsize = AtomicUsize::new(0);
/// Held by each test that counts `ACCOUNT_RUNS` (tests run in parallel).
static ACCOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Account {
    /// Keyed by the instance's id: two accounts never share.
    #[cached(key = "balance:{self.id}:{month}", ttl = "10m")]
    fn balance(&self, month: u32) -> u64 {
        ACCOUNT_RUNS.fetch_add(1, SeqCst);
        self.id * 1_000 + u64::from(month)
    }

    /// Shared across instances, as written.
    #[cached(ttl = "10m", key_self = false)]
    fn rate(&self, month: u32) -> u64 {
        SHARED_RUNS.fetch_add(1, SeqCst);
        u64::from(month) + self.region.len() as u64
    }
}

#[test]
fn a_method_keys_by_self_through_its_template() {
    let _one = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let (a, b) = (
        Account {
            id: 1,
            region: "eu",
        },
        Account {
            id: 2,
            region: "eu",
        },
    );
    assert_eq!(a.balance(3), 1_003);
    assert_eq!(b.balance(3), 2_003, "another instance, another entry");
    assert_eq!(a.balance(3), 1_003);
    assert_eq!(ACCOUNT_RUNS.load(SeqCst), 2);
    // The method's invalidate takes `self` too: the key needs it.
    assert_eq!(a.balance_invalidate_sync(3).ok(), Some(true));
    assert_eq!(a.balance(3), 1_003);
    assert_eq!(ACCOUNT_RUNS.load(SeqCst), 3);
    assert_eq!(b.balance(3), 2_003, "b's entry was left alone");
    assert_eq!(ACCOUNT_RUNS.load(SeqCst), 3);
    // `key_self = false`: one entry for every instance.
    assert_eq!(a.rate(1), 3);
    assert_eq!(b.rate(1), 3);
    assert_eq!(SHARED_RUNS.load(SeqCst), 1);
}

static CONVERT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Generic over the string type: `convert` makes the key (`&str` and `String` share it).
#[cached(convert = name.as_ref().to_lowercase(), ttl = "10m")]
fn greeting<S: AsRef<str>>(name: S) -> String {
    CONVERT_RUNS.fetch_add(1, SeqCst);
    format!("hello {}", name.as_ref().to_lowercase())
}

static GENERIC_KEY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Generic with a `where` clause and a template.
#[cached(key = "len:{item}", ttl = "10m")]
async fn length<T>(item: T) -> usize
where
    T: std::fmt::Display + Send,
{
    GENERIC_KEY_RUNS.fetch_add(1, SeqCst);
    item.to_string().len()
}

#[tokio::test]
async fn generic_functions_with_an_explicit_key() {
    assert_eq!(greeting("Ada"), "hello ada");
    assert_eq!(greeting(String::from("ADA")), "hello ada");
    assert_eq!(CONVERT_RUNS.load(SeqCst), 1, "converted to one key");
    assert!(greeting_cache().invalidate_sync("ada").unwrap());
    assert_eq!(greeting_cache().get_cached_sync("Ada"), None);
    assert_eq!(length(12345).await, 5);
    assert_eq!(length("12345").await, 5);
    assert_eq!(
        GENERIC_KEY_RUNS.load(SeqCst),
        1,
        "`12345` renders one key for both types"
    );
    assert_eq!(length(7.5).await, 3);
    assert_eq!(GENERIC_KEY_RUNS.load(SeqCst), 2);
}

static CONTROL_RUNS: AtomicUsize = AtomicUsize::new(0);

pub struct Feed {
    pub id: u32,
}

impl Feed {
    #[cached(key = "feed:{self.id}:{page}", ttl = "10m")]
    async fn page(&self, page: u32) -> u32 {
        CONTROL_RUNS.fetch_add(1, SeqCst) as u32 + self.id * 100 + page
    }
}

#[tokio::test]
async fn methods_have_the_per_call_controls_too() {
    let one = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let a = Account {
        id: 9,
        region: "us",
    };
    assert_eq!(
        a.balance_get_cached_sync(4),
        None,
        "nothing cached, nothing computed"
    );
    assert_eq!(a.balance(4), 9_004);
    let runs = ACCOUNT_RUNS.load(SeqCst);
    assert_eq!(a.balance_get_cached_sync(4), Some(9_004));
    assert_eq!(a.balance_refresh(4), 9_004);
    assert_eq!(a.balance_bypass(4), 9_004);
    assert_eq!(
        ACCOUNT_RUNS.load(SeqCst),
        runs + 2,
        "refresh and bypass ran it"
    );
    let fresh = steadycache::CallOptions::max_age(std::time::Duration::from_secs(3600));
    assert_eq!(a.balance_call_with(fresh, 4), 9_004);
    assert_eq!(ACCOUNT_RUNS.load(SeqCst), runs + 2, "young enough: a hit");
    drop(one);

    let f = Feed { id: 1 };
    assert_eq!(f.page(2).await, 102);
    assert_eq!(f.page(2).await, 102);
    assert_eq!(f.page_refresh(2).await, 103, "recomputed and stored");
    assert_eq!(f.page(2).await, 103);
    assert_eq!(f.page_bypass(2).await, 104, "run without the cache");
    assert_eq!(f.page(2).await, 103, "the bypass stored nothing");
    assert_eq!(f.page_get_cached_sync(2), Some(103));
}

/// Every control of a free function's handle, beside a method (issue 22, item 4): `key`,
/// `prime` / `prime_sync`, `get_cached_sync`, `call_with_origin` and `invalidate_sync`
/// too, sync and async, with `self` in the key and without.
mod every_control {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use steadycache::{cached, Origin};

    static LEDGER_RUNS: AtomicU64 = AtomicU64::new(0);
    static ASYNC_RUNS: AtomicU64 = AtomicU64::new(0);
    static SHARED_RUNS: AtomicU64 = AtomicU64::new(0);

    pub struct Ledger {
        pub id: u64,
    }

    impl Ledger {
        #[cached(key = "ledger:{self.id}:{day}", ttl = "10m")]
        fn entry(&self, day: u32) -> u64 {
            LEDGER_RUNS.fetch_add(1, SeqCst);
            self.id * 1_000 + u64::from(day)
        }

        #[cached(key = "ledger-async:{self.id}:{day}", ttl = "10m")]
        async fn total(&self, day: u32) -> u64 {
            ASYNC_RUNS.fetch_add(1, SeqCst);
            tokio::task::yield_now().await;
            self.id * 1_000 + u64::from(day)
        }

        /// `self` is not in the key: the store's controls do not take it.
        #[cached(ttl = "10m", key_self = false)]
        fn shared(&self, day: u32) -> u64 {
            SHARED_RUNS.fetch_add(1, SeqCst);
            u64::from(day)
        }
    }

    #[test]
    fn a_sync_method_has_key_prime_and_origin() {
        let l = Ledger { id: 3 };
        let key = l.entry_key(7).unwrap();
        assert!(key.ends_with(":ledger:3:7"), "{key}");
        assert_eq!(l.entry_call_with_origin(7), (3_007, Origin::Computed));
        assert_eq!(l.entry_call_with_origin(7), (3_007, Origin::Hit));
        assert_eq!(LEDGER_RUNS.load(SeqCst), 1);
        // prime: a value stored as if computed; the method does not run.
        assert_eq!(l.entry_prime_sync(8, 42).ok(), Some(true));
        assert_eq!(l.entry(8), 42);
        assert_eq!(l.entry_get_cached_sync(8), Some(42));
        assert_eq!(
            Ledger { id: 4 }.entry_get_cached_sync(8),
            None,
            "primed for this instance only"
        );
        assert_eq!(LEDGER_RUNS.load(SeqCst), 1);
        assert_eq!(l.entry_invalidate_sync(8).ok(), Some(true));
        assert_eq!(l.entry(8), 3_008, "computed again");
        assert_eq!(LEDGER_RUNS.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn the_async_twins_beside_a_method() {
        let l = Ledger { id: 5 };
        assert_eq!(l.total_get_cached(1).await, None);
        assert_eq!(l.total_call_with_origin(1).await, (5_001, Origin::Computed));
        assert_eq!(l.total_call_with_origin(1).await, (5_001, Origin::Hit));
        assert_eq!(l.total_get_cached(1).await, Some(5_001));
        assert_eq!(l.total_invalidate(1).await.ok(), Some(true));
        assert_eq!(l.total_get_cached(1).await, None, "invalidated");
        assert_eq!(l.total_prime(2, 9).await.ok(), Some(true));
        assert_eq!(l.total(2).await, 9, "primed: not computed");
        assert_eq!(
            l.total_get_cached_sync(2),
            Some(9),
            "the sync read sees it too"
        );
        assert_eq!(ASYNC_RUNS.load(SeqCst), 1);
        let key = l.total_key(2).unwrap();
        assert!(key.ends_with(":ledger-async:5:2"), "{key}");
        // The twins of a sync method, from async code.
        assert_eq!(l.entry_prime(30, 1).await.ok(), Some(true));
        assert_eq!(l.entry_get_cached(30).await, Some(1));
        assert_eq!(l.entry_invalidate(30).await.ok(), Some(true));
        assert_eq!(l.entry_get_cached(30).await, None);
    }

    #[test]
    fn without_self_in_the_key_the_store_controls_are_associated_functions() {
        assert_eq!(Ledger::shared_prime_sync(1, 100).ok(), Some(true));
        assert_eq!(Ledger { id: 1 }.shared(1), 100);
        assert_eq!(
            Ledger { id: 2 }.shared(1),
            100,
            "one entry for every instance"
        );
        assert_eq!(Ledger::shared_get_cached_sync(1), Some(100));
        assert_eq!(SHARED_RUNS.load(SeqCst), 0);
        assert!(Ledger::shared_key(1).is_ok());
        assert_eq!(Ledger::shared_invalidate_sync(1).ok(), Some(true));
        assert_eq!(Ledger { id: 1 }.shared(1), 1);
        assert_eq!(SHARED_RUNS.load(SeqCst), 1);
    }
}

/// A method whose tags read `self` while its key does not: its handle functions take `self`
/// (they render the tags), and the tag invalidates its entries.
mod tags_from_self {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    #[derive(Clone, serde::Serialize)]
    pub struct Org {
        pub org: u64,
    }

    impl Org {
        #[steadycache::cached(ttl = "10m", key_self = false, key = "member:{id}", tags = ["org:{self.org}"])]
        pub fn member(&self, id: u64) -> u64 {
            RUNS.fetch_add(1, SeqCst);
            self.org * 1000 + id
        }
    }

    #[test]
    fn tags_from_self_render_in_the_controls_too() {
        let o = Org { org: 7 };
        assert_eq!(o.member(1), 7001);
        assert_eq!(Org::member_get_cached_sync(&o, 1), Some(7001));
        steadycache::default_cache()
            .invalidate_tag_sync("org:7")
            .unwrap();
        assert_eq!(Org::member_get_cached_sync(&o, 1), None);
        assert_eq!(o.member(1), 7001);
        assert_eq!(RUNS.load(SeqCst), 2);
    }
}
