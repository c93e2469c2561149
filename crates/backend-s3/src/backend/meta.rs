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
        assert!(h.check("k").is_ok());
        let never = Head::parse(None, None);
        assert!(never.live(u64::MAX) && never.kind == Kind::Value);
        let mut bad = m.clone();
        bad.insert(META_EXPIRES.into(), "soon".into());
        let b = Head::parse(Some(&bad), None);
        assert!(!b.live(0), "not a live entry");
        assert!(matches!(b.check("k"), Err(Error::Corrupt(_))));
    }
}
