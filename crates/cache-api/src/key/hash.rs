//! The args hash ([`hash_args`]) and the in-process hash of an argument without serde
//! ([`hash_local`]); see the parent module for what a key is made of.

use super::canonical::Canonical;
use super::{direct, STACK};
use crate::error::{Error, Result};
use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// A bincode writer that feeds the streaming hasher (used when the arguments do not fit the stack
/// buffer). XXH3's streaming and one-shot forms agree on the same bytes, so both paths give the
/// same hash.
struct HashWriter<'a>(&'a mut Xxh3);

impl bincode::enc::write::Writer for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
        self.0.update(bytes);
        Ok(())
    }
}

/// The stable 128-bit hash of serde-serialized arguments.
///
/// Maps are canonical: the entries of every map in the arguments, at any depth, are hashed in
/// the order of their serialized bytes (key, then value), so two equal `HashMap`s hash equally
/// whatever their insertion order or hasher seed, in any process; a `BTreeMap` and a `HashMap`
/// of equal content hash equally too. Arguments without maps hash as their plain bincode
/// encoding, as they always did, and without allocating (a map is buffered, and allocates).
///
/// **Sets cannot be made canonical**: serde serializes a set as a sequence, which cannot be
/// told apart from a `Vec`, so a `HashSet` is hashed in its iteration order, which differs
/// between equal sets (each has a random seed of its own, and they differ across processes):
/// equal `HashSet`s give different keys. Pass a `BTreeSet` or a sorted `Vec` instead (or
/// `convert = …` one). Likewise a map whose key type serializes equal keys differently is not
/// made canonical.
///
/// ```
/// use steadycache_api::__private::hash_args;
/// let a = hash_args(&("EUR", "USD", 3u32)).unwrap();
/// assert_eq!(a, hash_args(&("EUR", "USD", 3u32)).unwrap());
/// assert_ne!(a, hash_args(&("USD", "EUR", 3u32)).unwrap());
/// ```
#[inline(always)]
pub fn hash_args<T: Serialize + ?Sized>(args: &T) -> Result<u128> {
    match direct::Direct::new().write(args) {
        Ok(bytes) => Ok(xxh3_128(bytes)),
        Err(direct::Fallback) => hash_args_general(args),
    }
}

/// The fast path's way out, kept out of its code.
#[cold]
#[inline(never)]
fn hash_args_general<T: Serialize + ?Sized>(args: &T) -> Result<u128> {
    hash_args_bincode(args)
}

/// [`hash_args`]'s general path, and what its fast path is checked against: bincode's serde
/// encoder, maps made canonical, into a stack buffer, streamed when longer (until the fast path,
/// every key was hashed so). Not a public API.
#[doc(hidden)]
#[inline]
pub fn hash_args_bincode<T: Serialize + ?Sized>(args: &T) -> Result<u128> {
    let mut buf = [0u8; STACK];
    match bincode::serde::encode_into_slice(Canonical(args), &mut buf, bincode::config::standard())
    {
        Ok(n) => Ok(xxh3_128(buf.get(..n).unwrap_or_default())),
        Err(_) => hash_args_streaming(args),
    }
}

#[cold]
fn hash_args_streaming<T: Serialize + ?Sized>(args: &T) -> Result<u128> {
    let mut h = Xxh3::new();
    bincode::serde::encode_into_writer(
        Canonical(args),
        HashWriter(&mut h),
        bincode::config::standard(),
    )
    .map_err(|e| Error::Codec {
        codec: "bincode",
        message: format!("arguments cannot be serialized for the key: {e}"),
    })?;
    Ok(h.digest128())
}

/// An argument without serde, in a key: the XXH3-128 digest of its [`std::hash::Hash`],
/// serialized in its place in the arguments (as a `u128`), so a function may mix serde
/// arguments (their bytes as ever) with arguments that are only `Hash`.
///
/// `Hash` is stable within one process, not across processes, builds or versions for every
/// type (`usize` is hashed at its width, and a type may change how it hashes), so a key with
/// such an argument is meaningful in this process only: it is marked
/// [`ArgsKey::in_process`](super::ArgsKey::in_process), and its entries never reach a store. 128 bits, like every key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalArg(pub u128);

impl Serialize for LocalArg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u128(self.0)
    }
}

/// The [`LocalArg`] of an argument: its `Hash` fed to XXH3-128 (from a stack buffer when it
/// writes at most `STACK` (64) bytes; hashed again, streamed, past that: the same hash either
/// way, no allocation).
#[inline]
pub fn hash_local<T: std::hash::Hash + ?Sized>(arg: &T) -> LocalArg {
    let mut h = LocalHasher {
        buf: [0; STACK],
        len: 0,
    };
    arg.hash(&mut h);
    match h.buf.get(..h.len) {
        Some(bytes) => LocalArg(xxh3_128(bytes)),
        None => hash_local_streaming(arg),
    }
}

#[cold]
fn hash_local_streaming<T: std::hash::Hash + ?Sized>(arg: &T) -> LocalArg {
    let mut h = Xxh3::new();
    arg.hash(&mut h);
    LocalArg(h.digest128())
}

/// The hasher of [`hash_local`]: bytes into a stack buffer; `len` past its end once they
/// overflow it (then the argument is hashed again, streamed).
struct LocalHasher {
    buf: [u8; STACK],
    len: usize,
}

impl std::hash::Hasher for LocalHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(room) = self.buf.get_mut(self.len..end) {
            room.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// Not the key's hash (that is [`hash_local`]'s 128 bits), and never read by it.
    fn finish(&self) -> u64 {
        self.buf.get(..self.len).map_or(0, |b| xxh3_128(b) as u64)
    }
}
