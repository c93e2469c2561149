//! Canonical maps for the args hash: [`Canonical`] serializes a value as it is, except that every
//! map (at any depth: in a key, a value, a struct field, a sequence) emits its entries in the
//! order of their bincode bytes, key first, then value. Two equal `HashMap`s then serialize to
//! the same bytes whatever their insertion order or hasher seed, in this process or another.
//!
//! Only maps are touched: anything without a map goes through unchanged, call for call, to the
//! wrapped serializer (no allocation, the same bytes as plain bincode, so the hash of such
//! arguments is what it always was). A map is buffered: each entry is encoded with bincode's
//! standard configuration (canonically, recursively) into one buffer, the entries are sorted by
//! their bytes, then the map is written to the wrapped serializer as its length followed by
//! those bytes. The bytes are handed over as tuples of `u8`, which bincode writes as they are
//! (no length, one byte each); so the output is exactly bincode's encoding of the same map
//! iterated in sorted order. This adapter is therefore meant for bincode (the args hash's only
//! format); another format would see each key and value as a tuple of bytes.
//!
//! A map that serializes without a length (`serialize_map(None)`, as `#[serde(flatten)]` does),
//! which plain bincode refuses, is counted here and so can be hashed.
//!
//! A set is a sequence to serde (`serialize_seq`), indistinguishable from a `Vec`: a `HashSet`
//! cannot be made canonical here (see [`hash_args`](super::hash_args)).

use serde::ser::{
    Error as _, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// `T`, serialized with the entries of every map it holds in a canonical order.
pub(crate) struct Canonical<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for Canonical<'_, T> {
    #[inline]
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Ser(serializer))
    }
}

/// The serializer adapter: everything goes to `S`, maps through [`Map`].
struct Ser<S>(S);

/// A sequence, tuple, struct or variant of `S`, its fields wrapped in [`Canonical`].
struct Wrap<C>(C);

/// Forward a primitive `Serializer` method to the wrapped serializer.
macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.0.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Ser<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Wrap<S::SerializeSeq>;
    type SerializeTuple = Wrap<S::SerializeTuple>;
    type SerializeTupleStruct = Wrap<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Wrap<S::SerializeTupleVariant>;
    type SerializeMap = Map<S>;
    type SerializeStruct = Wrap<S::SerializeStruct>;
    type SerializeStructVariant = Wrap<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Canonical(value))
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Canonical(value))
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Canonical(value))
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Wrap)
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Wrap)
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Wrap)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Wrap)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(Map::new(self.0, len))
    }

    #[inline]
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Wrap)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Wrap)
    }

    #[inline]
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.collect_str(value)
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Implement a compound trait for [`Wrap`]: each field is serialized through [`Canonical`].
macro_rules! wrap {
    ($trait:ident, $method:ident($($arg:ident: $ty:ty),*)) => {
        impl<C: $trait> $trait for Wrap<C> {
            type Ok = C::Ok;
            type Error = C::Error;

            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($arg: $ty,)*
                value: &T,
            ) -> Result<(), C::Error> {
                self.0.$method($($arg,)* &Canonical(value))
            }

            #[inline]
            fn end(self) -> Result<C::Ok, C::Error> {
                self.0.end()
            }
        }
    };
}

wrap!(SerializeSeq, serialize_element());
wrap!(SerializeTuple, serialize_element());
wrap!(SerializeTupleStruct, serialize_field());
wrap!(SerializeTupleVariant, serialize_field());
wrap!(SerializeStruct, serialize_field(key: &'static str));
wrap!(SerializeStructVariant, serialize_field(key: &'static str));

/// Entries a map's length hint may reserve room for up front (a hint is not trusted further).
const RESERVE: usize = 64;

/// A map being buffered: its entries' canonical bytes, sorted and written at [`SerializeMap::end`].
struct Map<S> {
    /// The serializer the sorted map goes to.
    out: S,
    /// Every entry's key bytes, then its value bytes, one entry after another.
    bytes: Vec<u8>,
    /// Each entry as offsets into `bytes`: where its key starts, where its value starts, where
    /// its value ends.
    entries: Vec<[usize; 3]>,
    /// The start of a key whose value is still to come.
    pending: Option<usize>,
}

impl<S: Serializer> Map<S> {
    fn new(out: S, len: Option<usize>) -> Map<S> {
        let n = len.unwrap_or(0).min(RESERVE);
        Map {
            out,
            bytes: Vec::with_capacity(n * 8),
            entries: Vec::with_capacity(n),
            pending: None,
        }
    }

    /// Append `value`'s canonical bincode bytes to the buffer.
    fn append<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        bincode::serde::encode_into_writer(
            Canonical(value),
            Append(&mut self.bytes),
            bincode::config::standard(),
        )
        .map_err(S::Error::custom)
    }
}

/// The bytes of `buf` between two offsets (empty if they are not in it, which they always are).
fn part(buf: &[u8], from: usize, to: usize) -> &[u8] {
    buf.get(from..to).unwrap_or_default()
}

/// The error of a map whose keys and values do not alternate.
const UNPAIRED: &str = "a map's keys and values do not alternate";

impl<S: Serializer> SerializeMap for Map<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        if self.pending.is_some() {
            return Err(S::Error::custom(UNPAIRED));
        }
        let start = self.bytes.len();
        self.append(key)?;
        self.pending = Some(start);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let Some(start) = self.pending.take() else {
            return Err(S::Error::custom(UNPAIRED));
        };
        let mid = self.bytes.len();
        self.append(value)?;
        self.entries.push([start, mid, self.bytes.len()]);
        Ok(())
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        let Map {
            out,
            bytes,
            mut entries,
            pending,
        } = self;
        if pending.is_some() {
            return Err(S::Error::custom(UNPAIRED));
        }
        // By key bytes, then (for keys that serialize alike, which equal maps of a well-behaved
        // key type never have) by value bytes: a total order, so one result for equal maps.
        let entry = |[key, mid, end]: [usize; 3]| (part(&bytes, key, mid), part(&bytes, mid, end));
        entries.sort_unstable_by(|a, b| entry(*a).cmp(&entry(*b)));
        let mut map = out.serialize_map(Some(entries.len()))?;
        for e in entries {
            let (key, value) = entry(e);
            map.serialize_entry(&Raw(key), &Raw(value))?;
        }
        map.end()
    }
}

/// Bytes already encoded, written as they are: a tuple of `u8`, which bincode writes with no
/// length and one byte per element.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for b in self.0 {
            tuple.serialize_element(b)?;
        }
        tuple.end()
    }
}

/// A bincode writer appending to a buffer.
struct Append<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Append<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn plain<T: Serialize>(v: T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    fn canonical<T: Serialize>(v: &T) -> Vec<u8> {
        plain(Canonical(v))
    }

    #[test]
    fn a_map_is_bincode_of_its_entries_in_byte_order() {
        // Numeric order is not byte order here: 512 encodes as [251, 0, 2], 511 as [251, 255, 1].
        let m: HashMap<u32, &str> = [(511, "a"), (512, "b"), (3, "c")].into();
        let sorted = [(3u32, "c"), (512, "b"), (511, "a")];
        let mut expected = plain(3u64);
        for (k, v) in sorted {
            expected.extend(plain(k));
            expected.extend(plain(v));
        }
        assert_eq!(canonical(&m), expected);
        assert_eq!(canonical(&m), plain(RawMap(&sorted)));
    }

    /// A map serialized in the order given (as bincode sees it).
    struct RawMap<'a>(&'a [(u32, &'a str)]);
    impl Serialize for RawMap<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }

    #[test]
    fn without_maps_the_bytes_are_plain_bincode() {
        let v = (
            "x",
            Some(vec![(1u8, 'c')]),
            [1.5f64, -0.0],
            (),
            u128::MAX,
            b"bytes".as_slice(),
        );
        assert_eq!(canonical(&v), plain(&v));
    }

    fn numbers(keys: impl Iterator<Item = u8>) -> HashMap<String, u8> {
        keys.map(|k| (k.to_string(), k)).collect()
    }

    /// A map whose one key is a map.
    struct MapKeyed(HashMap<String, u8>);
    impl Serialize for MapKeyed {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map([(&self.0, 1u8)])
        }
    }

    #[test]
    fn maps_in_keys_and_values_are_canonical_too() {
        let (a, b) = (numbers(0..16), numbers((0..16).rev()));
        assert_eq!(
            canonical(&MapKeyed(a.clone())),
            canonical(&MapKeyed(b.clone()))
        );
        let in_values = |m: &HashMap<String, u8>| -> HashMap<u8, Vec<HashMap<String, u8>>> {
            (0..8)
                .map(|k| (k, vec![m.clone(), numbers(k..k + 9)]))
                .collect()
        };
        assert_eq!(canonical(&in_values(&a)), canonical(&in_values(&b)));
    }

    /// Maps that break serde's key/value alternation are errors, never panics.
    struct Broken(u8);
    impl Serialize for Broken {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(None)?;
            match self.0 {
                0 => m.serialize_value(&1u8)?,
                1 => {
                    m.serialize_key(&1u8)?;
                    m.serialize_key(&2u8)?;
                }
                _ => m.serialize_key(&1u8)?,
            }
            m.end()
        }
    }

    #[test]
    fn a_malformed_map_is_an_error() {
        for case in 0..3 {
            let r = bincode::serde::encode_to_vec(
                Canonical(&Broken(case)),
                bincode::config::standard(),
            );
            assert!(r.is_err(), "case {case}");
        }
    }

    #[test]
    fn a_map_without_a_length_is_counted() {
        #[derive(serde::Serialize)]
        struct Inner {
            b: u8,
            a: u8,
        }
        #[derive(serde::Serialize)]
        struct Flat {
            #[serde(flatten)]
            inner: Inner,
        }
        let flat = Flat {
            inner: Inner { b: 2, a: 1 },
        };
        let expected: BTreeMap<&str, u8> = [("a", 1), ("b", 2)].into();
        assert_eq!(canonical(&flat), plain(&expected));
    }
}
