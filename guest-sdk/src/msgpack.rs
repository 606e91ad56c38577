//! MessagePack values (`codec.rs`), written and read by serde in the forms rmp-serde uses
//! with struct maps, byte for byte (the tests hold the two to each other):
//!
//! - structs as maps of field names (arrays, rmp-serde's default, are read too), tuples
//!   as arrays;
//! - `None` and `()` as nil, unit structs as an empty array (nil is read too);
//! - a unit variant as its name, any other variant as a map of its name to its data.
//!
//! Why not rmp-serde itself: its reader checks every string with `core::str::from_utf8`,
//! field names included (fifteen calls per Nexmark bid, the largest single cost of
//! decoding one inside a component), and its writer goes through `Write` layers and error
//! plumbing around every marker. This reader checks text that is all ASCII eight bytes at
//! a time and hands anything else to `from_utf8`, borrows strings and byte strings from
//! the input, and skips fields nobody reads without visiting them; the writer appends to
//! the buffer.
//!
//! Reading refuses extension values, and nesting past [`MAX_DEPTH`]. Writing writes an
//! extension value where rmp-serde does (its `_ExtStruct` newtype), since a component may.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::{ser, Deserialize, Serialize};

/// Deepest nesting of arrays and maps read, as serde_json's limit: a value no JSON reader
/// takes is refused here too, before it can exhaust the component's stack.
const MAX_DEPTH: u32 = 128;

/// Decodes one value that fills `bytes` (no marker byte).
pub(crate) fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    let mut de = Deserializer { input: bytes, depth: 0 };
    let value = T::deserialize(&mut de)?;
    if !de.input.is_empty() {
        return Err(Error(format!("{} bytes after the value", de.input.len())));
    }
    Ok(value)
}

/// The JSON text of a MessagePack value (no marker), for error messages: a record reads
/// better as the JSON it converts to than as its bytes. It stops once past about `limit`
/// bytes of text (a value's first bytes are what a message shows). `None` if it does not
/// decode.
pub(crate) fn to_json_text(bytes: &[u8], limit: usize) -> Option<String> {
    let mut out = String::new();
    let mut de = Deserializer { input: bytes, depth: 0 };
    match (JsonText(&mut out, limit).deserialize(&mut de), out.len() > limit) {
        (Ok(()), _) | (Err(_), true) => Some(out),
        (Err(_), false) => None,
    }
}

/// Writes the value it visits as JSON text, until the text is longer than its limit.
struct JsonText<'a>(&'a mut String, usize);

impl<'de> DeserializeSeed<'de> for JsonText<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl JsonText<'_> {
    fn json<T: Serialize + ?Sized, E>(self, v: &T) -> std::result::Result<(), E> {
        self.0.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
        Ok(())
    }
}

impl<'de> Visitor<'de> for JsonText<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<(), E> {
        self.json(&v)
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<(), E> {
        self.json(&v)
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<(), E> {
        self.json(&v)
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<(), E> {
        self.json(&v)
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<(), E> {
        self.json(v)
    }

    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<(), E> {
        self.json(v)
    }

    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        self.json(&())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let (out, limit) = (self.0, self.1);
        out.push('[');
        while seq.next_element_seed(JsonText(&mut *out, limit))?.is_some() {
            out.push(',');
            if out.len() > limit {
                return Err(de::Error::custom("long enough"));
            }
        }
        close(out, ']');
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let (out, limit) = (self.0, self.1);
        out.push('{');
        while map.next_key_seed(JsonText(&mut *out, limit))?.is_some() {
            out.push(':');
            map.next_value_seed(JsonText(&mut *out, limit))?;
            out.push(',');
            if out.len() > limit {
                return Err(de::Error::custom("long enough"));
            }
        }
        close(out, '}');
        Ok(())
    }
}

/// Ends an array or object whose every element was followed by a comma.
fn close(out: &mut String, bracket: char) {
    if out.ends_with(',') {
        out.pop();
    }
    out.push(bracket);
}

/// Why a value did not encode or decode.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, Error>;

fn truncated() -> Error {
    Error("the value ends early".into())
}

/// `bytes` as text, checked as UTF-8.
#[inline(always)]
fn text(bytes: &[u8]) -> Result<&str> {
    if is_ascii(bytes) {
        // SAFETY: every byte is below 0x80, and ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|e| Error(format!("a string is not UTF-8: {e}")))
}

/// Whether every byte is below 0x80, eight at a time (Wasm has 64-bit integers; core's
/// check works in `usize`, four bytes on wasm32, after a call and an alignment prologue).
#[inline(always)]
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut seen = 0u64;
    for w in &mut words {
        seen |= u64::from_le_bytes(w.try_into().expect("eight bytes"));
    }
    // Byte by byte: copying the tail into a word would be a `memory.copy`, which
    // wasmtime runs as a call out of the component.
    let tail = words.remainder().iter().fold(0u8, |acc, &b| acc | b);
    (seen & HIGH == 0) && tail < 0x80
}

struct Deserializer<'de> {
    input: &'de [u8],
    /// Arrays and maps open around the current value.
    depth: u32,
}

impl<'de> Deserializer<'de> {
    #[inline(always)]
    fn peek(&self) -> Result<u8> {
        self.input.first().copied().ok_or_else(truncated)
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self.input.split_first().ok_or_else(truncated)?;
        self.input = rest;
        Ok(b)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if n > self.input.len() {
            return Err(truncated());
        }
        let (taken, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(taken)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    /// A big-endian length of `n` bytes.
    #[inline(always)]
    fn len(&mut self, n: usize) -> Result<usize> {
        Ok(match n {
            1 => usize::from(self.byte()?),
            2 => usize::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?) as usize,
        })
    }

    /// A string's bytes, if `marker` starts one.
    #[inline(always)]
    fn str_bytes(&mut self, marker: u8) -> Result<Option<&'de [u8]>> {
        let len = match marker {
            0xa0..=0xbf => usize::from(marker & 0x1f),
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return Ok(None),
        };
        self.take(len).map(Some)
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_DEPTH {
            return Err(Error(format!("the value nests deeper than {MAX_DEPTH} arrays and maps")));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn seq<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value> {
        self.nested(|de| {
            let mut access = Elements { de, left: len };
            let value = visitor.visit_seq(&mut access)?;
            match access.left {
                0 => Ok(value),
                left => Err(Error(format!("an array of {len} elements where {} were expected", len - left))),
            }
        })
    }

    fn map<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value> {
        self.nested(|de| {
            let mut access = Elements { de, left: len };
            let value = visitor.visit_map(&mut access)?;
            match access.left {
                0 => Ok(value),
                left => Err(Error(format!("a map of {len} entries where {} were expected", len - left))),
            }
        })
    }

    /// Moves past one value of any kind, without visiting it: here if it is a one-byte
    /// scalar or a short string (most skipped fields), else in [`Self::skip_any`] (a call,
    /// as it recurses).
    #[inline(always)]
    fn skip(&mut self) -> Result<()> {
        match self.input.first() {
            Some(0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff) => {
                self.input = &self.input[1..];
                Ok(())
            }
            Some(&marker @ 0xa0..=0xbf) => {
                self.input = &self.input[1..];
                self.take(usize::from(marker & 0x1f)).map(drop)
            }
            _ => self.skip_any(),
        }
    }

    fn skip_any(&mut self) -> Result<()> {
        let marker = self.byte()?;
        let (skip, items) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xc4 | 0xd9 => (self.len(1)?, 0),
            0xc5 | 0xda => (self.len(2)?, 0),
            0xc6 | 0xdb => (self.len(4)?, 0),
            0xdc => (0, self.len(2)?),
            0xdd => (0, self.len(4)?),
            0xde => (0, 2 * self.len(2)?),
            0xdf => (0, 2 * self.len(4)?),
            other => return Err(unsupported(other)),
        };
        self.take(skip)?;
        if items > 0 {
            self.nested(|de| (0..items).try_for_each(|_| de.skip()))?;
        }
        Ok(())
    }
}

fn unsupported(marker: u8) -> Error {
    match marker {
        0xc1 => Error("the reserved MessagePack byte 0xc1 inside a value".into()),
        _ => Error(format!("a MessagePack extension value (marker {marker:#04x}), which has no Rust form here")),
    }
}

/// The elements of an array, or the entries of a map, still to read.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // Each element takes a byte at least: a forged length preallocates no more.
        Some(self.left.min(self.de.input.len()))
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.de.input.len() / 2))
    }
}

/// A variant with data: the value after its name.
struct Variant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let name = seed.deserialize(&mut *self.de)?;
        Ok((name, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        de::Deserialize::deserialize(self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self.de, visitor)
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let marker = self.byte()?;
        if let Some(bytes) = self.str_bytes(marker)? {
            return visitor.visit_borrowed_str(text(bytes)?);
        }
        match marker {
            0x00..=0x7f => visitor.visit_u64(u64::from(marker)),
            0xe0..=0xff => visitor.visit_i64(i64::from(marker as i8)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), visitor),
            0x90..=0x9f => self.seq(usize::from(marker & 0x0f), visitor),
            0xc0 => visitor.visit_unit(),
            0xc2 => visitor.visit_bool(false),
            0xc3 => visitor.visit_bool(true),
            0xc4..=0xc6 => {
                let len = self.len(1 << (marker - 0xc4))?;
                visitor.visit_borrowed_bytes(self.take(len)?)
            }
            0xca => visitor.visit_f32(f32::from_be_bytes(self.array()?)),
            0xcb => visitor.visit_f64(f64::from_be_bytes(self.array()?)),
            0xcc => visitor.visit_u64(u64::from(self.byte()?)),
            0xcd => visitor.visit_u64(u64::from(u16::from_be_bytes(self.array()?))),
            0xce => visitor.visit_u64(u64::from(u32::from_be_bytes(self.array()?))),
            0xcf => visitor.visit_u64(u64::from_be_bytes(self.array()?)),
            0xd0 => visitor.visit_i64(i64::from(self.byte()? as i8)),
            0xd1 => visitor.visit_i64(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => visitor.visit_i64(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => visitor.visit_i64(i64::from_be_bytes(self.array()?)),
            0xdc => {
                let len = self.len(2)?;
                self.seq(len, visitor)
            }
            0xdd => {
                let len = self.len(4)?;
                self.seq(len, visitor)
            }
            0xde => {
                let len = self.len(2)?;
                self.map(len, visitor)
            }
            0xdf => {
                let len = self.len(4)?;
                self.map(len, visitor)
            }
            other => Err(unsupported(other)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.peek()? == 0xc0 {
            self.input = &self.input[1..];
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        // rmp-serde writes a unit struct as an empty array.
        match self.peek()? {
            0xc0 | 0x90 => {
                self.input = &self.input[1..];
                visitor.visit_unit()
            }
            _ => self.deserialize_unit(visitor).map_err(|e| Error(format!("{name}: {e}"))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let marker = self.byte()?;
        if let Some(bytes) = self.str_bytes(marker)? {
            return visitor.visit_enum(text(bytes)?.into_deserializer());
        }
        let len = match marker {
            0x80..=0x8f => usize::from(marker & 0x0f),
            0xde => self.len(2)?,
            0xdf => self.len(4)?,
            _ => return Err(Error("an enum is neither a variant's name nor a map of one entry".into())),
        };
        if len != 1 {
            return Err(Error(format!("an enum as a map of {len} entries, not one")));
        }
        self.nested(|de| visitor.visit_enum(Variant { de }))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // rmp-serde writes 128-bit integers as 16 bytes of binary, big-endian.
        if self.input.starts_with(&[0xc4, 16]) {
            self.input = &self.input[2..];
            return visitor.visit_i128(i128::from_be_bytes(self.array()?));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.input.starts_with(&[0xc4, 16]) {
            self.input = &self.input[2..];
            return visitor.visit_u128(u128::from_be_bytes(self.array()?));
        }
        self.deserialize_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        // As the writer (`codec::encode_into`): times and addresses are their text.
        true
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf unit
        seq tuple tuple_struct map struct identifier
    }
}

/// Appends `value` to `out` (no marker byte).
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    // The buffer moves in and back out (no copy): serde's compound writers then borrow
    // one serializer, not a serializer that borrows the buffer.
    let mut ser = Serializer { out: std::mem::take(out) };
    let result = value.serialize(&mut ser);
    *out = ser.out;
    result
}

/// The writer: each serde call appends its bytes.
struct Serializer {
    out: Vec<u8>,
}

impl Serializer {
    #[inline(always)]
    fn uint(&mut self, n: u64) {
        match n {
            0..=0x7f => self.out.push(n as u8),
            0x80..=0xff => self.out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                self.out.push(0xcd);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(0xce);
                self.out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                self.out.push(0xcf);
                self.out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    #[inline(always)]
    fn int(&mut self, n: i64) {
        match n {
            0.. => self.uint(n as u64),
            -32..=-1 => self.out.push(n as u8),
            -0x80..=-33 => self.out.extend_from_slice(&[0xd0, n as u8]),
            -0x8000..=-0x81 => {
                self.out.push(0xd1);
                self.out.extend_from_slice(&(n as i16).to_be_bytes());
            }
            -0x8000_0000..=-0x8001 => {
                self.out.push(0xd2);
                self.out.extend_from_slice(&(n as i32).to_be_bytes());
            }
            _ => {
                self.out.push(0xd3);
                self.out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    /// A length in the marker of its fixed form (`fix`: the marker, and the most it
    /// holds) or after the marker of the 8-, 16- or 32-bit form (`None` where a kind has
    /// no such form), whichever is shortest.
    #[inline(always)]
    fn header(&mut self, len: usize, fix: Option<(u8, usize)>, wide: [Option<u8>; 3]) -> Result<()> {
        match (len, wide) {
            _ if fix.is_some_and(|(_, max)| len <= max) => self.out.push(fix.map_or(0, |(marker, _)| marker) | len as u8),
            (0..=0xff, [Some(m8), _, _]) => self.out.extend_from_slice(&[m8, len as u8]),
            (0..=0xffff, [_, Some(m16), _]) => {
                self.out.push(m16);
                self.out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (_, [_, _, Some(m32)]) if u32::try_from(len).is_ok() => {
                self.out.push(m32);
                self.out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            _ => return Err(Error(format!("a length of {len} does not fit MessagePack's 32 bits"))),
        }
        Ok(())
    }

    /// A variant with data starts: a map of one entry, the variant's name to its data.
    fn variant(&mut self, name: &str) -> Result<()> {
        self.out.push(0x81);
        ser::Serializer::serialize_str(self, name)
    }

    fn str_header(&mut self, len: usize) -> Result<()> {
        self.header(len, Some((0xa0, 31)), [Some(0xd9), Some(0xda), Some(0xdb)])
    }

    fn array_header(&mut self, len: usize) -> Result<()> {
        self.header(len, Some((0x90, 15)), [None, Some(0xdc), Some(0xdd)])
    }

    fn map_header(&mut self, len: usize) -> Result<()> {
        self.header(len, Some((0x80, 15)), [None, Some(0xde), Some(0xdf)])
    }

    /// An array or map of `len` items, or, when its length is not known, of as many as
    /// end up written (its header is put in front of them at the end).
    fn compound(&mut self, len: Option<usize>, map: bool) -> Result<Compound<'_>> {
        match len {
            Some(len) if map => self.map_header(len)?,
            Some(len) => self.array_header(len)?,
            None => {}
        }
        let unknown = len.is_none().then_some((self.out.len(), map));
        Ok(Compound { ser: self, unknown, items: 0 })
    }
}

/// The newtype name by which rmp-serde, and so this writer, takes an `(i8, bytes)` tuple
/// for an extension value (which readers here refuse, the host's included).
const EXT_STRUCT: &str = "_ExtStruct";

/// Bytes read as serde's `bytes` (the data of an extension value, read back from its tuple).
struct ExtData(Vec<u8>);

impl<'de> Deserialize<'de> for ExtData {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Data;
        impl Visitor<'_> for Data {
            type Value = ExtData;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the bytes of an extension value")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<ExtData, E> {
                Ok(ExtData(v.to_vec()))
            }
        }
        d.deserialize_bytes(Data)
    }
}

impl Serializer {
    /// An extension value of type `tag`, in the shortest form for its length.
    fn ext(&mut self, tag: i8, data: &[u8]) {
        match data.len() {
            1 => self.out.push(0xd4),
            2 => self.out.push(0xd5),
            4 => self.out.push(0xd6),
            8 => self.out.push(0xd7),
            16 => self.out.push(0xd8),
            len @ 0..=0xff => self.out.extend_from_slice(&[0xc7, len as u8]),
            len @ 0..=0xffff => {
                self.out.push(0xc8);
                self.out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                self.out.push(0xc9);
                self.out.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
        self.out.push(tag as u8);
        self.out.extend_from_slice(data);
    }
}

/// The elements of an array, or the entries of a map, being written.
struct Compound<'s> {
    ser: &'s mut Serializer,
    /// For a length not known in advance: where the items start, and whether a map.
    unknown: Option<(usize, bool)>,
    /// Elements (entries, for a map) written.
    items: usize,
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.items += 1;
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<()> {
        if let Some((start, map)) = self.unknown {
            let mut header = Serializer { out: Vec::with_capacity(5) };
            if map {
                header.map_header(self.items)?;
            } else {
                header.array_header(self.items)?;
            }
            self.ser.out.splice(start..start, header.out);
        }
        Ok(())
    }
}

/// The compound writers whose items are elements, written as they come.
macro_rules! element_writer {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.element(value)
            }
            fn end(self) -> Result<()> {
                Compound::end(self)
            }
        }
    )*};
}

element_writer!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.element(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<()> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        self.ser.str_header(key.len())?;
        self.ser.out.extend_from_slice(key.as_bytes());
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<()> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<()> {
        Compound::end(self)
    }
}

/// Integers of every width, each in its shortest form (`int` for signed, `uint` unsigned).
macro_rules! integers {
    ($($method:ident($t:ty) => $write:ident),*) => {$(
        fn $method(self, v: $t) -> Result<()> {
            self.$write(v.into());
            Ok(())
        }
    )*};
}

impl<'s> ser::Serializer for &'s mut Serializer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'s>;
    type SerializeTuple = Compound<'s>;
    type SerializeTupleStruct = Compound<'s>;
    type SerializeTupleVariant = Compound<'s>;
    type SerializeMap = Compound<'s>;
    type SerializeStruct = Compound<'s>;
    type SerializeStructVariant = Compound<'s>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.push(if v { 0xc3 } else { 0xc2 });
        Ok(())
    }
    integers!(
        serialize_i8(i8) => int,
        serialize_i16(i16) => int,
        serialize_i32(i32) => int,
        serialize_i64(i64) => int,
        serialize_u8(u8) => uint,
        serialize_u16(u16) => uint,
        serialize_u32(u32) => uint,
        serialize_u64(u64) => uint
    );
    fn serialize_i128(self, v: i128) -> Result<()> {
        // As rmp-serde: sixteen bytes of binary, big-endian.
        self.serialize_bytes(&v.to_be_bytes())
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        self.serialize_bytes(&v.to_be_bytes())
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.out.push(0xca);
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.out.push(0xcb);
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<()> {
        self.str_header(v.len())?;
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.header(v.len(), None, [Some(0xc4), Some(0xc5), Some(0xc6)])?;
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.out.push(0xc0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.out.push(0xc0);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        // As rmp-serde: an empty array.
        self.out.push(0x90);
        Ok(())
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<()> {
        if name == EXT_STRUCT {
            // rmp-serde's way to write an extension value: `_ExtStruct((tag, bytes))`.
            let mut parts = Serializer { out: Vec::new() };
            value.serialize(&mut parts)?;
            let (tag, ExtData(data)) = from_slice::<(i8, ExtData)>(&parts.out)?;
            self.ext(tag, &data);
            return Ok(());
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.variant(variant)?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'s>> {
        self.compound(len, false)
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'s>> {
        self.compound(Some(len), false)
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'s>> {
        self.compound(Some(len), false)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'s>> {
        self.variant(variant)?;
        self.compound(Some(len), false)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'s>> {
        self.compound(len, true)
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'s>> {
        self.compound(Some(len), true)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'s>> {
        self.variant(variant)?;
        self.compound(Some(len), true)
    }
    fn is_human_readable(&self) -> bool {
        // Times and addresses as their text, as in JSON.
        true
    }
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}


#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;

    fn packed<T: Serialize>(value: &T) -> Vec<u8> {
        let mut buf = Vec::new();
        value.serialize(&mut rmp_serde::Serializer::new(&mut buf).with_struct_map().with_human_readable()).unwrap();
        buf
    }

    /// Writes `value` as rmp-serde does, byte for byte, and reads it back.
    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug>(value: T) {
        let bytes = packed(&value);
        let mut ours = Vec::new();
        write(&mut ours, &value).unwrap();
        assert_eq!(ours, bytes, "written as rmp-serde writes it");
        assert_eq!(from_slice::<T>(&bytes).unwrap(), value, "{bytes:02x?}");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Newtype(i32);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Pair(i8, String),
        Rect { w: u32, h: u32 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Everything {
        small: u8,
        negative: i64,
        big: u64,
        wide: i128,
        ratio: f32,
        precise: f64,
        flag: bool,
        letter: char,
        name: String,
        unicode: String,
        long_text: String,
        blob: Vec<u8>,
        nothing: Option<u16>,
        something: Option<Vec<Option<i32>>>,
        unit: (),
        unit_struct: Unit,
        newtype: Newtype,
        tuple: (u8, String, bool),
        shapes: Vec<Shape>,
        map: BTreeMap<String, Vec<i16>>,
        by_number: BTreeMap<u32, String>,
    }

    #[test]
    fn reads_every_form_rmp_serde_writes() {
        round_trip(Everything {
            small: 7,
            negative: -1_234_567_890_123,
            big: u64::MAX,
            wide: -(1 << 100),
            ratio: 0.5,
            precise: -2.75e300,
            flag: true,
            letter: 'é',
            name: "bob".into(),
            unicode: "naïve — 東京 🦀".into(),
            long_text: "x".repeat(70_000),
            blob: vec![0, 255, 128],
            nothing: None,
            something: Some(vec![Some(-1), None, Some(i32::MIN)]),
            unit: (),
            unit_struct: Unit,
            newtype: Newtype(-5),
            tuple: (255, "t".repeat(300), false),
            shapes: vec![Shape::Empty, Shape::Circle(1.5), Shape::Pair(-3, "p".into()), Shape::Rect { w: 2, h: 3 }],
            map: [("a".to_string(), vec![-1, 2]), ("".to_string(), vec![])].into(),
            by_number: [(1, "one".to_string()), (70_000, "many".to_string())].into(),
        });
        for n in [0i64, 127, 128, 255, 256, 65_535, 65_536, -1, -32, -33, -128, -129, -32_768, -32_769, i64::MIN, i64::MAX] {
            round_trip(n);
        }
        round_trip(vec![1u8; 70_000]);
        for len in [0, 1, 31, 32, 255, 256, 65_535, 65_536] {
            round_trip("s".repeat(len));
            round_trip(serde_bytes_like(len));
            round_trip(vec![0u8; len.min(70_000)]);
            round_trip((0..len.min(70_000) as u32).map(|i| (i, ())).collect::<BTreeMap<_, _>>());
        }
        for f in [0.0f64, -0.0, 1.5, f64::MAX, f64::MIN_POSITIVE] {
            round_trip(f);
        }
    }

    /// A byte string (serde's `bytes`, not a sequence of numbers) of `len` bytes.
    fn serde_bytes_like(len: usize) -> Bytes {
        Bytes(vec![7; len])
    }

    #[derive(Debug, PartialEq)]
    struct Bytes(Vec<u8>);

    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            ExtData::deserialize(d).map(|data| Bytes(data.0))
        }
    }

    #[test]
    fn extension_values_are_written_as_rmp_serde_writes_them() {
        struct Ext(i8, Vec<u8>);
        impl Serialize for Ext {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_newtype_struct(EXT_STRUCT, &(self.0, Bytes(self.1.clone())))
            }
        }
        for len in [0, 1, 2, 3, 4, 8, 16, 17, 255, 256, 70_000] {
            let ext = Ext(-3, vec![9; len]);
            let mut ours = Vec::new();
            write(&mut ours, &ext).unwrap();
            assert_eq!(ours, packed(&ext), "{len}");
            assert!(from_slice::<serde_json::Value>(&ours).unwrap_err().to_string().contains("extension"));
        }
    }

    #[test]
    fn sequences_and_maps_of_unknown_length_get_their_count_in_front() {
        struct Unsized<I>(std::cell::Cell<Option<I>>, bool);
        impl<I: Iterator<Item = u32>> Serialize for Unsized<I> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                let items = self.0.take().unwrap();
                if self.1 {
                    s.collect_map(items.map(|i| (i, i)))
                } else {
                    s.collect_seq(items)
                }
            }
        }
        for (len, map) in [(0, false), (3, false), (20, false), (70_000, false), (2, true), (16, true)] {
            let unsized_ = Unsized(std::cell::Cell::new(Some((0..len).filter(|_| true))), map);
            let mut ours = Vec::new();
            write(&mut ours, &unsized_).unwrap();
            if map {
                let expected: BTreeMap<u32, u32> = (0..len).map(|i| (i, i)).collect();
                assert_eq!(ours, packed(&expected));
            } else {
                assert_eq!(ours, packed(&(0..len).collect::<Vec<u32>>()), "{len}");
            }
        }
    }

    #[test]
    fn unknown_fields_are_skipped_whatever_they_hold() {
        #[derive(Serialize)]
        struct Wide {
            a: u8,
            extra: (Vec<BTreeMap<String, Option<f64>>>, String, i64),
            b: String,
        }
        #[derive(Debug, PartialEq, Deserialize)]
        struct Narrow {
            a: u8,
            b: String,
        }
        let wide = Wide { a: 1, extra: (vec![[("k".to_string(), Some(1.0))].into()], "s".into(), -9), b: "kept".into() };
        assert_eq!(from_slice::<Narrow>(&packed(&wide)).unwrap(), Narrow { a: 1, b: "kept".into() });
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let err = |bytes: &[u8]| from_slice::<serde_json::Value>(bytes).unwrap_err().to_string();
        assert!(err(&[0xa3, b'a']).contains("ends early"));
        assert!(err(&[0xa2, 0xff, 0xfe]).contains("not UTF-8"));
        assert!(err(&[0xd4, 1, 2]).contains("extension"));
        assert!(err(&[0xc1]).contains("reserved"));
        assert!(err(&[0x01, 0x02]).contains("1 bytes after the value"));
        let deep = [vec![0x91; 200], vec![0x01]].concat();
        assert!(err(&deep).contains("deeper than 128"));
        // A forged length allocates nothing: the value ends early.
        assert!(err(&[0xdd, 0xff, 0xff, 0xff, 0xff]).contains("ends early"));
        assert!(from_slice::<(u8, u8)>(&[0x93, 1, 2, 3]).unwrap_err().to_string().contains("3 elements where 2"));
        assert!(from_slice::<u8>(&[0xcd, 1, 0]).unwrap_err().to_string().contains("256"));
    }

    #[test]
    fn ascii_check_sees_a_high_byte_anywhere() {
        for len in 0..40 {
            let mut bytes = vec![b'a'; len];
            assert!(is_ascii(&bytes));
            for i in 0..len {
                bytes[i] = 0xc3;
                assert!(!is_ascii(&bytes), "{len} {i}");
                bytes[i] = b'a';
            }
        }
    }
}
