//! Memory caching without serde (issue 25, item 1): on a memory cache (the default cache,
//! `mem://`, `Cache::memory()`), a function may return a value that is only
//! `Clone + Send + Sync + 'static` (an `Arc<Client>`) and take arguments that are only
//! `Hash` (no `Serialize`), as with the `cached` crate. On a cache whose values go to a store,
//! such a function is refused at its first use: logged once as an error, run uncached, never
//! a panic.
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use steadycache::{cached, Cache, FileBackend, FileConfig};
use steadycache_api::testing::clock;

/// A client from a crate without serde: not `Serialize`, not even `Clone` (shared by `Arc`).
struct Client {
    id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
fn connect() -> Arc<Client> {
    Arc::new(Client {
        id: NEXT_ID.fetch_add(1, SeqCst),
    })
}

/// An argument without serde: `Hash + Eq + Clone`.
#[derive(Clone, Hash, PartialEq, Eq, Debug)]
struct Region {
    name: &'static str,
}

static DEFAULT_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached]
fn client_default(region: Region) -> Arc<Client> {
    let _ = region;
    DEFAULT_RUNS.fetch_add(1, SeqCst);
    connect()
}

static MEM_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = "mem://", ttl = "10m")]
fn client_mem(region: &Region, shard: u32) -> Arc<Client> {
    let _ = (region, shard);
    MEM_RUNS.fetch_add(1, SeqCst);
    connect()
}

static MEMORY: LazyLock<Cache> = LazyLock::new(Cache::memory);
static MEMORY_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = &*MEMORY)]
async fn client_memory(region: Region) -> Arc<Client> {
    let _ = region;
    MEMORY_RUNS.fetch_add(1, SeqCst);
    connect()
}

fn eu() -> Region {
    Region { name: "eu" }
}
fn us() -> Region {
    Region { name: "us" }
}

#[test]
fn the_default_cache_keeps_values_and_arguments_without_serde() {
    let a = client_default(eu());
    let b = client_default(eu());
    assert!(Arc::ptr_eq(&a, &b), "a hit returns the same Arc");
    assert_eq!(DEFAULT_RUNS.load(SeqCst), 1);
    let c = client_default(us());
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(DEFAULT_RUNS.load(SeqCst), 2);
    assert_eq!(client_default_cache().stats().hits, 1);
    // invalidate one call, then clear them all
    assert!(client_default_cache().invalidate_sync(eu()).unwrap());
    let d = client_default(eu());
    assert!(!Arc::ptr_eq(&a, &d));
    assert_eq!(DEFAULT_RUNS.load(SeqCst), 3);
    assert!(Arc::ptr_eq(&c, &client_default(us())));
    client_default_cache().clear_sync().unwrap();
    client_default(us());
    assert_eq!(DEFAULT_RUNS.load(SeqCst), 4);
    // prime and get_cached work in memory too
    let primed = connect();
    assert!(client_default_cache()
        .prime_sync(us(), primed.clone())
        .unwrap());
    assert!(Arc::ptr_eq(&client_default(us()), &primed));
    let got = client_default_cache().get_cached_sync(us());
    assert!(got.is_some_and(|g| Arc::ptr_eq(&g, &primed)));
    assert_eq!(DEFAULT_RUNS.load(SeqCst), 4);
}

#[test]
fn mem_url_with_mixed_arguments_and_ttl_on_the_test_clock() {
    let _clock = clock::exclusive();
    let a = client_mem(&eu(), 1);
    assert!(Arc::ptr_eq(&a, &client_mem(&eu(), 1)));
    let other_shard = client_mem(&eu(), 2);
    assert!(!Arc::ptr_eq(&a, &other_shard));
    assert_eq!(MEM_RUNS.load(SeqCst), 2);
    clock::advance(Duration::from_secs(9 * 60));
    assert!(
        Arc::ptr_eq(&a, &client_mem(&eu(), 1)),
        "fresh within its ttl"
    );
    clock::advance(Duration::from_secs(2 * 60));
    let b = client_mem(&eu(), 1);
    assert!(!Arc::ptr_eq(&a, &b), "expired after its ttl");
    assert_eq!(MEM_RUNS.load(SeqCst), 3);
    assert!(client_mem_cache().invalidate_sync(&eu(), 1).unwrap());
    client_mem(&eu(), 1);
    assert_eq!(MEM_RUNS.load(SeqCst), 4);
}

#[tokio::test]
async fn a_cache_memory_expression_async() {
    let a = client_memory(eu()).await;
    assert!(Arc::ptr_eq(&a, &client_memory(eu()).await));
    assert_eq!(MEMORY_RUNS.load(SeqCst), 1);
    assert!(client_memory_cache().invalidate(eu()).await.unwrap());
    assert!(!Arc::ptr_eq(&a, &client_memory(eu()).await));
    assert_eq!(MEMORY_RUNS.load(SeqCst), 2);
    assert!(MEMORY.has_typed_tier());
}

static SERDE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached]
fn serde_beside(x: u64, name: &str) -> Vec<u64> {
    let _ = name;
    SERDE_RUNS.fetch_add(1, SeqCst);
    vec![x]
}

/// A serde function beside them is unchanged: its key is the hash of its arguments' bincode
/// bytes, as before.
#[test]
fn serde_functions_keep_their_keys() {
    assert_eq!(serde_beside(7, "a"), vec![7]);
    assert_eq!(serde_beside(7, "a"), vec![7]);
    assert_eq!(SERDE_RUNS.load(SeqCst), 1);
    let key = serde_beside_cache().key(7, "a").unwrap();
    let h = steadycache::__private::hash_args(&(&7u64, &"a")).unwrap();
    assert!(key.ends_with(&format!(":{h:032x}")), "{key}");
}

/// Error messages logged on this thread.
#[derive(Clone, Default)]
struct Logged(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logged {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Msg<'a>(&'a mut String);
        impl tracing::field::Visit for Msg<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0.push_str(&format!("{v:?}"));
                }
            }
        }
        if *e.metadata().level() == tracing::Level::ERROR {
            let mut m = String::new();
            e.record(&mut Msg(&mut m));
            if let Ok(mut v) = self.0.lock() {
                v.push(m);
            }
        }
    }
}

fn with_logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logged = Logged::default();
    let sub = tracing_subscriber::registry().with(logged.clone());
    let out = tracing::subscriber::with_default(sub, f);
    let msgs = logged.0.lock().map(|v| v.clone()).unwrap_or_default();
    (out, msgs)
}

static FILES: LazyLock<Cache> = LazyLock::new(|| {
    let dir = steadycache_api::testing::temp_dir("serde-free");
    match FileBackend::open(FileConfig::new(dir)) {
        Ok(files) => Cache::builder().backend(Arc::new(files)).build(),
        Err(e) => panic!("file backend: {e}"),
    }
});

static STORE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = &*FILES, ttl = "10m")]
fn client_on_files(n: u64) -> Arc<Client> {
    STORE_RUNS.fetch_add(1, SeqCst);
    Arc::new(Client { id: n })
}

static KEY_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = &*FILES, ttl = "10m")]
fn hash_keyed_on_files(region: Region) -> u64 {
    KEY_RUNS.fetch_add(1, SeqCst);
    region.name.len() as u64
}

/// On a store: an opaque value (or a key hashed by `Hash`) is refused at first use, logged
/// once as an error; every call runs the function and returns its result; nothing is stored.
#[test]
fn on_a_store_they_run_uncached_with_one_logged_error() {
    let (ids, logged) = with_logged(|| {
        (0..3)
            .map(|_| client_on_files(5).id)
            .chain((0..3).map(|_| hash_keyed_on_files(eu())))
            .collect::<Vec<_>>()
    });
    assert_eq!(ids, vec![5, 5, 5, 2, 2, 2]);
    assert_eq!(STORE_RUNS.load(SeqCst), 3);
    assert_eq!(KEY_RUNS.load(SeqCst), 3);
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(
        logged[0].contains("does not implement `Serialize`"),
        "{logged:?}"
    );
    assert!(logged[1].contains("hashed by its `Hash`"), "{logged:?}");
    assert!(!client_on_files_cache()
        .prime_sync(5, Arc::new(Client { id: 6 }))
        .unwrap());
    assert!(client_on_files_cache().get_cached_sync(5).is_none());
    assert_eq!(client_on_files_cache().stats().hits, 0);
    assert_eq!(client_on_files(5).id, 5);
}

/// A method whose `self` (in its key: `key_self`) has no serde, only `Hash`.
#[derive(Hash)]
struct Pool {
    name: &'static str,
}

static POOL_RUNS: AtomicUsize = AtomicUsize::new(0);
impl Pool {
    #[cached(key_self)]
    fn client(&self, shard: u32) -> Arc<Client> {
        let _ = (self.name, shard);
        POOL_RUNS.fetch_add(1, SeqCst);
        connect()
    }
}

#[test]
fn a_method_keyed_by_a_self_without_serde() {
    let (a, b) = (Pool { name: "a" }, Pool { name: "b" });
    let first = a.client(1);
    assert!(Arc::ptr_eq(&first, &a.client(1)));
    assert!(
        Arc::ptr_eq(&first, &Pool { name: "a" }.client(1)),
        "equal selves share"
    );
    assert!(!Arc::ptr_eq(&first, &b.client(1)));
    assert_eq!(POOL_RUNS.load(SeqCst), 2);
}

/// A long `Hash` argument (more than the stack buffer) keys as well.
#[cached]
fn long_key(text: Region, long: Vec<Region>) -> usize {
    text.name.len() + long.len()
}

#[test]
fn long_hash_arguments() {
    let long = vec![eu(); 100];
    assert_eq!(long_key(us(), long.clone()), 102);
    assert_eq!(long_key(us(), long), 102);
    assert_eq!(long_key_cache().stats().hits, 1);
}
