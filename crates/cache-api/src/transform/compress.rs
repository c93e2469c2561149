//! [`Compression`]: lz4 (`lz4_flex`'s block format, pure safe Rust) above a size threshold.

use super::Transform;
use crate::error::{Error, Result};

/// Entries shorter than this many bytes are stored as they are by default: lz4 rarely gains
/// anything on them, and a small entry is read often.
pub const DEFAULT_THRESHOLD: usize = 512;
/// The default bound on what one entry may decompress to: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 64 << 20;

/// First byte of bytes stored raw that start with one of the two tags themselves (the rest
/// follows unchanged): so raw bytes can never be taken for compressed ones.
const RAW: u8 = 0xC0;
/// First byte of lz4-compressed bytes: `0xC1`, the decompressed length (u32, little endian),
/// then an lz4 block.
const LZ4: u8 = 0xC1;
const LZ4_HEADER: usize = 5;
/// An lz4 block cannot expand more than 255 to 1 (a match length grows by at most 255 per
/// input byte); a stated length above this for its input is a lie, refused unread.
const LZ4_MAX_RATIO: usize = 255;

/// Compresses every entry of at least [`threshold`](Self::with_threshold) bytes with lz4 (a
/// ready [`Transform`]; wrap a manager with [`Transformed`](super::Transformed) or
/// [`Transforms`](super::Transforms)).
///
/// * **Threshold**: shorter entries, and entries that lz4 would not make shorter, are stored
///   as they are, with no byte added (unless they start with one of this transform's tags,
///   0xC0 or 0xC1, when a 0xC0 byte is put before them: never for an envelope, which starts
///   with `S` or `{`).
/// * **Entries written before compression was turned on** read as they are: bytes that do not
///   start with a tag are passed on unchanged, to the inner hooks and the envelope's checks.
///   Turning compression off again is not as free: compressed entries then read as corrupt (a
///   logged miss each, recomputed once).
/// * **Decompression bombs are refused before anything is allocated**: the decompressed
///   length stated in an entry must be at most [`max_decompressed`](Self::with_max_decompressed)
///   and at most what lz4 can produce from the entry's size (255 bytes per byte), and the
///   block must decompress to exactly that length. The codec's own bound (a decode of n bytes
///   allocates at most 64 × n) is relative to its input, which is the *decompressed* entry:
///   without this bound a few kilobytes could make it gigabytes. A refused entry is
///   [`Error::Corrupt`]: a logged miss, removed and recomputed.
///
/// ```
/// use steadycache_api::transform::{Compression, Transform};
/// let c = Compression::default().with_threshold(64);
/// let text = b"all systems nominal; ".repeat(100);
/// let stored = c.apply(text.clone()).unwrap();
/// assert!(stored.len() < text.len() / 4);
/// assert_eq!(c.undo(stored).unwrap(), text);
/// // Below the threshold, and entries written before compression: as they are.
/// assert_eq!(c.apply(b"SC short".to_vec()).unwrap(), b"SC short");
/// assert_eq!(c.undo(b"SC short".to_vec()).unwrap(), b"SC short");
/// ```
#[derive(Clone, Debug)]
pub struct Compression {
    threshold: usize,
    max_decompressed: usize,
}

impl Default for Compression {
    /// [`DEFAULT_THRESHOLD`] and [`DEFAULT_MAX_DECOMPRESSED`].
    fn default() -> Self {
        Compression {
            threshold: DEFAULT_THRESHOLD,
            max_decompressed: DEFAULT_MAX_DECOMPRESSED,
        }
    }
}

impl Compression {
    /// lz4 with the default threshold and bound.
    pub fn lz4() -> Self {
        Compression::default()
    }

    /// Compress entries of at least `bytes` bytes (default [`DEFAULT_THRESHOLD`]); `0`
    /// compresses every entry lz4 makes shorter.
    pub fn with_threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Refuse entries that decompress to more than `bytes` bytes (default
    /// [`DEFAULT_MAX_DECOMPRESSED`]; at most 4 GiB, the envelope's own bound). Entries larger
    /// than this are stored raw, so that a value this cache wrote is always read back.
    pub fn with_max_decompressed(mut self, bytes: usize) -> Self {
        self.max_decompressed = bytes.min(u32::MAX as usize);
        self
    }

    /// The threshold, in bytes.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The bound on an entry's decompressed size, in bytes.
    pub fn max_decompressed(&self) -> usize {
        self.max_decompressed
    }

    fn compressed(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        if bytes.len() < self.threshold || bytes.len() > self.max_decompressed {
            return None;
        }
        let len = u32::try_from(bytes.len()).ok()?;
        let block = lz4_flex::block::compress(bytes);
        if LZ4_HEADER + block.len() >= bytes.len() {
            return None; // lz4 does not help: stored raw
        }
        let mut out = Vec::with_capacity(LZ4_HEADER + block.len());
        out.push(LZ4);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&block);
        Some(out)
    }

    fn decompress(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let (len, block) = match bytes {
            [LZ4, a, b, c, d, block @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]), block),
            _ => return Err(corrupt("compressed entry shorter than its header")),
        };
        let len = usize::try_from(len).map_err(|_| corrupt("too large for this platform"))?;
        if len > self.max_decompressed {
            return Err(corrupt(&format!(
                "states {len} bytes decompressed, above the bound of {}",
                self.max_decompressed
            )));
        }
        if len > block.len().saturating_mul(LZ4_MAX_RATIO).saturating_add(64) {
            return Err(corrupt(&format!(
                "states {len} bytes from a block of {}, more than lz4 can expand to",
                block.len()
            )));
        }
        let mut out = vec![0u8; len];
        match lz4_flex::block::decompress_into(block, &mut out) {
            Ok(n) if n == len => Ok(out),
            Ok(n) => Err(corrupt(&format!("decompressed to {n} bytes, stated {len}"))),
            Err(e) => Err(corrupt(&e.to_string())),
        }
    }
}

fn corrupt(why: &str) -> Error {
    Error::Corrupt(format!("lz4: {why}"))
}

impl Transform for Compression {
    fn apply(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        if let Some(c) = self.compressed(&bytes) {
            return Ok(c);
        }
        match bytes.first() {
            Some(&RAW | &LZ4) => Ok([&[RAW], bytes.as_slice()].concat()),
            _ => Ok(bytes),
        }
    }

    fn undo(&self, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
        match bytes.first() {
            Some(&LZ4) => self.decompress(&bytes),
            Some(&RAW) => {
                bytes.remove(0);
                Ok(bytes)
            }
            _ => Ok(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_every_size_and_first_byte() {
        let c = Compression::default().with_threshold(16);
        for first in [0u8, b'S', b'{', RAW, LZ4, 0xFF] {
            for len in [0usize, 1, 15, 16, 17, 100, 5000] {
                let mut v: Vec<u8> = (0..len).map(|i| (i % 7) as u8).collect();
                if let Some(b) = v.first_mut() {
                    *b = first;
                }
                let stored = c.apply(v.clone()).unwrap();
                assert_eq!(c.undo(stored).unwrap(), v, "first {first:#x}, len {len}");
            }
        }
    }

    #[test]
    fn incompressible_bytes_are_stored_raw() {
        let mut seed = 1u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 56) as u8 | 0x01
            })
            .map(|b| if b == RAW || b == LZ4 { 1 } else { b })
            .collect();
        let stored = Compression::default().apply(noise.clone()).unwrap();
        assert_eq!(stored, noise);
    }

    #[test]
    fn a_stated_length_beyond_the_bounds_is_refused_unallocated() {
        let c = Compression::default().with_max_decompressed(1 << 20);
        // Claims 4 GiB - 1 in 9 bytes: neither bound lets it allocate.
        let lie = [LZ4, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, 1, 0];
        assert!(matches!(c.undo(lie.to_vec()), Err(Error::Corrupt(_))));
        // A real bomb: 2 MiB of zeros compress to a few kilobytes, above a 1 MiB bound.
        let bomb = Compression::default().apply(vec![0u8; 2 << 20]).unwrap();
        assert!(bomb.len() < 16 << 10);
        assert!(matches!(c.undo(bomb), Err(Error::Corrupt(_))));
        // Truncated and lying blocks.
        let ok = Compression::default().apply(vec![b'a'; 4096]).unwrap();
        assert!(c.undo(ok[..ok.len() - 3].to_vec()).is_err());
        assert!(c.undo(ok[..3].to_vec()).is_err());
        let mut shorter = ok.clone();
        shorter[1] = shorter[1].wrapping_sub(1);
        assert!(c.undo(shorter).is_err());
    }

    #[test]
    fn entries_above_the_bound_are_stored_raw_so_they_read_back() {
        let c = Compression::default().with_max_decompressed(1000);
        let v = vec![b'S'; 2000];
        assert_eq!(c.undo(c.apply(v.clone()).unwrap()).unwrap(), v);
    }
}
