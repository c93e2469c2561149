//! What `#[cached]` uses to choose, per concrete type, between serde and the in-memory-only
//! forms of values and key arguments (issue 25, item 1). Not a public API (re-exported by
//! `__private`).
//!
//! Autoref-based specialization (dtolnay's): `(&&Probe).method()` resolves to the impl on
//! `&Probe<T>` when its bounds hold (serde), else, one auto-deref later, to the one on
//! `Probe<T>` (the fallback). The choice is made at compile time, for the concrete types at the
//! expansion site: a serde type keeps its bytes exactly (keys and stored entries unchanged).
//! A generic function makes its key with `convert` or `key` and returns a concrete type; a
//! method's `self` (`key_self`) is probed like any argument.

use std::marker::PhantomData;
use steadycache_api::__private::{hash_local, LocalArg};
use steadycache_api::ValueBytes;

/// Probe of a value type: its [`ValueBytes`], serde when it has it, else opaque.
pub struct ValueProbe<V>(PhantomData<fn() -> V>);
impl<V> ValueProbe<V> {
    /// A probe.
    pub fn new() -> Self {
        ValueProbe(PhantomData)
    }
}
impl<V> Default for ValueProbe<V> {
    fn default() -> Self {
        Self::new()
    }
}
/// Chosen when `V` has serde.
pub trait ValueViaSerde<V> {
    /// The values' bytes.
    fn value_bytes(&self) -> ValueBytes<V>;
}
impl<V: serde::Serialize + serde::de::DeserializeOwned + 'static> ValueViaSerde<V>
    for &ValueProbe<V>
{
    #[inline(always)]
    fn value_bytes(&self) -> ValueBytes<V> {
        ValueBytes::serde()
    }
}
/// Chosen otherwise: kept in memory only.
pub trait ValueOpaque<V> {
    /// The values' bytes: none.
    fn value_bytes(&self) -> ValueBytes<V>;
}
impl<V> ValueOpaque<V> for ValueProbe<V> {
    #[inline(always)]
    fn value_bytes(&self) -> ValueBytes<V> {
        ValueBytes::opaque()
    }
}

/// Probe of a key argument: its serde bytes when it has serde (the key is what it always
/// was), else the XXH3-128 of its `Hash` ([`LocalArg`], a key for this process only).
pub struct KeyProbe<'a, T: ?Sized>(pub &'a T);
/// Chosen when the argument has serde.
pub trait KeyViaSerde<'a, T: ?Sized> {
    /// What is serialized in the argument's place.
    fn key_arg(&self) -> &'a T;
}
impl<'a, T: serde::Serialize + ?Sized> KeyViaSerde<'a, T> for &KeyProbe<'a, T> {
    #[inline(always)]
    fn key_arg(&self) -> &'a T {
        self.0
    }
}
/// Chosen when the argument is `Hash` without serde.
pub trait KeyViaHash<'a, T: ?Sized> {
    /// What is serialized in the argument's place.
    fn key_arg(&self) -> LocalArg;
}
impl<'a, T: std::hash::Hash + ?Sized> KeyViaHash<'a, T> for KeyProbe<'a, T> {
    #[inline(always)]
    fn key_arg(&self) -> LocalArg {
        hash_local(self.0)
    }
}

/// What a `KeyProbe` puts in an argument's place: whether it makes the key meaningful in this
/// process only (a [`LocalArg`]).
pub trait KeyPiece {
    /// Whether the key is meaningful in this process only.
    fn is_local(&self) -> bool;
}
impl<T: serde::Serialize + ?Sized> KeyPiece for &T {
    #[inline(always)]
    fn is_local(&self) -> bool {
        false
    }
}
impl KeyPiece for LocalArg {
    #[inline(always)]
    fn is_local(&self) -> bool {
        true
    }
}
