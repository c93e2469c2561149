//! What the CLI prints: failures (one line, secrets scrubbed), sizes, times, hex previews and
//! plain-text tables.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use steadycache::plumbing::redact_url;

/// Why a command failed; each kind has its exit code (see `EXIT_CODES`).
#[derive(Debug)]
pub enum Failure {
    /// The store failed, timed out or could not be opened: 1.
    Store(String),
    /// Bad usage that clap could not catch (a URL, a cursor): 2.
    Usage(String),
    /// No such key: 3.
    NotFound(String),
    /// A clear that was not confirmed: 4.
    Declined(String),
}

impl Failure {
    /// The process's exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Store(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::Declined(_) => 4,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Store(m) | Failure::Usage(m) | Failure::NotFound(m) | Failure::Declined(m) => {
                m
            }
        }
    }

    /// One line on stderr (a JSON object with `--json`), with every secret of `url` scrubbed.
    pub fn report(&self, url: &str, json: bool) {
        let message = scrub(self.message(), url);
        let message = message.lines().collect::<Vec<_>>().join(" ");
        if json {
            let doc = serde_json::json!({ "error": message, "exit": self.code() });
            eprintln!("{doc}");
        } else {
            eprintln!("steadycache: {message}");
        }
    }
}

/// `text` with the URL replaced by its redacted form, and each secret the URL carries (its
/// user info, the values of query options named like a password, secret, token or key)
/// replaced by `***` wherever else it appears.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    if url.is_empty() {
        return out;
    }
    out = out.replace(url, &redact_url(url));
    for secret in secrets_of(url) {
        // As written and percent-decoded (how a library may quote it). Shorter than 3 bytes it
        // would mangle the message; such a secret is no secret anyway.
        let decoded = percent_encoding::percent_decode_str(&secret)
            .decode_utf8_lossy()
            .into_owned();
        for s in [secret, decoded] {
            if s.len() >= 3 {
                out = out.replace(&s, "***");
            }
        }
    }
    out
}

fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            secrets.push(userinfo.to_owned());
            if let Some((_, password)) = userinfo.split_once(':') {
                secrets.push(password.to_owned());
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            if let Some((name, value)) = pair.split_once('=') {
                let name = name.to_ascii_lowercase();
                if ["pass", "secret", "token", "key", "auth"]
                    .iter()
                    .any(|s| name.contains(s))
                {
                    secrets.push(value.to_owned());
                }
            }
        }
    }
    secrets
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A size for people: `812 B`, `1.5 KiB`, `3.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// A span for people, to the second (`3m 2s`; `0s` under a second).
pub fn span(ms: u64) -> String {
    let d = Duration::from_secs(ms / 1000);
    humantime::format_duration(d).to_string()
}

/// An instant (ms since the epoch; `u64::MAX` is never) as RFC 3339, with how far it is from
/// `now`.
pub fn instant(ms: u64, now: u64) -> String {
    if ms == u64::MAX {
        return "never".into();
    }
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let rfc = humantime::format_rfc3339_millis(at);
    if ms >= now {
        format!("{rfc} (in {})", span(ms - now))
    } else {
        format!("{rfc} ({} ago)", span(now - ms))
    }
}

/// An instant for JSON: ms since the epoch, or `null` for never.
pub fn instant_json(ms: u64) -> serde_json::Value {
    if ms == u64::MAX {
        serde_json::Value::Null
    } else {
        ms.into()
    }
}

/// The first `max` bytes as lines of 16 (offset, hex, printable ASCII), and how many more.
pub fn hex_preview(data: &[u8], max: usize) -> String {
    let mut out = String::new();
    for (i, row) in data[..data.len().min(max)].chunks(16).enumerate() {
        let _ = write!(out, "{:08x}  ", i * 16);
        for j in 0..16 {
            match row.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(row.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    if data.len() > max {
        let _ = writeln!(out, "… {} more bytes", data.len() - max);
    }
    out
}

/// Lowercase hex of all of `data`.
pub fn hex(data: &[u8]) -> String {
    data.iter()
        .fold(String::with_capacity(data.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_wherever_they_appear() {
        let url = "redis://app:hunter%2F22@h:6379/0?tls_key_password=sesame&x=1";
        let text =
            format!("cannot open {url}: auth failed for app:hunter/22 (hunter%2F22, sesame)");
        let out = scrub(&text, url);
        for secret in ["hunter/22", "hunter%2F22", "sesame"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains("h:6379"), "{out}");
    }

    #[test]
    fn sizes_spans_and_hex_read_well() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(span(182_400), "3m 2s");
        assert_eq!(hex(b"\x00\xff"), "00ff");
        let p = hex_preview(b"SC\x03hello world, this is long", 16);
        assert!(p.starts_with("00000000  53 43 03"), "{p}");
        assert!(p.contains("… 12 more bytes"), "{p}");
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
    }
}
