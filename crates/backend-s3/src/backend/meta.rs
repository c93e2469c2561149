//! Object metadata: the `x-amz-meta-…` keys, what they say of an object, and its expiry.

use std::collections::HashMap;
use steadycache_api::{Error, Result};

/// Metadata key (`x-amz-meta-…`) of the hard expiry, ms since the Unix epoch; absent = never.
pub(crate) const META_EXPIRES: &str = "steadycache-expires-at";
/// Metadata key of what the object is: `value` or `lock`.
pub(crate) const META_KIND: &str = "steadycache-kind";
/// Metadata key of the random id of the conditional write that made the object.
pub(crate) const META_WRITER: &str = "steadycache-writer";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Value,
    Lock,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Value => "value",
            Kind::Lock => "lock",
        }
    }
}

/// What the metadata of a stored object says.
#[derive(Debug)]
pub(crate) struct Head {
    expires_at: Option<u64>,
    /// The expiry metadata, when it is there but not a time (a corrupt entry).
    pub(crate) bad_expiry: Option<String>,
    pub(crate) kind: Kind,
    pub(crate) writer: Option<String>,
    pub(crate) etag: Option<String>,
}

impl Head {
    /// Read our metadata. An expiry that is not a number is kept in `bad_expiry`: the object is
    /// then no live entry (a read reports it corrupt, a create takes it over, a delete removes
    /// it).
    pub(crate) fn parse(meta: Option<&HashMap<String, String>>, etag: Option<&str>) -> Head {
        let get = |k: &str| meta.and_then(|m| m.get(k));
        let (expires_at, bad_expiry) = match get(META_EXPIRES) {
            None => (None, None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(t) => (Some(t), None),
                Err(_) => (None, Some(v.clone())),
            },
        };
        let kind = match get(META_KIND).map(String::as_str) {
            Some("lock") => Kind::Lock,
            _ => Kind::Value,
        };
        Head {
            expires_at,
            bad_expiry,
            kind,
            writer: get(META_WRITER).cloned(),
            etag: etag.map(str::to_owned),
        }
    }

    pub(crate) fn live(&self, now: u64) -> bool {
        self.bad_expiry.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// Whether the object has an expiry and it is `t` or earlier.
    pub(crate) fn expired_at_or_before(&self, t: u64) -> bool {
        self.expires_at.is_some_and(|e| e <= t)
    }

    /// [`Error::Corrupt`] when the metadata is not ours to read.
    pub(crate) fn check(&self, key: &str) -> Result<()> {
        match &self.bad_expiry {
            None => Ok(()),
            Some(v) => Err(Error::Corrupt(format!(
                "s3 object `{key}`: metadata {META_EXPIRES}=`{v}` is not a time"
            ))),
        }
    }
}

/// The metadata of a new object: its kind, its expiry (if any) and the id of the conditional
/// write that makes it (if any).
pub(crate) fn metadata(
    kind: Kind,
    expires_at: Option<u64>,
    writer: Option<&str>,
) -> HashMap<String, String> {
    let mut m = HashMap::with_capacity(3);
    m.insert(META_KIND.to_owned(), kind.as_str().to_owned());
    if let Some(e) = expires_at {
        m.insert(META_EXPIRES.to_owned(), e.to_string());
    }
    if let Some(w) = writer {
        m.insert(META_WRITER.to_owned(), w.to_owned());
    }
    m
}

/// The body of a lock object: the holder's token, a newline and the id of the write that made
/// it. S3's ETag of a plain `PutObject` is the MD5 of the body, so with the writer id in it
/// every write of a lock (taken, renewed, released in place) has an ETag of its own, and a
/// write conditional on one version (`If-Match`) never matches a later version that happens
/// to carry the same token.
pub(crate) fn lock_body(token: &[u8], writer: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(token.len() + 1 + writer.len());
    b.extend_from_slice(token);
    b.push(b'\n');
    b.extend_from_slice(writer.as_bytes());
    b
}

/// The holder's token in a lock object's body (see [`lock_body`]); a body without a writer id
/// (written by an earlier version of this crate) is all token.
pub(crate) fn lock_token(body: &[u8]) -> &[u8] {
    const ID: usize = 16;
    match body.len().checked_sub(ID + 1) {
        Some(at) if body[at] == b'\n' && body[at + 1..].iter().all(u8::is_ascii_hexdigit) => {
            &body[..at]
        }
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_parses_and_bad_expiry_is_corrupt() {
        let m = metadata(Kind::Lock, Some(42), Some("w1"));
        let h = Head::parse(Some(&m), Some("\"e\""));
        assert_eq!(h.expires_at, Some(42));
        assert_eq!(h.kind, Kind::Lock);
        assert_eq!(h.writer.as_deref(), Some("w1"));
        assert!(h.live(41) && !h.live(42));
        assert!(h.expired_at_or_before(42) && !h.expired_at_or_before(41));
        assert!(h.check("k").is_ok());
        let never = Head::parse(None, None);
        assert!(never.live(u64::MAX) && never.kind == Kind::Value);
        let mut bad = m.clone();
        bad.insert(META_EXPIRES.into(), "soon".into());
        let b = Head::parse(Some(&bad), None);
        assert!(!b.live(0), "not a live entry");
        assert!(matches!(b.check("k"), Err(Error::Corrupt(_))));
    }

    #[test]
    fn lock_bodies_carry_the_token_and_a_writer_id() {
        let b = lock_body(b"tok en", "0123456789abcdef");
        assert_eq!(lock_token(&b), b"tok en");
        assert_ne!(
            b,
            lock_body(b"tok en", "fedcba9876543210"),
            "one body per write"
        );
        assert_eq!(lock_token(b"plain-token"), b"plain-token");
        assert_eq!(lock_token(b""), b"");
        assert_eq!(lock_token(b"\n0123456789abcdef"), b"");
    }
}
