//! What the store benches share: timing sequential calls one by one for percentiles, and
//! cycling over stored keys.
#![allow(dead_code)] // each bench uses a part

use std::future::Future;
use std::hint::black_box;
use std::time::Instant;

/// p50 and p99, in microseconds, of `n` sequential calls `f(i % keys)`.
pub async fn percentiles<F, Fut, T>(n: usize, keys: u64, mut f: F) -> (f64, f64)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = T>,
{
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        black_box(f(i as u64 % keys).await);
        t.push(start.elapsed());
    }
    t.sort_unstable();
    let at = |q: f64| t[((n as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// An endless cycle over the keys `1, 2, …, keys - 1, 0, 1, …`, for benches that hit each of
/// `keys` stored keys in turn.
pub fn key_cycle(keys: u64) -> impl FnMut() -> u64 {
    let mut k = 0u64;
    move || {
        k = (k + 1) % keys;
        k
    }
}
