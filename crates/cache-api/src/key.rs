//! Keys: `namespace:version:args`.
//!
//! * namespace: the function's module path and name with `::` written as `.` (so a key has exactly
//!   the two `:` separators before its args part and a prefix `ns:` can never match another
//!   function), or the `key_prefix` the user chose;
//! * version: by default a hash of the function's tokens taken at macro expansion;
//! * args: the 128-bit stable hash of the serialized arguments as 32 hex digits, or a readable
//!   template rendering (`user:42`).
//!
//! Keys are injective and internal keys cannot be forged. The namespace and version escape
//! `:`, `#` and `%` ([`sanitize`]), so namespaces are prefix-free (`app:` never starts a key of
//! `app:users`, which is `app%3Ausers:`). A template's values are escaped too ([`KeyPart`]:
//! everything but ASCII letters, digits and `-_.~` is percent-encoded), and the macro checks at
//! compile time that the template's own text holds no `#` or `%` and separates any two
//! placeholders by a character a value cannot contain; so two argument lists render two keys,
//! and no key of a memoized call contains `#`, the mark of the engine's internal keys (a lock
//! is `key#lock`).
//!
//! The args hash is stable across runs, processes, machines, word sizes and endianness: the
//! arguments are serialized with bincode's standard configuration (little endian, varint integers,
//! `usize` as u64) and hashed with XXH3-128 (whose output is specified byte for byte). The
//! serialization is streamed into a stack buffer, so hashing small arguments allocates nothing;
//! map-free arguments that fit it are written by a serializer of our own that writes
//! bincode's bytes directly ([`direct`]: about 1 ns for a `u64` where bincode's encoder takes
//! 4), the rest by bincode itself.
//! Maps are serialized in a canonical order ([`canonical`]: entries sorted by their bytes), so
//! equal `HashMap`s hash equally; sets cannot be (see [`hash_args`]).

mod canonical;
mod direct;
mod hash;

pub use hash::{hash_args, hash_args_bincode, hash_local, LocalArg};

use std::fmt;
use xxhash_rust::xxh3::xxh3_128;

/// Arguments that serialize to at most this many bytes are hashed from a stack buffer (small
/// enough that preparing it costs nothing measurable); longer ones are streamed.
const STACK: usize = 64;

/// The key of one call: the stable args hash, or a readable rendered template.
#[derive(Clone, Copy)]
pub struct ArgsKey<'a> {
    pub(crate) hash: u128,
    text: Option<&'a str>,
    /// The call's tags (`#[cached(tags = [...])]`), rendered on the slow path only.
    pub(crate) tags: Option<&'a [String]>,
    /// Whether the hash holds an argument hashed by its `std::hash::Hash` (no serde): such a
    /// key means something in this process only, so its entries never reach a store.
    local: bool,
}

impl fmt::Debug for ArgsKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text {
            Some(t) => write!(f, "ArgsKey({t:?})"),
            None => write!(f, "ArgsKey({})", hex128(self.hash)),
        }
    }
}

impl<'a> ArgsKey<'a> {
    /// A key from the stable args hash ([`hash_args`](crate::hash_args)).
    #[inline]
    pub fn hashed(hash: u128) -> Self {
        ArgsKey {
            hash,
            text: None,
            tags: None,
            local: false,
        }
    }

    /// The same key, marked as meaningful in this process only when `local` (an argument
    /// without serde hashed by its `std::hash::Hash`, which is not stable across processes or
    /// versions for every type): a [`Memo`](crate::Memo) keeps such calls in process only, and
    /// runs them uncached on a cache whose values go to a store.
    #[inline]
    pub fn in_process(mut self, local: bool) -> Self {
        self.local |= local;
        self
    }

    /// Whether the key means something in this process only (see [`in_process`](Self::in_process)).
    #[inline]
    pub fn is_in_process(&self) -> bool {
        self.local
    }

    /// The same key, with the call's tags (rendered after [`Memo::hit`] missed: never on an
    /// in-process hit).
    #[inline]
    pub fn with_tags(mut self, tags: &'a [String]) -> Self {
        self.tags = Some(tags);
        self
    }

    /// A readable key (`#[cached(key = "user:{id}")]`): stored as the text itself (the macro
    /// renders it with its values escaped: see `KeyPart`), looked up in process by its
    /// XXH3-128 hash.
    #[inline]
    pub fn text(text: &'a str) -> Self {
        ArgsKey {
            hash: xxhash_rust::xxh3::xxh3_128(text.as_bytes()),
            text: Some(text),
            tags: None,
            local: false,
        }
    }

    /// The hash that identifies the call in process.
    pub fn hash(&self) -> u128 {
        self.hash
    }

    /// The args part of the stored key.
    pub fn part(&self) -> String {
        match self.text {
            Some(t) => t.to_owned(),
            None => hex128(self.hash),
        }
    }
}

/// 32 lowercase hex digits.
pub(crate) fn hex128(h: u128) -> String {
    let mut out = String::with_capacity(32);
    push_hex128(&mut out, h);
    out
}

/// Make arbitrary text a readable ASCII namespace or version: bytes outside `!`..=`~`, and the
/// separators `:`, `#` and `%` itself, are percent-encoded.
pub(crate) fn sanitize(part: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if (0x21..=0x7e).contains(&b) && !matches!(b, b'%' | b':' | b'#') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `module::path::name` as `module.path.name`.
pub(crate) fn namespace_of(module_path: &str, name: &str) -> String {
    let mut ns = sanitize(&module_path.replace("::", "."));
    if !name.is_empty() {
        ns.push('.');
        ns.push_str(&sanitize(name));
    }
    ns
}

/// The prefix every key of `namespace` starts with (`"ns:"`).
pub(crate) fn namespace_prefix(namespace: &str) -> String {
    format!("{namespace}:")
}

/// The full key `namespace:version:args`.
/// `namespace:version:args` of a call's key ([`ArgsKey::part`] as its args), written into one
/// `String` of the right size (every call that reaches a store builds it: `format!` and the hex
/// digits through `fmt` took about 0.1 µs).
pub(crate) fn call_key(namespace: &str, version: &str, key: &ArgsKey<'_>) -> String {
    let args = key.text.map_or(32, str::len);
    let mut out = String::with_capacity(namespace.len() + version.len() + 2 + args);
    out.push_str(namespace);
    out.push(':');
    out.push_str(version);
    out.push(':');
    match key.text {
        Some(t) => out.push_str(t),
        None => push_hex128(&mut out, key.hash),
    }
    out
}

/// `h` as 32 lowercase hex digits (what [`hex128`] writes), appended to `out`.
fn push_hex128(out: &mut String, h: u128) {
    for shift in (0..32).rev() {
        let nibble = ((h >> (shift * 4)) & 0xf) as u32;
        out.push(char::from_digit(nibble, 16).unwrap_or('0'));
    }
}

/// Whether a byte stands for itself in a rendered template value.
#[inline]
pub(crate) fn is_key_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// A value interpolated into a key template, escaped: every byte but ASCII letters, digits and
/// `-_.~` is written `%XX`. What `#[cached(key = "…")]` renders each placeholder through.
pub struct KeyPart<T>(pub T);

impl<T: fmt::Display> fmt::Display for KeyPart<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        struct Escape<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escape<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for b in s.bytes() {
                    if is_key_safe(b) {
                        self.0.write_char(b as char)?;
                    } else {
                        write!(self.0, "%{b:02X}")?;
                    }
                }
                Ok(())
            }
        }
        write!(Escape(f), "{}", self.0)
    }
}

/// A key given by hand (`Cache::get_or_compute("…")`): `#` marks the engine's internal keys, so
/// it is stored as `%23` (a by-hand key cannot name a lock).
pub(crate) fn by_hand(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains('#') {
        std::borrow::Cow::Owned(key.replace('#', "%23"))
    } else {
        std::borrow::Cow::Borrowed(key)
    }
}

/// Whether `key` (without a store's own key prefix), holding a string that starts with `head`,
/// is one of the library's bookkeeping keys: a memoized call's key (`namespace:version:args`,
/// no `#`) followed by `#lock` holding a token of the engine's (32 hex digits), `#done` or
/// `#inv` holding a time, or `#calls` / `#hits<digits>` holding a count. (`steadycache#…` keys are the
/// library's whatever they hold.)
pub(crate) fn is_bookkeeping(key: &str, head: &[u8]) -> bool {
    let Some((base, suffix)) = key.split_once('#') else {
        return false;
    };
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    let shaped = match suffix {
        "lock" => head.len() == 32 && head.iter().all(|b| b"0123456789abcdef".contains(b)),
        "done" | "inv" => digits(head),
        _ if suffix == "calls"
            || suffix
                .strip_prefix("hits")
                .is_some_and(|d| digits(d.as_bytes())) =>
        {
            digits(head.strip_prefix(b"-").unwrap_or(head))
        }
        _ => false,
    };
    shaped && base.contains(':')
}

/// The in-process hashes a stored key's args part may stand for: a rendered template (the
/// hash of its text) and, when it is 32 hex digits, an args hash. Removing both is safe: a
/// typed tier holds copies only.
pub(crate) fn part_hashes(part: &str) -> Vec<u128> {
    let mut hashes = vec![xxh3_128(part.as_bytes())];
    if part.len() == 32 && part.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(h) = u128::from_str_radix(part, 16) {
            hashes.push(h);
        }
    }
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use xxhash_rust::xxh3::Xxh3;

    #[test]
    fn call_key_is_namespace_version_and_part() {
        let mut h: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        for _ in 0..64 {
            let key = ArgsKey::hashed(h);
            assert_eq!(call_key("a.b", "v1", &key), format!("a.b:v1:{h:032x}"));
            assert_eq!(key.part(), format!("{h:032x}"));
            h = h.rotate_left(7) ^ (h >> 3) ^ 0x9e37_79b9;
        }
        for h in [0, u128::MAX] {
            let key = ArgsKey::hashed(h);
            assert_eq!(call_key("n", "v", &key), format!("n:v:{h:032x}"));
            assert_eq!(hex128(h), format!("{h:032x}"));
        }
        let text = ArgsKey::text("user:42");
        assert_eq!(call_key("n", "v", &text), "n:v:user:42");
    }
    use std::collections::HashMap;

    const PINNED: &str = "7731eefe2f0c175f6b9b82a40ff3bd0e";

    #[test]
    fn hash_is_pinned_across_platforms() {
        // The value below was computed once; it must never change, on any machine: stored keys
        // depend on it.
        let h = hash_args(&("EUR", 42u64, -1i32, 2.5f64, true, Some(7usize))).unwrap();
        assert_eq!(hex128(h), PINNED);
        let bytes = bincode::serde::encode_to_vec(
            ("EUR", 42u64, -1i32, 2.5f64, true, Some(7usize)),
            bincode::config::standard(),
        )
        .unwrap();
        assert_eq!(h, xxh3_128(&bytes));
        assert_eq!(
            bytes,
            [3, 69, 85, 82, 42, 1, 0, 0, 0, 0, 0, 0, 4, 64, 1, 1, 7],
            "bincode standard encoding changed"
        );
    }

    /// Arguments of every serde shape but maps: their hashes were computed before maps were
    /// made canonical and must never change (stored keys depend on them).
    #[test]
    fn hashes_without_maps_are_pinned() {
        #[derive(Serialize)]
        struct Unit;
        #[derive(Serialize)]
        struct Newtype(u16);
        #[derive(Serialize)]
        struct Pair(i8, char);
        #[derive(Serialize)]
        enum E {
            A,
            B(u64),
            C(u8, u8),
            D { x: i128, y: Option<()> },
        }
        #[derive(Serialize)]
        struct S<'a> {
            name: &'a str,
            tags: Vec<&'a str>,
            bytes: &'a [u8],
            nested: Vec<Vec<u32>>,
            e: [E; 4],
            unit: Unit,
            newtype: Newtype,
            pair: Pair,
            none: Option<String>,
            wide: (u128, i64, f32),
        }
        let s = S {
            name: "zürich",
            tags: vec!["a", "", "ccc"],
            bytes: &[0, 255, 7],
            nested: vec![vec![], vec![1, 300, 70_000]],
            e: [
                E::A,
                E::B(u64::MAX),
                E::C(1, 2),
                E::D { x: -5, y: Some(()) },
            ],
            unit: Unit,
            newtype: Newtype(513),
            pair: Pair(-128, 'λ'),
            none: None,
            wide: (u128::MAX - 1, i64::MIN, 1.5),
        };
        assert_eq!(hex128(hash_args(&s).unwrap()), PINNED_STRUCT);
        let long: Vec<String> = (0..50).map(|i| format!("item-{i}")).collect();
        assert_eq!(hex128(hash_args(&(&long, 9u8)).unwrap()), PINNED_LONG);
        // A map already in the order of its keys' bytes hashes as it always did.
        let sorted: std::collections::BTreeMap<&str, u32> = [("ab", 1), ("cd", 2)].into();
        assert_eq!(hex128(hash_args(&(&sorted,)).unwrap()), PINNED_SORTED_MAP);
    }

    const PINNED_STRUCT: &str = "4fc63ccf39953c4f8ac4e8ff7e7af77e";
    const PINNED_LONG: &str = "58e38ead241a06aba7fb6769bb7b4d24";
    const PINNED_SORTED_MAP: &str = "7463208be0f139335ab4394bda4ffc88";

    /// `n` entries inserted in the order of `keys`, into a map with a hasher seed of its own.
    fn map_of(keys: impl Iterator<Item = u32>) -> HashMap<String, u32> {
        let mut m = HashMap::with_hasher(std::collections::hash_map::RandomState::new());
        for k in keys {
            m.insert(format!("key-{k}"), k * 7);
        }
        m
    }

    #[test]
    fn equal_hash_maps_hash_equally() {
        let a = map_of(0..20);
        let b = map_of((0..20).rev());
        assert_eq!(a, b);
        assert_eq!(hash_args(&(&a,)).unwrap(), hash_args(&(&b,)).unwrap());
        let c = map_of((0..20).map(|k| (k * 7) % 20));
        assert_eq!(hash_args(&(&a,)).unwrap(), hash_args(&(&c,)).unwrap());
        assert_ne!(
            hash_args(&(&a,)).unwrap(),
            hash_args(&(&map_of(0..19),)).unwrap()
        );
    }

    #[test]
    fn nested_hash_maps_hash_equally() {
        let a = vec![map_of(0..20), map_of(5..25)];
        let b = vec![map_of((0..20).rev()), map_of((5..25).rev())];
        assert_eq!(hash_args(&(&a,)).unwrap(), hash_args(&(&b,)).unwrap());

        #[derive(Serialize)]
        struct Query {
            page: u32,
            filters: HashMap<String, u32>,
            by_group: HashMap<u8, HashMap<String, u32>>,
        }
        let query = |rev: bool| Query {
            page: 3,
            filters: if rev {
                map_of((0..20).rev())
            } else {
                map_of(0..20)
            },
            by_group: (0..10u8)
                .map(|g| {
                    let g = if rev { 9 - g } else { g };
                    let keys = u32::from(g)..u32::from(g) + 20;
                    (
                        g,
                        if rev {
                            map_of(keys.rev())
                        } else {
                            map_of(keys)
                        },
                    )
                })
                .collect(),
        };
        let (qa, qb) = (query(false), query(true));
        assert_eq!(
            hash_args(&(&qa, 1u8)).unwrap(),
            hash_args(&(&qb, 1u8)).unwrap()
        );
    }

    #[test]
    fn a_btree_map_and_a_hash_map_of_equal_content_hash_equally() {
        let h = map_of(0..20);
        let b: std::collections::BTreeMap<String, u32> = h.clone().into_iter().collect();
        assert_eq!(hash_args(&(&h,)).unwrap(), hash_args(&(&b,)).unwrap());
        // Small enough for the stack buffer: the same canonical bytes.
        let h: HashMap<u32, u8> = [(511, 1), (512, 2), (3, 3)].into();
        let b: std::collections::BTreeMap<u32, u8> = h.clone().into_iter().collect();
        let bytes = bincode::serde::encode_to_vec((&b,), bincode::config::standard()).unwrap();
        assert!(bytes.len() < STACK);
        assert_eq!(hash_args(&(&h,)).unwrap(), hash_args(&(&b,)).unwrap());
        // Sorted by their bytes, not by `Ord`: 512 encodes as [251, 0, 2], before 511's
        // [251, 255, 1]; so this `BTreeMap` hashes otherwise than plain bincode would.
        assert_ne!(hash_args(&(&b,)).unwrap(), xxh3_128(&bytes));
    }

    #[test]
    fn large_arguments_stream_to_the_same_hash() {
        let big = "x".repeat(10_000);
        let bytes = bincode::serde::encode_to_vec(&big, bincode::config::standard()).unwrap();
        assert_eq!(hash_args(&big).unwrap(), xxh3_128(&bytes));
    }

    #[test]
    fn local_args_hash_by_their_hash() {
        #[derive(Hash)]
        struct NoSerde(u32, &'static str);
        assert_eq!(hash_local(&NoSerde(1, "a")), hash_local(&NoSerde(1, "a")));
        assert_ne!(hash_local(&NoSerde(1, "a")), hash_local(&NoSerde(2, "a")));
        // Long ones stream to the hash of the same bytes.
        let long = "y".repeat(1000);
        let mut h = Xxh3::new();
        std::hash::Hash::hash(long.as_str(), &mut h);
        assert_eq!(hash_local(long.as_str()).0, h.digest128());
        // In a tuple of arguments, in the place of the argument: serde ones keep their bytes.
        let mixed = hash_args(&(&"EUR", hash_local(&NoSerde(1, "a")))).unwrap();
        let mut bytes =
            bincode::serde::encode_to_vec(("EUR",), bincode::config::standard()).unwrap();
        bytes.extend(
            bincode::serde::encode_to_vec(
                hash_local(&NoSerde(1, "a")).0,
                bincode::config::standard(),
            )
            .unwrap(),
        );
        assert_eq!(mixed, xxh3_128(&bytes));
        let key = ArgsKey::hashed(mixed);
        assert!(!key.is_in_process() && key.in_process(true).is_in_process());
    }

    #[test]
    fn sanitize_keeps_keys_ascii() {
        assert_eq!(sanitize("user:1 é%#"), "user%3A1%20%C3%A9%25%23");
        assert_eq!(namespace_of("app::rates", "get"), "app.rates.get");
    }
}
