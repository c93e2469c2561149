//! [`ValueBytes`]: how a memoized function's values become bytes for a store, and back; or
//! that they cannot (values without serde, kept in process only).
//!
//! The engine itself needs only `Clone + Send + Sync + 'static` of a value: a memory cache
//! keeps values typed, never serialized. The bytes are needed where a value leaves the process
//! (a store: files, SQLite, Redis, MongoDB, S3, an L1 over one) and to weigh it against the
//! cache's byte budget. `#[cached]` picks the form per function at compile time, by
//! autoref-based specialization on the value type (`ValueProbe` in the facade's `__private`):
//! [`ValueBytes::serde`] when the value is `Serialize + DeserializeOwned` (today's bytes,
//! unchanged), else [`ValueBytes::opaque`].
//!
//! # On a store
//!
//! An opaque memo, or a call whose key holds an argument hashed by its `Hash`
//! ([`ArgsKey::in_process`](crate::__private::ArgsKey::in_process)), is cached only where its
//! values stay in this process: a memory cache (`Cache::memory()`, `mem://`, the default cache
//! unless configured otherwise). On a cache whose memoized values go to a store (files,
//! SQLite, Redis, MongoDB, S3, or an L1 over one) it is refused at its first use: logged once
//! as an error, then every call runs the function, uncached, and gets its result (never a
//! panic, never half-cached: not in an L1 the store and the other processes know nothing of).
//! `prime` stores nothing and `get_cached` finds nothing there. (Keeping the values in a
//! private memory tier instead was rejected: the cache's invalidations, clears, tags and bus
//! would not reach it, so it would serve what the cache says is gone.)

use crate::codec::{byte_vec_size, encoded_size, Codec};
use crate::error::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};

/// How a memoized function's values are encoded for a store and weighed in process.
pub struct ValueBytes<V> {
    encode: fn(&Codec, &V) -> Result<Vec<u8>>,
    decode: fn(&Codec, &[u8]) -> Result<V>,
    size: fn(&V) -> u64,
    opaque: bool,
}

impl<V> Clone for ValueBytes<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ValueBytes<V> {}

impl<V> std::fmt::Debug for ValueBytes<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.opaque {
            "ValueBytes::opaque"
        } else {
            "ValueBytes::serde"
        })
    }
}

impl<V: Serialize + DeserializeOwned + 'static> ValueBytes<V> {
    /// Values encoded by the cache's [`Codec`] (serde), weighed by their bincode size. (A
    /// `Vec<u8>` in the bincode format goes through as one slice, with the same bytes.)
    pub fn serde() -> Self {
        ValueBytes {
            encode: |codec, v| codec.encode_value(v),
            decode: |codec, body| codec.decode_value(body),
            size: |v| byte_vec_size(v).unwrap_or_else(|| encoded_size(v)),
            opaque: false,
        }
    }
}

impl<V> ValueBytes<V> {
    /// Values without serde: kept typed in process only. Encoding or decoding one is an
    /// [`Error::Codec`] (never reached through a [`Memo`](crate::Memo), which refuses such a
    /// function on a store at its first use); its serialized size is unknown, so it weighs
    /// `size_of::<V>()` plus the tier's fixed overhead (what it owns behind pointers, e.g. an
    /// `Arc`'s target, is not counted).
    pub fn opaque() -> Self {
        ValueBytes {
            encode: |_, _| Err(opaque_error::<V>()),
            decode: |_, _| Err(opaque_error::<V>()),
            size: |_| 0,
            opaque: true,
        }
    }

    /// Whether the values have no bytes (kept in process only).
    pub fn is_opaque(&self) -> bool {
        self.opaque
    }

    /// `value` encoded by `codec`.
    pub(crate) fn encode(&self, codec: &Codec, value: &V) -> Result<Vec<u8>> {
        (self.encode)(codec, value)
    }

    /// A value decoded by `codec` from `body`.
    pub(crate) fn decode(&self, codec: &Codec, body: &[u8]) -> Result<V> {
        (self.decode)(codec, body)
    }

    /// The size of `value`'s bincode encoding (0 for an opaque value).
    pub(crate) fn size(&self, value: &V) -> u64 {
        (self.size)(value)
    }
}

/// Log, as an error, that the memo `namespace` runs uncached on a store: its value type `V`
/// has no serde (`opaque`), or an argument of its key went by its `Hash`.
#[cold]
pub(crate) fn log_refusal<V>(namespace: &str, opaque: bool) {
    let what = if opaque {
        format!(
            "its value type `{}` does not implement `Serialize` + `DeserializeOwned`",
            std::any::type_name::<V>()
        )
    } else {
        "an argument of its key has no `Serialize` (hashed by its `Hash`, meaningful in this \
         process only)"
            .to_owned()
    };
    tracing::error!(
        namespace = %namespace,
        "steadycache: cannot cache this function in a store: {what}; it runs uncached. \
         Cache it in memory (`Cache::memory()`, `mem://`), or derive serde for it"
    );
}

fn opaque_error<V>() -> Error {
    Error::Codec {
        codec: "none",
        message: format!(
            "`{}` does not implement `Serialize` + `DeserializeOwned`: it can be cached in \
             memory only",
            std::any::type_name::<V>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_values_keep_their_bytes_and_opaque_ones_refuse() {
        let codec = Codec::bincode();
        let serde = ValueBytes::<(u32, String)>::serde();
        let v = (7u32, "x".to_owned());
        let bytes = serde.encode(&codec, &v).unwrap_or_default();
        assert_eq!(Some(bytes.clone()), codec.encode(&v).ok());
        assert_eq!(serde.decode(&codec, &bytes).ok(), Some(v.clone()));
        assert_eq!(serde.size(&v), bytes.len() as u64);
        struct NoSerde;
        let opaque = ValueBytes::<NoSerde>::opaque();
        assert!(opaque.is_opaque() && !serde.is_opaque());
        assert!(opaque.encode(&codec, &NoSerde).is_err());
        assert!(opaque.decode(&codec, &[]).is_err());
        assert_eq!(opaque.size(&NoSerde), 0);
    }

    /// A `Vec<u8>` value is written and read as one slice with exactly serde's bytes (every
    /// length prefix size: 1, 3 and 5 bytes), and bytes that are not one such vector get serde's
    /// answer (cut short, trailing bytes); JSON is untouched.
    #[test]
    fn byte_vectors_keep_serdes_bytes() {
        let codec = Codec::bincode();
        let fast = ValueBytes::<Vec<u8>>::serde();
        for len in [0, 1, 250, 251, 252, 1024, 65_535, 65_536, 70_000] {
            let v: Vec<u8> = (0..len).map(|_| fastrand::u8(..)).collect();
            let bytes = fast.encode(&codec, &v).unwrap_or_default();
            assert_eq!(bytes, codec.encode(&v).unwrap_or_default(), "len {len}");
            assert_eq!(fast.size(&v), encoded_size(&v));
            assert_eq!(fast.decode(&codec, &bytes).ok(), Some(v.clone()));
            for cut in 1..6 {
                let short = &bytes[..bytes.len().saturating_sub(cut)];
                let serde: Result<Vec<u8>> = codec.decode(short);
                assert_eq!(fast.decode(&codec, short).ok(), serde.ok(), "cut {cut}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(fast.decode(&codec, &long).is_err(), "trailing bytes");
            let json = Codec::json();
            let text = fast.encode(&json, &v).unwrap_or_default();
            assert_eq!(text, json.encode(&v).unwrap_or_default());
            assert_eq!(fast.decode(&json, &text).ok(), Some(v));
        }
    }
}
