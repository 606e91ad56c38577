//! How values are encoded (`wit/README.md`, Values): JSON, or MessagePack behind a 0xc1
//! byte, which no JSON text starts with. Readers tell them apart by that byte, so this SDK
//! reads both whatever it writes, and state written under one codec reads under the other.
//!
//! What a component writes is its job's choice ([`crate::Env::set_value_codec`]; by
//! default MessagePack, about twice as fast to decode and encode as JSON for Nexmark's
//! records, see `docs/architecture.md`). Keys stay JSON under either: the host hashes a
//! key's bytes to its key group, so they must not depend on the codec.

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::bindings::eddy::stream::types::ValueCodec;

/// The first byte of a MessagePack value.
pub(crate) const MSGPACK_MARKER: u8 = 0xc1;

/// The codec a new job writes unless it says otherwise.
pub(crate) const DEFAULT: ValueCodec = ValueCodec::Msgpack;

thread_local! {
    /// What this instance writes: the codec of the graph its entry built (`runtime::build`).
    static WRITES: Cell<ValueCodec> = const { Cell::new(DEFAULT) };
}

/// Makes this instance write `codec` from now on.
pub(crate) fn set(codec: ValueCodec) {
    WRITES.with(|c| c.set(codec));
}

/// Appends `value` in the instance's codec.
#[inline]
pub(crate) fn encode_into<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<(), String> {
    match WRITES.with(Cell::get) {
        // `PythonMarshal` is refused by `set_value_codec`; its values are JSON anyway.
        ValueCodec::Json | ValueCodec::PythonMarshal => serde_json::to_writer(&mut *buf, value).map_err(|e| encode_error::<T>("JSON", e)),
        ValueCodec::Msgpack => {
            buf.push(MSGPACK_MARKER);
            // Field names, so the host can read a field and the value converts to the same
            // JSON object; human-readable, so types that print differently (times,
            // addresses) take their JSON form.
            crate::msgpack::write(buf, value).map_err(|e| encode_error::<T>("MessagePack", e))
        }
    }
}

fn encode_error<T: ?Sized>(codec: &str, e: impl std::fmt::Display) -> String {
    format!("cannot encode {} as {codec}: {e}", std::any::type_name::<T>())
}

/// Decodes a value of either codec, naming the expected type in the error so a type
/// mismatch between vertices is diagnosable from the host's log.
#[inline]
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&MSGPACK_MARKER, packed)) => crate::msgpack::from_slice(packed).map_err(|e| decode_error::<T>(bytes, e)),
        _ => serde_json::from_slice(bytes).map_err(|e| decode_error::<T>(bytes, e)),
    }
}

fn decode_error<T>(bytes: &[u8], e: impl std::fmt::Display) -> String {
    format!("cannot decode {} from {:?}: {e}", std::any::type_name::<T>(), shown(bytes, 200))
}

/// A value for an error message: its JSON text (a MessagePack value's converted), cut to
/// about `limit` bytes; the bytes in hex if it is MessagePack that does not decode.
pub(crate) fn shown(bytes: &[u8], limit: usize) -> String {
    let mut text = match bytes.split_first() {
        Some((&MSGPACK_MARKER, packed)) => match crate::msgpack::to_json_text(packed, limit) {
            Some(text) => text,
            None => return format!("{:02x?}", &bytes[..bytes.len().min(limit / 3)]),
        },
        _ => String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned(),
    };
    if text.len() > limit {
        let cut = (0..=limit).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        id: i64,
        name: String,
        price: f64,
        tags: Vec<Option<String>>,
    }

    #[test]
    fn reads_both_whatever_it_writes() {
        let row = Row { id: -7, name: "é\"x".into(), price: 0.908, tags: vec![None, Some("t".into())] };
        for writes in [ValueCodec::Json, ValueCodec::Msgpack] {
            set(writes);
            let mut buf = Vec::new();
            encode_into(&mut buf, &row).unwrap();
            assert_eq!(buf[0] == MSGPACK_MARKER, writes == ValueCodec::Msgpack);
            for reads in [ValueCodec::Json, ValueCodec::Msgpack] {
                set(reads);
                assert_eq!(decode::<Row>(&buf).unwrap(), row);
                // A struct read as a generic value keeps its field names.
                assert_eq!(decode::<serde_json::Value>(&buf).unwrap()["name"], "é\"x");
            }
        }
        set(DEFAULT);
    }

    #[test]
    fn names_the_type_and_shows_the_value_it_could_not_decode() {
        // MessagePack shows as the JSON it converts to, in its own order of fields.
        let err = decode::<Row>(&[MSGPACK_MARKER, 0x82, 0xa1, b'z', 0xc3, 0xa1, b'a', 0x91, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(err.starts_with("cannot decode eddy_sdk::codec::tests::Row from \"{\\\"z\\\":true,\\\"a\\\":[1.5]}\": missing field"), "{err}");
        // MessagePack that does not decode shows as its bytes.
        let err = decode::<Row>(&[MSGPACK_MARKER, 0x82, 0xa1]).unwrap_err();
        assert!(err.contains("Row") && err.contains("[c1, 82, a1]"), "{err}");
        let err = decode::<i64>(b"\"x\"").unwrap_err();
        assert!(err.contains("i64") && err.contains("\\\"x\\\""), "{err}");
        // A long value is cut, at a character's boundary.
        let long: Vec<String> = (0..100).map(|i| format!("é{i}")).collect();
        let mut buf = vec![MSGPACK_MARKER];
        crate::msgpack::write(&mut buf, &long).unwrap();
        let text = shown(&buf, 50);
        assert!(text.starts_with("[\"é0\",\"é1\",") && text.len() <= 50, "{text}");
    }
}
