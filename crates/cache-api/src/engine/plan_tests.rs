//! The decision core's tables of cases (`plan.rs`).

use super::*;
use crate::envelope::freshness;
use Freshness::*;

fn plan(policy: Policy) -> Plan {
    Plan::compile(&policy)
}

/// A call: `bypass` wins over `force` (as in the driver, which reads them from `CallOptions`).
fn call(bypass: bool, force: bool, job: bool) -> Call {
    Call {
        wants: Wants::of(bypass, force),
        background: if job {
            Background::Possible
        } else {
            Background::Impossible
        },
        reading: Reading::AsStored,
    }
}

fn too_old() -> Call {
    Call {
        reading: Reading::TooOld,
        ..call(false, false, true)
    }
}

#[test]
fn decide_covers_every_combination() {
    let secs = Duration::from_secs;
    let block = plan(Policy::expire_after(secs(10)).with_stale_after(secs(5)));
    let block_no_fallback = plan(
        Policy::expire_after(secs(10))
            .with_stale_after(secs(5))
            .with_serve_stale_on_error(false),
    );
    let swr = plan(Policy::expire_after(secs(5)).stale_while_revalidate(secs(60)));
    let cases: &[(&Plan, Option<Freshness>, Call, Step)] = &[
        // bypass wins over everything
        (&swr, Some(Fresh), call(true, true, true), Step::Bypass),
        (&block, None, call(true, false, false), Step::Bypass),
        // forced refresh computes, whatever is stored
        (&swr, Some(Fresh), call(false, true, true), Step::Compute),
        (&block, Some(Stale), call(false, true, false), Step::Compute),
        // fresh: a hit under every plan
        (&swr, Some(Fresh), call(false, false, true), Step::Hit),
        (&block, Some(Fresh), call(false, false, false), Step::Hit),
        // stale, background plan with a job: serve stale, refresh behind
        (
            &swr,
            Some(Stale),
            call(false, false, true),
            Step::ServeStaleRefreshBackground,
        ),
        // stale, background plan without a job (a call by hand): refresh inline
        (
            &swr,
            Some(Stale),
            call(false, false, false),
            Step::RefreshInline { fallback: true },
        ),
        // stale, blocking plan: refresh inline, with or without the fallback
        (
            &block,
            Some(Stale),
            call(false, false, true),
            Step::RefreshInline { fallback: true },
        ),
        (
            &block_no_fallback,
            Some(Stale),
            call(false, false, false),
            Step::RefreshInline { fallback: false },
        ),
        // expired but kept for fail-safe: compute now (never served in the background),
        // serve it if that fails, whatever serve_stale_on_error says
        (
            &swr,
            Some(Reserve),
            call(false, false, true),
            Step::RefreshInline { fallback: true },
        ),
        (
            &block_no_fallback,
            Some(Reserve),
            call(false, false, false),
            Step::RefreshInline { fallback: true },
        ),
        // older than the call's max_age: refreshed inline, fresh or stale, any plan
        (
            &swr,
            Some(Fresh),
            too_old(),
            Step::RefreshInline { fallback: true },
        ),
        (
            &swr,
            Some(Stale),
            too_old(),
            Step::RefreshInline { fallback: true },
        ),
        (
            &block_no_fallback,
            Some(Fresh),
            too_old(),
            Step::RefreshInline { fallback: false },
        ),
        // expired or absent: compute
        (&swr, Some(Expired), call(false, false, true), Step::Compute),
        (&block, None, call(false, false, false), Step::Compute),
    ];
    for (i, (p, found, c, want)) in cases.iter().enumerate() {
        assert_eq!(decide(p, *found, *c), *want, "case {i}");
    }
}

#[test]
fn after_wait_never_chains_failed_rounds() {
    let cases: &[(Ended, bool, AfterWait)] = &[
        (Ended::Value, false, AfterWait::Value),
        (Ended::Value, true, AfterWait::Value),
        (Ended::SharedError, false, AfterWait::Error),
        (Ended::SharedError, true, AfterWait::ServeStale),
        (Ended::Failed, false, AfterWait::ComputeAlone),
        (Ended::Failed, true, AfterWait::ServeStale),
        (Ended::Cancelled, false, AfterWait::Rejoin),
        (Ended::Cancelled, true, AfterWait::Rejoin),
    ];
    for (i, (ended, fallback, want)) in cases.iter().enumerate() {
        assert_eq!(after_wait(*ended, *fallback), *want, "case {i}");
    }
}

#[test]
fn freshness_at_the_edges() {
    assert_eq!(freshness(10, 20, 20, 9), Fresh);
    assert_eq!(freshness(10, 20, 20, 10), Stale);
    assert_eq!(freshness(10, 20, 20, 19), Stale);
    assert_eq!(freshness(10, 20, 20, 20), Expired);
    assert_eq!(freshness(10, 20, 30, 20), Reserve);
    assert_eq!(freshness(10, 20, 30, 29), Reserve);
    assert_eq!(freshness(10, 20, 30, 30), Expired);
    assert_eq!(freshness(u64::MAX, u64::MAX, u64::MAX, u64::MAX - 1), Fresh);
}

#[test]
fn durations_at_their_limits_never_panic() {
    let mut p = Policy::expire_after(Duration::MAX).with_lock_ttl(Duration::MAX);
    p.jitter = 7.0; // out of range, set past the setter's clamp (the field is the crate's)
    p.stale_after = Some(Duration::MAX);
    let c = plan(p.clone());
    assert_eq!(c.lock_ttl, MAX_LOCK_TTL);
    assert_eq!(c.heartbeat, MAX_LOCK_TTL / 3);
    assert_eq!(c.lock_wait, None);
    assert_eq!(c.jitter, MAX_JITTER);
    let d = c.deadlines(u64::MAX - 5, false, 0.999).unwrap();
    assert!(d.stale_at <= d.expires_at && d.expires_at < u64::MAX);
    assert_eq!(d.keep_until, d.expires_at);
    p.jitter = f64::NAN;
    p.lock_ttl = Duration::ZERO;
    let c = plan(p);
    assert_eq!(c.jitter, 0.0);
    assert_eq!(c.lock_ttl, MIN_LOCK_TTL);
    assert_eq!(
        c.deadlines(0, false, f64::NAN).map(pair),
        Some((u64::MAX - 1, u64::MAX - 1))
    );
    let mut f = Policy::expire_after(Duration::MAX).with_fail_safe(Duration::MAX);
    f.fail_safe_throttle = Some(Duration::MAX);
    let c = plan(f);
    let d = c.deadlines(u64::MAX - 5, false, 0.0).unwrap();
    assert_eq!(d.keep_until, u64::MAX - 1);
    assert_eq!(
        c.throttled(u64::MAX - 5, d).map(|t| t.expires_at),
        Some(u64::MAX - 1)
    );
    assert_eq!(c.throttled(7, old(7, 7, 7)), None, "nothing left to keep");
}

fn old(stale_at: u64, expires_at: u64, keep_until: u64) -> Deadlines {
    Deadlines {
        early_at: stale_at,
        stale_at,
        expires_at,
        keep_until,
    }
}

fn pair(d: Deadlines) -> (u64, u64) {
    (d.stale_at, d.expires_at)
}

#[test]
fn fail_safe_keeps_positives_past_their_ttl_and_throttles() {
    let s = Duration::from_secs;
    let p = plan(
        Policy::expire_after(s(10))
            .with_fail_safe(s(60))
            .with_jitter(0.5),
    );
    let d = p.deadlines(1_000, false, 1.0).unwrap();
    assert_eq!(
        (d.expires_at, d.keep_until),
        (6_000, 66_000),
        "not jittered"
    );
    let neg = plan(
        Policy::expire_after(s(10))
            .with_fail_safe(s(60))
            .with_negative_ttl(s(2)),
    );
    let d = neg.deadlines(0, true, 0.0).unwrap();
    assert_eq!(d.keep_until, d.expires_at, "negatives are not kept");
    let forever = plan(Policy::forever().with_fail_safe(s(60)));
    assert_eq!(
        forever.deadlines(0, false, 0.0).unwrap().keep_until,
        u64::MAX
    );
    // The default throttle with fail-safe and without (every failing recompute is
    // throttled); an explicit one either way, zero turning it off.
    assert_eq!(p.throttle, Some(DEFAULT_FAIL_SAFE_THROTTLE));
    assert_eq!(
        plan(Policy::expire_after(s(1))).throttle,
        Some(DEFAULT_FAIL_SAFE_THROTTLE)
    );
    let off = plan(Policy::expire_after(s(1)).with_fail_safe_throttle(Duration::ZERO));
    assert_eq!(off.throttle, None);
    let t = plan(Policy::expire_after(s(1)).with_fail_safe_throttle(s(5)));
    assert_eq!(t.throttle, Some(s(5)));
    let d = t.throttled(1_000, old(500, 900, 100_000)).unwrap();
    assert_eq!(
        (d.stale_at, d.expires_at, d.keep_until),
        (6_000, 6_000, 100_000)
    );
    let d = t.throttled(1_000, old(500, 900, 3_000)).unwrap();
    assert_eq!(d.expires_at, 3_000, "never past what was to be kept");
    let d = t.throttled(1_000, old(500, 50_000, 100_000)).unwrap();
    assert_eq!(
        (d.stale_at, d.expires_at),
        (6_000, 50_000),
        "never earlier than it was"
    );
    assert_eq!(off.throttled(0, old(0, 0, 10_000)), None);
    assert_eq!(off.after_failure(0, old(0, 0, 10_000), false), None);
    // A failed early (or max_age) refresh of a fresh value moves only its early window, never
    // past its staleness; an old one is throttled.
    let fresh = Deadlines {
        early_at: 2_000,
        ..old(20_000, 20_000, 20_000)
    };
    let d = t.after_failure(3_000, fresh, true).unwrap();
    assert_eq!(
        d,
        Deadlines {
            early_at: 8_000,
            ..fresh
        }
    );
    let d = t.after_failure(18_000, fresh, true).unwrap();
    assert_eq!(d.early_at, 20_000, "never past stale_at");
    assert_eq!(t.after_failure(0, old(20_000, 20_000, 20_000), true), None);
    let d = t
        .after_failure(1_000, old(500, 900, 100_000), false)
        .unwrap();
    assert_eq!(
        (d.early_at, d.stale_at, d.expires_at),
        (6_000, 6_000, 6_000)
    );
}

#[test]
fn deadlines_follow_the_plan() {
    let s = Duration::from_secs;
    let p = plan(Policy::expire_after(s(10)).with_stale_after(s(4)));
    assert_eq!(
        p.deadlines(1_000, false, 0.5).map(pair),
        Some((5_000, 11_000))
    );
    assert_eq!(
        p.deadlines(1_000, true, 0.5).map(pair),
        None,
        "no negative_ttl"
    );
    let p = plan(Policy::expire_after(s(10)).with_negative_ttl(s(2)));
    assert_eq!(p.deadlines(0, true, 0.0).map(pair), Some((2_000, 2_000)));
    let p = plan(Policy::expire_after(s(10)).with_jitter(0.5));
    assert_eq!(p.deadlines(0, false, 0.0).map(pair), Some((10_000, 10_000)));
    assert_eq!(p.deadlines(0, false, 1.0).map(pair), Some((5_000, 5_000)));
    let forever = plan(Policy::forever());
    assert_eq!(
        forever.deadlines(7, false, 0.3).map(pair),
        Some((u64::MAX, u64::MAX))
    );
    // a sub-millisecond ttl still lasts a millisecond
    let tiny = plan(Policy::expire_after(Duration::from_micros(3)));
    assert_eq!(tiny.deadlines(100, false, 0.0).map(pair), Some((101, 101)));
    // a ttl chosen for the value replaces the plan's; a shorter stale_after is kept
    let p = plan(Policy::expire_after(s(10)).with_stale_after(s(4)));
    let chosen = |d| p.deadlines_with(0, false, 0.0, Some(d)).map(pair);
    assert_eq!(chosen(s(60)), Some((4_000, 60_000)));
    assert_eq!(chosen(s(2)), Some((2_000, 2_000)));
    assert_eq!(
        p.deadlines_with(0, true, 0.0, Some(s(60))),
        None,
        "negatives keep their own rule"
    );
}

#[test]
fn deadlines_of_chosen_lifetimes_follow_each_other() {
    use super::super::job::Lifetimes;
    let plan = Plan::compile(&Policy::expire_after(Duration::from_secs(600)));
    let l = Lifetimes {
        fresh: Duration::from_secs(1),
        stale: Duration::from_secs(2),
        fail_safe: Duration::from_secs(3),
    };
    let at = plan.deadlines_of(1_000, 0.5, l);
    assert_eq!(
        (at.stale_at, at.expires_at, at.keep_until),
        (2_000, 4_000, 7_000)
    );
    let none = plan.deadlines_of(1_000, 0.5, Lifetimes::default());
    assert_eq!(
        (none.stale_at, none.expires_at, none.keep_until),
        (1_001, 1_001, 1_001)
    );
}
