//! Codecs: serde values to payload bytes and back.
//!
//! A [`Codec`] is a small value, not a trait object: serde's generic methods cannot live behind
//! `dyn`, and a closed set keeps every process able to read what another wrote (the codec id is
//! stored in each envelope). Custom byte transforms (compression, encryption) belong in
//! [`CacheManager::before_save`](crate::CacheManager::before_save) /
//! [`after_load`](crate::CacheManager::after_load).

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use serde::{de::DeserializeOwned, Serialize};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;
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

/// Serializes values into payload bytes, optionally signed with HMAC-SHA256.
///
/// ```
/// use steadycache_api::Codec;
/// let codec = Codec::json().signed(b"a secret key of any length");
/// let bytes = codec.encode(&vec![1u32, 2, 3]).unwrap();
/// assert_eq!(codec.decode::<Vec<u32>>(&bytes).unwrap(), vec![1, 2, 3]);
/// // Another key (or no key) cannot read it, and a flipped bit is rejected before decoding.
/// assert!(Codec::json().signed(b"other").decode::<Vec<u32>>(&bytes).is_err());
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

    /// The same codec with an HMAC-SHA256 tag over each payload. Entries whose tag does not match
    /// (tampered, written without the key or with another key) are rejected before they are
    /// deserialized.
    pub fn signed(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(Arc::from(key.as_ref()));
        self
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

    /// Serialize `value`.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let err = |message: String| Error::Codec {
            codec: self.name(),
            message,
        };
        let body = match self.format {
            Format::Bincode => bincode::serde::encode_to_vec(value, bincode::config::standard())
                .map_err(|e| err(e.to_string()))?,
            Format::Json => serde_json::to_vec(value).map_err(|e| err(e.to_string()))?,
        };
        match &self.key {
            None => Ok(body),
            Some(key) => {
                let mut mac = self.mac(key)?;
                mac.update(&body);
                let mut out = mac.finalize().into_bytes().to_vec();
                out.extend_from_slice(&body);
                Ok(out)
            }
        }
    }

    /// Deserialize a `T`; bytes of another codec, a bad signature or trailing garbage are errors.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let body = match &self.key {
            None => bytes,
            Some(key) => {
                if bytes.len() < TAG_LEN {
                    return Err(Error::Corrupt("signed payload shorter than its tag".into()));
                }
                let (tag, body) = bytes.split_at(TAG_LEN);
                let mut mac = self.mac(key)?;
                mac.update(body);
                mac.verify_slice(tag)
                    .map_err(|_| Error::Corrupt("signature mismatch".into()))?;
                body
            }
        };
        let err = |message: String| Error::Codec {
            codec: self.name(),
            message,
        };
        match self.format {
            Format::Bincode => {
                let (v, used) = bincode::serde::decode_from_slice::<T, _>(
                    body,
                    bincode::config::standard().with_limit::<{ 1 << 32 }>(),
                )
                .map_err(|e| err(e.to_string()))?;
                if used != body.len() {
                    return Err(err(format!("{} trailing bytes", body.len() - used)));
                }
                Ok(v)
            }
            Format::Json => serde_json::from_slice(body).map_err(|e| err(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_bytes() {
        for c in [
            Codec::bincode(),
            Codec::json(),
            Codec::bincode().signed("k"),
        ] {
            let b = c.encode(&("x".to_string(), 7u64)).unwrap();
            assert_eq!(c.decode::<(String, u64)>(&b).unwrap(), ("x".into(), 7));
            assert!(c.decode::<(String, u64)>(&b[..b.len() - 1]).is_err());
        }
        let json = Codec::json().encode(&5u64).unwrap();
        assert!(Codec::bincode().signed("k").decode::<u64>(&json).is_err());
    }

    #[test]
    fn tampered_signed_payload_is_rejected() {
        let c = Codec::bincode().signed("key");
        let mut b = c.encode(&12345u64).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(c.decode::<u64>(&b), Err(Error::Corrupt(_))));
        assert_ne!(c.id(), Codec::bincode().id());
    }
}
