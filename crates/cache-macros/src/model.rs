//! Stage 2: a model of the memoized function: its arguments and which of them form the key, the
//! receiver, the return shape, sync or async.
//!
//! The checks here are about the function alone, or about the options that name its arguments
//! (`skip`, `key_self`).

use crate::err;
use crate::options::Options;
use proc_macro2::{Span, TokenStream as TokenStream2};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

/// What the function returns, as far as caching is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any value: always stored.
    Plain,
    /// An `Option`: `None` is stored only with `negative_ttl`.
    Option,
    /// A `Result` (also through an alias such as `anyhow::Result<T>`): `Err` is stored only with
    /// `negative_ttl`.
    Result,
}

impl Kind {
    /// Classify a return type by the last segment of its path.
    fn of(ty: &Type) -> Kind {
        match last_segment(ty).map(|s| s.ident.to_string()) {
            Some(s) if s == "Result" => Kind::Result,
            Some(s) if s == "Option" => Kind::Option,
            _ => Kind::Plain,
        }
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

/// One named argument (the receiver is kept apart).
pub(crate) struct Arg {
    pub ident: syn::Ident,
    pub ty: Type,
    /// Hashed into the key (not in `skip(...)`).
    pub in_key: bool,
}

/// The function as the emitter sees it.
pub(crate) struct FnModel {
    /// The function as written (attributes, visibility, signature, body).
    pub func: ItemFn,
    /// `self`, `&self`, `&mut self`: a method in an impl block.
    pub receiver: Option<syn::Receiver>,
    /// The named arguments, in order.
    pub args: Vec<Arg>,
    /// `self` is part of the key (`key_self`).
    pub key_self: bool,
    /// The return type (`()` when none is written).
    pub ret_ty: Type,
    /// The return shape.
    pub kind: Kind,
    /// An `async fn`.
    pub is_async: bool,
}

impl FnModel {
    /// Model `item`, the function under the attribute.
    pub(crate) fn build(item: TokenStream2, opts: &Options) -> syn::Result<FnModel> {
        let func: ItemFn = syn::parse2(item).map_err(|e| {
            err(
                e.span(),
                "#[cached] goes on a function or a method (in an impl block)",
            )
        })?;
        check_signature(&func.sig, opts.key.is_some() || opts.convert.is_some())?;
        let (receiver, args) = arguments(&func.sig, &opts.skip_names())?;
        for s in opts.skip_names() {
            if !args.iter().any(|a| a.ident == s) {
                return Err(err(
                    opts.skip_span(&s),
                    format!("`skip({s})`: the function has no argument `{s}`"),
                ));
            }
        }
        if opts.key.is_none() && opts.convert.is_none() {
            check_no_hash_set(&args)?;
        }
        let key_self = opts.key_self.unwrap_or(false);
        if key_self && receiver.is_none() {
            return Err(err(
                Span::call_site(),
                "`key_self` needs a method taking `self`",
            ));
        }
        let ret_ty: Type = match &func.sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, t) => (**t).clone(),
        };
        if let Type::ImplTrait(t) = &ret_ty {
            return Err(err(
                t.span(),
                "#[cached] cannot store an `impl Trait` return value: name the type",
            ));
        }
        Ok(FnModel {
            kind: Kind::of(&ret_ty),
            is_async: func.sig.asyncness.is_some(),
            func,
            receiver,
            args,
            key_self,
            ret_ty,
        })
    }

    /// The function's name.
    pub(crate) fn name(&self) -> &syn::Ident {
        &self.func.sig.ident
    }

    /// A method (it takes `self`).
    pub(crate) fn is_method(&self) -> bool {
        self.receiver.is_some()
    }

    /// The arguments hashed into the key, in order (`self` aside).
    pub(crate) fn key_args(&self) -> impl Iterator<Item = &Arg> {
        self.args.iter().filter(|a| a.in_key)
    }
}

/// What no memoized function can be: const, variadic, generic over const parameters, or generic
/// over types without an explicit key (`explicit_key`: `key` or `convert`), or returning a type
/// that depends on its type parameters (each function keeps one typed store).
fn check_signature(sig: &syn::Signature, explicit_key: bool) -> syn::Result<()> {
    if sig.constness.is_some() {
        return Err(err(
            sig.constness.span(),
            "#[cached] cannot memoize a const fn",
        ));
    }
    if let Some(g) = sig.generics.type_params().next() {
        if !explicit_key {
            return Err(err(
                g.span(),
                "a generic function needs an explicit key: `key = \"…{arg}…\"` or \
                 `convert = expr` (a `Serialize` value built from the arguments, hashed as \
                 the key)",
            ));
        }
        if let ReturnType::Type(_, ty) = &sig.output {
            let names: Vec<String> = sig
                .generics
                .type_params()
                .map(|p| p.ident.to_string())
                .collect();
            if mentions(quote::quote!(#ty), &names) {
                return Err(err(
                    ty.span(),
                    "#[cached] cannot memoize a function whose return type depends on its type \
                     parameters: each function keeps one typed store (write a wrapper per type)",
                ));
            }
        }
    }
    if let Some(g) = sig.generics.const_params().next() {
        return Err(err(
            g.span(),
            "#[cached] cannot memoize a function with const generics",
        ));
    }
    if sig.variadic.is_some() {
        return Err(err(
            sig.span(),
            "#[cached] cannot memoize a variadic function",
        ));
    }
    Ok(())
}

/// No hashed argument's type names a `HashSet` (a path segment `HashSet`, or one ending in it
/// such as `FxHashSet` or `AHashSet`), at any depth (`Vec<HashSet<u32>>`): serde serializes a
/// set as a sequence, in its iteration order, which differs between equal sets, so equal calls
/// would not share an entry, and the args hash cannot sort a set (it cannot tell one from a
/// `Vec`). A syntactic check: a type alias or a struct holding a set goes unnoticed.
fn check_no_hash_set(args: &[Arg]) -> syn::Result<()> {
    struct Find<'a>(Option<&'a syn::Ident>);
    impl<'a> syn::visit::Visit<'a> for Find<'a> {
        fn visit_path_segment(&mut self, seg: &'a syn::PathSegment) {
            if self.0.is_none() && seg.ident.to_string().ends_with("HashSet") {
                self.0 = Some(&seg.ident);
            }
            syn::visit::visit_path_segment(self, seg);
        }
    }
    for arg in args.iter().filter(|a| a.in_key) {
        let mut find = Find(None);
        syn::visit::Visit::visit_type(&mut find, &arg.ty);
        if let Some(set) = find.0 {
            let name = &arg.ident;
            return Err(err(
                set.span(),
                format!(
                    "the type of `{name}` names `{set}`, and a set cannot be part of a key: it \
                     is hashed in its iteration order, which differs between equal sets, so \
                     equal calls would not share an entry. Pass a `BTreeSet` or a sorted `Vec` \
                     instead, hash one with `convert = …`, or leave `{name}` out with \
                     `skip({name})`"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `tokens` name any of `idents`.
fn mentions(tokens: TokenStream2, idents: &[String]) -> bool {
    tokens.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => idents.iter().any(|n| i == n),
        proc_macro2::TokenTree::Group(g) => mentions(g.stream(), idents),
        _ => false,
    })
}

/// The receiver and the named arguments; an argument is in the key unless `skip` names it.
fn arguments(
    sig: &syn::Signature,
    skip: &[String],
) -> syn::Result<(Option<syn::Receiver>, Vec<Arg>)> {
    let mut receiver = None;
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r.clone()),
            FnArg::Typed(pt) => {
                let ident = match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        pi.ident.clone()
                    }
                    other => {
                        return Err(err(
                            other.span(),
                            "#[cached] needs plain argument names (no patterns): destructure \
                             inside the body",
                        ))
                    }
                };
                let in_key = !skip.contains(&ident.to_string());
                args.push(Arg {
                    ident,
                    ty: (*pt.ty).clone(),
                    in_key,
                });
            }
        }
    }
    Ok((receiver, args))
}
