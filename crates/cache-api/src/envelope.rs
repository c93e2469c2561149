//! The entry envelope: what every backend stores, byte for byte.
//!
//! ```text
//! offset size  field
//! 0      2     magic "SC"
//! 2      1     format version (3)
//! 3      1     codec id (see `Codec::id`)
//! 4      1     flags (bit 0: negative result, i.e. a cached `None` or `Err`)
//! 5      8     key hash: xxh3-64 of the full key the entry was written under, little endian
//! 13     8     created-at, ms since the Unix epoch, little endian
//! 21     8     stale-at (soft expiry), same unit; u64::MAX = never
//! 29     8     expires-at (hard expiry), same unit; u64::MAX = never
//! 37     8     keep-until (physical expiry: kept past expires-at only to be served when its
//!              recompute fails, i.e. fail-safe), same unit, >= expires-at; u64::MAX = never
//! 45     4     took: how long the computation took, ms (0: unknown), little endian
//! 49     4     payload length, little endian
//! 53     n     payload (the codec's bytes; a signed codec's start with their tag)
//! 53+n   8     xxh3-64 of everything before it, little endian
//! ```
//!
//! The key hash binds an entry to its key: the engine checks it on every load, so an entry
//! copied (or written by mistake) under another key is a counted, healed miss, never another
//! key's value. Formats 1 and 2 (without the key hash, or without keep-until and took) read as
//! corrupt: such entries are recomputed once.
//!
//! The length and the checksum make a truncated, torn or foreign value a [`Error::Corrupt`]
//! rather than a wrong value. Any process on any platform reads what another wrote.
//!
//! ## The JSON form
//! An entry whose payload was written by the plain JSON codec is stored as one JSON document
//! instead, so that `redis-cli GET`, a file viewer or a program in another language reads it:
//!
//! ```text
//! {"steadycache":3,"codec":2,"flags":0,"key":"5be1d9a3c07f2e11","created_at":1763900000000,
//!  "stale_at":null,"expires_at":1763900060000,"keep_until":1763900060000,"took_ms":120,
//!  "check":"9f1c0e4d2a7b3c55","value":{"city":"Oslo","temp":-3.5}}
//! ```
//!
//! `null` stands for "never"; `check` is the XXH3-64 of the `value` text exactly as stored (16
//! hex digits), so a damaged or edited value is still [`Error::Corrupt`], never a wrong value.
//! [`Entry::decode`] reads both forms (the binary one starts with `SC`, the JSON one with `{`).

use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::xxh3_64;

/// The codec id of plain JSON (`Codec::json().id()`): its entries take the JSON form.
const JSON_CODEC: u8 = 2;

/// The JSON form (see the module docs).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEnvelope<'a> {
    steadycache: u8,
    codec: u8,
    flags: u8,
    key: &'a str,
    created_at: u64,
    stale_at: Option<u64>,
    expires_at: Option<u64>,
    keep_until: Option<u64>,
    took_ms: u32,
    check: &'a str,
    #[serde(borrow)]
    value: &'a RawValue,
}

const MAGIC: &[u8; 2] = b"SC";
/// The envelope format this build writes and reads.
pub const FORMAT_VERSION: u8 = 3;
const HEADER: usize = 53;
const TRAILER: usize = 8;

/// Whether `head`, the start of a stored value, begins like an entry the engine wrote: the
/// binary form's magic and a format version it has ever written, or the JSON form's
/// `{"steadycache"` (14 bytes). A value that passes may still be corrupt; one that fails was
/// not written by the engine (or by an overridden manager that stores its own format, which
/// then owns its clears).
pub(crate) fn is_entry_head(head: &[u8]) -> bool {
    const JSON_HEAD: &[u8] = b"{\"steadycache\"";
    match head {
        [b'S', b'C', version, ..] => (1..=FORMAT_VERSION).contains(version),
        _ => head.starts_with(JSON_HEAD),
    }
}

/// Flag bit: the payload is a negative result (`None` or an `Err`) cached on purpose.
pub(crate) const FLAG_NEGATIVE: u8 = 1;

/// One stored value with its timestamps. Built with [`Entry::new`] (fields are added as
/// strategies need them), then its public fields set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The codec's bytes.
    pub payload: Vec<u8>,
    /// When it was computed, ms since the Unix epoch.
    pub created_at: u64,
    /// Soft expiry: from then on it is stale (servable, refresh due). `u64::MAX` = never.
    pub stale_at: u64,
    /// Hard expiry: from then on it is not served, except by fail-safe. `u64::MAX` = never.
    pub expires_at: u64,
    /// Physical expiry (at or after `expires_at`): until then the entry is kept, to be served
    /// when its recompute fails (fail-safe). Stores drop it then. `u64::MAX` = never.
    pub keep_until: u64,
    /// How long the computation of the value took, ms (0: unknown). Early refresh weighs it.
    pub took_ms: u32,
    /// Which codec wrote the payload.
    pub codec: u8,
    /// XXH3-64 of the full key the entry was written under ([`Entry::key_hash_of`]).
    pub key_hash: u64,
    /// Flag bits: bit 0 marks a negative entry (a cached `None` or `Err`, see [`Entry::is_negative`]); the others are reserved.
    pub flags: u8,
}

/// How fresh an entry is at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Before `stale_at`.
    Fresh,
    /// Between `stale_at` and `expires_at`.
    Stale,
    /// Between `expires_at` and `keep_until`: expired, kept only to be served if its recompute
    /// fails (fail-safe).
    Reserve,
    /// At or after `keep_until`.
    Expired,
}

/// How fresh a value with these deadlines is at `now_ms` (all on one clock).
#[inline]
pub(crate) fn freshness(stale_at: u64, expires_at: u64, keep_until: u64, now_ms: u64) -> Freshness {
    if now_ms >= expires_at {
        if now_ms >= keep_until {
            Freshness::Expired
        } else {
            Freshness::Reserve
        }
    } else if now_ms >= stale_at {
        Freshness::Stale
    } else {
        Freshness::Fresh
    }
}

impl Entry {
    /// An entry of `payload` (written by codec `codec`) under the key whose
    /// [`key_hash_of`](Self::key_hash_of) is `key_hash`: created at 0, never stale nor
    /// expiring, no flag, computation time unknown. Set the public fields for the rest.
    pub fn new(payload: Vec<u8>, codec: u8, key_hash: u64) -> Entry {
        Entry {
            payload,
            created_at: 0,
            stale_at: u64::MAX,
            expires_at: u64::MAX,
            keep_until: u64::MAX,
            took_ms: 0,
            codec,
            key_hash,
            flags: 0,
        }
    }

    /// The key hash an entry written under `key` carries.
    pub fn key_hash_of(key: &str) -> u64 {
        xxh3_64(key.as_bytes())
    }

    /// The header fields a signature covers, in a fixed layout (format version, codec, flags,
    /// key hash, created, stale, expires, keep-until, took).
    pub(crate) fn header_bytes(&self) -> [u8; 47] {
        let mut h = [0u8; 47];
        h[0] = FORMAT_VERSION;
        h[1] = self.codec;
        h[2] = self.flags;
        h[3..11].copy_from_slice(&self.key_hash.to_le_bytes());
        h[11..19].copy_from_slice(&self.created_at.to_le_bytes());
        h[19..27].copy_from_slice(&self.stale_at.to_le_bytes());
        h[27..35].copy_from_slice(&self.expires_at.to_le_bytes());
        h[35..43].copy_from_slice(&self.keep_until.to_le_bytes());
        h[43..47].copy_from_slice(&self.took_ms.to_le_bytes());
        h
    }

    /// How fresh the entry is at `now_ms`.
    pub fn freshness(&self, now_ms: u64) -> Freshness {
        freshness(self.stale_at, self.expires_at, self.keep_until, now_ms)
    }

    /// Milliseconds left before the store may drop the entry, at `now_ms` (its
    /// [`keep_until`](Self::keep_until); `None` = never): the ttl a backend stores it with.
    pub fn ttl_ms(&self, now_ms: u64) -> Option<u64> {
        let end = self.keep_until.max(self.expires_at);
        (end != u64::MAX).then(|| end.saturating_sub(now_ms))
    }

    /// The entry as a read from the store gives it at `now_ms`: itself until its
    /// [`keep_until`](Self::keep_until) (an entry past `expires_at` is still read, for
    /// fail-safe and stale-while-revalidate to serve), `None` after. The one definition of
    /// "gone" for the manager's `load` and [`BackendExt::get_entry`](crate::BackendExt::get_entry).
    pub fn unless_gone(self, now_ms: u64) -> Option<Entry> {
        (self.freshness(now_ms) != Freshness::Expired).then_some(self)
    }

    /// The backend ttl to write the entry with at `now_ms` (`Some(None)`: none, it never
    /// goes), or `None` when it is already gone and must not be written: the one rule for the
    /// manager's `save` and [`BackendExt::set_entry`](crate::BackendExt::set_entry).
    pub fn store_ttl(&self, now_ms: u64) -> Option<Option<std::time::Duration>> {
        match self.ttl_ms(now_ms) {
            Some(0) => None,
            Some(ms) => Some(Some(std::time::Duration::from_millis(ms))),
            None => Some(None),
        }
    }

    /// Whether this is a cached negative result.
    pub fn is_negative(&self) -> bool {
        self.flags & FLAG_NEGATIVE != 0
    }

    /// Serialize the envelope: the JSON form for the plain JSON codec, the binary form
    /// otherwise.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.codec == JSON_CODEC {
            return Ok(self.encode_json());
        }
        let len = u32::try_from(self.payload.len())
            .map_err(|_| Error::Config("a cached value may be at most 4 GiB".into()))?;
        let mut out = Vec::with_capacity(HEADER + self.payload.len() + TRAILER);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.codec);
        out.push(self.flags);
        out.extend_from_slice(&self.key_hash.to_le_bytes());
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&self.stale_at.to_le_bytes());
        out.extend_from_slice(&self.expires_at.to_le_bytes());
        out.extend_from_slice(&self.keep_until.to_le_bytes());
        out.extend_from_slice(&self.took_ms.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.payload);
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        Ok(out)
    }

    fn encode_json(&self) -> Vec<u8> {
        let never = |t: u64| {
            if t == u64::MAX {
                "null".to_owned()
            } else {
                t.to_string()
            }
        };
        let mut out = format!(
            "{{\"steadycache\":{FORMAT_VERSION},\"codec\":{},\"flags\":{},\"key\":\"{:016x}\",\
             \"created_at\":{},\"stale_at\":{},\"expires_at\":{},\"keep_until\":{},\
             \"took_ms\":{},\"check\":\"{:016x}\",\"value\":",
            self.codec,
            self.flags,
            self.key_hash,
            self.created_at,
            never(self.stale_at),
            never(self.expires_at),
            never(self.keep_until),
            self.took_ms,
            xxh3_64(&self.payload)
        )
        .into_bytes();
        out.extend_from_slice(&self.payload);
        out.push(b'}');
        out
    }

    fn decode_json(bytes: &[u8]) -> Result<Entry> {
        let e: JsonEnvelope<'_> = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("not a steadycache JSON entry: {e}")))?;
        if e.steadycache != FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "envelope format {} is not {FORMAT_VERSION}",
                e.steadycache
            )));
        }
        if e.codec != JSON_CODEC {
            return Err(Error::Corrupt("a JSON entry of a non-JSON codec".into()));
        }
        let payload = e.value.get().as_bytes();
        if format!("{:016x}", xxh3_64(payload)) != e.check {
            return Err(Error::Corrupt("checksum mismatch".into()));
        }
        let key_hash = (e.key.len() == 16)
            .then(|| u64::from_str_radix(e.key, 16).ok())
            .flatten()
            .ok_or_else(|| Error::Corrupt("the key hash is not 16 hex digits".into()))?;
        Ok(Entry {
            key_hash,
            payload: payload.to_vec(),
            created_at: e.created_at,
            stale_at: e.stale_at.unwrap_or(u64::MAX),
            expires_at: e.expires_at.unwrap_or(u64::MAX),
            keep_until: e.keep_until.unwrap_or(u64::MAX),
            took_ms: e.took_ms,
            codec: e.codec,
            flags: e.flags,
        })
    }

    /// Parse an envelope (either form); anything that is not exactly one well-formed envelope
    /// is [`Error::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Entry> {
        if bytes.first() == Some(&b'{') {
            return Self::decode_json(bytes);
        }
        let (mut entry, body) = Self::decode_header(bytes)?;
        entry.payload = bytes[HEADER..body].to_vec();
        Ok(entry)
    }

    /// [`decode`](Self::decode), keeping the payload in `bytes`' own buffer (moved to its
    /// start): what a store read returns is not copied again.
    pub fn decode_vec(mut bytes: Vec<u8>) -> Result<Entry> {
        if bytes.first() == Some(&b'{') {
            return Self::decode_json(&bytes);
        }
        let (mut entry, body) = Self::decode_header(&bytes)?;
        bytes.truncate(body);
        bytes.drain(..HEADER);
        entry.payload = bytes;
        Ok(entry)
    }

    /// A binary envelope's fields, checked (its payload left empty), and where its payload
    /// ends.
    fn decode_header(bytes: &[u8]) -> Result<(Entry, usize)> {
        let corrupt = |why: &str| Error::Corrupt(why.to_string());
        if bytes.len() < HEADER + TRAILER {
            return Err(corrupt("shorter than an envelope header"));
        }
        if &bytes[0..2] != MAGIC {
            return Err(corrupt("not a steadycache entry (bad magic)"));
        }
        if bytes[2] != FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "envelope format {} is not {FORMAT_VERSION}",
                bytes[2]
            )));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let len = u32_at(49) as usize;
        if bytes.len() != HEADER + len + TRAILER {
            return Err(corrupt("length does not match (truncated or padded)"));
        }
        let body = HEADER + len;
        if xxh3_64(&bytes[..body]) != u64_at(body) {
            return Err(corrupt("checksum mismatch"));
        }
        let entry = Entry {
            codec: bytes[3],
            flags: bytes[4],
            key_hash: u64_at(5),
            created_at: u64_at(13),
            stale_at: u64_at(21),
            expires_at: u64_at(29),
            keep_until: u64_at(37),
            took_ms: u32_at(45),
            payload: Vec::new(),
        };
        Ok((entry, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            payload: b"hello".to_vec(),
            created_at: 1,
            stale_at: 2,
            expires_at: u64::MAX,
            keep_until: u64::MAX,
            took_ms: 42,
            codec: 1,
            flags: 0,
            key_hash: Entry::key_hash_of("ns:v:k"),
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Entry::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Entry::decode(&b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn json_form_is_readable_and_checked() {
        let e = Entry {
            payload: br#"{"city":"Oslo","temp":-3.5}"#.to_vec(),
            codec: JSON_CODEC,
            ..sample()
        };
        let bytes = e.encode().unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(doc["value"]["city"], "Oslo");
        assert_eq!(doc["expires_at"], serde_json::Value::Null);
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        for cut in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let edited = text.replace("Oslo", "Bergen");
        assert!(Entry::decode(edited.as_bytes()).is_err(), "an edited value");
        let foreign = text.replace("\"codec\":2", "\"codec\":1");
        assert!(Entry::decode(foreign.as_bytes()).is_err(), "another codec");
    }

    #[test]
    fn older_formats_read_as_corrupt() {
        for old in [1, 2] {
            let mut bytes = sample().encode().unwrap();
            bytes[2] = old;
            assert!(matches!(Entry::decode(&bytes), Err(Error::Corrupt(_))));
        }
    }

    #[test]
    fn freshness() {
        let e = Entry {
            stale_at: 10,
            expires_at: 20,
            keep_until: 30,
            ..sample()
        };
        assert_eq!(e.freshness(9), Freshness::Fresh);
        assert_eq!(e.freshness(10), Freshness::Stale);
        assert_eq!(e.freshness(20), Freshness::Reserve);
        assert_eq!(e.freshness(30), Freshness::Expired);
        assert_eq!(e.ttl_ms(5), Some(25), "stores keep it until keep_until");
    }
}
