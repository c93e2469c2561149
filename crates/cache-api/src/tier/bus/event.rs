//! The bus's messages: small, text, versioned (`sc1 <origin> <kind> <payload>`), so that a
//! process of a later release can tell a message it does not know and drop it.

use std::fmt::Write;

/// The version tag every message starts with.
const VERSION: &str = "sc1";

/// What changed in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The entry under this key was stored, replaced or removed.
    Key(String),
    /// Every entry under this prefix was removed.
    Prefix(String),
    /// Every entry matching this glob pattern was removed.
    Matching(String),
    /// The tag was invalidated at this time (ms since the Unix epoch).
    Tag { tag: String, at: u64 },
    /// The whole cache was cleared.
    All,
    /// A heartbeat (a subscriber hears its own to know the bus carries).
    Beat,
}

/// One message: who sent it, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    /// The sending cache's random id (a process ignores its own, but for heartbeats).
    pub(crate) origin: u64,
    pub(crate) event: Event,
}

impl Message {
    /// The bytes sent.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(32);
        let _ = write!(out, "{VERSION} {:016x} ", self.origin);
        match &self.event {
            Event::Key(k) => {
                out.push_str("k ");
                out.push_str(k);
            }
            Event::Prefix(p) => {
                out.push_str("p ");
                out.push_str(p);
            }
            Event::Matching(g) => {
                out.push_str("m ");
                out.push_str(g);
            }
            Event::Tag { tag, at } => {
                let _ = write!(out, "t {at} {tag}");
            }
            Event::All => out.push_str("a "),
            Event::Beat => out.push_str("h "),
        }
        out.into_bytes()
    }

    /// The message in `bytes`; `None` for anything else (another version, garbage), which the
    /// caller drops.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(4, ' ');
        if parts.next()? != VERSION {
            return None;
        }
        let origin = u64::from_str_radix(parts.next()?, 16).ok()?;
        let kind = parts.next()?;
        let payload = parts.next()?.to_owned();
        let event = match kind {
            "k" => Event::Key(payload),
            "p" => Event::Prefix(payload),
            "m" => Event::Matching(payload),
            "t" => {
                let (at, tag) = payload.split_once(' ')?;
                Event::Tag {
                    tag: tag.to_owned(),
                    at: at.parse().ok()?,
                }
            }
            "a" => Event::All,
            "h" => Event::Beat,
            _ => return None,
        };
        Some(Message { origin, event })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips() {
        for event in [
            Event::Key("app.f:v1:user 5".into()),
            Event::Prefix("".into()),
            Event::Matching("user:*:profile".into()),
            Event::Tag {
                tag: "user:5 x".into(),
                at: 1_800_000_000_000,
            },
            Event::All,
            Event::Beat,
        ] {
            let m = Message {
                origin: 0xdead_beef,
                event,
            };
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
    }

    #[test]
    fn foreign_messages_are_dropped() {
        for bad in [
            &b""[..],
            b"sc2 00 k x",
            b"sc1 zz k x",
            b"sc1 00 q x",
            b"sc1 00 t x",
            b"\xff",
        ] {
            assert_eq!(Message::decode(bad), None);
        }
    }
}
