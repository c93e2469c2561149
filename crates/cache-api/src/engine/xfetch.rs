//! Early refresh: XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache
//! Stampede Prevention", VLDB 2015).
//!
//! A value that took `delta` to compute, due for a refresh at `refresh_at`, is refreshed by a
//! read at `now` when `now - delta · beta · ln(rand) >= refresh_at` (`rand` uniform in
//! `(0, 1]`). The closer the deadline and the slower the computation, the likelier a read
//! refreshes; with frequent reads about one refresh starts per expiry, early enough that no
//! reader ever finds the value gone, where N readers without it would all recompute at once.
//!
//! The hit path does not roll dice. When a value is stored, the start of its window is computed
//! ([`early_at`]): `refresh_at - delta · beta · SPAN`, where [`SPAN`] truncates `-ln(rand)`
//! (a draw beyond it has probability `e^-SPAN`, about 1e-7, and counts as `SPAN`). Before the window
//! a read is a plain hit (one comparison); inside it, reads take the slow path, which rolls the
//! dice ([`refresh_now`]).

/// Where `-ln(rand)` is truncated: the window opens `delta · beta · SPAN` before the deadline.
pub(crate) const SPAN: f64 = 16.0;

/// The largest `beta` a plan keeps (a larger one is clamped): at 100 a value that took a second
/// is refreshed up to 1,600 s early.
pub(crate) const MAX_BETA: f64 = 100.0;

/// The `beta` to compile from a policy's `early_refresh`: `None` when off, not finite or not
/// positive; at most [`MAX_BETA`].
pub(crate) fn beta(early_refresh: Option<f64>) -> Option<f64> {
    early_refresh
        .filter(|b| b.is_finite() && *b > 0.0)
        .map(|b| b.min(MAX_BETA))
}

/// How far before `refresh_at` a value that took `took_ms` may be refreshed, ms (saturating).
fn gap_ms(beta: f64, took_ms: u32, draw: f64) -> u64 {
    // `as` saturates; the product is finite and non-negative.
    (f64::from(took_ms) * beta * draw) as u64
}

/// The start of a value's early-refresh window: `refresh_at` itself without early refresh, for
/// a value that took no measurable time, or for one never due (`u64::MAX`).
pub(crate) fn early_at(beta: Option<f64>, refresh_at: u64, took_ms: u32) -> u64 {
    match beta {
        Some(b) if took_ms > 0 && refresh_at != u64::MAX => {
            refresh_at.saturating_sub(gap_ms(b, took_ms, SPAN))
        }
        _ => refresh_at,
    }
}

/// Whether a read at `now_ms` refreshes a fresh value (XFetch's test), `rand01` drawn uniform in
/// `[0, 1)`.
pub(crate) fn refresh_now(
    beta: Option<f64>,
    now_ms: u64,
    refresh_at: u64,
    took_ms: u32,
    rand01: f64,
) -> bool {
    let Some(b) = beta else { return false };
    if took_ms == 0 || refresh_at == u64::MAX {
        return false;
    }
    // `1 - rand01` is in (0, 1]: its logarithm is finite and at most 0.
    let u = if rand01.is_finite() {
        1.0 - rand01.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let draw = if u > 0.0 { (-u.ln()).min(SPAN) } else { SPAN };
    now_ms.saturating_add(gap_ms(b, took_ms, draw)) >= refresh_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_bounds_every_draw() {
        let b = Some(1.0);
        assert_eq!(early_at(b, 10_000, 100), 10_000 - 1_600);
        assert_eq!(early_at(None, 10_000, 100), 10_000);
        assert_eq!(early_at(b, 10_000, 0), 10_000);
        assert_eq!(early_at(b, u64::MAX, 100), u64::MAX);
        assert_eq!(early_at(Some(MAX_BETA), 5, u32::MAX), 0, "saturates");
        // Before the window no draw refreshes; at the deadline every draw does.
        for r in [0.0, 0.5, 0.999_999, 1.0, f64::NAN] {
            assert!(!refresh_now(b, 10_000 - 1_601, 10_000, 100, r), "{r}");
            assert!(refresh_now(b, 10_000, 10_000, 100, r), "{r}");
            assert!(!refresh_now(None, 10_000, 10_000, 100, r), "{r}");
        }
        assert_eq!(beta(Some(f64::NAN)), None);
        assert_eq!(beta(Some(-1.0)), None);
        assert_eq!(beta(Some(1e9)), Some(MAX_BETA));
    }

    /// Seeded, discrete-time stampede: `readers` clients each read a key every `period` ms (at
    /// their own phase); a computation takes `delta` ms; each value lives `ttl` ms. Without
    /// early refresh every reader that reads while the value is gone recomputes (no lock, as in
    /// the paper's model); with it, a read inside the window may start a recomputation (one
    /// per reader at a time). Returns (recomputations per expiry, reads that found nothing).
    fn stampede(readers: u64, beta: Option<f64>, seed: u64) -> (f64, u64) {
        let (period, delta, ttl, expiries) = (100u64, 1_000u64, 60_000u64, 100u64);
        let mut rng = fastrand::Rng::with_seed(seed);
        // The readers reading at each phase of the period.
        let mut at_phase = vec![Vec::new(); period as usize];
        for i in 0..readers as usize {
            at_phase[rng.usize(0..period as usize)].push(i);
        }
        let mut busy_until = vec![0u64; readers as usize];
        // Value: (expires_at); pending computations finish at these times.
        let mut expires_at = ttl;
        let mut pending: Vec<u64> = Vec::new();
        let (mut recomputations, mut empty_reads, mut generations) = (0u64, 0u64, 0u64);
        // Recomputations finishing close together renew one expiry: a new generation starts
        // with the first store more than half a ttl after the last one.
        let mut last_store = 0u64;
        let mut t = 0u64;
        while generations < expiries {
            // Finished computations store a new value.
            pending.retain(|&done| {
                if done == t {
                    if t >= last_store + ttl / 2 {
                        generations += 1;
                    }
                    last_store = t;
                    expires_at = t + ttl;
                    false
                } else {
                    true
                }
            });
            for &i in &at_phase[(t % period) as usize] {
                if busy_until[i] > t {
                    continue;
                }
                let start = if t >= expires_at {
                    empty_reads += 1;
                    true
                } else {
                    refresh_now(beta, t, expires_at, delta as u32, rng.f64())
                };
                if start {
                    recomputations += 1;
                    busy_until[i] = t + delta;
                    pending.push(t + delta);
                }
            }
            t += 1;
        }
        (recomputations as f64 / generations as f64, empty_reads)
    }

    /// The paper's result, reproduced: without early refresh every reader recomputes at each
    /// expiry (about N per expiry); with XFetch a small constant, whatever N, and no reader ever
    /// finds the value gone. In this model readers do not coordinate at all (each is its own
    /// process without a lock); the engine also coalesces the refreshes of one process, and of
    /// a fleet with `lock = "distributed"`, which leaves one. Larger betas refresh earlier and
    /// overlap less: the duplicates per expiry tend to `e^(1/beta) - 1`.
    /// `cargo test -p steadycache-api --lib xfetch -- --nocapture` prints the figures.
    #[test]
    fn xfetch_turns_a_stampede_into_one_recomputation() {
        for readers in [10u64, 100, 1_000] {
            let (plain, plain_empty) = stampede(readers, None, 7);
            let (one, one_empty) = stampede(readers, Some(1.0), 7);
            let (two, two_empty) = stampede(readers, Some(2.0), 7);
            println!(
                "xfetch simulation, {readers} readers: without {plain:.2} recomputations per \
                 expiry ({plain_empty} reads found nothing); beta = 1: {one:.2} ({one_empty}); \
                 beta = 2: {two:.2} ({two_empty})"
            );
            assert!(plain >= 0.9 * readers as f64, "{plain}");
            assert!(one < 3.5 && two < 2.2, "{one} {two}");
            assert_eq!(one_empty + two_empty, 0);
        }
    }
}
