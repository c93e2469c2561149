//! The args hash's fast path: a serde [`Serializer`] that writes bincode's standard encoding
//! (little endian, varint integers, `usize` as `u64`) of map-free arguments straight into a
//! stack buffer.
//!
//! Going through bincode's own serde encoder costs about 4 ns for one `u64` (its writer and
//! error plumbing; most of a memory hit's key), this about 1 ns. It writes the same bytes,
//! call for call, as `bincode::serde` with `config::standard()` (checked against it by
//! `crates/integration/tests/fuzz_decoders.rs` over generated arguments of every serde shape),
//! so keys do not change. What it does not do, it refuses with [`Fallback`], and
//! [`hash_args`](super::hash_args) then takes the general path (bincode itself, with
//! [`Canonical`](super::canonical::Canonical) maps, streamed when long):
//! - a map, at any depth (maps are made canonical there);
//! - arguments longer than the buffer;
//! - a sequence without a length, and any error a `Serialize` impl reports (the general path
//!   reports it).

use super::STACK;
use serde::ser::{
    Impossible, Serialize, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};
use std::fmt;

/// Bincode's varint markers (see `bincode::varint`): a value up to 250 is its own byte; past
/// that a marker byte, then the value little endian in 2, 4, 8 or 16 bytes.
const SINGLE_BYTE_MAX: u64 = 250;
const U16_BYTE: u8 = 251;
const U32_BYTE: u8 = 252;
const U64_BYTE: u8 = 253;
const U128_BYTE: u8 = 254;

/// Not for this path: take the general one.
#[derive(Debug)]
pub(crate) struct Fallback;

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not on the fast path")
    }
}

impl std::error::Error for Fallback {}

impl serde::ser::Error for Fallback {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Fallback
    }
}

/// The bytes of map-free arguments, when they fit.
pub(crate) struct Direct {
    buf: [u8; STACK],
    len: usize,
}

impl Direct {
    /// An empty buffer.
    #[inline(always)]
    pub(crate) fn new() -> Direct {
        Direct {
            buf: [0; STACK],
            len: 0,
        }
    }

    /// The encoding of `args`, or [`Fallback`]. Written in place and read where it is: a copy
    /// of the buffer right after its narrow writes stalls on store forwarding (measured: a
    /// returned `Direct` made the hash slower than bincode's).
    #[inline(always)]
    pub(crate) fn write<T: Serialize + ?Sized>(&mut self, args: &T) -> Result<&[u8], Fallback> {
        args.serialize(&mut *self)?;
        Ok(self.buf.get(..self.len).unwrap_or_default())
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) -> Result<(), Fallback> {
        let end = self.len + bytes.len();
        let room = self.buf.get_mut(self.len..end).ok_or(Fallback)?;
        room.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) -> Result<(), Fallback> {
        let slot = self.buf.get_mut(self.len).ok_or(Fallback)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    /// A varint of an integer of at most 64 bits (bincode's `varint_encode_u64`; the narrower
    /// widths write the same bytes for the same value).
    #[inline(always)]
    fn varint(&mut self, v: u64) -> Result<(), Fallback> {
        if v <= SINGLE_BYTE_MAX {
            self.byte(v as u8)
        } else if v <= u64::from(u16::MAX) {
            self.byte(U16_BYTE)?;
            self.put(&(v as u16).to_le_bytes())
        } else if v <= u64::from(u32::MAX) {
            self.byte(U32_BYTE)?;
            self.put(&(v as u32).to_le_bytes())
        } else {
            self.byte(U64_BYTE)?;
            self.put(&v.to_le_bytes())
        }
    }

    /// An enum variant's index (a varint), before its fields.
    fn variant(&mut self, index: u32) -> Result<&mut Self, Fallback> {
        self.varint(u64::from(index))?;
        Ok(self)
    }

    fn varint128(&mut self, v: u128) -> Result<(), Fallback> {
        match u64::try_from(v) {
            Ok(small) => self.varint(small),
            Err(_) => {
                self.byte(U128_BYTE)?;
                self.put(&v.to_le_bytes())
            }
        }
    }
}

/// Zigzag, as bincode writes signed integers: 0, -1, 1, -2 … as 0, 1, 2, 3 …
#[inline(always)]
fn zigzag(v: i64) -> u64 {
    if v < 0 {
        !(v as u64) * 2 + 1
    } else {
        (v as u64) * 2
    }
}

impl Serializer for &mut Direct {
    type Ok = ();
    type Error = Fallback;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Impossible<(), Fallback>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), Fallback> {
        self.byte(u8::from(v))
    }
    fn serialize_i8(self, v: i8) -> Result<(), Fallback> {
        self.byte(v as u8)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Fallback> {
        self.varint(zigzag(i64::from(v)))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Fallback> {
        self.varint(zigzag(i64::from(v)))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Fallback> {
        self.varint(zigzag(v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), Fallback> {
        let z = if v < 0 {
            !(v as u128) * 2 + 1
        } else {
            (v as u128) * 2
        };
        self.varint128(z)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Fallback> {
        self.byte(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Fallback> {
        self.varint(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Fallback> {
        self.varint(u64::from(v))
    }
    #[inline(always)]
    fn serialize_u64(self, v: u64) -> Result<(), Fallback> {
        self.varint(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Fallback> {
        self.varint128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Fallback> {
        self.put(&v.to_le_bytes())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Fallback> {
        self.put(&v.to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Result<(), Fallback> {
        self.put(v.encode_utf8(&mut [0; 4]).as_bytes())
    }
    fn serialize_str(self, v: &str) -> Result<(), Fallback> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Fallback> {
        self.varint(v.len() as u64)?;
        self.put(v)
    }
    fn serialize_none(self) -> Result<(), Fallback> {
        self.byte(0)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Fallback> {
        self.byte(1)?;
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Fallback> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Fallback> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), Fallback> {
        self.varint(u64::from(index))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Fallback> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Fallback> {
        self.varint(u64::from(index))?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Fallback> {
        self.varint(len.ok_or(Fallback)? as u64)?;
        Ok(self)
    }
    #[inline(always)]
    fn serialize_tuple(self, _: usize) -> Result<Self, Fallback> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Fallback> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Fallback> {
        self.variant(index)
    }
    /// Maps are made canonical by the general path.
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Fallback> {
        Err(Fallback)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Fallback> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Fallback> {
        self.variant(index)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The compound forms: each element or field in turn, nothing around them (bincode writes no
/// field names and no end marker).
macro_rules! elements {
    ($($trait:ident :: $method:ident ($($name:ident)?);)*) => {$(
        impl $trait for &mut Direct {
            type Ok = ();
            type Error = Fallback;
            #[inline(always)]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($name: &'static str,)?
                value: &T,
            ) -> Result<(), Fallback> {
                value.serialize(&mut **self)
            }
            #[inline(always)]
            fn end(self) -> Result<(), Fallback> {
                Ok(())
            }
        }
    )*};
}

elements! {
    SerializeSeq::serialize_element();
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
    SerializeStruct::serialize_field(_key);
    SerializeStructVariant::serialize_field(_key);
}
