//! Options that only mean something together, and options that contradict each other: each
//! refusal says why, so that no combination compiles into a policy that quietly does something
//! else than it reads.

use crate::err;
use crate::model::Kind;
use crate::options::Options;

/// Every rule of this module, in a fixed order.
pub(super) fn check(opts: &Options, kind: Kind) -> syn::Result<()> {
    check_fail_safe(opts, kind)?;
    check_timeout_order(opts)
}

/// `fail_safe` keeps a value past its ttl, to serve it when a recompute fails:
///
/// * it needs a ttl (`ttl`, or `ttl_fn` choosing one per value): without one a value never
///   expires, so there is no "past its ttl" to keep it for (the engine ignores `fail_safe`
///   then);
/// * on a function returning `Result`, it contradicts `negative_ttl`: there an `Err` is the
///   function's value (stored as a negative value for `negative_ttl`), so a failed recompute
///   replaces the good value with the error before fail-safe could serve the good one.
///
/// `negative_ttl` with `fail_safe` on a function returning `Option` is not refused. The mechanics are the same (a `None` is, like
/// a cached `Err`, a negative value stored for its own ttl, replacing the old `Some`), but a
/// `None` is the function's answer ("there is none"), not a failure: storing it is what
/// `negative_ttl` asks for, and it contradicts nothing fail-safe promises. The only failure of a
/// function returning `Option`, a panic, still has fail-safe serve the last `Some` (to the
/// callers that waited on the panicking one).
fn check_fail_safe(opts: &Options, kind: Kind) -> syn::Result<()> {
    let Some(fail_safe) = &opts.fail_safe else {
        return Ok(());
    };
    if let (Some(negative), Kind::Result) = (&opts.negative_ttl, kind) {
        return Err(err(
            negative.span(),
            "`negative_ttl` and `fail_safe` contradict each other: fail-safe serves the last good \
             value when the function fails, `negative_ttl` stores the failure (replacing that \
             value); choose one",
        ));
    }
    if opts.ttl.is_none() && opts.ttl_fn.is_none() {
        return Err(err(
            fail_safe.span(),
            "`fail_safe` keeps each value this long past its ttl, and this function's values \
             have none (they never expire): add a `ttl` (or a `ttl_fn`)",
        ));
    }
    Ok(())
}

/// With an old value to serve, a call waits for the shorter of `soft_timeout` and
/// `hard_timeout`: a soft timeout at or past the hard one never applies. Checked when both are
/// literals (an expression is only known at run time), on the milliseconds the engine counts.
fn check_timeout_order(opts: &Options) -> syn::Result<()> {
    let (Some(soft), Some(hard)) = (&opts.soft_timeout, &opts.hard_timeout) else {
        return Ok(());
    };
    match (soft.millis(), hard.millis()) {
        (Some(s), Some(h)) if s >= h => Err(err(
            soft.span(),
            format!(
                "`soft_timeout` (\"{}\") must be shorter than `hard_timeout` (\"{}\"): with an \
                 old value to serve, a call waits for the shorter of the two, so this soft \
                 timeout would never apply",
                soft.text(),
                hard.text()
            ),
        )),
        _ => Ok(()),
    }
}
