//! The on-disk entry format (see [`FileBackend`](crate::FileBackend)): encoding a file, parsing
//! a whole one, and reading just the header of one during walks.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use steadycache_api::{Error, Result};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; MAGIC_LEN] = b"SCFE";
/// The length of the magic every entry file starts with.
pub(crate) const MAGIC_LEN: usize = 4;
const FORMAT_VERSION: u8 = 1;
pub(crate) const KIND_VALUE: u8 = 0;
pub(crate) const KIND_COUNTER: u8 = 1;
pub(crate) const KIND_LOCK: u8 = 2;
/// Bytes before the key.
const FIXED: usize = 20;
/// The smallest possible file: empty key, empty value.
pub(crate) const MIN_LEN: usize = FIXED + 8 + 8;

pub(crate) fn encode_entry(key: &[u8], value: &[u8], expires_at: u64, kind: u8) -> Result<Vec<u8>> {
    let key_len = u32::try_from(key.len())
        .map_err(|_| Error::Config("a key may be at most 4 GiB long".into()))?;
    let mut out = Vec::with_capacity(MIN_LEN + key.len() + value.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(kind);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(value);
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    b.try_into().ok().map(u64::from_le_bytes)
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    b.try_into().ok().map(u32::from_le_bytes)
}

/// The fixed part of a header: kind, expiry and key length.
struct Fixed {
    kind: u8,
    expires_at: u64,
    key_len: usize,
}

fn parse_fixed(bytes: &[u8]) -> std::result::Result<Fixed, &'static str> {
    if bytes.len() < FIXED {
        return Err("shorter than a header");
    }
    if bytes.get(0..4) != Some(&MAGIC[..]) {
        return Err("not a steadycache file entry (bad magic)");
    }
    if bytes.get(4) != Some(&FORMAT_VERSION) {
        return Err("unknown format version");
    }
    let kind = bytes.get(5).copied().unwrap_or(u8::MAX);
    if kind > KIND_LOCK {
        return Err("unknown entry kind");
    }
    if bytes.get(6..8) != Some(&[0, 0][..]) {
        return Err("reserved header bytes are set");
    }
    let expires_at = le_u64(bytes, 8).ok_or("shorter than a header")?;
    let key_len = le_u32(bytes, 16).ok_or("shorter than a header")?;
    let key_len = usize::try_from(key_len).map_err(|_| "key length out of range")?;
    Ok(Fixed {
        kind,
        expires_at,
        key_len,
    })
}

/// Where the value starts and ends given the key length and the value length field; `None` when
/// the sizes do not add up to `total`.
fn value_range(key_len: usize, value_len: u64, total: u64) -> Option<Range<usize>> {
    let start = FIXED.checked_add(key_len)?.checked_add(8)?;
    let end = start.checked_add(usize::try_from(value_len).ok()?)?;
    let expected = u64::try_from(end.checked_add(8)?).ok()?;
    (expected == total).then_some(start..end)
}

/// A whole parsed file.
pub(crate) struct Parsed {
    pub(crate) kind: u8,
    pub(crate) expires_at: u64,
    pub(crate) key: Range<usize>,
    pub(crate) value: Range<usize>,
}

pub(crate) fn parse_entry(bytes: &[u8]) -> std::result::Result<Parsed, &'static str> {
    if bytes.len() < MIN_LEN {
        return Err("shorter than a header");
    }
    let fixed = parse_fixed(bytes)?;
    let key_end = FIXED
        .checked_add(fixed.key_len)
        .ok_or("length does not match (truncated or padded)")?;
    let value_len = le_u64(bytes, key_end).ok_or("length does not match (truncated or padded)")?;
    let value = value_range(fixed.key_len, value_len, bytes.len() as u64)
        .ok_or("length does not match (truncated or padded)")?;
    let stored = le_u64(bytes, value.end).ok_or("length does not match (truncated or padded)")?;
    let body = bytes.get(..value.end).ok_or("length does not match")?;
    if xxh3_64(body) != stored {
        return Err("checksum mismatch");
    }
    Ok(Parsed {
        kind: fixed.kind,
        expires_at: fixed.expires_at,
        key: FIXED..key_end,
        value,
    })
}

/// The header of a file, read without its value (for walks); its lengths are checked against
/// the file size, its checksum is not.
pub(crate) struct Header {
    pub(crate) kind: u8,
    pub(crate) expires_at: u64,
    pub(crate) key: Vec<u8>,
}

/// What a file in the cache's tree is, judged by its header.
///
/// Only a file that starts with this backend's magic was written by it: such a file is an
/// [`Entry`](Self::Entry) or, damaged, [`Corrupt`](Self::Corrupt) (removed by reads and
/// housekeeping). Anything else is [`Foreign`](Self::Foreign): a file of the user's that
/// shares the directory, never removed, overwritten, evicted or counted by the backend.
pub(crate) enum Sniffed {
    Entry(Header),
    Corrupt(&'static str),
    Foreign,
}

/// Whether `bytes` (a whole file, or its start) begin with this backend's magic.
pub(crate) fn is_ours(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Read and judge the header of `file`, `len` bytes long.
pub(crate) fn read_header(file: &mut File, len: u64) -> io::Result<Sniffed> {
    let mut fixed = [0u8; FIXED];
    let want = usize::try_from(len).map_or(FIXED, |l| l.min(FIXED));
    let Some(head) = fixed.get_mut(..want) else {
        return Ok(Sniffed::Foreign);
    };
    match file.read_exact(head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Ok(if is_ours(head) {
                Sniffed::Corrupt("truncated")
            } else {
                Sniffed::Foreign
            })
        }
        Err(e) => return Err(e),
    }
    if !is_ours(head) {
        return Ok(Sniffed::Foreign);
    }
    if len < MIN_LEN as u64 {
        return Ok(Sniffed::Corrupt("shorter than a header"));
    }
    let f = match parse_fixed(&fixed) {
        Ok(f) => f,
        Err(why) => return Ok(Sniffed::Corrupt(why)),
    };
    let fits = (FIXED as u64)
        .checked_add(f.key_len as u64)
        .and_then(|n| n.checked_add(16))
        .is_some_and(|n| n <= len);
    if !fits {
        return Ok(Sniffed::Corrupt(
            "length does not match (truncated or padded)",
        ));
    }
    let mut rest = vec![0u8; f.key_len + 8];
    match file.read_exact(&mut rest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Ok(Sniffed::Corrupt("truncated"))
        }
        Err(e) => return Err(e),
    }
    let Some(value_len) = le_u64(&rest, f.key_len) else {
        return Ok(Sniffed::Corrupt("truncated"));
    };
    if value_range(f.key_len, value_len, len).is_none() {
        return Ok(Sniffed::Corrupt(
            "length does not match (truncated or padded)",
        ));
    }
    rest.truncate(f.key_len);
    Ok(Sniffed::Entry(Header {
        kind: f.kind,
        expires_at: f.expires_at,
        key: rest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_round_trips_and_rejects_damage() {
        let bytes = encode_entry(b"ns:k", b"value", 42, KIND_COUNTER).unwrap();
        let p = parse_entry(&bytes).unwrap();
        assert_eq!(&bytes[p.key.clone()], b"ns:k");
        assert_eq!(&bytes[p.value.clone()], b"value");
        assert_eq!((p.kind, p.expires_at), (KIND_COUNTER, 42));
        for cut in 0..bytes.len() {
            assert!(parse_entry(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(parse_entry(&b).is_err(), "flip at {i}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(parse_entry(&padded).is_err());
        let mut huge_key = bytes.clone();
        huge_key[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_entry(&huge_key).is_err());
    }
}
