//! The little JSON the host itself reads and writes: text lines as JSON
//! strings (sources), values as text (sinks), and number fields (aggregates).
//! Everything else about values belongs to the SDKs.

use serde_json::Value;

/// Writes `text` as a JSON string. Bytes that are not UTF-8 become U+FFFD.
pub fn write_string(out: &mut Vec<u8>, text: &[u8]) {
    match std::str::from_utf8(text) {
        Ok(s) => write_str(out, s),
        Err(_) => write_str(out, &String::from_utf8_lossy(text)),
    }
}

/// Writes text already known to be UTF-8 as a JSON string, without checking it again.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    escape_into(out, text);
    out.push(b'"');
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..i]);
        match bytes[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// The index of the first byte at or after `from` that JSON must escape (`"`, `\`, or
/// a control character): where a string being written needs an escape, and where a
/// string being read ends its plain run. Eight bytes at a time: text sources escape every
/// line, and the JSON Lines source reads every string of every line.
#[inline(always)]
pub(crate) fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes[from..].chunks_exact(8);
    let mut at = from;
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        // A lane is flagged if it is below 0x20 (ASCII only: bytes >= 0x80 are masked
        // out), or zero after XOR with '"' or '\'. A test may flag lanes above a real
        // match (a borrow runs upwards) but never misses one, so the lowest flag is exact.
        let below = x.wrapping_sub(LOW * 0x20) & !x;
        let quote = x ^ (LOW * u64::from(b'"'));
        let backslash = x ^ (LOW * u64::from(b'\\'));
        let flags = (below | quote.wrapping_sub(LOW) & !quote | backslash.wrapping_sub(LOW) & !backslash) & HIGH;
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|i| at + i)
}

/// What a backslash escape of a JSON string stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// A character (a `\u` surrogate pair is one), and where the escape ends.
    Char(char, usize),
    /// A `\u` escape of half a surrogate pair without its other half: its code unit,
    /// and where the escape ends.
    LoneSurrogate(u16, usize),
}

/// The escape at `at` (its backslash) in `bytes`; None if it is not one JSON has.
pub(crate) fn read_escape(bytes: &[u8], at: usize) -> Option<Escape> {
    let c = match bytes.get(at + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hex4 = |at: usize| {
                let digits = bytes.get(at + 2..at + 6)?;
                digits.iter().try_fold(0u16, |n, &d| Some(n << 4 | (d as char).to_digit(16)? as u16))
            };
            let first = hex4(at)?;
            if (0xd800..0xdc00).contains(&first) && bytes.get(at + 6..at + 8) == Some(b"\\u") {
                let low = hex4(at + 6)?;
                if (0xdc00..0xe000).contains(&low) {
                    let code = 0x1_0000 + ((u32::from(first) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                    return Some(Escape::Char(char::from_u32(code).expect("a surrogate pair's code point"), at + 12));
                }
            }
            return Some(match char::from_u32(first.into()) {
                Some(c) => Escape::Char(c, at + 6),
                None => Escape::LoneSurrogate(first, at + 6),
            });
        }
        _ => return None,
    };
    Some(Escape::Char(c, at + 2))
}

/// Writes a JSON array of `len` elements, each written by `element`.
pub(crate) fn write_array<E>(out: &mut Vec<u8>, len: usize, mut element: impl FnMut(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
    out.push(b'[');
    for i in 0..len {
        if i > 0 {
            out.push(b',');
        }
        element(out)?;
    }
    out.push(b']');
    Ok(())
}

/// Writes a value as a sink shows it: a JSON string as its raw text, any
/// other value as its JSON.
pub fn write_as_text(out: &mut Vec<u8>, value: &[u8]) {
    if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
        let inner = &value[1..value.len() - 1];
        if !inner.contains(&b'\\') {
            out.extend_from_slice(inner);
            return;
        }
        if let Ok(s) = serde_json::from_slice::<String>(value) {
            out.extend_from_slice(s.as_bytes());
            return;
        }
    }
    out.extend_from_slice(value);
}

/// A number read from a value, kept integral while every input is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A JSON number without fraction or exponent that fits `i64`.
    Int(i64),
    /// Any other JSON number.
    Float(f64),
}

impl Number {
    /// Parses the text of one JSON number.
    pub fn parse(text: &[u8]) -> Option<Number> {
        let s = std::str::from_utf8(text).ok()?;
        if let Ok(i) = s.parse::<i64>() {
            return Some(Number::Int(i));
        }
        serde_json::from_str::<serde_json::Number>(s).ok()?.as_f64().map(Number::Float)
    }

    /// `self + other`, falling back to floating point on overflow.
    pub fn plus(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => {
                a.checked_add(b).map_or(Number::Float(a as f64 + b as f64), Number::Int)
            }
            (a, b) => Number::Float(a.as_f64() + b.as_f64()),
        }
    }

    /// The value as `f64`, for comparisons across kinds.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// Appends the number's JSON text, as `to_json` would print it.
    pub fn write_json(self, out: &mut Vec<u8>) {
        match self {
            Number::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
            Number::Float(f) => serde_json::to_writer(out, &f).expect("writing to a Vec cannot fail"),
        }
    }

    /// The JSON value of the number.
    pub fn to_json(self) -> Value {
        match self {
            Number::Int(i) => Value::from(i),
            Number::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        }
    }
}

/// The text of element `index` of a top-level JSON array, found by scanning
/// (no allocation): the hot path of built-in aggregates over tuples.
pub fn array_element(value: &[u8], index: u32) -> Option<&[u8]> {
    let mut i = skip_ws(value, 0);
    if value.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    let mut n = 0;
    loop {
        i = skip_ws(value, i);
        let start = i;
        i = skip_value(value, i)?;
        if n == index {
            return Some(&value[start..i]);
        }
        i = skip_ws(value, i);
        match value.get(i)? {
            b',' => i += 1,
            _ => return None,
        }
        n += 1;
    }
}

fn skip_ws(v: &[u8], mut i: usize) -> usize {
    while matches!(v.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// Returns the index just past the JSON value starting at `i`.
fn skip_value(v: &[u8], mut i: usize) -> Option<usize> {
    match *v.get(i)? {
        b'"' => {
            i += 1;
            loop {
                match *v.get(i)? {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
        }
        b'[' | b'{' => {
            let mut depth = 0usize;
            loop {
                match *v.get(i)? {
                    b'"' => {
                        i = skip_value(v, i)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(v.get(i), None | Some(b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t')) {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_byte_to_escape_in_any_lane() {
        for len in 0..20 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut text = vec![b'a'; len];
                    text[at] = special;
                    if at + 1 < len {
                        text[at + 1] = b'"';
                    }
                    assert_eq!(next_escape(&text, 0), Some(at), "{len} {at} {special}");
                    assert_eq!(next_escape(&text, at), Some(at), "from it: {len} {at} {special}");
                }
            }
            // Bytes that are none of them: 0x20, 0x7f, and UTF-8 continuation bytes.
            let plain: Vec<u8> = [0x20u8, 0x21, 0x5b, 0x5d, 0x7f, 0xc3, 0xa9, 0xe2, 0x80, 0x9c].iter().copied().cycle().take(len).collect();
            assert_eq!(next_escape(&plain, 0), None, "{len}");
        }
    }

    #[test]
    fn strings_round_trip_through_serde() {
        for s in ["plain", "quote \" back \\ tab\t", "ctl \u{1}\u{1f}", "café Über", ""] {
            let mut out = Vec::new();
            write_string(&mut out, s.as_bytes());
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
            let mut text = Vec::new();
            write_as_text(&mut text, &out);
            assert_eq!(text, s.as_bytes());
        }
        let mut out = Vec::new();
        write_string(&mut out, b"bad \xff byte");
        assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), "bad \u{fffd} byte");
    }

    #[test]
    fn escapes_at_every_position_of_long_strings() {
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', 'é', '\u{7f}'] {
            for at in 0..24 {
                let mut text: String = "abcdefghijklmnopqrstuvwxyz".chars().take(at).collect();
                text.push(special);
                text.push_str("tail of some length");
                let mut out = Vec::new();
                write_string(&mut out, text.as_bytes());
                assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), text, "{special:?} at {at}");
            }
        }
    }

    #[test]
    fn finds_array_elements() {
        let v = br#"[ "a,\"]" , {"x":[1,2]}, 42 ,-1.5e3]"#;
        assert_eq!(array_element(v, 0), Some(&br#""a,\"]""#[..]));
        assert_eq!(array_element(v, 1), Some(&br#"{"x":[1,2]}"#[..]));
        assert_eq!(array_element(v, 2), Some(&b"42"[..]));
        assert_eq!(array_element(v, 3), Some(&b"-1.5e3"[..]));
        assert_eq!(array_element(v, 4), None);
        assert_eq!(array_element(b"7", 0), None);
        assert_eq!(Number::parse(b"-1.5e3"), Some(Number::Float(-1500.0)));
        assert_eq!(Number::Int(i64::MAX).plus(Number::Int(1)), Number::Float(i64::MAX as f64 + 1.0));
    }
}
