//! Codecs: serde values to payload bytes and back.
//!
//! A [`Codec`] is a small value, not a trait object: serde's generic methods cannot live behind
//! `dyn`, and a closed set keeps every process able to read what another wrote (the codec id is
//! stored in each envelope). Custom byte transforms (compression, encryption) belong in
//! [`CacheManager::before_save`](crate::CacheManager::before_save) /
//! [`after_load`](crate::CacheManager::after_load).

use crate::envelope::Entry;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use serde::{de::DeserializeOwned, Serialize};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;
/// The shortest signing key [`Codec::signed`] accepts, in bytes.
pub const MIN_SIGNING_KEY: usize = 16;
const SIGNED_BIT: u8 = 0x80;

/// The serialization format of a codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// bincode 2 with its standard configuration (varint integers, little endian). Compact and
    /// fast; the default.
    Bincode,
    /// JSON (serde_json): readable with `redis-cli GET`, and by programs in other languages.
    Json,
}

impl Format {
    fn id(self) -> u8 {
        match self {
            Format::Bincode => 1,
            Format::Json => 2,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Format::Bincode => "bincode",
            Format::Json => "json",
        }
    }
}

/// Serializes values into payload bytes; optionally signs every entry with HMAC-SHA256.
///
/// [`encode`](Codec::encode) and [`decode`](Codec::decode) are the format alone. A signed codec
/// signs *entries*, not bare payloads: [`seal`](Codec::seal) prepends a tag that covers the key
/// the entry is stored under, its header (format version, codec, flags, key hash, created,
/// stale and expiry times) and its payload, and [`open`](Codec::open) checks it before anything
/// is decoded. So an entry signed for one key cannot be moved to another, made never to expire,
/// replayed with older times, or have its negative flag flipped.
///
/// ```
/// use steadycache_api::{Codec, Entry};
/// let codec = Codec::json().signed(b"a signing key of 16+ bytes").unwrap();
/// let payload = codec.encode(&vec![1u32, 2, 3]).unwrap();
/// let mut entry = Entry::new(payload, codec.id(), Entry::key_hash_of("ns:v:k"));
/// (entry.created_at, entry.stale_at, entry.expires_at) = (1, 2, 3);
/// codec.seal("ns:v:k", &mut entry);
/// assert_eq!(codec.decode::<Vec<u32>>(codec.open("ns:v:k", &entry).unwrap()).unwrap(), vec![1, 2, 3]);
/// // Under another key, or with an edited header, it does not open.
/// assert!(codec.open("ns:v:other", &entry).is_err());
/// entry.expires_at = u64::MAX;
/// assert!(codec.open("ns:v:k", &entry).is_err());
/// // A short key is refused.
/// assert!(Codec::json().signed(b"short").is_err());
/// ```
#[derive(Clone)]
pub struct Codec {
    format: Format,
    key: Option<Arc<[u8]>>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("format", &self.format)
            .field("signed", &self.key.is_some())
            .finish()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::bincode()
    }
}

impl Codec {
    /// bincode 2 (the default).
    pub fn bincode() -> Self {
        Codec {
            format: Format::Bincode,
            key: None,
        }
    }

    /// JSON.
    pub fn json() -> Self {
        Codec {
            format: Format::Json,
            key: None,
        }
    }

    /// The same codec with an HMAC-SHA256 tag on each entry (see the type's docs). Entries whose
    /// tag does not match (tampered, moved, written without the key or with another key) are
    /// rejected before they are deserialized. A key shorter than [`MIN_SIGNING_KEY`] bytes is
    /// an [`Error::Config`]: a short key can be guessed.
    pub fn signed(mut self, key: impl AsRef<[u8]>) -> Result<Self> {
        let key = key.as_ref();
        if key.len() < MIN_SIGNING_KEY {
            return Err(Error::Config(format!(
                "a signing key must be at least {MIN_SIGNING_KEY} bytes (got {}); use a random secret",
                key.len()
            )));
        }
        self.key = Some(Arc::from(key));
        Ok(self)
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The id stored in each envelope: the format id, with the high bit set when signed.
    pub fn id(&self) -> u8 {
        self.format.id() | if self.key.is_some() { SIGNED_BIT } else { 0 }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        self.format.name()
    }

    fn mac(&self, key: &[u8]) -> Result<HmacSha256> {
        <HmacSha256 as Mac>::new_from_slice(key).map_err(|e| Error::Codec {
            codec: "hmac",
            message: e.to_string(),
        })
    }

    /// Serialize `value` (the format alone: signing is [`seal`](Codec::seal)'s).
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let err = |message: String| Error::Codec {
            codec: self.name(),
            message,
        };
        match self.format {
            Format::Bincode => bincode::serde::encode_to_vec(value, bincode::config::standard())
                .map_err(|e| err(e.to_string())),
            Format::Json => serde_json::to_vec(value).map_err(|e| err(e.to_string())),
        }
    }

    /// The tag of an entry under `key`: over the key (with its length), the header and `body`.
    fn tag(&self, signing_key: &[u8], key: &str, entry: &Entry, body: &[u8]) -> Result<HmacSha256> {
        let mut mac = self.mac(signing_key)?;
        mac.update(&(key.len() as u64).to_le_bytes());
        mac.update(key.as_bytes());
        mac.update(&entry.header_bytes());
        mac.update(body);
        Ok(mac)
    }

    /// Sign `entry`, about to be stored under `key`: its payload becomes the tag followed by the
    /// encoded value. Nothing to do for an unsigned codec.
    pub fn seal(&self, key: &str, entry: &mut Entry) {
        let Some(signing_key) = &self.key else {
            return;
        };
        // `mac` fails only for key lengths HMAC refuses, and HMAC takes any length.
        if let Ok(mac) = self.tag(signing_key, key, entry, &entry.payload) {
            let mut payload = mac.finalize().into_bytes().to_vec();
            payload.extend_from_slice(&entry.payload);
            entry.payload = payload;
        }
    }

    /// The encoded value of `entry`, read under `key`, once its tag is checked (a signed codec);
    /// [`Error::Corrupt`] when it does not match: tampered, moved from another key, or written
    /// with another signing key or none.
    pub fn open<'a>(&self, key: &str, entry: &'a Entry) -> Result<&'a [u8]> {
        let Some(signing_key) = &self.key else {
            return Ok(&entry.payload);
        };
        if entry.payload.len() < TAG_LEN {
            return Err(Error::Corrupt("signed payload shorter than its tag".into()));
        }
        let (tag, body) = entry.payload.split_at(TAG_LEN);
        self.tag(signing_key, key, entry, body)?
            .verify_slice(tag)
            .map_err(|_| Error::Corrupt("signature mismatch".into()))?;
        Ok(body)
    }

    /// Deserialize a `T` from encoded bytes (the format alone: see [`open`](Codec::open)); bytes
    /// of another format or trailing garbage are errors. Bounded by the input: no claim in the
    /// bytes can make it allocate more than 64 bytes per byte of it (at least 64 KiB).
    pub fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T> {
        let err = |message: String| Error::Codec {
            codec: self.name(),
            message,
        };
        match self.format {
            Format::Bincode => {
                let (v, used) = bincode_decode::<T>(body).map_err(|e| err(e.to_string()))?;
                if used != body.len() {
                    return Err(err(format!("{} trailing bytes", body.len() - used)));
                }
                Ok(v)
            }
            Format::Json => serde_json::from_slice(body).map_err(|e| err(e.to_string())),
        }
    }
}

impl Codec {
    /// [`encode`](Codec::encode) for a memoized value: the same bytes, but a `Vec<u8>` in the
    /// bincode format is written as one slice (see [`byte_vec`]) where serde writes it a byte
    /// at a time (1.2 µs of a 1 KiB value's 7.8 µs file hit).
    pub(crate) fn encode_value<V: Serialize + 'static>(&self, value: &V) -> Result<Vec<u8>> {
        match (self.format, byte_vec::of(value)) {
            (Format::Bincode, Some(b)) => Ok(byte_vec::encode(b)),
            _ => self.encode(value),
        }
    }

    /// [`decode`](Codec::decode) for a memoized value, a `Vec<u8>` read as one slice; bytes
    /// that are not exactly one such vector get serde's answer, errors included.
    pub(crate) fn decode_value<V: DeserializeOwned + 'static>(&self, body: &[u8]) -> Result<V> {
        let fast = match self.format {
            Format::Bincode => byte_vec::decode::<V>(body),
            Format::Json => None,
        };
        match fast {
            Some(v) => Ok(v),
            None => self.decode(body),
        }
    }
}

/// A bincode writer that counts the bytes it is given (sizes without allocating).
pub(crate) struct SizeWriter(pub(crate) u64);

impl bincode::enc::write::Writer for SizeWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0 = self.0.saturating_add(bytes.len() as u64);
        Ok(())
    }
}

/// The size of `value`'s bincode encoding, counted without allocating.
pub(crate) fn encoded_size<V: Serialize + ?Sized>(value: &V) -> u64 {
    let mut w = SizeWriter(0);
    let _ = bincode::serde::encode_into_writer(value, &mut w, bincode::config::standard());
    w.0
}

/// The size of `v`'s bincode encoding when it is a `Vec<u8>` (counted without encoding it).
pub(crate) fn byte_vec_size<V: 'static>(v: &V) -> Option<u64> {
    let b = byte_vec::of(v)?;
    let mut w = SizeWriter(0);
    let _ = bincode::encode_into_writer(b.len() as u64, &mut w, bincode::config::standard());
    Some(w.0.saturating_add(b.len() as u64))
}

/// `Vec<u8>` values in the bincode format as one slice: bincode's standard configuration
/// writes a sequence as its length (a varint, through bincode itself) followed by its
/// elements, and a `u8` as itself, so the length and the bytes are the encoding serde would
/// have written byte by byte.
mod byte_vec {
    use std::any::Any;

    /// `v` as bytes, when it is a `Vec<u8>`.
    pub(super) fn of<V: 'static>(v: &V) -> Option<&Vec<u8>> {
        (v as &dyn Any).downcast_ref::<Vec<u8>>()
    }

    /// The encoding of `b`: its length, then itself.
    pub(super) fn encode(b: &[u8]) -> Vec<u8> {
        let mut out =
            bincode::encode_to_vec(b.len() as u64, bincode::config::standard()).unwrap_or_default();
        out.extend_from_slice(b);
        out
    }

    /// A `V` decoded from `body`, when `V` is `Vec<u8>` and `body` is exactly one length and
    /// that many bytes (`None` otherwise).
    pub(super) fn decode<V: 'static>(body: &[u8]) -> Option<V> {
        if std::any::TypeId::of::<V>() != std::any::TypeId::of::<Vec<u8>>() {
            return None;
        }
        let (len, used): (u64, usize) =
            bincode::decode_from_slice(body, bincode::config::standard()).ok()?;
        let rest = body.get(used..)?;
        if rest.len() as u64 != len {
            return None;
        }
        let mut slot = Some(rest.to_vec());
        (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<V>>()
            .and_then(Option::take)
    }
}

/// The most a bincode decode of `len` input bytes may claim (its allocation limit): 64 bytes of
/// memory per input byte, and at least 64 KiB. A value's memory is rarely more than a few times
/// its encoding (a `Vec<String>` of empty strings, the worst common case, is 24 to 1); a
/// crafted length prefix claiming gigabytes in a few bytes is refused instead of allocated.
pub(crate) fn decode_limit(len: usize) -> u64 {
    (len as u64).saturating_mul(64).max(64 << 10)
}

/// bincode's limit is a type parameter: decode with the smallest power of two at or above
/// [`decode_limit`] (at most 4 GiB, the envelope's own bound on a payload).
fn bincode_decode<T: DeserializeOwned>(
    body: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    use bincode::config::standard;
    use bincode::serde::decode_from_slice as d;
    match decode_limit(body.len())
        .next_power_of_two()
        .trailing_zeros()
    {
        0..=16 => d(body, standard().with_limit::<{ 1 << 16 }>()),
        17..=18 => d(body, standard().with_limit::<{ 1 << 18 }>()),
        19..=20 => d(body, standard().with_limit::<{ 1 << 20 }>()),
        21..=22 => d(body, standard().with_limit::<{ 1 << 22 }>()),
        23..=24 => d(body, standard().with_limit::<{ 1 << 24 }>()),
        25..=26 => d(body, standard().with_limit::<{ 1 << 26 }>()),
        27..=28 => d(body, standard().with_limit::<{ 1 << 28 }>()),
        29..=30 => d(body, standard().with_limit::<{ 1 << 30 }>()),
        _ => d(body, standard().with_limit::<{ 1 << 32 }>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNING: &[u8] = b"sixteen bytes at least";

    #[test]
    fn round_trips_and_rejects_foreign_bytes() {
        for c in [Codec::bincode(), Codec::json()] {
            let b = c.encode(&("x".to_string(), 7u64)).unwrap();
            assert_eq!(c.decode::<(String, u64)>(&b).unwrap(), ("x".into(), 7));
            assert!(c.decode::<(String, u64)>(&b[..b.len() - 1]).is_err());
        }
        let json = Codec::json().encode(&"a longer text").unwrap();
        assert!(
            Codec::bincode().decode::<u64>(&json).is_err(),
            "trailing bytes"
        );
        assert!(Codec::json().decode::<u64>(&json).is_err(), "another type");
    }

    #[test]
    fn a_crafted_length_does_not_allocate_gigabytes() {
        // A varint claiming a Vec of 2^32 - 1 u64s, in 5 bytes.
        let crafted = [0xfc, 0xff, 0xff, 0xff, 0xff];
        assert!(Codec::bincode().decode::<Vec<u64>>(&crafted).is_err());
        assert!(Codec::bincode().decode::<String>(&crafted).is_err());
        // A large legitimate value still decodes.
        let big: Vec<String> = vec![String::new(); 100_000];
        let bytes = Codec::bincode().encode(&big).unwrap();
        assert_eq!(
            Codec::bincode()
                .decode::<Vec<String>>(&bytes)
                .unwrap()
                .len(),
            100_000
        );
    }

    fn entry(codec: &Codec, key: &str) -> Entry {
        let mut e = Entry::new(
            codec.encode(&12345u64).unwrap(),
            codec.id(),
            Entry::key_hash_of(key),
        );
        (e.created_at, e.stale_at, e.expires_at, e.keep_until) = (1, 2, 3, 4);
        codec.seal(key, &mut e);
        e
    }

    #[test]
    fn a_signature_binds_key_header_and_payload() {
        let c = Codec::bincode().signed(SIGNING).unwrap();
        let e = entry(&c, "ns:v:alice");
        assert_eq!(
            c.decode::<u64>(c.open("ns:v:alice", &e).unwrap()).unwrap(),
            12345
        );
        assert!(c.open("ns:v:mallory", &e).is_err(), "moved to another key");
        let mutations: [fn(&mut Entry); 8] = [
            |e| e.expires_at = u64::MAX,
            |e| e.keep_until = u64::MAX,
            |e| e.took_ms += 1,
            |e| e.stale_at = u64::MAX,
            |e| e.created_at += 1,
            |e| e.flags ^= 1,
            |e| e.key_hash ^= 1,
            |e| *e.payload.last_mut().unwrap() ^= 1,
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut bad = e.clone();
            m(&mut bad);
            assert!(c.open("ns:v:alice", &bad).is_err(), "mutation {i}");
        }
        let other = Codec::bincode().signed(b"another key, also long").unwrap();
        assert!(other.open("ns:v:alice", &e).is_err());
        assert_ne!(c.id(), Codec::bincode().id());
    }

    #[test]
    fn short_signing_keys_are_refused() {
        assert!(matches!(Codec::json().signed(b""), Err(Error::Config(_))));
        assert!(Codec::json().signed([7u8; 15]).is_err());
        assert!(Codec::json().signed([7u8; 16]).is_ok());
    }
}
