//! MessagePack values (`wit/README.md`, Values): how the host tells them from JSON, turns
//! them into JSON for what reads JSON only (its own aggregates, windows and sinks, and the
//! operators of components whose graph says `json`), and writes them (Nexmark events).
//!
//! A MessagePack value is the byte 0xc1 and one MessagePack object. MessagePack never uses
//! 0xc1 and no UTF-8 JSON text starts with it, so every reader tells the two apart by the
//! first byte, and one job, one batch or one state may hold both.

mod from_json;

pub use from_json::{from_json, FromJsonError, Transcoder};

use thiserror::Error;

use crate::framing;
use crate::json;

/// The first byte of a MessagePack value.
pub const MARKER: u8 = 0xc1;

/// Nesting deeper than this is refused, as serde_json refuses it: the conversion recurses.
const MAX_DEPTH: usize = 128;

/// Why a MessagePack value could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MsgpackError {
    /// The bytes end inside the value.
    #[error("MessagePack value ends early")]
    Truncated,
    /// A byte that starts no MessagePack object (0xc1).
    #[error("MessagePack value has a reserved byte (marker {0:#04x})")]
    Unsupported(u8),
    /// An extension type, which JSON has no form for.
    #[error("MessagePack value holds an extension type (marker {0:#04x}), which has no JSON form")]
    Extension(u8),
    /// A map key that is not a string or an integer (JSON object keys are text).
    #[error("MessagePack map key is not a string or an integer")]
    Key,
    /// A string that is not UTF-8.
    #[error("MessagePack string is not UTF-8")]
    Utf8,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("MessagePack value nests deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Bytes after the value.
    #[error("MessagePack value has trailing bytes")]
    Trailing,
}

/// Whether a value is MessagePack (else JSON).
#[inline]
pub fn is_msgpack(value: &[u8]) -> bool {
    value.first() == Some(&MARKER)
}

/// Appends the JSON text of the MessagePack value `value` (marker included) as serde_json
/// writes the same Rust value, so a sink's output does not depend on the codec.
pub fn to_json(value: &[u8], out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    let mut r = Reader { bytes: value.get(1..).ok_or(MsgpackError::Truncated)?, pos: 0 };
    let start = out.len();
    let mut result = r.object(out, 0);
    if result.is_ok() && r.pos != r.bytes.len() {
        result = Err(MsgpackError::Trailing);
    }
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The batch with every MessagePack value turned into JSON; the batch itself (no copy)
/// when it has none, as it has wherever a job's values are all JSON.
pub fn batch_to_json(batch: Vec<u8>) -> Result<Vec<u8>, MsgpackError> {
    if !framing::records(&batch).any(|r| r.is_ok_and(|r| is_msgpack(r.value))) {
        return Ok(batch);
    }
    let mut out = Vec::with_capacity(batch.len() + batch.len() / 4);
    for record in framing::records(&batch) {
        // A framing error is left for the operator's reader to report.
        let Ok(record) = record else { return Ok(batch) };
        if is_msgpack(record.value) {
            let mut result = Ok(());
            framing::push_with_value(&mut out, &record, |buf| result = to_json(record.value, buf));
            result?;
        } else {
            out.extend_from_slice(record.raw);
        }
    }
    Ok(out)
}

/// A cursor over MessagePack bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(MsgpackError::Truncated)?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    /// A length of `n` bytes, big-endian. Lengths only ever bound a `take`, never an allocation.
    fn len(&mut self, n: usize) -> Result<usize, MsgpackError> {
        Ok(match n {
            1 => self.take(1)?[0] as usize,
            2 => u16::from_be_bytes(self.array()?) as usize,
            _ => u32::from_be_bytes(self.array()?) as usize,
        })
    }

    fn str(&mut self, len: usize) -> Result<&'a str, MsgpackError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| MsgpackError::Utf8)
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), MsgpackError> {
        if depth > MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        let marker = self.take(1)?[0];
        match marker {
            0x00..=0x7f => write_int(out, marker as i64),
            0xe0..=0xff => write_int(out, marker as i8 as i64),
            0x80..=0x8f => self.map(out, (marker & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.seq(out, (marker & 0x0f) as usize, depth)?,
            0xa0..=0xbf => {
                let s = self.str((marker & 0x1f) as usize)?;
                json::write_str(out, s);
            }
            0xc0 => out.extend_from_slice(b"null"),
            0xc2 => out.extend_from_slice(b"false"),
            0xc3 => out.extend_from_slice(b"true"),
            // Bytes: serde_json writes a byte sequence as an array of numbers.
            0xc4..=0xc6 => {
                let len = self.len(1 << (marker - 0xc4))?;
                let bytes = self.take(len)?;
                out.push(b'[');
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_int(out, i64::from(*b));
                }
                out.push(b']');
            }
            0xca => write_float(out, f32::from_be_bytes(self.array()?)),
            0xcb => write_float(out, f64::from_be_bytes(self.array()?)),
            0xcc => write_int(out, i64::from(self.take(1)?[0])),
            0xcd => write_int(out, i64::from(u16::from_be_bytes(self.array()?))),
            0xce => write_int(out, i64::from(u32::from_be_bytes(self.array()?))),
            0xcf => out.extend_from_slice(itoa::Buffer::new().format(u64::from_be_bytes(self.array()?)).as_bytes()),
            0xd0 => write_int(out, i64::from(self.take(1)?[0] as i8)),
            0xd1 => write_int(out, i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => write_int(out, i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => write_int(out, i64::from_be_bytes(self.array()?)),
            0xd9..=0xdb => {
                let len = self.len(1 << (marker - 0xd9))?;
                let s = self.str(len)?;
                json::write_str(out, s);
            }
            0xdc | 0xdd => {
                let len = self.len(if marker == 0xdc { 2 } else { 4 })?;
                self.seq(out, len, depth)?;
            }
            0xde | 0xdf => {
                let len = self.len(if marker == 0xde { 2 } else { 4 })?;
                self.map(out, len, depth)?;
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => return Err(MsgpackError::Extension(marker)),
            // 0xc1, which MessagePack never uses.
            _ => return Err(MsgpackError::Unsupported(marker)),
        }
        Ok(())
    }

    fn seq(&mut self, out: &mut Vec<u8>, len: usize, depth: usize) -> Result<(), MsgpackError> {
        crate::json::write_array(out, len, |out| self.object(out, depth + 1))
    }

    fn map(&mut self, out: &mut Vec<u8>, len: usize, depth: usize) -> Result<(), MsgpackError> {
        out.push(b'{');
        for i in 0..len {
            if i > 0 {
                out.push(b',');
            }
            self.key(out)?;
            out.push(b':');
            self.object(out, depth + 1)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// A map key as a JSON member name: a string, or an integer in quotes (as serde_json
    /// writes a map with integer keys).
    fn key(&mut self, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
        let marker = *self.bytes.get(self.pos).ok_or(MsgpackError::Truncated)?;
        match marker {
            0xa0..=0xbf | 0xd9..=0xdb => self.object(out, 0),
            0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => {
                out.push(b'"');
                self.object(out, 0)?;
                out.push(b'"');
                Ok(())
            }
            _ => Err(MsgpackError::Key),
        }
    }
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A float as serde_json writes it (shortest round trip; `null` if not finite).
fn write_float<F: serde::Serialize>(out: &mut Vec<u8>, f: F) {
    serde_json::to_writer(out, &f).expect("writing to a Vec cannot fail");
}

/// Writers of MessagePack values, for the host's own sources: each value in its shortest
/// form, as rmp-serde writes it (the tests hold them to rmp's bytes).
pub mod write {
    /// Starts a value: the marker.
    #[inline]
    pub fn begin(out: &mut Vec<u8>) {
        out.push(super::MARKER);
    }

    /// A length after its marker: `fix | len` up to `fix_max`, else the 8-bit form
    /// (`m8`, if the kind has one), the 16-bit or the 32-bit one.
    #[inline]
    fn header(out: &mut Vec<u8>, len: usize, (fix, fix_max): (u8, usize), m8: Option<u8>, m16: u8, m32: u8) {
        match (len, m8) {
            _ if len <= fix_max => out.push(fix | len as u8),
            (0..=0xff, Some(m8)) => out.extend_from_slice(&[m8, len as u8]),
            (0..=0xffff, _) => {
                out.push(m16);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                // A source's record is far below 4 GiB (sources batch in kilobytes).
                let len = u32::try_from(len).expect("a value of the host's sources is under 4 GiB");
                out.push(m32);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
    }

    /// A map of `len` entries follows.
    #[inline]
    pub fn map(out: &mut Vec<u8>, len: u32) {
        header(out, len as usize, (0x80, 15), None, 0xde, 0xdf);
    }

    /// An array of `len` elements follows.
    #[inline]
    pub fn array(out: &mut Vec<u8>, len: u32) {
        header(out, len as usize, (0x90, 15), None, 0xdc, 0xdd);
    }

    /// A string.
    #[inline]
    pub fn str(out: &mut Vec<u8>, s: &str) {
        str_header(out, s.len());
        out.extend_from_slice(s.as_bytes());
    }

    /// The header of a string of `len` bytes, which the caller writes after it and has
    /// made sure are UTF-8.
    #[inline]
    pub(super) fn str_header(out: &mut Vec<u8>, len: usize) {
        header(out, len, (0xa0, 31), Some(0xd9), 0xda, 0xdb);
    }

    /// An integer, in its shortest form.
    #[inline]
    pub fn int(out: &mut Vec<u8>, n: i64) {
        match n {
            // The fixints: 0 to 127, and -32 to -1 in their two's complement byte.
            -32..=0x7f => out.push(n as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            0x1_0000_0000.. => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
            -0x80..=-33 => out.extend_from_slice(&[0xd0, n as u8]),
            -0x8000..=-0x81 => {
                out.push(0xd1);
                out.extend_from_slice(&(n as i16).to_be_bytes());
            }
            -0x8000_0000..=-0x8001 => {
                out.push(0xd2);
                out.extend_from_slice(&(n as i32).to_be_bytes());
            }
            _ => {
                out.push(0xd3);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    /// An unsigned integer, in its shortest form.
    #[inline]
    pub fn uint(out: &mut Vec<u8>, n: u64) {
        match i64::try_from(n) {
            Ok(n) => int(out, n),
            Err(_) => {
                out.push(0xcf);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    /// A 64-bit float.
    #[inline]
    pub fn f64(out: &mut Vec<u8>, f: f64) {
        out.push(0xcb);
        out.extend_from_slice(&f.to_be_bytes());
    }

    /// Nil (JSON's `null`).
    #[inline]
    pub fn nil(out: &mut Vec<u8>) {
        out.push(0xc0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn writers_write_what_rmp_serde_writes() {
        for n in [0i64, 1, 127, 128, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, i64::MAX, -1, -32, -33, -128, -129, -32_768, -32_769, -2_147_483_648, -2_147_483_649, i64::MIN] {
            let mut ours = Vec::new();
            write::int(&mut ours, n);
            assert_eq!(ours, rmp_serde::to_vec(&n).unwrap(), "{n}");
        }
        for len in [0usize, 31, 32, 255, 256, 65_535, 65_536] {
            let text = "x".repeat(len);
            let mut ours = Vec::new();
            write::str(&mut ours, &text);
            assert_eq!(ours, rmp_serde::to_vec(&text).unwrap(), "{len}");
            let map: std::collections::BTreeMap<u32, ()> = (0..len as u32).map(|i| (i, ())).collect();
            let mut ours = Vec::new();
            write::map(&mut ours, len as u32);
            for i in 0..len as u32 {
                write::int(&mut ours, i.into());
                write::nil(&mut ours);
            }
            assert_eq!(ours, rmp_serde::to_vec(&map).unwrap(), "{len}");
        }
    }

    /// What the Rust SDK writes for a value: the marker, then rmp-serde with field names.
    fn encode<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = vec![MARKER];
        v.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map().with_human_readable()).unwrap();
        out
    }

    fn json_of(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        to_json(bytes, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        New(i32),
        Tuple(u8, String),
        Struct { a: Option<f64> },
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        auction_id: i64,
        price: f64,
        small: f32,
        neg: i8,
        big: u64,
        min: i64,
        text: String,
        none: Option<String>,
        list: Vec<(String, bool)>,
        bytes: Vec<u8>,
        by_number: std::collections::BTreeMap<i32, ()>,
        shapes: Vec<Shape>,
        nan: f64,
    }

    #[test]
    fn converts_as_serde_json_writes_the_same_value() {
        let row = Row {
            auction_id: 1_000_000_007,
            price: 0.908,
            small: 0.1,
            neg: -100,
            big: u64::MAX,
            min: i64::MIN,
            text: "quote \" backslash \\ newline \n tab \t bell \u{7} bs \u{8} ff \u{c} é ∑ 🦀".into(),
            none: None,
            list: vec![("x".into(), true), ("y".into(), false)],
            bytes: vec![0, 255],
            by_number: [(-3, ()), (70000, ())].into(),
            shapes: vec![Shape::Unit, Shape::New(-1), Shape::Tuple(2, "t".into()), Shape::Struct { a: Some(2.5) }],
            nan: f64::NAN,
        };
        assert_eq!(json_of(&encode(&row)), serde_json::to_string(&row).unwrap());
        for s in ["", "a", &"x".repeat(31), &"y".repeat(32), &"z".repeat(300), &"w".repeat(70_000)] {
            assert_eq!(json_of(&encode(&s)), serde_json::to_string(&s).unwrap());
        }
        for n in [0i64, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -129, -32769, i64::MAX] {
            assert_eq!(json_of(&encode(&n)), n.to_string());
        }
    }

    #[test]
    fn refuses_what_is_not_one_convertible_value() {
        let mut out = Vec::new();
        let mut check = |bytes: &[u8], want: MsgpackError| {
            assert_eq!(to_json(bytes, &mut out), Err(want), "{bytes:02x?}");
            assert!(out.is_empty(), "nothing is left behind on an error");
        };
        check(&[MARKER], MsgpackError::Truncated);
        check(&[MARKER, 0xa5, b'a'], MsgpackError::Truncated);
        check(&[MARKER, 0xdb, 0xff, 0xff, 0xff, 0xff], MsgpackError::Truncated);
        check(&[MARKER, 0xdd, 0xff, 0xff, 0xff, 0xff], MsgpackError::Truncated);
        check(&[MARKER, 0xc1], MsgpackError::Unsupported(0xc1));
        check(&[MARKER, 0xd4, 1, 2], MsgpackError::Extension(0xd4));
        check(&[MARKER, 0x81, 0xc0, 0x01], MsgpackError::Key);
        check(&[MARKER, 0xa1, 0xff], MsgpackError::Utf8);
        check(&[MARKER, 0x01, 0x02], MsgpackError::Trailing);
        let mut deep = vec![MARKER];
        deep.extend(std::iter::repeat_n(0x91, 200));
        deep.push(0xc0);
        check(&deep, MsgpackError::TooDeep);
    }

    #[test]
    fn converts_only_the_msgpack_values_of_a_batch() {
        let mut batch = Vec::new();
        framing::push(&mut batch, Some(b"\"k\""), &encode(&("a", 1)), Some(5));
        framing::push(&mut batch, None, b"[\"b\",2]", None);
        let out = batch_to_json(batch).unwrap();
        let got: Vec<_> = framing::records(&out).map(Result::unwrap).collect();
        assert_eq!((got[0].key, got[0].value, got[0].timestamp), (Some(&b"\"k\""[..]), &b"[\"a\",1]"[..], Some(5)));
        assert_eq!(got[1].value, b"[\"b\",2]");
        let mut json_only = Vec::new();
        framing::push(&mut json_only, None, b"1", None);
        let ptr = json_only.as_ptr();
        let same = batch_to_json(json_only).unwrap();
        assert_eq!(same.as_ptr(), ptr, "a batch without MessagePack is not copied");
        let mut bad = Vec::new();
        framing::push(&mut bad, None, &[MARKER, 0xc1], None);
        assert_eq!(batch_to_json(bad), Err(MsgpackError::Unsupported(0xc1)));
    }
}
