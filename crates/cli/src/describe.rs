//! One stored value, read back: an envelope (its header and payload), a raw value the engine
//! keeps beside them (a counter, a lock token, a tag's time), or a corrupt entry.

use crate::output::{hex, hex_preview, instant, instant_json, now_ms, span};
use serde_json::{json, Value};
use std::fmt::Write as _;
use steadycache::{plumbing::FORMAT_VERSION, Entry, Freshness};

/// The high bit of a codec id: the codec signs its entries (see `Codec::id`).
const SIGNED_BIT: u8 = 0x80;
/// The length of a signed payload's leading HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// How many bytes of a payload a hex preview shows.
const PREVIEW: usize = 256;

/// What a stored value is.
pub enum Stored {
    /// A steadycache envelope.
    Entry(Box<Entry>),
    /// Not an envelope, and not meant to be one: an internal key (`#`) or a bare counter.
    Raw,
    /// Meant to be an envelope but unreadable (why): a read of it is a counted miss.
    Corrupt(String),
}

/// One key's value, read back.
pub struct Described {
    /// The key.
    pub key: String,
    /// The stored bytes.
    pub bytes: Vec<u8>,
    /// What they are.
    pub stored: Stored,
}

impl Described {
    /// Read `bytes` stored under `key`.
    pub fn new(key: &str, bytes: Vec<u8>) -> Described {
        let stored = match Entry::decode(&bytes) {
            Ok(e) => Stored::Entry(Box::new(e)),
            Err(_) if key.contains('#') || bytes.iter().all(u8::is_ascii_digit) => Stored::Raw,
            Err(e) => Stored::Corrupt(e.to_string()),
        };
        Described {
            key: key.to_owned(),
            bytes,
            stored,
        }
    }

    /// Why a read of this value is a miss (the library never serves it): a corrupt entry, or
    /// one written under another key (copied or moved: its key hash does not match).
    pub fn unusable(&self) -> Option<String> {
        match &self.stored {
            Stored::Corrupt(why) => Some(format!("corrupt ({why})")),
            Stored::Entry(e) if e.key_hash != Entry::key_hash_of(&self.key) => {
                Some("misplaced (written under another key: its key hash does not match)".into())
            }
            _ => None,
        }
    }

    /// The state of the value at `now`: `fresh`, `stale`, `reserve` (kept for fail-safe),
    /// `expired`, `raw`, `corrupt` or `misplaced`; a cached `None`/`Err` adds `, negative`.
    pub fn state(&self, now: u64) -> String {
        match &self.stored {
            Stored::Entry(e) if e.key_hash != Entry::key_hash_of(&self.key) => "misplaced".into(),
            Stored::Entry(e) => {
                let s = match e.freshness(now) {
                    Freshness::Fresh => "fresh",
                    Freshness::Stale => "stale",
                    Freshness::Reserve => "reserve",
                    Freshness::Expired => "expired",
                };
                if e.is_negative() {
                    format!("{s}, negative")
                } else {
                    s.to_owned()
                }
            }
            Stored::Raw => "raw".into(),
            Stored::Corrupt(_) => "corrupt".into(),
        }
    }

    /// The payload without a signature's tag (the codec's bytes), or the raw bytes.
    pub fn payload(&self) -> &[u8] {
        match &self.stored {
            Stored::Entry(e) if e.codec & SIGNED_BIT != 0 => {
                e.payload.get(TAG_LEN..).unwrap_or(&[])
            }
            Stored::Entry(e) => &e.payload,
            _ => &self.bytes,
        }
    }

    /// The payload as JSON when the codec is JSON and it parses.
    pub fn payload_json(&self) -> Option<Value> {
        match &self.stored {
            Stored::Entry(e) if e.codec & !SIGNED_BIT == 2 => {
                serde_json::from_slice(self.payload()).ok()
            }
            _ => None,
        }
    }

    /// One row of `ls`: key, size, age, state, expires in.
    pub fn row(&self, now: u64) -> Vec<String> {
        let (age, expires) = match &self.stored {
            Stored::Entry(e) => (
                span(now.saturating_sub(e.created_at)),
                if e.expires_at == u64::MAX {
                    "never".into()
                } else if e.expires_at > now {
                    span(e.expires_at - now)
                } else {
                    "-".into()
                },
            ),
            _ => ("-".into(), "-".into()),
        };
        vec![
            self.key.clone(),
            crate::output::bytes(self.bytes.len() as u64),
            age,
            self.state(now),
            expires,
        ]
    }

    /// The JSON of one `ls` row (and the common part of `inspect`'s).
    pub fn summary_json(&self, now: u64) -> Value {
        let mut v = json!({
            "key": self.key,
            "size": self.bytes.len(),
            "state": self.state(now),
        });
        if let Stored::Entry(e) = &self.stored {
            v["created_at"] = e.created_at.into();
            v["age_ms"] = now.saturating_sub(e.created_at).into();
            v["stale_at"] = instant_json(e.stale_at);
            v["expires_at"] = instant_json(e.expires_at);
            v["keep_until"] = instant_json(e.keep_until);
            v["negative"] = e.is_negative().into();
        }
        if let Stored::Corrupt(why) = &self.stored {
            v["corrupt"] = why.as_str().into();
        }
        v
    }

    /// `inspect` as JSON.
    pub fn inspect_json(&self) -> Value {
        let now = now_ms();
        let mut v = self.summary_json(now);
        if let Stored::Entry(e) = &self.stored {
            v["form"] = self.form().into();
            v["format_version"] = FORMAT_VERSION.into();
            v["codec"] = json!({
                "id": e.codec,
                "name": codec_name(e.codec),
                "signed": e.codec & SIGNED_BIT != 0,
            });
            v["flags"] = e.flags.into();
            v["key_hash"] = format!("{:016x}", e.key_hash).into();
            v["key_hash_matches"] = (e.key_hash == Entry::key_hash_of(&self.key)).into();
            v["took_ms"] = e.took_ms.into();
            v["payload_size"] = self.payload().len().into();
        }
        match self.payload_json() {
            Some(p) => v["payload"] = p,
            None => v["payload_hex"] = hex(self.payload()).into(),
        }
        v
    }

    /// `inspect` as text.
    pub fn inspect_text(&self) -> String {
        let now = now_ms();
        let mut out = String::new();
        let mut line = |name: &str, value: String| {
            let _ = writeln!(out, "{name:<12} {value}");
        };
        line("key", self.key.clone());
        line("stored", format!("{} bytes", self.bytes.len()));
        match &self.stored {
            Stored::Entry(e) => {
                line(
                    "format",
                    format!(
                        "steadycache envelope v{FORMAT_VERSION}, {} form",
                        self.form()
                    ),
                );
                let signed = if e.codec & SIGNED_BIT != 0 {
                    ", signed"
                } else {
                    ""
                };
                line(
                    "codec",
                    format!("{} (id {}){signed}", codec_name(e.codec), e.codec),
                );
                let negative = if e.is_negative() {
                    " (negative: a cached None or Err)"
                } else {
                    ""
                };
                line("flags", format!("{:#04x}{negative}", e.flags));
                let matches = if e.key_hash == Entry::key_hash_of(&self.key) {
                    "matches the key"
                } else {
                    "does NOT match the key: a read is a miss"
                };
                line("key hash", format!("{:016x} ({matches})", e.key_hash));
                line("created", instant(e.created_at, now));
                line("stale at", instant(e.stale_at, now));
                line("expires at", instant(e.expires_at, now));
                line("keep until", instant(e.keep_until, now));
                line("took", format!("{} ms", e.took_ms));
                line("state", self.state(now));
                line("payload", format!("{} bytes", self.payload().len()));
            }
            Stored::Raw => line("format", "raw (not an envelope: an engine record)".into()),
            Stored::Corrupt(why) => line("format", format!("corrupt: {why}")),
        }
        match self.payload_json() {
            Some(p) => {
                let pretty = serde_json::to_string_pretty(&p).unwrap_or_default();
                let _ = writeln!(out, "\n{pretty}");
            }
            None => {
                let _ = write!(out, "\n{}", hex_preview(self.payload(), PREVIEW));
            }
        }
        out
    }

    fn form(&self) -> &'static str {
        if self.bytes.first() == Some(&b'{') {
            "JSON"
        } else {
            "binary"
        }
    }
}

/// The name of a codec id (see `Codec::id`).
fn codec_name(id: u8) -> &'static str {
    match id & !SIGNED_BIT {
        1 => "bincode",
        2 => "json",
        _ => "unknown",
    }
}
