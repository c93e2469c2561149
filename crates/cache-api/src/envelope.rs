//! The entry envelope: what every backend stores, byte for byte.
//!
//! ```text
//! offset size  field
//! 0      2     magic "SC"
//! 2      1     format version (1)
//! 3      1     codec id (see `Codec::id`)
//! 4      1     flags (bit 0: negative result, i.e. a cached `None` or `Err`)
//! 5      8     created-at, ms since the Unix epoch, little endian
//! 13     8     stale-at (soft expiry), same unit; u64::MAX = never
//! 21     8     expires-at (hard expiry), same unit; u64::MAX = never
//! 29     4     payload length, little endian
//! 33     n     payload (the codec's bytes)
//! 33+n   8     xxh3-64 of everything before it, little endian
//! ```
//!
//! The length and the checksum make a truncated, torn or foreign value a [`Error::Corrupt`]
//! rather than a wrong value. Any process on any platform reads what another wrote.

use crate::{Error, Result};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 2] = b"SC";
/// The envelope format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const HEADER: usize = 33;
const TRAILER: usize = 8;

/// Flag bit: the payload is a negative result (`None` or an `Err`) cached on purpose.
pub const FLAG_NEGATIVE: u8 = 1;

/// One stored value with its timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The codec's bytes.
    pub payload: Vec<u8>,
    /// When it was computed, ms since the Unix epoch.
    pub created_at: u64,
    /// Soft expiry: from then on it is stale (servable, refresh due). `u64::MAX` = never.
    pub stale_at: u64,
    /// Hard expiry: from then on it is gone. `u64::MAX` = never.
    pub expires_at: u64,
    /// Which codec wrote the payload.
    pub codec: u8,
    /// Flag bits ([`FLAG_NEGATIVE`]).
    pub flags: u8,
}

/// How fresh an entry is at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Before `stale_at`.
    Fresh,
    /// Between `stale_at` and `expires_at`.
    Stale,
    /// At or after `expires_at`.
    Expired,
}

impl Entry {
    /// How fresh the entry is at `now_ms`.
    pub fn freshness(&self, now_ms: u64) -> Freshness {
        if now_ms >= self.expires_at {
            Freshness::Expired
        } else if now_ms >= self.stale_at {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// Milliseconds left before hard expiry at `now_ms` (`None` = never expires).
    pub fn ttl_ms(&self, now_ms: u64) -> Option<u64> {
        (self.expires_at != u64::MAX).then(|| self.expires_at.saturating_sub(now_ms))
    }

    /// Whether this is a cached negative result.
    pub fn is_negative(&self) -> bool {
        self.flags & FLAG_NEGATIVE != 0
    }

    /// Serialize the envelope.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let len = u32::try_from(self.payload.len())
            .map_err(|_| Error::Config("a cached value may be at most 4 GiB".into()))?;
        let mut out = Vec::with_capacity(HEADER + self.payload.len() + TRAILER);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(self.codec);
        out.push(self.flags);
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&self.stale_at.to_le_bytes());
        out.extend_from_slice(&self.expires_at.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.payload);
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        Ok(out)
    }

    /// Parse an envelope; anything that is not exactly one well-formed envelope is
    /// [`Error::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Entry> {
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
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(&bytes[29..33]);
        let len = u32::from_le_bytes(len4) as usize;
        if bytes.len() != HEADER + len + TRAILER {
            return Err(corrupt("length does not match (truncated or padded)"));
        }
        let body = HEADER + len;
        if xxh3_64(&bytes[..body]) != u64_at(body) {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(Entry {
            codec: bytes[3],
            flags: bytes[4],
            created_at: u64_at(5),
            stale_at: u64_at(13),
            expires_at: u64_at(21),
            payload: bytes[HEADER..body].to_vec(),
        })
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
            codec: 1,
            flags: 0,
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
    fn freshness() {
        let e = Entry {
            stale_at: 10,
            expires_at: 20,
            ..sample()
        };
        assert_eq!(e.freshness(9), Freshness::Fresh);
        assert_eq!(e.freshness(10), Freshness::Stale);
        assert_eq!(e.freshness(20), Freshness::Expired);
    }
}
