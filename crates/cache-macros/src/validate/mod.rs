//! Stage 3: the rules across options, and between the options and the function's shape.
//!
//! Checked in a fixed order and stopping at the first error, so a given input always reports
//! the same error.

mod pairs;

use crate::err;
use crate::model::{FnModel, Kind};
use crate::options::{FloatLit, Options};
use proc_macro2::Span;
use syn::spanned::Spanned;

/// `lock = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// `"none"`: every caller computes.
    None,
    /// `"local"` (the default): one caller per process computes, the others wait.
    Local,
    /// `"distributed"`: one caller across processes, through the backend's lock.
    Distributed,
}

/// What validation decides for the emitter.
pub(crate) struct Plan {
    /// Stale entries are refreshed in the background (`stale_while_revalidate` or
    /// `refresh = "background"`).
    pub background: bool,
    /// The call hands the engine a job that outlives it (a background refresh, early refresh,
    /// a computation finishing after a timeout): free functions only.
    pub job: bool,
    /// The lock mode.
    pub lock: LockMode,
    /// The jitter literal, already checked to be within 0.0 to 0.9.
    pub jitter: Option<syn::LitFloat>,
}

/// Check every rule; the plan for the emitter.
pub(crate) fn check(opts: &Options, model: &FnModel) -> syn::Result<Plan> {
    check_return_shape(opts, model)?;
    check_durations(opts)?;
    pairs::check(opts, model.kind)?;
    let background = check_refresh(opts, model)?;
    let timeouts = check_timeouts(opts, model)?;
    let lock = check_lock(opts)?;
    let jitter = check_jitter(opts)?;
    check_early_refresh(opts)?;
    check_counts(opts)?;
    if let Some(tpl) = &opts.key {
        check_key_template(opts, tpl, model)?;
    }
    for tpl in opts.tags.iter().flat_map(|t| &t.0) {
        check_template(tpl, &arg_names(model), model.is_method(), "tag")?;
    }
    check_convert(opts)?;
    check_self_in_key(opts, model)?;
    check_guards(opts, model)?;
    Ok(Plan {
        background,
        job: background || timeouts || (opts.early_refresh.is_some() && model.receiver.is_none()),
        lock,
        jitter,
    })
}

/// `negative_ttl` needs a return type with negative results (`None`, `Err`).
fn check_return_shape(opts: &Options, model: &FnModel) -> syn::Result<()> {
    if opts.negative_ttl.is_some() && model.kind == Kind::Plain {
        return Err(err(
            model.ret_ty.span(),
            "`negative_ttl` stores negative results: it needs a function returning `Option` \
             (its `None`) or `Result` (its `Err`)",
        ));
    }
    if opts.strict == Some(true) && model.kind != Kind::Result {
        return Err(err(
            model.ret_ty.span(),
            "`strict` returns the cache's open error: it needs a function returning `Result` \
             whose error type implements `From<steadycache::Error>`",
        ));
    }
    Ok(())
}

/// No literal duration may be zero or below the engine's 1 ms resolution.
fn check_durations(opts: &Options) -> syn::Result<()> {
    for d in [
        &opts.ttl,
        &opts.stale_after,
        &opts.stale_while_revalidate,
        &opts.lock_ttl,
        &opts.lock_wait,
        &opts.fail_safe,
        &opts.fail_safe_throttle,
        &opts.soft_timeout,
        &opts.hard_timeout,
        &opts.negative_ttl,
        &opts.tti,
    ]
    .into_iter()
    .flatten()
    {
        d.check_positive()?;
    }
    Ok(())
}

/// `refresh`, `stale_after` and `stale_while_revalidate` together; whether refresh runs in the
/// background.
fn check_refresh(opts: &Options, model: &FnModel) -> syn::Result<bool> {
    let refresh_span = || {
        opts.refresh
            .as_ref()
            .map_or(Span::call_site(), |l| l.span())
    };
    let background_mode = match &opts.refresh {
        None => None,
        Some(l) => match l.value().as_str() {
            "block" => Some(false),
            "background" => Some(true),
            other => {
                return Err(err(
                    l.span(),
                    format!("`refresh = \"{other}\"`: expected \"block\" or \"background\""),
                ))
            }
        },
    };
    let swr = opts.stale_while_revalidate.is_some();
    if swr && background_mode == Some(false) {
        return Err(err(
            refresh_span(),
            "`stale_while_revalidate` refreshes in the background; it cannot be combined with \
             `refresh = \"block\"` (use `stale_after` for a blocking refresh)",
        ));
    }
    if swr && opts.stale_after.is_some() {
        return Err(err(
            Span::call_site(),
            "give either `stale_after` or `stale_while_revalidate`, not both: \
             `ttl = A, stale_while_revalidate = B` is fresh for A and stale for B more",
        ));
    }
    if background_mode == Some(true) && opts.stale_after.is_none() && !swr {
        return Err(err(
            refresh_span(),
            "`refresh = \"background\"` needs `stale_after` or `stale_while_revalidate`: \
             nothing ever goes stale otherwise",
        ));
    }
    let background = swr || background_mode == Some(true);
    if let (true, Some(r)) = (background, &model.receiver) {
        return Err(err(
            r.span(),
            "background refresh is not supported on methods: the refresh outlives the call and \
             cannot borrow `self` (memoize a free function taking the needed fields)",
        ));
    }
    Ok(background)
}

/// `lock`, `lock_ttl` and `lock_wait`.
fn check_lock(opts: &Options) -> syn::Result<LockMode> {
    let lock = match &opts.lock {
        None => LockMode::Local,
        Some(l) => match l.value().as_str() {
            "none" => LockMode::None,
            "local" => LockMode::Local,
            "distributed" => LockMode::Distributed,
            other => {
                return Err(err(
                    l.span(),
                    format!(
                        "`lock = \"{other}\"`: expected \"none\", \"local\" or \"distributed\""
                    ),
                ))
            }
        },
    };
    if opts.lock_ttl.is_some() && lock != LockMode::Distributed {
        return Err(err(
            Span::call_site(),
            "`lock_ttl` applies only with `lock = \"distributed\"`",
        ));
    }
    if opts.ttl_fn.is_some() && opts.stale_while_revalidate.is_some() {
        return Err(err(
            Span::call_site(),
            "`ttl_fn` chooses each value's hard ttl, which `stale_while_revalidate` widens by its \
             window: use `stale_after` with `refresh = \"background\"` and a `ttl_fn`",
        ));
    }
    if opts.lock_wait.is_some() && lock != LockMode::Distributed {
        return Err(err(
            Span::call_site(),
            "`lock_wait` applies only with `lock = \"distributed\"`",
        ));
    }
    Ok(lock)
}

/// `soft_timeout`, `hard_timeout`, `background_completion`: free functions only (the
/// computation outlives the call); a hard timeout's error needs a `Result`. Whether any is set.
fn check_timeouts(opts: &Options, model: &FnModel) -> syn::Result<bool> {
    let any = opts.soft_timeout.is_some() || opts.hard_timeout.is_some();
    if opts.background_completion.is_some() && !any {
        return Err(err(
            Span::call_site(),
            "`background_completion` applies only with `soft_timeout` or `hard_timeout`",
        ));
    }
    if let (true, Some(r)) = (any, &model.receiver) {
        return Err(err(
            r.span(),
            "factory timeouts are not supported on methods: the computation may outlive the \
             call and cannot borrow `self` (memoize a free function taking the needed fields)",
        ));
    }
    if opts.hard_timeout.is_some() && model.kind != Kind::Result {
        return Err(err(
            model.ret_ty.span(),
            "`hard_timeout` returns an error when it runs out without an old value: it needs a \
             function returning `Result` whose error type implements \
             `From<steadycache::FactoryTimeout>` (use `soft_timeout` alone otherwise)",
        ));
    }
    Ok(any)
}

/// `convert = expr` replaces the key arguments: not with `key`, `skip` or `key_self = true`.
fn check_convert(opts: &Options) -> syn::Result<()> {
    let Some(c) = &opts.convert else {
        return Ok(());
    };
    let clash = if opts.key.is_some() {
        Some("`key`")
    } else if opts.skip.is_some() {
        Some("`skip`")
    } else if opts.key_self == Some(true) {
        Some("`key_self`")
    } else {
        None
    };
    match clash {
        Some(other) => Err(err(
            c.span(),
            format!("`convert` is the whole key (the value hashed); {other} does not apply"),
        )),
        None => Ok(()),
    }
}

/// `#[rate_limit]` / `#[call_breaker]` under `#[cached]`: they move onto the inner body of
/// a free function (guarding the misses); a method's inner body is a closure, so there they
/// would guard the hits too. Their refusals are errors, which `negative_ttl` would store.
fn check_guards(opts: &Options, model: &FnModel) -> syn::Result<()> {
    let Some(g) = model.func.attrs.iter().find(|a| crate::guard::is_guard(a)) else {
        return Ok(());
    };
    if model.receiver.is_some() {
        return Err(err(
            g.span(),
            "under #[cached], #[rate_limit] and #[call_breaker] guard the computations of a \
             free function; on a method they would guard its hits too: put them on a free \
             function the method calls",
        ));
    }
    if opts.negative_ttl.is_some() && model.kind == Kind::Result {
        return Err(err(
            g.span(),
            "with `negative_ttl`, the refusals of #[rate_limit] / #[call_breaker] would be \
             cached as the function's errors: drop `negative_ttl` or the guard",
        ));
    }
    Ok(())
}

/// Whether `self` is in the key through the `key` template or `convert`.
pub(crate) fn key_uses_self(opts: &Options) -> bool {
    let in_template = opts.key.as_ref().is_some_and(|t| {
        template_pieces(&t.value()).is_ok_and(|pieces| {
            pieces.iter().any(|p| match p {
                Piece::Hole(inner) => hole_parts(inner).0.split('.').next() == Some("self"),
                Piece::Lit(_) => false,
            })
        })
    });
    let in_convert = opts
        .convert
        .as_ref()
        .is_some_and(|c| mentions_self(quote::quote!(#c)));
    in_template || in_convert
}

fn mentions_self(tokens: proc_macro2::TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == "self",
        proc_macro2::TokenTree::Group(g) => mentions_self(g.stream()),
        _ => false,
    })
}

/// A method says whether instances share entries: `key_self` (or `self` in the `key` template
/// or in `convert`) keys by instance, `key_self = false` shares. Silence used to share them.
fn check_self_in_key(opts: &Options, model: &FnModel) -> syn::Result<()> {
    let Some(r) = &model.receiver else {
        return Ok(());
    };
    if opts.key_self.is_none() && !key_uses_self(opts) {
        return Err(err(
            r.span(),
            "`self` is not in this method's key, so every instance would share its entries: \
             write `key_self` to key by `self` (which must be `Serialize`), use a field in the \
             `key` template (`key = \"user:{self.id}\"`) or in `convert`, or write \
             `key_self = false` to share the entries across instances",
        ));
    }
    Ok(())
}

/// A placeholder's path (`self.id`, `q.page`, `id`) and format spec (`:?`, or empty).
pub(crate) fn hole_parts(inner: &str) -> (&str, &str) {
    match inner.find(':') {
        Some(i) => (inner[..i].trim(), &inner[i..]),
        None => (inner.trim(), ""),
    }
}

/// `min_calls` and `max_hits` are counts from 1 to `u32::MAX`.
fn check_counts(opts: &Options) -> syn::Result<()> {
    for (name, lit) in [("min_calls", &opts.min_calls), ("max_hits", &opts.max_hits)] {
        if let Some(l) = lit {
            match l.base10_parse::<u32>() {
                Ok(n) if n >= 1 => {}
                _ => {
                    return Err(err(
                        l.span(),
                        format!("`{name}` is a count from 1 to 4294967295"),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// `early_refresh` is XFetch's beta: above 0, at most 100.
fn check_early_refresh(opts: &Options) -> syn::Result<()> {
    let Some(FloatLit(b)) = &opts.early_refresh else {
        return Ok(());
    };
    let v: f64 = b.base10_parse()?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(err(
            b.span(),
            "`early_refresh` is XFetch's beta: above 0.0, at most 100.0 (1.0 is the usual choice)",
        ));
    }
    Ok(())
}

/// `jitter` is a fraction from 0.0 to 0.9.
fn check_jitter(opts: &Options) -> syn::Result<Option<syn::LitFloat>> {
    let Some(FloatLit(j)) = &opts.jitter else {
        return Ok(None);
    };
    let v: f64 = j.base10_parse()?;
    if !(0.0..=0.9).contains(&v) {
        return Err(err(j.span(), "`jitter` is a fraction from 0.0 to 0.9"));
    }
    Ok(Some(j.clone()))
}

/// A piece of a key template.
pub(crate) enum Piece {
    /// Text as written (`{{` and `}}` already undone).
    Lit(String),
    /// A placeholder: what stood between the braces (`id`, `id:?`).
    Hole(String),
}

/// Split a key template into text and placeholders.
pub(crate) fn template_pieces(text: &str) -> Result<Vec<Piece>, &'static str> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => return Err("unclosed `{` in the key template"),
                    }
                }
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Hole(inner));
            }
            '}' => return Err("unmatched `}` in the key template (write `}}` for a brace)"),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// Whether a template value can contain this character (the engine escapes all others).
fn value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

/// `key = "..."`: excludes `skip`; every placeholder names an argument; at least one does when
/// the function has arguments. The text holds printable ASCII other than `#` and `%` (kept for
/// internal keys and escapes), and two placeholders are separated by at least one character a
/// value cannot contain (`:`, `/`, `|`, …): with the values escaped, two argument lists can
/// then never render the same key.
fn check_key_template(opts: &Options, tpl: &syn::LitStr, model: &FnModel) -> syn::Result<()> {
    if opts.skip.is_some() {
        return Err(err(
            tpl.span(),
            "`key` names the arguments it uses; `skip` does not apply",
        ));
    }
    let uses_an_argument = check_template(tpl, &arg_names(model), model.is_method(), "key")?;
    if !uses_an_argument && !model.args.is_empty() {
        return Err(err(
            tpl.span(),
            "the key template uses no argument: every call would share one entry",
        ));
    }
    Ok(())
}

fn arg_names(model: &FnModel) -> Vec<String> {
    model.args.iter().map(|a| a.ident.to_string()).collect()
}

/// The rules every template follows (`what`: `key` or `tag`) over a function with arguments
/// `args` (and `self` when `method`); whether it uses an argument.
pub(crate) fn check_template(
    tpl: &syn::LitStr,
    args: &[String],
    method: bool,
    what: &str,
) -> syn::Result<bool> {
    let pieces = template_pieces(&tpl.value()).map_err(|m| {
        err(
            tpl.span(),
            m.replace("the key template", &format!("the {what} template")),
        )
    })?;
    let mut uses_an_argument = false;
    let mut after_hole = false;
    for piece in &pieces {
        match piece {
            Piece::Lit(text) => {
                if let Some(bad) = text
                    .chars()
                    .find(|c| !c.is_ascii_graphic() || matches!(c, '#' | '%'))
                {
                    return Err(err(
                        tpl.span(),
                        format!(
                            "the {what} template's text may hold printable ASCII other than `#` and `%`, not {bad:?}"
                        ),
                    ));
                }
                after_hole = after_hole && text.chars().all(value_char);
            }
            Piece::Hole(inner) => {
                check_hole(tpl, inner, args, method, what)?;
                if after_hole {
                    return Err(err(
                        tpl.span(),
                        format!("separate the {what} template's placeholders by a character such as `:` or `/` (letters, digits and `-_.~` can be part of a value, so `{{a}}{{b}}` or `{{a}}-{{b}}` could render two calls to one {what})"),
                    ));
                }
                uses_an_argument = true;
                after_hole = true;
            }
        }
    }
    Ok(uses_an_argument)
}

/// A placeholder (`inner`, between its braces) names an argument, or a field path from one or
/// from `self` (`method`).
fn check_hole(
    tpl: &syn::LitStr,
    inner: &str,
    args: &[String],
    method: bool,
    what: &str,
) -> syn::Result<()> {
    let path = hole_parts(inner).0;
    let mut segments = path.split('.');
    let name = segments.next().unwrap_or("").trim();
    if name.is_empty() {
        return Err(err(
            tpl.span(),
            format!(
                "{what} template placeholders name an argument or a field of one: `{{id}}`, \
             `{{q.page}}`, `{{self.id}}`"
            ),
        ));
    }
    let is_self = name == "self" && method;
    if !is_self && !args.iter().any(|a| a == name) {
        return Err(err(
            tpl.span(),
            format!("{what} template uses `{{{path}}}` but the function has no argument `{name}`"),
        ));
    }
    let field =
        |s: &str| syn::parse_str::<syn::Ident>(s).is_ok() || s.chars().all(|c| c.is_ascii_digit());
    if is_self && path == "self" || !segments.all(|s| !s.is_empty() && field(s)) {
        return Err(err(
            tpl.span(),
            format!("`{{{path}}}`: a placeholder is an argument or a field path from one (`{{q.page}}`, `{{self.id}}`)"),
        ));
    }
    Ok(())
}
