//! [`Encryption`]: XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`, pure Rust) under a
//! keyring with key ids, for rotation.

use super::Transform;
use crate::error::{Error, Result};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;

/// The length of an encryption key, in bytes (256 bits).
pub const KEY_LEN: usize = 32;

/// First byte of encrypted bytes (the format's version): `0xE1`, the key id (u32, little
/// endian), a 24-byte random nonce, then the ciphertext and its 16-byte tag.
const SEALED: u8 = 0xE1;
const NONCE_LEN: usize = 24;
const HEADER: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Encrypts and authenticates every entry with XChaCha20-Poly1305 (a ready [`Transform`]; wrap
/// a manager with [`Transformed`](super::Transformed) or [`Transforms`](super::Transforms)).
///
/// * **Keys and rotation**: a keyring of 32-byte keys, each with an id of yours. The first key
///   encrypts; every key decrypts, chosen by the id stored in the entry. To rotate, put the new
///   key first and keep the old ones after it for as long as entries written with them may
///   live (their ttl, or `fail_safe`); then drop them. An entry whose key is no longer in the
///   ring is a logged miss, recomputed under the new key.
/// * **Nonces** are 24 random bytes from the operating system for each entry: with
///   XChaCha20's extended nonce, random nonces do not repeat in any realistic number of writes
///   under one key (unlike ChaCha20-Poly1305's 12 bytes, which is why this one).
/// * **What is authenticated**: the whole entry, and the stored header (the format byte and
///   the key id) as associated data. A tampered, truncated or foreign entry, or one written
///   with a key not in the ring, is [`Error::Corrupt`]: a logged miss, removed and
///   recomputed, never a wrong value. The hooks see bytes, not the key an entry is stored
///   under, so the ciphertext is not bound to its key by the cipher; the envelope inside it
///   carries the hash of its key, which the engine checks on every load, and a signed codec
///   ([`Codec::signed`](crate::Codec::signed)) binds it with a MAC.
/// * **Entries written before encryption was turned on** are refused (a logged miss each,
///   recomputed once), since accepting unauthenticated entries would let anyone who can write
///   to the store choose what is served; [`accept_unencrypted`](Self::accept_unencrypted)
///   reads them during a migration.
/// * **Secrets**: keys appear in no `Debug` output, error or log (only their ids do); the
///   ciphers are zeroized when dropped.
///
/// ```
/// use steadycache_api::transform::{Encryption, Transform};
/// let old = Encryption::new([(1, [1u8; 32])]).unwrap();
/// let sealed = old.apply(b"an encoded entry".to_vec()).unwrap();
/// // Rotation: key 2 encrypts now, key 1 still decrypts.
/// let rotated = Encryption::new([(2, [2u8; 32]), (1, [1u8; 32])]).unwrap();
/// assert_eq!(rotated.undo(sealed.clone()).unwrap(), b"an encoded entry");
/// // Without key 1: refused.
/// assert!(Encryption::new([(2, [2u8; 32])]).unwrap().undo(sealed).is_err());
/// assert_eq!(format!("{rotated:?}"), "Encryption { key_ids: [2, 1], accept_unencrypted: false }");
/// ```
pub struct Encryption {
    /// Non-empty: the first encrypts.
    keys: Vec<(u32, XChaCha20Poly1305)>,
    accept_unencrypted: bool,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryption")
            .field("key_ids", &self.key_ids())
            .field("accept_unencrypted", &self.accept_unencrypted)
            .finish()
    }
}

impl Encryption {
    /// A keyring of `(id, key)` pairs, the first of which encrypts; every key must be
    /// [`KEY_LEN`] bytes (random ones: not a password) and every id distinct, else
    /// [`Error::Config`] (which names the id, never the key).
    pub fn new<K: AsRef<[u8]>>(keys: impl IntoIterator<Item = (u32, K)>) -> Result<Self> {
        let mut ring: Vec<(u32, XChaCha20Poly1305)> = Vec::new();
        for (id, key) in keys {
            let key = key.as_ref();
            if key.len() != KEY_LEN {
                return Err(Error::Config(format!(
                    "encryption key {id} is {} bytes; it must be {KEY_LEN} random bytes",
                    key.len()
                )));
            }
            if ring.iter().any(|(other, _)| *other == id) {
                return Err(Error::Config(format!(
                    "encryption key id {id} is given twice"
                )));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(key)
                .map_err(|_| Error::Config(format!("encryption key {id} is refused")))?;
            ring.push((id, cipher));
        }
        if ring.is_empty() {
            return Err(Error::Config("an encryption keyring needs a key".into()));
        }
        Ok(Encryption {
            keys: ring,
            accept_unencrypted: false,
        })
    }

    /// Also read entries that are not encrypted (written before encryption was turned on),
    /// as they are: for a migration only (see the type's docs). New entries are encrypted.
    pub fn accept_unencrypted(mut self) -> Self {
        self.accept_unencrypted = true;
        self
    }

    /// The ids of the keyring, the encrypting one first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    fn seal(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let Some((id, cipher)) = self.keys.first() else {
            return Err(Error::Config("an encryption keyring needs a key".into()));
        };
        let nonce = XNonce::try_generate().map_err(|e| Error::Codec {
            codec: "xchacha20poly1305",
            message: format!("no random nonce from the operating system: {e}"),
        })?;
        let mut out = Vec::with_capacity(HEADER + bytes.len() + TAG_LEN);
        out.push(SEALED);
        out.extend_from_slice(&id.to_le_bytes());
        let aad = out.clone();
        out.extend_from_slice(&nonce);
        let payload = Payload {
            msg: bytes,
            aad: &aad,
        };
        let sealed = cipher.encrypt(&nonce, payload).map_err(|_| Error::Codec {
            codec: "xchacha20poly1305",
            message: "encryption failed".into(),
        })?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        if bytes.len() < HEADER + TAG_LEN {
            return Err(corrupt("encrypted entry shorter than its header and tag"));
        }
        let (aad, rest) = bytes.split_at(5);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let id = u32::from_le_bytes([aad[1], aad[2], aad[3], aad[4]]);
        let Some((_, cipher)) = self.keys.iter().find(|(k, _)| *k == id) else {
            return Err(corrupt(&format!(
                "encrypted with key id {id}, which is not in the keyring"
            )));
        };
        let nonce = XNonce::try_from(nonce).map_err(|_| corrupt("bad nonce"))?;
        cipher
            .decrypt(&nonce, Payload { msg: sealed, aad })
            .map_err(|_| corrupt(&format!("does not authenticate under key id {id}")))
    }
}

fn corrupt(why: &str) -> Error {
    Error::Corrupt(format!("xchacha20poly1305: {why}"))
}

impl Transform for Encryption {
    fn apply(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.seal(&bytes)
    }

    fn undo(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        match bytes.first() {
            Some(&SEALED) => self.open(&bytes),
            _ if self.accept_unencrypted => Ok(bytes),
            _ => Err(corrupt("entry is not encrypted")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [0xA5; 32];
    const B: [u8; 32] = [0x5B; 32];

    #[test]
    fn every_bit_flip_is_refused() {
        let e = Encryption::new([(7, A)]).unwrap();
        let sealed = e.apply(b"SC an entry".to_vec()).unwrap();
        assert_eq!(sealed.len(), HEADER + 11 + TAG_LEN);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(matches!(e.undo(bad), Err(Error::Corrupt(_))), "byte {i}");
        }
        for n in 0..sealed.len() {
            assert!(e.undo(sealed[..n].to_vec()).is_err(), "truncated to {n}");
        }
        assert_eq!(e.undo(sealed).unwrap(), b"SC an entry");
    }

    #[test]
    fn nonces_differ_and_plaintext_is_refused_unless_accepted() {
        let e = Encryption::new([(1, A)]).unwrap();
        let one = e.apply(b"same".to_vec()).unwrap();
        let two = e.apply(b"same".to_vec()).unwrap();
        assert_ne!(one, two);
        assert!(e.undo(b"SC plain".to_vec()).is_err());
        let migrating = Encryption::new([(1, A)]).unwrap().accept_unencrypted();
        assert_eq!(migrating.undo(b"SC plain".to_vec()).unwrap(), b"SC plain");
        assert_eq!(migrating.undo(one).unwrap(), b"same");
    }

    #[test]
    fn bad_keyrings_are_config_errors_that_show_no_key() {
        let none: [(u32, [u8; 32]); 0] = [];
        assert!(matches!(Encryption::new(none), Err(Error::Config(_))));
        let short = Encryption::new([(1, &b"hunter2hunter2"[..])]).unwrap_err();
        assert!(!format!("{short} {short:?}").contains("hunter2"));
        assert!(Encryption::new([(1, A), (1, B)]).is_err());
        let e = Encryption::new([(1, A), (2, B)]).unwrap();
        let shown = format!("{e:?}");
        assert!(!shown.contains("165") && !shown.contains("a5") && !shown.contains("A5"));
    }
}
