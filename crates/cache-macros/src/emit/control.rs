//! The per-call controls, described once in [`CONTROLS`] and emitted for each receiver (a free
//! function's handle `NameCache`, or associated functions `name_<control>` beside a method) and
//! each asyncness, so every memoized function gets the same set: `refresh`, `bypass`,
//! `call_with`, `call_with_origin`, `prime`, `get_cached`, `key` and `invalidate`. The rule of
//! twins is the one of `Cache` and `Memo`: a control that does the store's I/O (`prime`,
//! `get_cached`, `invalidate`) is async under its plain name and blocking as `name_sync`; a
//! control that runs the function (`refresh`, `bypass`, `call_with`, `call_with_origin`) has
//! the function's mode and its plain name.
//!
//! A control names one call: `refresh`, `bypass` and `call_with` give their options to that
//! call only, never to the memoized calls its body makes (`with_call_options` and its `once`
//! flag; `with_options` is the scope that reaches them).

use super::body::KeySource;
use super::{Names, ValueShape};
use crate::model::FnModel;
use crate::options::Options;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, ToTokens};

/// One control: its name (a method's is `name_` + it), its doc (`{f}` stands for the
/// function), what it does and its sync and async forms.
struct Control {
    name: &'static str,
    doc: &'static str,
    does: Does,
    forms: Forms,
}

/// What a control does with the one call it names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Does {
    /// Run the call inside a scope.
    Run(Scope),
    /// Use the store for the call's key, without running the function.
    Store(Store),
}

/// The scope a running control sets around its call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `CallOptions::refresh()` for this call alone (`with_call_options`).
    Refresh,
    /// `CallOptions::bypass()` for this call alone.
    Bypass,
    /// The caller's `CallOptions` (a first parameter) for this call alone.
    Options,
    /// Note where the value came from (`with_origin`).
    Origin,
}

/// What a control does in the store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    /// Store a value (the last parameter) as the call's result (`Memo::prime_key`, `_sync`).
    Prime,
    /// Read the call's cached value (`Memo::get_cached_key`, `_sync`).
    Peek,
    /// The call's key in the store (`Memo::key_for`).
    Key,
    /// Remove the call's entry (`Memo::invalidate_key`, `_sync`).
    Invalidate,
}

/// Which forms of a control exist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forms {
    /// One, `async` when the function is (it runs the function).
    AsTheFunction,
    /// An async form under the plain name and a blocking `_sync` twin (it does the store's
    /// I/O, whatever the function is).
    SyncAndAsync,
    /// A sync form only (no I/O).
    SyncOnly,
}

/// Every control, for free functions and methods alike.
const CONTROLS: &[Control] = &[
    Control {
        name: "refresh",
        doc: "Compute {f} now and store the result, whatever is cached (cachier's \
              `overwrite_cache`). This call only: the memoized calls its body makes are served \
              as usual.",
        does: Does::Run(Scope::Refresh),
        forms: Forms::AsTheFunction,
    },
    Control {
        name: "bypass",
        doc: "Run {f} without reading or writing the cache (cachier's `ignore_cache`). This call \
              only: the memoized calls its body makes are served as usual.",
        does: Does::Run(Scope::Bypass),
        forms: Forms::AsTheFunction,
    },
    Control {
        name: "call_with",
        doc: "Call {f} with these options (e.g. `CallOptions::max_age(d)`: an entry older than \
              `d` is recomputed). This call only: the memoized calls its body makes do not see \
              them.",
        does: Does::Run(Scope::Options),
        forms: Forms::AsTheFunction,
    },
    Control {
        name: "call_with_origin",
        doc: "Call {f}, and say where the value came from (a hit, a stale value, computed, …).",
        does: Does::Run(Scope::Origin),
        forms: Forms::AsTheFunction,
    },
    Control {
        name: "prime",
        doc: "Store the value (the last argument) as the result of this call of {f}, as if it \
              had just returned it (cached's `prime_cache`). Whether it was stored; an argument \
              that cannot be serialized is an error.",
        does: Does::Store(Store::Prime),
        forms: Forms::SyncAndAsync,
    },
    Control {
        name: "get_cached",
        doc: "The cached value of this call of {f}, fresh or stale, without computing it \
              (`None`: not cached, expired, or an argument that cannot be serialized).",
        does: Does::Store(Store::Peek),
        forms: Forms::SyncAndAsync,
    },
    Control {
        name: "key",
        doc: "The key under which one call of {f} is stored (`namespace:version:args`): for \
              inspecting the store (`redis-cli GET`, the backend's own tools). An error when an \
              argument cannot be serialized.",
        does: Does::Store(Store::Key),
        forms: Forms::SyncOnly,
    },
    Control {
        name: "invalidate",
        doc: "Remove the cached entry of one call of {f}.",
        does: Does::Store(Store::Invalidate),
        forms: Forms::SyncAndAsync,
    },
];

/// The controls of `model`: items of its handle's `impl` block (a free function), or
/// associated functions beside it (a method).
pub(crate) fn controls(
    opts: &Options,
    model: &FnModel,
    names: &Names,
    shape: &ValueShape,
) -> TokenStream2 {
    let emitter = Emitter {
        model,
        site: Site::of(opts, model, names),
        params: params(model),
        key: handle_key(opts, model),
        v_ty: &shape.v_ty,
        shape: shape.tokens(opts, model),
    };
    CONTROLS
        .iter()
        .flat_map(|c| {
            let forms = match c.forms {
                Forms::AsTheFunction => vec![model.is_async],
                Forms::SyncAndAsync => vec![false, true],
                Forms::SyncOnly => vec![false],
            };
            forms.into_iter().map(move |is_async| (c, is_async))
        })
        .map(|(c, is_async)| emitter.item(c, is_async))
        .collect()
}

/// What the controls of one function differ by: a free function's handle or a method.
struct Site {
    /// A method's name, before its controls' names (`name_refresh`); none on a handle.
    prefix: Option<syn::Ident>,
    /// `pub` on a handle, the method's visibility beside it.
    vis: TokenStream2,
    /// The first parameter of a control that runs the function: `&self,` on a handle, the
    /// method's receiver as written.
    runs_from: TokenStream2,
    /// The first parameter of a control that only uses the store: `&self,` on a handle; on a
    /// method, `&self,` when its key or tags read `self`, else nothing.
    stores_from: TokenStream2,
    /// The function's `&'static Memo`.
    memo: TokenStream2,
    /// The call of the function, with the controls' parameters.
    call: TokenStream2,
    /// The function, in docs.
    link: String,
}

impl Site {
    fn of(opts: &Options, model: &FnModel, names: &Names) -> Site {
        let name = model.name();
        let args = model.args.iter().map(|a| &a.ident);
        let Some(receiver) = &model.receiver else {
            return Site {
                prefix: None,
                vis: quote!(pub),
                runs_from: quote!(&self,),
                stores_from: quote!(&self,),
                memo: quote!(Self::memo()),
                call: quote!(#name(#(#args),*)),
                link: format!("[`{}`]", names.name_str),
            };
        };
        // Tags rendered from `self` need it too (the controls render a tagged function's tags).
        let tags_use_self = opts
            .tags
            .iter()
            .flat_map(|t| &t.0)
            .any(|tpl| tpl.value().contains("{self"));
        let reads_self = model.key_self || crate::validate::key_uses_self(opts) || tags_use_self;
        let handle_fn = &names.handle_fn;
        Site {
            prefix: Some(name.clone()),
            vis: model.func.vis.to_token_stream(),
            runs_from: quote!(#receiver,),
            stores_from: if reads_self { quote!(&self,) } else { quote!() },
            memo: quote!(Self::#handle_fn()),
            call: quote!(self.#name(#(#args),*)),
            link: format!("[`Self::{}`]", names.name_str),
        }
    }

    /// The name of a form of the control `name`: `name_sync` for the blocking twin.
    fn ident(&self, name: &str, blocking_twin: bool) -> syn::Ident {
        let name = if blocking_twin {
            format_ident!("{}_sync", name)
        } else {
            format_ident!("{}", name)
        };
        match &self.prefix {
            Some(method) => format_ident!("{}_{}", method, name),
            None => name,
        }
    }
}

/// A scope function's `name`, or its async twin `name_async` (`with_call_options_async`).
fn twin_name(name: &str, is_async: bool) -> syn::Ident {
    if is_async {
        format_ident!("{}_async", name)
    } else {
        format_ident!("{}", name)
    }
}

/// Emits the forms of each control for one function.
struct Emitter<'a> {
    model: &'a FnModel,
    site: Site,
    /// `arg: Type` for every argument, skipped ones included (a control mirrors the function).
    params: Vec<TokenStream2>,
    /// Binds `__steadycache_key` (with `?` on a key that cannot be serialized).
    key: TokenStream2,
    /// The stored value type.
    v_ty: &'a TokenStream2,
    /// The function's `Shape` value.
    shape: TokenStream2,
}

impl Emitter<'_> {
    /// The sync (`is_async` false) or async form of `c`.
    fn item(&self, c: &Control, is_async: bool) -> TokenStream2 {
        let twin = !is_async && c.forms == Forms::SyncAndAsync;
        let ident = self.site.ident(c.name, twin);
        let doc = if twin {
            let plain = self.site.ident(c.name, false);
            format!(
                "Blocking twin of [`Self::{plain}`] (on the library's runtime: works inside and \
                 outside tokio)."
            )
        } else {
            c.doc.replace("{f}", &self.site.link)
        };
        let sig = &self.model.func.sig;
        let (gen, wh) = (&sig.generics, &sig.generics.where_clause);
        let (vis, params, v_ty) = (&self.site.vis, &self.params, self.v_ty);
        let asyncness = is_async.then(|| quote!(async));
        let first = match c.does {
            Does::Run(_) => &self.site.runs_from,
            Does::Store(_) => &self.site.stores_from,
        };
        let options = (c.does == Does::Run(Scope::Options))
            .then(|| quote!(__steadycache_options: ::steadycache::CallOptions,));
        let value =
            (c.does == Does::Store(Store::Prime)).then(|| quote!(__steadycache_value: #v_ty,));
        let (ret, body) = match c.does {
            Does::Run(scope) => self.run(scope, is_async),
            Does::Store(action) => self.store(action, is_async),
        };
        quote! {
            #[doc = #doc]
            #[allow(dead_code, unused_variables, clippy::too_many_arguments)]
            #vis #asyncness fn #ident #gen(#first #options #(#params,)* #value) -> #ret #wh {
                #body
            }
        }
    }

    /// The return type and body of a control that runs the function inside the scope it sets:
    /// `with_call_options(opts, || f(..))` (the options reach this call only), or
    /// `with_origin(|| f(..))`; their `_async` twins take the call's future.
    fn run(&self, scope: Scope, is_async: bool) -> (TokenStream2, TokenStream2) {
        let (call, ret) = (&self.site.call, &self.model.ret_ty);
        let opts = quote!(::steadycache::CallOptions);
        let (path, name, options) = match scope {
            Scope::Refresh => (
                quote!(::steadycache::__private),
                "with_call_options",
                quote!(#opts::refresh(),),
            ),
            Scope::Bypass => (
                quote!(::steadycache::__private),
                "with_call_options",
                quote!(#opts::bypass(),),
            ),
            Scope::Options => (
                quote!(::steadycache::__private),
                "with_call_options",
                quote!(__steadycache_options,),
            ),
            Scope::Origin => (quote!(::steadycache), "with_origin", quote!()),
        };
        let scoped = twin_name(name, is_async);
        let body = if is_async {
            quote!(#path::#scoped(#options #call).await)
        } else {
            quote!(#path::#scoped(#options || #call))
        };
        let ret = match scope {
            Scope::Origin => quote!((#ret, ::steadycache::Origin)),
            _ => quote!(#ret),
        };
        (ret, body)
    }

    /// The return type and body of a control that uses the store for the call's key, without
    /// running the function.
    fn store(&self, action: Store, is_async: bool) -> (TokenStream2, TokenStream2) {
        let (memo, key, shape, v_ty) = (&self.site.memo, &self.key, &self.shape, self.v_ty);
        // The `Memo`'s I/O in the control's mode: `name` async, `name_sync` blocking.
        let engine = |name: &str, args: TokenStream2| {
            let method = if is_async {
                format_ident!("{}", name)
            } else {
                format_ident!("{}_sync", name)
            };
            let wait = is_async.then(|| quote!(.await));
            quote!(__steadycache_memo.#method(#args) #wait)
        };
        let ok = |value: TokenStream2| quote!(::core::result::Result::Ok(#value));
        let flag = quote!(::steadycache::Result<bool>);
        let (ret, tail) = match action {
            Store::Prime => {
                let args = quote!(__steadycache_key, #shape, &__steadycache_value);
                (flag, ok(engine("prime_key", args)))
            }
            Store::Key => (
                quote!(::steadycache::Result<::std::string::String>),
                ok(quote!(__steadycache_memo.key_for(&__steadycache_key))),
            ),
            Store::Invalidate => (flag, engine("invalidate_key", quote!(__steadycache_key))),
            // The key's `?` needs a `Result` around it: `None` on a key error.
            Store::Peek => {
                let found = ok(engine("get_cached_key", quote!(__steadycache_key)));
                let ty = quote!(::steadycache::Result<::core::option::Option<#v_ty>>);
                let found = if is_async {
                    quote!(async { #key #found }.await)
                } else {
                    quote!((|| -> #ty { #key #found })())
                };
                let body = quote! {
                    let __steadycache_memo = #memo;
                    let __steadycache_found: #ty = #found;
                    __steadycache_found.ok().flatten()
                };
                return (quote!(::core::option::Option<#v_ty>), body);
            }
        };
        let body = quote! {
            let __steadycache_memo = #memo;
            #key
            #tail
        };
        (ret, body)
    }
}

/// `arg: Type` for every argument, skipped ones included.
fn params(model: &FnModel) -> Vec<TokenStream2> {
    model
        .args
        .iter()
        .map(|a| {
            let (i, t) = (&a.ident, &a.ty);
            quote!(#i: #t)
        })
        .collect()
}

/// `let __steadycache_key: ArgsKey = ..;` in a control, where a key that cannot be serialized
/// is an error (`?`). A tagged function's controls judge and stamp values by its tags.
fn handle_key(opts: &Options, model: &FnModel) -> TokenStream2 {
    let key = match KeySource::of(opts, model) {
        KeySource::Text(render) => quote! {
            #render
            let __steadycache_key = ::steadycache::__private::ArgsKey::text(&__steadycache_text);
        },
        KeySource::Hashed {
            bind,
            hashed,
            local,
        } => quote! {
            #bind
            let __steadycache_key = ::steadycache::__private::ArgsKey::hashed(
                ::steadycache::__private::hash_args(#hashed)?,
            )
            .in_process(#local);
        },
    };
    let Some(tags) = &opts.tags else {
        return key;
    };
    let render = super::render_tags(&tags.0);
    quote! {
        #key
        #render
        let __steadycache_key = __steadycache_key.with_tags(&__steadycache_tags);
    }
}
