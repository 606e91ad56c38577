//! Type-erased operators and their fusion into a chain.
//!
//! The registry holds each typed user function as a `Box<dyn Operator>`, so `open` can fuse
//! any selection of them. Between fused operators a value travels as the Rust value the
//! upstream operator produced ([`Value::Typed`]); it is encoded (`codec.rs`) only where it
//! leaves the chain, and decoded only where it enters it. A record therefore pays for its
//! encoding once per chain, not once per operator.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::frame::{self, Record};

/// A value inside a fused chain.
pub(crate) enum Value<'a> {
    /// The bytes the value arrived as (from the host), in either codec.
    Encoded(&'a [u8]),
    /// A value an upstream operator of this chain produced, not yet encoded.
    Typed(&'a mut dyn TypedValue),
    /// The bytes a value arrived as, and an upstream operator's decoding of them: a filter
    /// or key selector passes on what it read, so the next operator need not decode it
    /// again, and the bytes leave the chain as they came.
    Both(&'a [u8], &'a mut dyn TypedValue),
}

/// A Rust value that can still be encoded, or moved out as its concrete type.
pub(crate) trait TypedValue {
    /// Appends the value, in the instance's codec, to `buf`.
    fn encode(&self, buf: &mut Vec<u8>) -> Result<(), String>;
    /// The `Option<T>` holding the value, for [`Value::take`], if `T`'s `TypeId` is
    /// `want`: one dynamic call per record (`Any::downcast_mut` would be two).
    fn slot(&mut self, want: TypeId) -> Option<*mut ()>;
}

impl<T: Serialize + 'static> TypedValue for Option<T> {
    fn encode(&self, buf: &mut Vec<u8>) -> Result<(), String> {
        let value = self.as_ref().ok_or("value used after it was moved on")?;
        codec::encode_into(buf, value)
    }

    #[inline]
    fn slot(&mut self, want: TypeId) -> Option<*mut ()> {
        (TypeId::of::<T>() == want).then_some(self as *mut Self as *mut ())
    }
}

impl Value<'_> {
    /// The value as a `T`: moved out if an upstream operator produced a `T`, decoded
    /// otherwise (also when the upstream type differs, e.g. `u32` read as `u64`).
    pub(crate) fn take<T: DeserializeOwned + 'static>(&mut self) -> Result<T, String> {
        match self {
            Value::Encoded(bytes) => decode_value(bytes),
            Value::Both(bytes, v) => {
                if let Some(slot) = v.slot(TypeId::of::<T>()) {
                    // SAFETY: as below.
                    if let Some(value) = unsafe { &mut *slot.cast::<Option<T>>() }.take() {
                        return Ok(value);
                    }
                }
                decode_value(bytes)
            }
            Value::Typed(v) => {
                if let Some(slot) = v.slot(TypeId::of::<T>()) {
                    // SAFETY: `slot` gave the address of an `Option<U>` whose `U` has the
                    // `TypeId` of `T`: the same type; `v` borrows it mutably meanwhile.
                    let slot = unsafe { &mut *slot.cast::<Option<T>>() };
                    return slot.take().ok_or_else(|| "value used after it was moved on".to_string());
                }
                let mut buf = Vec::new();
                v.encode(&mut buf)?;
                codec::decode(&buf)
            }
        }
    }
}

/// One record inside a fused chain.
pub(crate) struct Item<'a> {
    /// The key (JSON), set by `key_by`.
    pub key: Option<&'a [u8]>,
    /// Event time in milliseconds.
    pub timestamp: Option<i64>,
    /// The value.
    pub value: Value<'a>,
    /// The input it came by: 1 for the second input of a two-input operator, else 0.
    pub input: u8,
}

impl<'a> Item<'a> {
    /// A record with this one's key and timestamp and a new value.
    #[inline]
    pub fn with<'b>(&self, value: Value<'b>) -> Item<'b>
    where
        'a: 'b,
    {
        Item { key: self.key, timestamp: self.timestamp, value, input: 0 }
    }
}

/// Receives the records an operator emits.
pub(crate) trait Emit {
    fn emit(&mut self, item: Item<'_>) -> Result<(), String>;
}

/// One registry entry: a user function over records.
pub(crate) trait Operator {
    fn process(&mut self, item: Item<'_>, out: &mut dyn Emit) -> Result<(), String>;

    /// Event time advanced; operators without timers have nothing to emit.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut dyn Emit) -> Result<(), String> {
        Ok(())
    }

    /// The input ended; operators that buffer would flush here.
    fn close(&mut self, _out: &mut dyn Emit) -> Result<(), String> {
        Ok(())
    }

    /// A timer of `key` fired; only operators that register timers act on it.
    fn on_timer(&mut self, _key: &[u8], _timer: crate::ctx::Timer, _out: &mut dyn Emit) -> Result<(), String> {
        Ok(())
    }
}

/// An operator made of a closure, which is all the current builder needs.
pub(crate) struct FnOp<F>(pub F);

impl<F> Operator for FnOp<F>
where
    F: FnMut(Item<'_>, &mut dyn Emit) -> Result<(), String>,
{
    #[inline]
    fn process(&mut self, item: Item<'_>, out: &mut dyn Emit) -> Result<(), String> {
        (self.0)(item, out)
    }
}

/// The rest of a fused chain: emitting into it runs the next operator directly (no batch in
/// between); past the last operator records are framed into the output batch.
pub(crate) struct Chain<'a> {
    pub rest: &'a mut [Box<dyn Operator>],
    pub out: &'a mut Vec<u8>,
}

impl Emit for Chain<'_> {
    #[inline]
    fn emit(&mut self, item: Item<'_>) -> Result<(), String> {
        match self.rest.split_first_mut() {
            None => match item.value {
                Value::Encoded(value) | Value::Both(value, _) => {
                    frame::encode(self.out, &Record { key: item.key, timestamp: item.timestamp, value });
                    Ok(())
                }
                Value::Typed(v) => frame::encode_with(self.out, item.key, item.timestamp, |buf| v.encode(buf)),
            },
            Some((op, rest)) => op.process(item, &mut Chain { rest, out: self.out }),
        }
    }
}

/// Runs every record of `input` through the chain `ops`, appending emissions to `out`.
pub(crate) fn run_batch(
    ops: &mut [Box<dyn Operator>],
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut records = frame::decode(input);
    while let Some(record) = records.next() {
        let r = record?;
        let item = Item { key: r.key, timestamp: r.timestamp, value: Value::Encoded(r.value), input: records.input() };
        Chain { rest: ops, out }.emit(item)?;
    }
    Ok(())
}

/// Gives each operator, first to last, its watermark hook; emissions flow downstream.
pub(crate) fn run_watermark(
    ops: &mut [Box<dyn Operator>],
    watermark: i64,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    for i in 0..ops.len() {
        let (head, rest) = ops[i..].split_first_mut().expect("non-empty");
        head.on_watermark(watermark, &mut Chain { rest, out })?;
    }
    Ok(())
}

/// Hands a fired timer to each operator, first to last; emissions flow downstream.
pub(crate) fn run_timer(
    ops: &mut [Box<dyn Operator>],
    key: &[u8],
    timer: crate::ctx::Timer,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    for i in 0..ops.len() {
        let (head, rest) = ops[i..].split_first_mut().expect("non-empty");
        head.on_timer(key, timer, &mut Chain { rest, out })?;
    }
    Ok(())
}

/// Closes each operator, first to last, so an upstream flush still reaches the ones after it.
pub(crate) fn run_close(ops: &mut [Box<dyn Operator>], out: &mut Vec<u8>) -> Result<(), String> {
    for i in 0..ops.len() {
        let (head, rest) = ops[i..].split_first_mut().expect("non-empty");
        head.close(&mut Chain { rest, out })?;
    }
    Ok(())
}

/// [`codec::decode`], except that JSON strings without escapes (every plain text line of a
/// source, mostly) skip the JSON parser.
#[inline]
fn decode_value<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, String> {
    if TypeId::of::<T>() == TypeId::of::<String>() {
        if let Some(s) = plain_json_string(bytes) {
            let mut slot: Option<T> = None;
            if let Some(string_slot) = (&mut slot as &mut dyn Any).downcast_mut::<Option<String>>() {
                *string_slot = Some(s.to_owned());
            }
            if let Some(v) = slot {
                return Ok(v);
            }
        }
    }
    codec::decode(bytes)
}

/// The text of a JSON string that has no escapes (and so no control characters), if it is one.
fn plain_json_string(bytes: &[u8]) -> Option<&str> {
    let inner = bytes.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.iter().any(|&b| b == b'\\' || b == b'"' || b < 0x20) {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

/// Encodes a record's key as JSON into `buf` (cleared first), as [`encode_json`] does, with
/// the common key types written directly: a string without characters to escape, or an
/// integer (in word count, serde_json's writer was 6 % of the CPU).
#[inline]
pub(crate) fn encode_key<K: Serialize + 'static>(buf: &mut Vec<u8>, key: &K) -> Result<(), String> {
    let any: &dyn Any = key;
    let text = any.downcast_ref::<String>().map(String::as_str).or_else(|| any.downcast_ref::<&'static str>().copied());
    if let Some(text) = text {
        if !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            buf.clear();
            buf.push(b'"');
            buf.extend_from_slice(text.as_bytes());
            buf.push(b'"');
            return Ok(());
        }
    } else if let Some(n) = any.downcast_ref::<i64>().copied().or_else(|| any.downcast_ref::<i32>().map(|&n| n.into())) {
        buf.clear();
        push_decimal(buf, n.unsigned_abs(), n < 0);
        return Ok(());
    } else if let Some(n) = any.downcast_ref::<u64>().copied().or_else(|| any.downcast_ref::<u32>().map(|&n| n.into())) {
        buf.clear();
        push_decimal(buf, n, false);
        return Ok(());
    }
    encode_json(buf, key)
}

/// Appends `n` in decimal, after a minus sign if `negative`.
fn push_decimal(buf: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[at..]);
}

/// Encodes JSON into `buf` (cleared first), reusing its allocation: keys, which the host
/// hashes and so must not depend on the codec, and the fixed elements of a source.
#[inline]
pub(crate) fn encode_json<T: serde::Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), String> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value)
        .map_err(|e| format!("cannot encode {} as JSON: {e}", std::any::type_name::<T>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_as_serde_json_writes_them() {
        fn check<K: Serialize + 'static>(key: K) {
            let mut ours = b"stale".to_vec();
            encode_key(&mut ours, &key).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&key).unwrap());
        }
        for text in ["word", "", "café", "quote \" inside", "back\\slash", "tab\t", "\u{1}"] {
            check(text.to_string());
            check(text);
        }
        for n in [0i64, 7, -1, i64::MIN, i64::MAX] {
            check(n);
        }
        for n in [0u64, 10, u64::MAX] {
            check(n);
        }
        check(i32::MIN);
        check(u32::MAX);
        check((1u8, "pair"));
        check(Some(2.5f64));
    }

    fn add(n: i64) -> Box<dyn Operator> {
        Box::new(FnOp(move |mut r: Item<'_>, out: &mut dyn Emit| {
            let v: i64 = r.value.take()?;
            out.emit(r.with(Value::Typed(&mut Some(v + n))))
        }))
    }

    fn dup() -> Box<dyn Operator> {
        Box::new(FnOp(|mut r: Item<'_>, out: &mut dyn Emit| {
            let v: i64 = r.value.take()?;
            out.emit(r.with(Value::Typed(&mut Some(v))))?;
            out.emit(r.with(Value::Typed(&mut Some(v))))
        }))
    }

    #[test]
    fn fuses_in_order() {
        // The bytes expected below are JSON.
        crate::codec::set(crate::ValueCodec::Json);
        let mut ops = vec![add(1), dup(), add(10)];
        let input = frame::encode_all([Record {
            key: Some(b"\"k\""),
            timestamp: Some(9),
            value: b"1",
        }]);
        let mut out = Vec::new();
        run_batch(&mut ops, &input, &mut out).unwrap();
        let recs: Vec<_> = frame::decode(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        for r in recs {
            assert_eq!(
                r,
                Record {
                    key: Some(b"\"k\""),
                    timestamp: Some(9),
                    value: b"12"
                }
            );
        }
    }

    #[test]
    fn errors_propagate() {
        let mut ops = vec![add(1)];
        let input = frame::encode_all([Record::value(b"\"x\"")]);
        let e = run_batch(&mut ops, &input, &mut Vec::new()).unwrap_err();
        assert!(e.starts_with("cannot decode i64"), "{e}");
        let e = run_batch(&mut ops, &[9], &mut Vec::new()).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }
}
