//! Python's `marshal` format: how batches cross the boundary of a CPython component (a
//! graph whose codec is `python-marshal`; wit/README.md, Batches of CPython components).
//!
//! CPython's `marshal.loads` and `marshal.dumps` are C loops over a binary format, three to
//! seven times faster than its `json` module on records like Nexmark's, and in a component
//! they are most of what a Python operator costs. So the host does the JSON on its side:
//! before each call it turns a framed batch of JSON values into one marshal tuple, and
//! after it turns the tuple the component returned back into framed JSON, written exactly
//! as Python's `json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`
//! writes it. Values stay JSON everywhere else (state, exchange, sinks).
//!
//! What a component returns is untrusted: every length is checked against the bytes there
//! are, nesting is bounded, only what JSON can hold is accepted (with the key coercions of
//! Python's `json`), and object references, which `marshal.dumps` writes only from
//! version 3 on, are refused.

use std::io::Write;

use thiserror::Error;

use crate::framing::{self, FramingError, Record};
use crate::json::{next_escape, read_escape, write_array, write_str, Escape};
use crate::keys::KeyMap;
use crate::msgpack::{self, MsgpackError};

// Type codes of CPython's Python/marshal.c.
const NULL: u8 = b'0';
const NONE: u8 = b'N';
const FALSE: u8 = b'F';
const TRUE: u8 = b'T';
const INT: u8 = b'i';
const LONG: u8 = b'l';
const BINARY_FLOAT: u8 = b'g';
const BYTES: u8 = b's';
const INTERNED: u8 = b't';
const UNICODE: u8 = b'u';
const ASCII: u8 = b'a';
const ASCII_INTERNED: u8 = b'A';
const SHORT_ASCII: u8 = b'z';
const SHORT_ASCII_INTERNED: u8 = b'Z';
const TUPLE: u8 = b'(';
const SMALL_TUPLE: u8 = b')';
const LIST: u8 = b'[';
const DICT: u8 = b'{';
const REF: u8 = b'r';
/// Set on an object's type code to enter it in the stream's reference table.
const FLAG_REF: u8 = 0x80;

/// Containers nested deeper than this are refused both ways: the converters recurse.
const MAX_NESTING: usize = 500;
/// Python reads and writes no int of more decimal digits as text
/// (`sys.int_info.default_max_str_digits`); converting one costs the square of its length.
const MAX_INT_DIGITS: usize = 4300;
/// 15-bit digits of a `long` of [`MAX_INT_DIGITS`] decimal digits, and a little more.
const MAX_LONG_DIGITS: usize = 1000;
/// Most bytes of framed JSON one call's output may become. A component's output is at most
/// 128 MiB (more traps), but its JSON can be nine times its marshal (`None` is one byte,
/// a record of `null` nine): bounded, so that no guest makes the host allocate gigabytes.
pub const MAX_OUTPUT_BYTES: usize = 256 << 20;
/// Work on ints too large for 128 bits one batch may take, in steps over their 15-bit
/// digits: converting one between decimal and binary costs the square of its length
/// (about a million steps at 4300 digits), and it happens outside the call's deadline.
const MAX_BIG_INT_WORK: u64 = 1 << 27;
/// Distinct object keys of one batch given a reference; later ones are written in full.
const MAX_KEY_REFS: usize = 4096;

/// Why a batch could not be made into marshal for a component. The host makes these
/// batches from JSON it checked, so this is a bug upstream; it fails the task, not more.
#[derive(Debug, Error)]
pub enum ToMarshalError {
    /// The batch is not framed.
    #[error("{0}")]
    Framing(#[from] FramingError),
    /// A MessagePack value that does not decode.
    #[error("record {record}: {source}")]
    Msgpack {
        /// Its place in the batch, from 0.
        record: usize,
        /// What is wrong with it.
        source: MsgpackError,
    },
    /// A value Python's `json.loads` would not read.
    #[error("record {record}: value {why} at byte {at}")]
    NotJson {
        /// Its place in the batch, from 0.
        record: usize,
        /// What is wrong with it.
        why: JsonError,
        /// Where it went wrong.
        at: usize,
    },
}

/// Why a value's text is refused, before the byte where it went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JsonError {
    /// Not JSON.
    #[error("is not JSON")]
    Syntax,
    /// Containers nested deeper than [`MAX_NESTING`].
    #[error("nests deeper than {MAX_NESTING}")]
    TooDeep,
    /// An int of more than [`MAX_INT_DIGITS`] digits, which Python does not read either.
    #[error("holds an int of more than {MAX_INT_DIGITS} digits")]
    TooLong,
    /// The batch's large ints took more than [`MAX_BIG_INT_WORK`].
    #[error("is one large int too many for a batch")]
    TooMuchWork,
}

/// Why what a component returned is not a batch of JSON values.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FromMarshalError {
    /// The bytes end inside a value.
    #[error("output ends inside a value at byte {0}")]
    Truncated(usize),
    /// Not the `(keys, timestamps, values)` tuple of the SDK.
    #[error("output is not a (keys, timestamps, values) tuple: expected {0} at byte {1}")]
    Shape(&'static str, usize),
    /// The lists of a batch disagree.
    #[error("output has {got} {what} for {values} values")]
    Lengths {
        /// `keys` or `timestamps`.
        what: &'static str,
        /// How many that list has.
        got: u32,
        /// How many values there are.
        values: u32,
    },
    /// A type code marshal does not have, or that no SDK writes.
    #[error("output holds an unknown type code {code:#04x} at byte {at}")]
    UnknownType {
        /// The code.
        code: u8,
        /// Where.
        at: usize,
    },
    /// An object reference (marshal version 3 and later).
    #[error("output holds an object reference at byte {0} (marshal it with version 2)")]
    Reference(usize),
    /// A value of a type JSON does not have.
    #[error("cannot encode a {0} as JSON")]
    NotJson(&'static str),
    /// NaN or an infinity, which JSON does not have.
    #[error("cannot encode a float as JSON: out of range float value {0}")]
    OutOfRange(&'static str),
    /// A dict key Python's `json` does not turn into a string.
    #[error("cannot encode a dict as JSON: keys must be str, int, float, bool or None, not {0}")]
    Key(&'static str),
    /// A str that is not UTF-8: a lone surrogate, which UTF-8 cannot hold.
    #[error("cannot encode a str as JSON: not UTF-8 (a lone surrogate?) at byte {0}")]
    NotUtf8(usize),
    /// An int too long to write as text.
    #[error("cannot encode an int of more than {MAX_INT_DIGITS} digits as JSON")]
    TooLong,
    /// A timestamp beyond 64 bits.
    #[error("output has a timestamp beyond 64 bits at byte {0}")]
    Timestamp(usize),
    /// Containers nested deeper than [`MAX_NESTING`].
    #[error("output nests deeper than {MAX_NESTING}")]
    TooDeep,
    /// The output's large ints took more than [`MAX_BIG_INT_WORK`].
    #[error("output holds more large ints than one call may convert")]
    TooMuchWork,
    /// More JSON than [`MAX_OUTPUT_BYTES`].
    #[error("output is more than {} MiB as JSON", MAX_OUTPUT_BYTES >> 20)]
    TooLarge,
    /// Bytes after the tuple.
    #[error("output has trailing bytes at byte {0}")]
    Trailing(usize),
}

// --- Framed JSON to marshal ----------------------------------------------------------------

/// Appends the marshal of the framed batch `framed` as the Python SDK reads it: the tuple
/// `(keys, timestamps, values, inputs)`. `keys` (each a record's JSON key as bytes, or None)
/// is None when no record has a key; `timestamps` (ints or None) likewise; `inputs` (0, or 1
/// for a two-input operator's second) is None when every record came by the first. Values
/// are as Python's `json.loads` reads them; MessagePack ones are read as their JSON.
pub fn batch_to_marshal(framed: &[u8], out: &mut Vec<u8>) -> Result<(), ToMarshalError> {
    let (mut n, mut keys, mut times, mut second) = (0u32, false, false, false);
    for record in framing::records(framed) {
        let record = record?;
        n += 1;
        keys |= record.key.is_some();
        times |= record.timestamp.is_some();
        second |= record.second_input();
    }
    let records = || framing::records(framed).map(|r| r.expect("checked above"));
    // None, or the list of each record's `item`: the form of keys, timestamps and inputs.
    let optional_list = |out: &mut Vec<u8>, present: bool, item: fn(&mut Vec<u8>, &Record)| {
        if !present {
            out.push(NONE);
            return;
        }
        list_header(out, n);
        records().for_each(|r| item(out, &r));
    };
    tuple_header(out, 4);
    optional_list(out, keys, |out, r| match r.key {
        Some(k) => sized(out, BYTES, k),
        None => out.push(NONE),
    });
    optional_list(out, times, |out, r| match r.timestamp {
        Some(t) => int(out, t.into()),
        None => out.push(NONE),
    });
    list_header(out, n);
    let mut writer = Writer::default();
    let mut json = Vec::new();
    for (record, r) in records().enumerate() {
        let mut value = r.value;
        if msgpack::is_msgpack(value) {
            json.clear();
            msgpack::to_json(value, &mut json).map_err(|source| ToMarshalError::Msgpack { record, source })?;
            value = &json;
        }
        let mut parser = JsonParser { bytes: value, pos: 0, writer: &mut writer };
        parser.document(out).map_err(|(why, at)| ToMarshalError::NotJson { record, why, at })?;
    }
    optional_list(out, second, |out, r| int(out, r.second_input().into()));
    Ok(())
}

fn tuple_header(out: &mut Vec<u8>, len: u32) {
    out.push(TUPLE);
    out.extend_from_slice(&len.to_le_bytes());
}

fn list_header(out: &mut Vec<u8>, len: u32) {
    out.push(LIST);
    out.extend_from_slice(&len.to_le_bytes());
}

/// An object of `code` whose bytes follow their u32 length.
fn sized(out: &mut Vec<u8>, code: u8, bytes: &[u8]) {
    out.push(code);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A str: ASCII ones (most) as such, which `marshal.loads` copies rather than decodes.
fn str(out: &mut Vec<u8>, text: &[u8]) {
    match (text.is_ascii(), text.len()) {
        (true, len @ 0..=255) => {
            out.extend_from_slice(&[SHORT_ASCII, len as u8]);
            out.extend_from_slice(text);
        }
        (true, _) => sized(out, ASCII, text),
        (false, _) => sized(out, UNICODE, text),
    }
}

fn int(out: &mut Vec<u8>, n: i128) {
    if let Ok(small) = i32::try_from(n) {
        out.push(INT);
        out.extend_from_slice(&small.to_le_bytes());
        return;
    }
    // 128 bits are at most nine 15-bit digits, gathered on the stack.
    let (mut digits, mut len, mut magnitude) = ([0u16; 9], 0, n.unsigned_abs());
    while magnitude > 0 {
        digits[len] = (magnitude & 0x7fff) as u16;
        magnitude >>= 15;
        len += 1;
    }
    long(out, n < 0, &digits[..len]);
}

/// A `long` of 15-bit digits, least significant first.
fn long(out: &mut Vec<u8>, negative: bool, digits: &[u16]) {
    out.push(LONG);
    let len = digits.len() as i32;
    out.extend_from_slice(&if negative { -len } else { len }.to_le_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_le_bytes());
    }
}

/// What the values of one batch share.
#[derive(Default)]
struct Writer {
    /// Object keys written with [`FLAG_REF`], with their place in the stream's reference
    /// table: a key met again is a five-byte reference, which `marshal.loads` resolves
    /// without making a str, and the first is interned, so the job's `e["bid"]` finds it by
    /// identity. Only short ASCII keys without escapes (nearly all) are entered.
    refs: KeyMap<Vec<u8>, u32>,
    /// A string with escapes, unescaped; kept to reuse its allocation.
    unescaped: Vec<u8>,
    /// Steps of large-int conversion taken ([`MAX_BIG_INT_WORK`]).
    work: u64,
}

/// A cursor over one JSON value, writing its marshal as it reads. Errors are the byte
/// where the text stops being JSON, as Python's `json.loads` reads it.
struct JsonParser<'a> {
    bytes: &'a [u8],
    pos: usize,
    writer: &'a mut Writer,
}

type Parsed = Result<(), (JsonError, usize)>;

/// A syntax error at `at`.
fn syntax<T>(at: usize) -> Result<T, (JsonError, usize)> {
    Err((JsonError::Syntax, at))
}

impl<'a> JsonParser<'a> {
    fn document(&mut self, out: &mut Vec<u8>) -> Parsed {
        self.skip_whitespace();
        self.value(out, 0)?;
        self.skip_whitespace();
        if self.pos != self.bytes.len() {
            return syntax(self.pos);
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Parsed {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let text = self.string().or_else(syntax)?;
                str(out, self.text(text));
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(b'{' | b'[') if depth >= MAX_NESTING => Err((JsonError::TooDeep, self.pos)),
            Some(b'{') => self.object(out, depth),
            Some(b'[') => self.array(out, depth),
            Some(b'n') => self.literal("null", NONE, out),
            Some(b't') => self.literal("true", TRUE, out),
            Some(b'f') => self.literal("false", FALSE, out),
            _ => syntax(self.pos),
        }
    }

    fn literal(&mut self, word: &str, code: u8, out: &mut Vec<u8>) -> Parsed {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return syntax(self.pos);
        }
        self.pos += word.len();
        out.push(code);
        Ok(())
    }

    /// After whitespace, `close` ends the container (true), or `,` goes on (false).
    fn next_or_close(&mut self, close: u8) -> Result<bool, (JsonError, usize)> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_whitespace();
                Ok(false)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => syntax(self.pos),
        }
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Parsed {
        self.pos += 1;
        let header = out.len();
        list_header(out, 0);
        let mut len = 0u32;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.value(out, depth + 1)?;
                len += 1;
                if self.next_or_close(b']')? {
                    break;
                }
            }
        }
        out[header + 1..header + 5].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Parsed {
        self.pos += 1;
        out.push(DICT);
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return syntax(self.pos);
                }
                self.pos += 1;
                self.key(out)?;
                self.skip_whitespace();
                if self.peek() != Some(b':') {
                    return syntax(self.pos);
                }
                self.pos += 1;
                self.skip_whitespace();
                self.value(out, depth + 1)?;
                if self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        out.push(NULL);
        Ok(())
    }

    /// An object key (its opening quote read): a reference to its first occurrence in
    /// the batch, or the key itself.
    fn key(&mut self, out: &mut Vec<u8>) -> Parsed {
        let text = match self.string().or_else(syntax)? {
            Some(plain) if plain.len() <= 255 && plain.is_ascii() => plain,
            other => {
                str(out, self.text(other));
                return Ok(());
            }
        };
        let refs = &mut self.writer.refs;
        if let Some(&index) = refs.get(text) {
            out.push(REF);
            out.extend_from_slice(&index.to_le_bytes());
            return Ok(());
        }
        if refs.len() < MAX_KEY_REFS {
            let index = refs.len() as u32;
            refs.insert(text.to_vec(), index);
            out.extend_from_slice(&[SHORT_ASCII_INTERNED | FLAG_REF, text.len() as u8]);
        } else {
            out.extend_from_slice(&[SHORT_ASCII_INTERNED, text.len() as u8]);
        }
        out.extend_from_slice(text);
        Ok(())
    }

    /// The text of what [`JsonParser::string`] read.
    fn text<'s>(&'s self, string: Option<&'s [u8]>) -> &'s [u8] {
        string.unwrap_or(&self.writer.unescaped)
    }

    /// Reads a string (its opening quote read, its closing one read by this): its text if
    /// it has no escapes, else None and its text unescaped in the writer's `unescaped`.
    /// Bytes that are not UTF-8 are an error.
    fn string(&mut self) -> Result<Option<&'a [u8]>, usize> {
        let start = self.pos;
        let bytes = self.bytes;
        let end = next_escape(bytes, start).ok_or(bytes.len())?;
        if bytes[end] == b'"' {
            self.pos = end + 1;
            let run = &bytes[start..end];
            return match run.is_ascii() || std::str::from_utf8(run).is_ok() {
                true => Ok(Some(run)),
                false => Err(start),
            };
        }
        let mut text = std::mem::take(&mut self.writer.unescaped);
        text.clear();
        let mut pos = start;
        loop {
            let end = next_escape(self.bytes, pos).ok_or(self.bytes.len())?;
            let run = &self.bytes[pos..end];
            if !run.is_ascii() && std::str::from_utf8(run).is_err() {
                return Err(pos);
            }
            text.extend_from_slice(run);
            pos = end;
            match self.bytes[pos] {
                b'"' => break,
                b'\\' => pos = self.escape(pos, &mut text)?,
                _ => return Err(pos),
            }
        }
        self.pos = pos + 1;
        self.writer.unescaped = text;
        Ok(None)
    }

    /// The escape at `at` (its backslash) onto `text`; returns where it ends. A `\u`
    /// escape of a lone surrogate becomes its three bytes, as CPython keeps it in a str
    /// (marshal writes strs with `surrogatepass`).
    fn escape(&self, at: usize, text: &mut Vec<u8>) -> Result<usize, usize> {
        match read_escape(self.bytes, at).ok_or(at)? {
            Escape::Char(c, end) => {
                text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                Ok(end)
            }
            Escape::LoneSurrogate(code, end) => {
                text.extend_from_slice(&[0xe0 | (code >> 12) as u8, 0x80 | (code >> 6 & 0x3f) as u8, 0x80 | (code & 0x3f) as u8]);
                Ok(end)
            }
        }
    }

    /// A number: an int (of any size) if it has no fraction or exponent, else a float.
    fn number(&mut self, out: &mut Vec<u8>) -> Parsed {
        let start = self.pos;
        let bytes = self.bytes;
        let digits = |from: usize| from + bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut pos = start + usize::from(bytes[start] == b'-');
        let int_end = digits(pos);
        // JSON allows one leading zero only, and one digit at least.
        if int_end == pos || (bytes[pos] == b'0' && int_end > pos + 1) {
            return syntax(pos);
        }
        pos = int_end;
        let mut float = false;
        if self.bytes.get(pos) == Some(&b'.') {
            let end = digits(pos + 1);
            if end == pos + 1 {
                return syntax(end);
            }
            (pos, float) = (end, true);
        }
        if let Some(b'e' | b'E') = self.bytes.get(pos) {
            let sign = usize::from(matches!(self.bytes.get(pos + 1), Some(b'+' | b'-')));
            let end = digits(pos + 1 + sign);
            if end == pos + 1 + sign {
                return syntax(end);
            }
            (pos, float) = (end, true);
        }
        self.pos = pos;
        let text = std::str::from_utf8(&bytes[start..pos]).expect("ASCII");
        if float {
            // As Python's float(): correctly rounded, and past the range an infinity.
            let f: f64 = text.parse().or_else(|_| syntax(start))?;
            out.push(BINARY_FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
            return Ok(());
        }
        if let Ok(n) = text.parse::<i128>() {
            int(out, n);
            return Ok(());
        }
        let negative = text.starts_with('-');
        let decimal = text.trim_start_matches('-').as_bytes();
        if decimal.len() > MAX_INT_DIGITS {
            return Err((JsonError::TooLong, start));
        }
        // About a step per 15-bit digit for every four decimal ones.
        self.writer.work += (decimal.len() as u64 / 4 + 1) * (decimal.len() as u64 / 4 + 1);
        if self.writer.work > MAX_BIG_INT_WORK {
            return Err((JsonError::TooMuchWork, start));
        }
        long(out, negative, &decimal_to_long(decimal));
        Ok(())
    }
}

/// The 15-bit digits, least significant first, of a decimal text of digits.
fn decimal_to_long(decimal: &[u8]) -> Vec<u16> {
    let mut digits: Vec<u32> = Vec::new();
    for chunk in decimal.chunks(4) {
        let (mut carry, scale) = chunk.iter().fold((0u32, 1u32), |(n, s), d| (n * 10 + u32::from(d - b'0'), s * 10));
        for d in digits.iter_mut() {
            let x = *d * scale + carry;
            *d = x & 0x7fff;
            carry = x >> 15;
        }
        while carry > 0 {
            digits.push(carry & 0x7fff);
            carry >>= 15;
        }
    }
    digits.into_iter().map(|d| d as u16).collect()
}

// --- Marshal to framed JSON ----------------------------------------------------------------

/// The framed batch of JSON values of what a CPython component returned: nothing, or the
/// marshal (version 2) of the tuple `(keys, timestamps, values)`, where `keys` is None or a
/// list of each record's key (its JSON as str or bytes, or None) and `timestamps` None or
/// a list of ints or Nones, as long as `values`.
pub fn batch_from_marshal(bytes: &[u8]) -> Result<Vec<u8>, FromMarshalError> {
    let mut out = Vec::with_capacity((bytes.len() + bytes.len() / 2).min(MAX_OUTPUT_BYTES));
    if bytes.is_empty() {
        return Ok(out);
    }
    let mut r = Reader { bytes, pos: 0, work: 0 };
    let at = r.pos;
    let len = match r.byte()? {
        TUPLE => r.u32()?,
        SMALL_TUPLE => r.byte()?.into(),
        _ => return Err(FromMarshalError::Shape("a tuple", at)),
    };
    if len != 3 {
        return Err(FromMarshalError::Shape("3 items", at));
    }
    // The keys and timestamps are checked and passed over here, then read in step with the
    // values by cursors of their own: gathered first, they would take more memory than the
    // output (a key of one byte, `None`, as a slice of sixteen).
    let keys = r.skip_optional_list(|r| r.key_bytes().map(drop))?;
    let times = r.skip_optional_list(|r| r.timestamp().map(drop))?;
    let at = r.pos;
    if r.byte()? != LIST {
        return Err(FromMarshalError::Shape("a list of values", at));
    }
    let n = r.u32()?;
    for (what, list) in [("keys", keys), ("timestamps", times)] {
        if let Some((got, _)) = list.filter(|&(got, _)| got != n) {
            return Err(FromMarshalError::Lengths { what, got, values: n });
        }
    }
    let mut keys = keys.map(|(_, pos)| Reader { bytes, pos, work: 0 });
    let mut times = times.map(|(_, pos)| Reader { bytes, pos, work: 0 });
    for _ in 0..n {
        let key = keys.as_mut().map(Reader::key_bytes).transpose()?.flatten();
        let time = times.as_mut().map(Reader::timestamp).transpose()?.flatten();
        framing::try_push_with(&mut out, key, time, |buf| r.value(buf, 0))?;
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(FromMarshalError::TooLarge);
        }
    }
    if r.pos != bytes.len() {
        return Err(FromMarshalError::Trailing(r.pos));
    }
    Ok(out)
}

/// A cursor over marshal bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Steps of large-int conversion taken ([`MAX_BIG_INT_WORK`]).
    work: u64,
}

type Read<T = ()> = Result<T, FromMarshalError>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(FromMarshalError::Truncated(self.pos))?;
        let bytes = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Read<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Read<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    /// None, or a list of `item`s, each checked and passed over: None, or the list's length
    /// and where its items start.
    fn skip_optional_list(&mut self, mut item: impl FnMut(&mut Self) -> Read) -> Read<Option<(u32, usize)>> {
        let at = self.pos;
        match self.byte()? {
            NONE => Ok(None),
            LIST => {
                let n = self.u32()?;
                let start = self.pos;
                for _ in 0..n {
                    item(self)?;
                }
                Ok(Some((n, start)))
            }
            _ => Err(FromMarshalError::Shape("None or a list", at)),
        }
    }

    /// A record's key: None, or its JSON as a str or bytes.
    fn key_bytes(&mut self) -> Read<Option<&'a [u8]>> {
        let at = self.pos;
        match self.byte()? {
            NONE => Ok(None),
            BYTES => {
                let len = self.u32()? as usize;
                Ok(Some(self.take(len)?))
            }
            code => match self.string(code, at)? {
                Some(text) => Ok(Some(text)),
                None => Err(FromMarshalError::Shape("a key (None, str or bytes)", at)),
            },
        }
    }

    /// The text of a str of type `code` (read), checked to be UTF-8; None if `code` is
    /// not a str's.
    fn string(&mut self, code: u8, at: usize) -> Read<Option<&'a [u8]>> {
        let (len, ascii) = match code {
            SHORT_ASCII | SHORT_ASCII_INTERNED => (usize::from(self.byte()?), true),
            ASCII | ASCII_INTERNED => (self.u32()? as usize, true),
            UNICODE | INTERNED => (self.u32()? as usize, false),
            code if code & FLAG_REF != 0 || code == REF => return Err(FromMarshalError::Reference(at)),
            _ => return Ok(None),
        };
        let start = self.pos;
        let text = self.take(len)?;
        if !text.is_ascii() && (ascii || std::str::from_utf8(text).is_err()) {
            return Err(FromMarshalError::NotUtf8(start));
        }
        Ok(Some(text))
    }

    /// A timestamp: None, or an int of 64 bits.
    fn timestamp(&mut self) -> Read<Option<i64>> {
        let at = self.pos;
        match self.byte()? {
            NONE => Ok(None),
            INT => Ok(Some(self.i32()?.into())),
            LONG => {
                let (negative, digits) = self.long_digits()?;
                let magnitude = digits.iter().rev().try_fold(0i128, |n, &d| match n < 1 << 64 {
                    true => Some(n << 15 | i128::from(d)),
                    false => None,
                });
                let n = magnitude.map(|m| if negative { -m } else { m }).and_then(|n| i64::try_from(n).ok());
                n.map(Some).ok_or(FromMarshalError::Timestamp(at))
            }
            _ => Err(FromMarshalError::Shape("a timestamp (None or int)", at)),
        }
    }

    fn i32(&mut self) -> Read<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    /// A `long`'s sign and 15-bit digits (its type code read).
    fn long_digits(&mut self) -> Read<(bool, Vec<u16>)> {
        let size = self.i32()?;
        let n = size.unsigned_abs() as usize;
        if n > MAX_LONG_DIGITS {
            return Err(FromMarshalError::TooLong);
        }
        let at = self.pos;
        let bytes = self.take(2 * n)?;
        let digits: Vec<u16> = bytes.chunks_exact(2).map(|d| u16::from_le_bytes([d[0], d[1]])).collect();
        if digits.iter().any(|&d| d >= 1 << 15) {
            return Err(FromMarshalError::UnknownType { code: LONG, at });
        }
        Ok((size < 0, digits))
    }

    /// One value, written as its JSON.
    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Read {
        // Checked before every value, so that an array of many small ones stops at the
        // bound too; a str may grow six times as it is escaped (`\u0000`).
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(FromMarshalError::TooLarge);
        }
        let at = self.pos;
        let code = self.byte()?;
        match code {
            NONE => out.extend_from_slice(b"null"),
            TRUE => out.extend_from_slice(b"true"),
            FALSE => out.extend_from_slice(b"false"),
            INT => out.extend_from_slice(itoa::Buffer::new().format(self.i32()?).as_bytes()),
            LONG => {
                let (negative, digits) = self.long_digits()?;
                if digits.len() > 8 {
                    // Written by division, a step per digit for every four decimal ones.
                    self.work += (digits.len() * digits.len()) as u64;
                    if self.work > MAX_BIG_INT_WORK {
                        return Err(FromMarshalError::TooMuchWork);
                    }
                }
                write_long(out, negative, &digits)?;
            }
            BINARY_FLOAT => write_float(out, self.f64()?)?,
            LIST | TUPLE | SMALL_TUPLE => {
                let n = if code == SMALL_TUPLE { self.byte()?.into() } else { self.u32()? };
                if depth >= MAX_NESTING {
                    return Err(FromMarshalError::TooDeep);
                }
                write_array(out, n as usize, |out| self.value(out, depth + 1))?;
            }
            DICT => {
                if depth >= MAX_NESTING {
                    return Err(FromMarshalError::TooDeep);
                }
                out.push(b'{');
                let mut first = true;
                loop {
                    let at = self.pos;
                    let code = self.byte()?;
                    if code == NULL {
                        break;
                    }
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    self.dict_key(out, code, at)?;
                    out.push(b':');
                    self.value(out, depth + 1)?;
                }
                out.push(b'}');
            }
            code => match self.string(code, at)? {
                Some(text) => write_bounded_str(out, text)?,
                None => return Err(not_json(code, at)),
            },
        }
        Ok(())
    }

    fn f64(&mut self) -> Read<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("eight bytes")))
    }

    /// A dict key of type `code` (read) as Python's `json` writes it: a str as itself, an
    /// int, float, bool or None as its JSON text in a string.
    fn dict_key(&mut self, out: &mut Vec<u8>, code: u8, at: usize) -> Read {
        if let Some(text) = self.string(code, at)? {
            return write_bounded_str(out, text);
        }
        let text = match code {
            INT | LONG | BINARY_FLOAT | TRUE | FALSE | NONE => {
                self.pos = at;
                let mut text = Vec::new();
                self.value(&mut text, MAX_NESTING)?;
                text
            }
            code => {
                return Err(match not_json(code, at) {
                    FromMarshalError::NotJson(name) => FromMarshalError::Key(name),
                    other => other,
                })
            }
        };
        out.push(b'"');
        out.extend_from_slice(&text);
        out.push(b'"');
        Ok(())
    }
}

/// Writes the checked UTF-8 `text` as a JSON string unless the output would pass
/// [`MAX_OUTPUT_BYTES`]: its length is bounded before it is written, escapes counted.
fn write_bounded_str(out: &mut Vec<u8>, text: &[u8]) -> Read {
    // An escape takes at most six bytes for one (`\u001f`); the escapes are counted only
    // when that worst case would not fit, not for every string.
    if out.len() + 6 * text.len() + 2 > MAX_OUTPUT_BYTES {
        let escapes = text.iter().filter(|&&b| b < 0x20 || b == b'"' || b == b'\\').count();
        if out.len() + text.len() + 5 * escapes + 2 > MAX_OUTPUT_BYTES {
            return Err(FromMarshalError::TooLarge);
        }
    }
    write_str(out, std::str::from_utf8(text).expect("checked UTF-8"));
    Ok(())
}

/// The error of a type code that is no JSON value's.
fn not_json(code: u8, at: usize) -> FromMarshalError {
    let name = match code {
        BYTES => "bytes",
        LIST => "list",
        TUPLE | SMALL_TUPLE => "tuple",
        DICT => "dict",
        b'<' => "set",
        b'>' => "frozenset",
        b'x' | b'y' => "complex",
        b'c' => "code",
        b'S' => "StopIteration",
        b'.' => "ellipsis",
        b':' => "slice",
        _ => return FromMarshalError::UnknownType { code, at },
    };
    FromMarshalError::NotJson(name)
}

/// A `long` in decimal.
fn write_long(out: &mut Vec<u8>, negative: bool, digits: &[u16]) -> Read {
    if negative && digits.iter().any(|&d| d != 0) {
        out.push(b'-');
    }
    if digits.len() <= 8 {
        let n = digits.iter().rev().fold(0u128, |n, &d| n << 15 | u128::from(d));
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        return Ok(());
    }
    // Divide by 10^4 repeatedly: each remainder is four decimal digits, least first.
    let mut limbs: Vec<u32> = digits.iter().map(|&d| u32::from(d)).collect();
    let mut groups = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u32;
        for l in limbs.iter_mut().rev() {
            let x = rem << 15 | *l;
            *l = x / 10_000;
            rem = x % 10_000;
        }
        groups.push(rem);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let first = groups.pop().unwrap_or(0);
    let len = itoa::Buffer::new().format(first).len() + 4 * groups.len();
    if len > MAX_INT_DIGITS {
        return Err(FromMarshalError::TooLong);
    }
    out.extend_from_slice(itoa::Buffer::new().format(first).as_bytes());
    for g in groups.iter().rev() {
        write!(out, "{g:04}").expect("writing to a Vec");
    }
    Ok(())
}

/// A float as Python's `repr` writes it: the shortest digits that read back the same,
/// in positional notation from 1e-4 up to 1e16 (with `.0` when integral), and in
/// exponent notation (`1e+16`, `1.5e-07`) outside.
fn write_float(out: &mut Vec<u8>, f: f64) -> Read {
    if !f.is_finite() {
        return Err(FromMarshalError::OutOfRange(match f {
            f if f.is_nan() => "nan",
            f if f > 0.0 => "inf",
            _ => "-inf",
        }));
    }
    if f == 0.0 {
        out.extend_from_slice(if f.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return Ok(());
    }
    // Rust's `{:e}` is the same shortest digits: d.ddde±x.
    let mut buf = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{:e}", f.abs()).expect("a float fits 32 bytes");
    let len = cursor.position() as usize;
    let text = &buf[..len];
    let e = text.iter().position(|&b| b == b'e').expect("exponent notation");
    let exp: i32 = std::str::from_utf8(&text[e + 1..]).expect("ASCII").parse().expect("an exponent");
    let digits: Vec<u8> = text[..e].iter().copied().filter(|&b| b != b'.').collect();
    let (n, point) = (digits.len() as i32, exp + 1);
    if f < 0.0 {
        out.push(b'-');
    }
    if point <= -4 || point > 16 {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs()).expect("writing to a Vec");
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(&digits);
    } else if point >= n {
        out.extend_from_slice(&digits);
        out.extend(std::iter::repeat_n(b'0', (point - n) as usize));
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Runs a Python program (`python3`, which building the Python SDK's components needs
    /// anyway) and returns its stdout.
    fn python(program: &str, args: &[&str]) -> String {
        let out = Command::new("python3").arg("-c").arg(program).args(args).output().expect("python3 runs");
        assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Random values of every shape Python's `json` writes and reads, from a seed.
    const VALUES: &str = r#"
import random
rnd = random.Random(7)
def text():
    return "".join(rnd.choice(['a', 'Z', ' ', '"', '\\', '\n', '\x00', '\x1f', '\x7f', 'é', '中', '\U0001f600', '/'])
                   for _ in range(rnd.choice([0, 1, 5, 40, 300])))
def number():
    return rnd.choice([0, -1, 2**31 - 1, -2**31, 2**31, 2**63, -2**64 - 5, 10**30, -10**50, 3**400,
                       0.0, -0.0, 1.5, -2.25e-7, 1e16, 1e15, 123456789.125, 1e-4, 9.999e-5, 5e-324,
                       1.7976931348623157e308, 0.1 + 0.2, float(rnd.randint(-10**6, 10**6)) / 7,
                       rnd.random() * 10 ** rnd.randint(-30, 30), rnd.randint(-10**20, 10**20)])
def value(depth=0):
    c = rnd.random()
    if depth > 3 or c < 0.4:
        return rnd.choice([None, True, False, text(), number()])
    if c < 0.7:
        return [value(depth + 1) for _ in range(rnd.choice([0, 1, 3, 20]))]
    return {text()[:8]: value(depth + 1) for _ in range(rnd.choice([0, 1, 4]))}
vals = [value() for _ in range(400)]
"#;

    #[test]
    fn batches_from_python_become_the_json_python_writes() {
        let program = format!(
            "{VALUES}
import json, marshal
vals += [{{1: 'int key', True: 't', None: 'n', 2.5: 'f', -0.0: 'z', False: 0}}, (1, 'tuple'), ['x', (2, [3])]]
print(marshal.dumps((None, None, vals), 2).hex())
for v in vals:
    print(json.dumps(v, ensure_ascii=False, separators=(',', ':'), allow_nan=False))"
        );
        let out = python(&program, &[]);
        let mut lines = out.lines();
        let batch = hex::decode(lines.next().unwrap()).unwrap();
        let framed = batch_from_marshal(&batch).unwrap();
        let got: Vec<String> = framing::records(&framed).map(|r| String::from_utf8(r.unwrap().value.to_vec()).unwrap()).collect();
        let want: Vec<&str> = lines.collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w);
        }
    }

    #[test]
    fn json_reaches_python_as_json_loads_reads_it() {
        // Python writes texts (escaped and not, spaced and not); the host makes them a
        // marshal batch; Python checks it loads to what json.loads reads, type for type.
        let program = format!(
            "{VALUES}
import json
vals += [2**100, -0, {{'a': 1, 'a': 2}}]
for i, v in enumerate(vals):
    print(json.dumps(v, ensure_ascii=bool(i % 2), separators=(',', ':') if i % 3 else (' , ', ' : ')))
print(json.dumps(' \\ud800 x'))
print('{{\"a\":1,\"a\":2}}')
print(' -0 ')
print('1E400')"
        );
        let texts = python(&program, &[]);
        let mut framed = Vec::new();
        for (i, text) in texts.lines().enumerate() {
            let key = (i % 3 == 0).then_some(b"\"k\"".as_slice());
            let time = (i % 2 == 0).then_some(i as i64 * 1_000_000_007);
            framing::push(&mut framed, key, text.as_bytes(), time);
        }
        let mut batch = Vec::new();
        batch_to_marshal(&framed, &mut batch).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (texts_path, batch_path) = (dir.path().join("texts"), dir.path().join("batch"));
        std::fs::write(&texts_path, &texts).unwrap();
        std::fs::write(&batch_path, &batch).unwrap();
        let check = r#"
import json, marshal, sys
texts = open(sys.argv[1], encoding='utf-8', errors='surrogatepass').read().splitlines()
keys, ts, vals, inputs = marshal.loads(open(sys.argv[2], 'rb').read())
def typed(v):
    if isinstance(v, dict):
        return ('dict', [(k, typed(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ('list', [typed(x) for x in v])
    return (type(v).__name__, repr(v))
want = [json.loads(t) for t in texts]
assert len(vals) == len(want), (len(vals), len(want))
for i, (g, w) in enumerate(zip(vals, want)):
    assert typed(g) == typed(w), (i, texts[i], g, w)
assert keys == [b'"k"' if i % 3 == 0 else None for i in range(len(texts))], keys
assert ts == [i * 1000000007 if i % 2 == 0 else None for i in range(len(texts))], ts
assert inputs is None
print('ok', len(vals))
"#;
        let out = python(check, &[texts_path.to_str().unwrap(), batch_path.to_str().unwrap()]);
        assert!(out.starts_with("ok "), "{out}");
    }

    fn one_value(value: &[u8]) -> Vec<u8> {
        let mut batch = vec![TUPLE, 3, 0, 0, 0, NONE, NONE, LIST, 1, 0, 0, 0];
        batch.extend_from_slice(value);
        batch
    }

    fn to_json(value: &[u8]) -> Result<String, FromMarshalError> {
        let framed = batch_from_marshal(&one_value(value))?;
        Ok(String::from_utf8(framing::records(&framed).next().unwrap().unwrap().value.to_vec()).unwrap())
    }

    fn float(f: f64) -> String {
        let mut v = vec![BINARY_FLOAT];
        v.extend_from_slice(&f.to_le_bytes());
        to_json(&v).unwrap()
    }

    #[test]
    fn floats_are_written_as_python_repr_writes_them() {
        for (f, repr) in [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-7, "1.5e-07"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (123.456, "123.456"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (1e100, "1e+100"),
            (-2.5e-300, "-2.5e-300"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(float(f), repr, "{f:e}");
        }
    }

    #[test]
    fn what_json_cannot_hold_is_refused_by_name() {
        let mut nan = vec![BINARY_FLOAT];
        nan.extend_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(to_json(&nan).unwrap_err().to_string(), "cannot encode a float as JSON: out of range float value nan");
        assert_eq!(to_json(b"<\x00\x00\x00\x00").unwrap_err().to_string(), "cannot encode a set as JSON");
        assert_eq!(to_json(b"s\x01\x00\x00\x00x").unwrap_err().to_string(), "cannot encode a bytes as JSON");
        assert_eq!(
            to_json(b"{(\x00\x00\x00\x00N0").unwrap_err().to_string(),
            "cannot encode a dict as JSON: keys must be str, int, float, bool or None, not tuple"
        );
        // Version 3 and later share objects by reference; marshal them with version 2.
        assert_eq!(to_json(b"\xfa\x01x").unwrap_err(), FromMarshalError::Reference(12));
        assert_eq!(to_json(b"r\x00\x00\x00\x00").unwrap_err(), FromMarshalError::Reference(12));
        // A lone surrogate, which a str may hold and UTF-8 may not.
        assert_eq!(to_json(b"u\x03\x00\x00\x00\xed\xa0\x80").unwrap_err(), FromMarshalError::NotUtf8(17));
        assert_eq!(to_json(b"z\x01\xff").unwrap_err(), FromMarshalError::NotUtf8(14));
    }

    #[test]
    fn malformed_output_is_an_error_not_a_panic_or_an_allocation() {
        // A list that claims four billion items in a few bytes.
        assert_eq!(batch_from_marshal(b"(\x03\x00\x00\x00[\xff\xff\xff\xffNNN").unwrap_err(), FromMarshalError::Truncated(13));
        assert_eq!(to_json(b"[\xff\xff\xff\xff").unwrap_err(), FromMarshalError::Truncated(17));
        assert_eq!(batch_from_marshal(b"[\x00\x00\x00\x00").unwrap_err(), FromMarshalError::Shape("a tuple", 0));
        assert_eq!(batch_from_marshal(b"(\x03\x00\x00\x00NN[\x01\x00\x00\x00NN").unwrap_err(), FromMarshalError::Trailing(13));
        assert_eq!(
            batch_from_marshal(b"(\x03\x00\x00\x00[\x01\x00\x00\x00NN[\x02\x00\x00\x00NN").unwrap_err(),
            FromMarshalError::Lengths { what: "keys", got: 1, values: 2 }
        );
        assert_eq!(
            batch_from_marshal(b"(\x03\x00\x00\x00N[\x01\x00\x00\x00l\x05\x00\x00\x00\xff\x7f\xff\x7f\xff\x7f\xff\x7f\xff\x7f[\x01\x00\x00\x00N").unwrap_err(),
            FromMarshalError::Timestamp(11)
        );
        // Nine bytes of JSON for each byte of output, up to a bound.
        let nones = 56 << 20;
        let big: Vec<u8> = [b"(\x03\x00\x00\x00NN[".as_slice(), &(nones as u32).to_le_bytes()].into_iter().flatten().copied().chain(std::iter::repeat_n(NONE, nones)).collect();
        assert!(matches!(batch_from_marshal(&big), Err(FromMarshalError::TooLarge)));
        assert!(matches!(to_json(&big[7..]), Err(FromMarshalError::TooLarge)), "in one value");
        // Ints of 4300 digits cost the host the square of their length: a call may write
        // a few hundred of them, not tens of thousands.
        let big_int: Vec<u8> = [LONG].into_iter().chain(950i32.to_le_bytes()).chain(std::iter::repeat_n([0xff, 0x7f], 950).flatten()).collect();
        let ints: Vec<u8> = [LIST].into_iter().chain(1000u32.to_le_bytes()).chain(std::iter::repeat_n(big_int.iter().copied(), 1000).flatten()).collect();
        assert_eq!(to_json(&ints).unwrap_err(), FromMarshalError::TooMuchWork);
        assert!(to_json(&big_int).unwrap().len() > 4000);
        // A dict key is bounded as a value is.
        let key: Vec<u8> = [DICT, UNICODE].into_iter().chain(((50 << 20) as u32).to_le_bytes()).chain(std::iter::repeat_n(0, 50 << 20)).chain([NONE, NULL]).collect();
        assert!(matches!(to_json(&key), Err(FromMarshalError::TooLarge)));
        let deep: Vec<u8> = std::iter::repeat_n(*b"[\x01\x00\x00\x00", 600).flatten().chain([NONE]).collect();
        assert_eq!(to_json(&deep).unwrap_err(), FromMarshalError::TooDeep);
        let long: Vec<u8> = [LONG].into_iter().chain(5000i32.to_le_bytes()).chain([0x01; 10_000]).collect();
        assert_eq!(to_json(&long).unwrap_err(), FromMarshalError::TooLong);
        // Every prefix of a good batch is refused cleanly.
        let good = b"(\x03\x00\x00\x00[\x01\x00\x00\x00z\x03\"k\"[\x01\x00\x00\x00i\x05\x00\x00\x00[\x01\x00\x00\x00{Z\x01au\x02\x00\x00\x00\xc3\xa90";
        let framed = batch_from_marshal(good).unwrap();
        let record = framing::records(&framed).next().unwrap().unwrap();
        assert_eq!((record.key, record.timestamp, record.value), (Some(b"\"k\"".as_slice()), Some(5), "{\"a\":\"é\"}".as_bytes()));
        for end in 1..good.len() {
            assert!(batch_from_marshal(&good[..end]).is_err(), "prefix of {end} bytes");
        }
    }

    #[test]
    fn messagepack_values_reach_python_as_their_json() {
        let mut packed = Vec::new();
        crate::msgpack::from_json(br#"{"a":[1,"x"]}"#, &mut packed).unwrap();
        let mut framed = Vec::new();
        framing::push(&mut framed, None, &packed, None);
        framing::push(&mut framed, None, br#"{"a":[1,"x"]}"#, None);
        let mut batch = Vec::new();
        batch_to_marshal(&framed, &mut batch).unwrap();
        // The second record's key is a reference to the first's.
        let dict = b"{\xda\x01a[\x02\x00\x00\x00i\x01\x00\x00\x00z\x01x0";
        let again = b"{r\x00\x00\x00\x00[\x02\x00\x00\x00i\x01\x00\x00\x00z\x01x0";
        let want = [b"(\x04\x00\x00\x00NN[\x02\x00\x00\x00".as_slice(), dict, again, b"N"].concat();
        assert_eq!(batch, want);
        let mut bad = Vec::new();
        framing::push(&mut bad, None, b"{\"a\" 1}", None);
        let err = batch_to_marshal(&bad, &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "record 0: value is not JSON at byte 5");
        for (text, message) in [
            ("[".repeat(501), "record 0: value nests deeper than 500 at byte 500"),
            ("9".repeat(4301), "record 0: value holds an int of more than 4300 digits at byte 0"),
        ] {
            let mut framed = Vec::new();
            framing::push(&mut framed, None, text.as_bytes(), None);
            assert_eq!(batch_to_marshal(&framed, &mut Vec::new()).unwrap_err().to_string(), message);
        }
        let mut ints = Vec::new();
        for _ in 0..1000 {
            framing::push(&mut ints, None, "9".repeat(4300).as_bytes(), None);
        }
        let err = batch_to_marshal(&ints, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.ends_with("value is one large int too many for a batch at byte 0"), "{err}");
    }
}
