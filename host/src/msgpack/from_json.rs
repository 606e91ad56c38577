//! JSON text to a MessagePack value, for a source of JSON text in a job whose values are
//! MessagePack (a JSON Lines file read by a Rust job): the host parses each line once,
//! natively, where otherwise every operator that reads it would parse its JSON again in
//! the component.
//!
//! It accepts what serde_json accepts and makes the MessagePack of the value serde_json
//! would have read, so a component decodes the same Rust value from either: integers that
//! fit `u64` (or, negative, `i64`) as integers in their shortest form, other numbers as
//! 64-bit floats (`-0` too, as serde_json reads it), strings unescaped, objects as maps in
//! their order, duplicate keys kept (serde then refuses them, as it would from JSON).

use thiserror::Error;

use super::write;
use crate::json::{next_escape, read_escape, Escape};

/// Containers nested deeper than this are refused, as serde_json refuses them (it takes
/// 127 and no more): the parser recurses.
const MAX_NESTING: usize = 127;

/// Why a text is not a JSON value; each names the byte of the text where it went wrong.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FromJsonError {
    /// A byte where the grammar allows none of it.
    #[error("expected {0} at byte {1}")]
    Expected(&'static str, usize),
    /// A byte below 0x20 inside a string (JSON requires it escaped).
    #[error("control character in a string at byte {0}")]
    ControlCharacter(usize),
    /// Bytes of a string that are not UTF-8.
    #[error("invalid UTF-8 at byte {0}")]
    NotUtf8(usize),
    /// A backslash followed by something that is not an escape.
    #[error("invalid escape at byte {0}")]
    Escape(usize),
    /// A `\u` escape of half a surrogate pair without its other half.
    #[error("lone surrogate in a \\u escape at byte {0}")]
    LoneSurrogate(usize),
    /// A number whose magnitude no 64-bit float holds.
    #[error("number out of range at byte {0}")]
    NumberOutOfRange(usize),
    /// Arrays or objects nested deeper than [`MAX_NESTING`].
    #[error("nesting deeper than {MAX_NESTING} at byte {0}")]
    TooDeep(usize),
    /// Anything but whitespace after the value.
    #[error("trailing characters at byte {0}")]
    Trailing(usize),
}

/// Appends the MessagePack value (marker included) of the JSON text `json`; on an error,
/// `out` is as it was. The result is at most three times as long as the text, and a byte
/// (`1e9` becomes a nine-byte float; everything else shrinks or keeps its length), so a
/// bounded line makes a bounded value. A source converting many lines uses a [`Transcoder`].
pub fn from_json(json: &[u8], out: &mut Vec<u8>) -> Result {
    Transcoder::default().from_json(json, out)
}

/// Keys past this many into a text are not remembered (a line of JSON Lines is one record,
/// and the records of a file mostly have the same few shapes, of a few keys each).
const REMEMBERED_KEYS: usize = 64;

/// Converts JSON texts one after another, remembering what the last ones were like.
#[derive(Default)]
pub struct Transcoder {
    /// The plain keys (no escapes, at most 31 bytes) of the last texts, by their place in
    /// the text, each with its closing quote: a key where the text before had the same one
    /// is matched at once instead of scanned for its end (whose unpredictable branch is
    /// much of a short string's cost).
    keys: Vec<Vec<u8>>,
    /// A string with escapes, unescaped (its length must be known before its header is
    /// written); kept to reuse its allocation.
    unescaped: Vec<u8>,
}

impl Transcoder {
    /// As [`from_json`].
    pub fn from_json(&mut self, json: &[u8], out: &mut Vec<u8>) -> Result {
        let start = out.len();
        write::begin(out);
        let mut parser = Parser { bytes: json, pos: 0, keys_seen: 0, memory: self };
        let result = parser.document(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// A cursor over JSON text. Only strings may hold bytes beyond ASCII (anywhere else one is
/// a syntax error), so only they are checked for UTF-8, and only if they hold such bytes.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Object keys read so far in this text.
    keys_seen: usize,
    memory: &'a mut Transcoder,
}

type Result<T = ()> = std::result::Result<T, FromJsonError>;

impl Parser<'_> {
    fn document(&mut self, out: &mut Vec<u8>) -> Result {
        self.skip_whitespace();
        self.value(out, 0)?;
        self.skip_whitespace();
        match self.pos == self.bytes.len() {
            true => Ok(()),
            false => Err(FromJsonError::Trailing(self.pos)),
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips `byte` (after whitespace), or fails expecting `what`.
    #[inline]
    fn expect(&mut self, byte: u8, what: &'static str) -> Result {
        self.skip_whitespace();
        if self.peek() != Some(byte) {
            return Err(FromJsonError::Expected(what, self.pos));
        }
        self.pos += 1;
        Ok(())
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string(out)
            }
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(b'{') => self.container(out, depth, ContainerKind::Object),
            Some(b'[') => self.container(out, depth, ContainerKind::Array),
            Some(b'n') => self.literal("null", 0xc0, out),
            Some(b't') => self.literal("true", 0xc3, out),
            Some(b'f') => self.literal("false", 0xc2, out),
            _ => Err(FromJsonError::Expected("a value", self.pos)),
        }
    }

    fn literal(&mut self, word: &'static str, marker: u8, out: &mut Vec<u8>) -> Result {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return Err(FromJsonError::Expected(word, self.pos));
        }
        self.pos += word.len();
        out.push(marker);
        Ok(())
    }

    /// An object or an array: its header is written when its length is known, in place of
    /// the one byte reserved for it (a longer one moves the elements, which is rare: a
    /// container of more than 15 elements).
    fn container(&mut self, out: &mut Vec<u8>, depth: usize, kind: ContainerKind) -> Result {
        // `depth` containers enclose this one.
        if depth >= MAX_NESTING {
            return Err(FromJsonError::TooDeep(self.pos));
        }
        let (close, after) = match kind {
            ContainerKind::Object => (b'}', "',' or '}'"),
            ContainerKind::Array => (b']', "',' or ']'"),
        };
        self.pos += 1;
        let header = out.len();
        out.push(0);
        let mut len = 0usize;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
        } else {
            loop {
                if kind == ContainerKind::Object {
                    if self.peek() != Some(b'"') {
                        return Err(FromJsonError::Expected("a string key", self.pos));
                    }
                    self.pos += 1;
                    self.key(out)?;
                    self.expect(b':', "':'")?;
                    self.skip_whitespace();
                }
                self.value(out, depth + 1)?;
                len += 1;
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    Some(b) if b == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(FromJsonError::Expected(after, self.pos)),
                }
            }
        }
        let fix = match kind {
            ContainerKind::Object => 0x80,
            ContainerKind::Array => 0x90,
        };
        if len <= 15 {
            out[header] = fix | len as u8;
        } else {
            let mut bytes = Vec::with_capacity(5);
            match kind {
                ContainerKind::Object => write::map(&mut bytes, len as u32),
                ContainerKind::Array => write::array(&mut bytes, len as u32),
            }
            out.splice(header..header + 1, bytes);
        }
        Ok(())
    }

    /// An object key (its opening quote read): the one at its place in the last text, if
    /// it is that one, else a string, remembered if plain and short.
    fn key(&mut self, out: &mut Vec<u8>) -> Result {
        let place = self.keys_seen;
        self.keys_seen += 1;
        if let Some(known) = self.memory.keys.get(place).filter(|k| !k.is_empty()) {
            if self.bytes[self.pos..].starts_with(known) {
                let len = known.len() - 1;
                out.push(0xa0 | len as u8);
                out.extend_from_slice(&known[..len]);
                self.pos += known.len();
                return Ok(());
            }
        }
        let start = self.pos;
        self.string(out)?;
        let raw = &self.bytes[start..self.pos];
        if place < REMEMBERED_KEYS && raw.len() <= 32 && !raw.contains(&b'\\') {
            if self.memory.keys.len() <= place {
                self.memory.keys.resize(place + 1, Vec::new());
            }
            let known = &mut self.memory.keys[place];
            known.clear();
            known.extend_from_slice(raw);
        }
        Ok(())
    }

    /// A string's contents and closing quote (the opening one is read).
    fn string(&mut self, out: &mut Vec<u8>) -> Result {
        let start = self.pos;
        let end = self.run_end(start)?;
        if self.bytes[end] != b'"' {
            return self.escaped_string(out, start);
        }
        let text = self.utf8(start, end)?;
        // Most strings are short: their header is one byte.
        match text.len() {
            len @ 0..=31 => out.push(0xa0 | len as u8),
            len => write::str_header(out, len),
        }
        out.extend_from_slice(text);
        self.pos = end + 1;
        Ok(())
    }

    /// Where the plain run of a string from `from` ends: at its closing quote, a backslash
    /// or a control character (the bytes JSON escapes).
    #[inline]
    fn run_end(&self, from: usize) -> Result<usize> {
        next_escape(self.bytes, from).ok_or(FromJsonError::Expected("'\"'", self.bytes.len()))
    }

    /// The bytes of a string from `start` to `end`, if they are UTF-8.
    #[inline]
    fn utf8(&self, start: usize, end: usize) -> Result<&[u8]> {
        let run = &self.bytes[start..end];
        if !run.is_ascii() {
            std::str::from_utf8(run).map_err(|e| FromJsonError::NotUtf8(start + e.valid_up_to()))?;
        }
        Ok(run)
    }

    fn escaped_string(&mut self, out: &mut Vec<u8>, start: usize) -> Result {
        let mut text = std::mem::take(&mut self.memory.unescaped);
        text.clear();
        let mut pos = start;
        loop {
            let end = self.run_end(pos)?;
            text.extend_from_slice(self.utf8(pos, end)?);
            pos = end;
            match self.bytes[pos] {
                b'"' => break,
                b'\\' => pos = self.escape(pos, &mut text)?,
                _ => return Err(FromJsonError::ControlCharacter(pos)),
            }
        }
        write::str(out, std::str::from_utf8(&text).expect("unescaped UTF-8 text is UTF-8"));
        self.memory.unescaped = text;
        self.pos = pos + 1;
        Ok(())
    }

    /// The escape at `at` (its backslash), unescaped onto `text`; returns where it ends.
    fn escape(&self, at: usize, text: &mut Vec<u8>) -> Result<usize> {
        match read_escape(self.bytes, at) {
            Some(Escape::Char(c, end)) => {
                text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                Ok(end)
            }
            Some(Escape::LoneSurrogate(..)) => Err(FromJsonError::LoneSurrogate(at)),
            None => Err(FromJsonError::Escape(at)),
        }
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Result {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        self.pos += usize::from(negative);
        let integer = self.pos;
        // The integer part's value, as it is scanned: exact while it has at most 19 digits.
        let mut magnitude = 0u64;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
                    self.pos += 1;
                }
            }
            _ => return Err(FromJsonError::Expected("a digit", self.pos)),
        }
        let magnitude = match self.pos - integer {
            0..=19 => Some(magnitude),
            _ => parse_u64(&self.bytes[integer..self.pos]),
        };
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits()?;
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.required_digits()?;
            float = true;
        }
        if !float {
            // serde_json's reading: u64 if positive, i64 if negative and not zero, else f64.
            if let Some(magnitude) = magnitude {
                match negative {
                    false => {
                        write::uint(out, magnitude);
                        return Ok(());
                    }
                    true if (1..=1 << 63).contains(&magnitude) => {
                        write::int(out, (magnitude as i64).wrapping_neg());
                        return Ok(());
                    }
                    true => {}
                }
            }
        }
        let number = std::str::from_utf8(&self.bytes[start..self.pos]).expect("a number is ASCII");
        let value: f64 = number.parse().expect("a JSON number is a float's text");
        if !value.is_finite() {
            return Err(FromJsonError::NumberOutOfRange(start));
        }
        write::f64(out, value);
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Result {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(FromJsonError::Expected("a digit", self.pos));
        }
        self.digits();
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    Object,
    Array,
}

/// The decimal digits as a `u64`, if it holds them.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// What the Rust SDK writes for serde_json's value of `json`.
    fn theirs(json: &str) -> Vec<u8> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let mut out = vec![super::super::MARKER];
        value.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map()).unwrap();
        out
    }

    fn ours(json: &str) -> Result<Vec<u8>> {
        let mut out = b"before".to_vec();
        let result = from_json(json.as_bytes(), &mut out);
        match result {
            Ok(()) => Ok(out.split_off(6)),
            Err(e) => {
                assert_eq!(out, b"before", "an error leaves the buffer as it was");
                Err(e)
            }
        }
    }

    #[test]
    fn makes_the_messagepack_of_serde_jsons_value() {
        let long = |n: usize| format!("\"{}\"", "x".repeat(n));
        let array = |n: usize| format!("[{}]", vec!["7"; n].join(","));
        let object = |n: usize| format!("{{{}}}", (0..n).map(|i| format!("\"k{i:05}\":{i}")).collect::<Vec<_>>().join(","));
        let mut docs: Vec<String> = [
            "0", "-0", "1", "-1", "127", "128", "255", "256", "65535", "65536", "4294967296", "-32", "-33",
            "-128", "-129", "9223372036854775807", "9223372036854775808", "18446744073709551615",
            "18446744073709551616", "-9223372036854775808", "-9223372036854775809", "1.5", "1e3",
            "-1.25E-2", "2.5e+1", "0.1", "123456789012345678901234567890", "null", "true", "false",
            r#""""#, r#""a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00\u0000z""#, "\"é😀 mixed\"",
            " \t\r\n [ ] ", "{}", r#"{"a":{"b":[1,{"c":null}]},"d":"e"}"#, r#"{"a":1,"a":2}"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [31, 32, 255, 256, 65_535, 65_536] {
            docs.push(long(n));
        }
        for n in [15, 16, 65_535, 65_536] {
            docs.push(array(n));
            docs.push(object(n));
        }
        for doc in &docs {
            let shown = &doc[..doc.len().min(60)];
            if doc.contains(r#""a":1,"a":2"#) {
                // serde_json's map keeps the last; MessagePack keeps both, as the text does.
                assert_eq!(ours(doc).unwrap(), [0xc1, 0x82, 0xa1, b'a', 1, 0xa1, b'a', 2]);
                continue;
            }
            assert_eq!(ours(doc).unwrap(), theirs(doc), "{shown}");
        }
    }

    #[test]
    fn a_transcoder_remembering_keys_makes_what_a_fresh_one_makes() {
        let long = format!(r#"{{"{}":1}}"#, "k".repeat(40));
        let docs = [
            r#"{"ab":1,"c":{"d":2}}"#,
            r#"{"ab":1,"c":{"d":2}}"#,
            r#"{"abc":1,"c":{"d":2}}"#,
            r#"{"a":1,"c":{"d":2,"e":3}}"#,
            r#"{"a\"b":1, "c" : {"d":2}}"#,
            r#"{"a\"b":1,"c":{"d":2}}"#,
            r#"{"":1,"c":[{"d":2},{"d":3}]}"#,
            r#"{"":1,"c":[{"d":2},{"d":3}]}"#,
            &long,
            &long,
            r#"[1,{"ab":2}]"#,
            r#"{"ab":1,"c":{"d":2}}"#,
            r#"{"ab":1,"c":{"d"#,
            r#"{"ab":1,"c":{"d":2}}"#,
        ];
        let mut transcoder = Transcoder::default();
        for doc in docs {
            let mut out = Vec::new();
            let result = transcoder.from_json(doc.as_bytes(), &mut out);
            assert_eq!(result.map(|()| out), ours(doc), "{doc}");
        }
    }

    #[test]
    fn nexmark_lines_read_back_as_the_same_json() {
        let lines = [
            r#"{"event_type":0,"person":{"id":1000,"name":"Elena Fischer","emailAddress":"bkqrp@lvtuh.com","creditCard":"8346 1459 2474 4293","city":"Portland","state":"OR","dateTime":"2026-01-01 00:00:00.000","extra":"zee tbcstl"},"auction":null,"bid":null}"#,
            r#"{"event_type":2,"person":null,"auction":null,"bid":{"auction":1000,"bidder":1001,"price":1234567,"channel":"Google","url":"https://www.nexmark.com/a/b?c=\u0026d","dateTime":"2026-01-01 00:00:00.002","extra":""}}"#,
        ];
        for line in lines {
            let mut json = Vec::new();
            super::super::to_json(&ours(line).unwrap(), &mut json).unwrap();
            let back: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, serde_json::from_str::<serde_json::Value>(line).unwrap());
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses_naming_the_byte() {
        use FromJsonError::*;
        let cases = [
            ("", Expected("a value", 0)),
            ("{", Expected("a string key", 1)),
            ("{\"a\" 1}", Expected("':'", 5)),
            ("{\"a\":1 \"b\":2}", Expected("',' or '}'", 7)),
            ("[1,]", Expected("a value", 3)),
            ("[1 2]", Expected("',' or ']'", 3)),
            ("\"open", Expected("'\"'", 5)),
            ("\"long open string with no end", Expected("'\"'", 29)),
            (r#""\x""#, Escape(1)),
            (r#""\u12""#, Escape(1)),
            (r#""\ud800""#, LoneSurrogate(1)),
            (r#""\ud800\u0041""#, LoneSurrogate(1)),
            (r#""\udc00""#, LoneSurrogate(1)),
            ("\"a\u{1}b\"", ControlCharacter(2)),
            ("\"0123456789\nabc\"", ControlCharacter(11)),
            ("1e400", NumberOutOfRange(0)),
            ("-", Expected("a digit", 1)),
            ("1.", Expected("a digit", 2)),
            ("1e+", Expected("a digit", 3)),
            ("01", Trailing(1)),
            ("1 2", Trailing(2)),
            ("tru", Expected("true", 0)),
            ("nul", Expected("null", 0)),
            ("+1", Expected("a value", 0)),
        ];
        for (doc, error) in cases {
            assert!(serde_json::from_str::<serde_json::Value>(doc).is_err(), "serde_json takes {doc:?}");
            assert_eq!(ours(doc), Err(error), "{doc:?}");
        }
        assert_eq!(FromJsonError::Expected("':'", 5).to_string(), "expected ':' at byte 5");
        // Bytes that are not UTF-8: in a string, named; anywhere else, a syntax error.
        let mut out = Vec::new();
        assert_eq!(from_json(b"[\"ok\", \"caf\xc3\"]", &mut out), Err(NotUtf8(11)));
        assert_eq!(from_json(b"[\"ok\", \"a\\n\xff\"]", &mut out), Err(NotUtf8(11)));
        assert_eq!(from_json(b"[1, \xc3\xa9]", &mut out), Err(Expected("a value", 4)));
        assert_eq!(ours("[\"café\", \"a\\n€\"]"), Ok(theirs("[\"café\",\"a\\n€\"]")));
    }

    #[test]
    fn nests_as_deep_as_serde_json_and_no_deeper() {
        for depth in [126, 127, 128, 1000] {
            let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let object = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            for doc in [doc, object] {
                let serde = serde_json::from_str::<serde_json::Value>(&doc);
                assert_eq!(ours(&doc).is_ok(), serde.is_ok(), "{depth}");
                if let Ok(value) = serde {
                    assert_eq!(ours(&doc).unwrap(), theirs(&value.to_string()));
                }
            }
        }
        assert_eq!(ours(&"[".repeat(200)), Err(FromJsonError::TooDeep(127)));
    }
}
