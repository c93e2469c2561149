//! Map arguments give the same key whatever their iteration order (issue 21, item 9): equal
//! `HashMap`s built in different orders, with different hasher seeds, in this process or in
//! another one, share one entry.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};
use steadycache::cached;

/// The environment variable that makes this test binary, run again, a child printing a key.
const CHILD: &str = "STEADYCACHE_MAP_KEYS_CHILD";
/// The line the child prints its key on.
const MARK: &str = "steadycache-map-key=";

/// Equal maps of `n` entries, inserted in the order of `keys`, each with a seed of its own.
fn rates(keys: impl Iterator<Item = u32>) -> HashMap<String, u32> {
    let mut m = HashMap::with_hasher(RandomState::new());
    for k in keys {
        m.insert(format!("currency-{k}"), 100 + k);
    }
    m
}

static TOTAL_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = "10m")]
fn total(rates: HashMap<String, u32>, scale: u32) -> u64 {
    TOTAL_RUNS.fetch_add(1, SeqCst);
    rates.values().map(|&v| u64::from(v * scale)).sum()
}

#[test]
fn equal_maps_built_in_different_orders_run_the_body_once() {
    let forward = rates(0..20);
    let expected = total(forward.clone(), 2);
    assert_eq!(total(rates((0..20).rev()), 2), expected);
    assert_eq!(total(rates((0..20).map(|k| (k * 7) % 20)), 2), expected);
    // A map with more room than it needs iterates in yet another order.
    let mut roomy = HashMap::with_capacity(1000);
    roomy.extend(forward.clone());
    assert_eq!(total(roomy, 2), expected);
    assert_eq!(
        TOTAL_RUNS.load(SeqCst),
        1,
        "one body run for four equal maps"
    );
    let h = total_cache();
    assert_eq!(
        h.key(forward.clone(), 2).unwrap(),
        h.key(rates((0..20).rev()), 2).unwrap()
    );
    // A different map is another key.
    total(rates(0..19), 2);
    assert_eq!(TOTAL_RUNS.load(SeqCst), 2);
}

/// The child's part: print the key of a map built in an order of its own (and its own seed: a
/// new process).
#[test]
#[ignore = "run by equal_maps_give_the_same_key_in_another_process as a child process"]
fn child_prints_a_key() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let map = rates((0..20).map(|k| (k * 13) % 20));
    let key = total_cache().key(map, 2).unwrap();
    println!("{MARK}{key}");
}

#[test]
fn equal_maps_give_the_same_key_in_another_process() {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "child_prints_a_key",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a child test process");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the child") {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("the child's stdout")
        .read_to_string(&mut out)
        .expect("read the child's stdout");
    assert!(status.success(), "the child failed: {out}");
    let theirs = out
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, key)| key.trim()))
        .unwrap_or_else(|| panic!("the child printed no key: {out}"));
    let ours = total_cache().key(rates(0..20), 2).unwrap();
    assert_eq!(theirs, ours, "the same map, another process: the same key");
}

static SET_RUNS: AtomicU32 = AtomicU32::new(0);

/// A `HashSet` argument does not compile (`tests/ui/hash_set_arg.rs`); hashed as a sorted `Vec`
/// through `convert`, equal sets share an entry.
#[cached(ttl = "10m", convert = {
    let mut ids: Vec<u32> = ids.iter().copied().collect();
    ids.sort_unstable();
    ids
})]
fn count(ids: &std::collections::HashSet<u32>) -> usize {
    SET_RUNS.fetch_add(1, SeqCst);
    ids.len()
}

#[test]
fn a_set_converted_to_a_sorted_vec_is_one_key() {
    let a: std::collections::HashSet<u32> = (0..20).collect();
    let b: std::collections::HashSet<u32> = (0..20).rev().collect();
    assert_eq!(count(&a), 20);
    assert_eq!(count(&b), 20);
    assert_eq!(SET_RUNS.load(SeqCst), 1);
}
