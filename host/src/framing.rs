//! The packed batch framing of `wit/README.md`: records laid back to back in
//! one byte buffer, the unit that crosses the Wasm boundary and the channels.

use thiserror::Error;

const HAS_KEY: u8 = 1;
const HAS_TIMESTAMP: u8 = 2;
/// The record belongs to its operator's side output (a window's late records):
/// the task's output routes it only to side-output edges, clearing the bit.
const SIDE_OUTPUT: u8 = 4;
/// Flag bit 3: the record reached a two-input operator by its second input. Set (and
/// cleared) by the input gate from the channel it came on, never taken from a sender.
const SECOND_INPUT: u8 = 8;

/// A batch that does not follow the framing.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FramingError {
    /// The bytes end inside a record.
    #[error("batch ends inside a record at byte {0}")]
    Truncated(usize),
    /// Flag bits that the framing does not define.
    #[error("record at byte {offset} has unknown flags {flags:#04x}")]
    UnknownFlags {
        /// Where the record starts.
        offset: usize,
        /// The flags byte.
        flags: u8,
    },
}

/// One record, borrowed from its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The JSON of the key, set by `key_by`.
    pub key: Option<&'a [u8]>,
    /// The value: JSON, or MessagePack behind its marker (`msgpack.rs`).
    pub value: &'a [u8],
    /// Event time in milliseconds.
    pub timestamp: Option<i64>,
    /// Whether it belongs to the side output.
    pub side_output: bool,
    /// The record's own bytes inside the batch, to forward it without re-encoding.
    pub raw: &'a [u8],
}

impl Record<'_> {
    /// Whether it reached a two-input operator by its second input (flag bit 3).
    pub fn second_input(&self) -> bool {
        self.raw[0] & SECOND_INPUT != 0
    }
}

/// Iterates the records of a packed batch.
pub struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Reads the records of `bytes`.
pub fn records(bytes: &[u8]) -> Records<'_> {
    Records { bytes, pos: 0 }
}

impl<'a> Records<'a> {
    fn take(&mut self, n: usize, start: usize) -> Result<&'a [u8], FramingError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(FramingError::Truncated(start))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn take_len_prefixed(&mut self, start: usize) -> Result<&'a [u8], FramingError> {
        let len = u32::from_le_bytes(self.take(4, start)?.try_into().unwrap());
        self.take(len as usize, start)
    }

    fn next_record(&mut self) -> Result<Record<'a>, FramingError> {
        let start = self.pos;
        let flags = self.take(1, start)?[0];
        if flags & !(HAS_KEY | HAS_TIMESTAMP | SIDE_OUTPUT | SECOND_INPUT) != 0 {
            return Err(FramingError::UnknownFlags { offset: start, flags });
        }
        let timestamp = if flags & HAS_TIMESTAMP != 0 {
            Some(i64::from_le_bytes(self.take(8, start)?.try_into().unwrap()))
        } else {
            None
        };
        let key = if flags & HAS_KEY != 0 { Some(self.take_len_prefixed(start)?) } else { None };
        let value = self.take_len_prefixed(start)?;
        let side_output = flags & SIDE_OUTPUT != 0;
        Ok(Record { key, value, timestamp, side_output, raw: &self.bytes[start..self.pos] })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, FramingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let item = self.next_record();
        if item.is_err() {
            self.pos = self.bytes.len();
        }
        Some(item)
    }
}

/// How many records `bytes` holds, hopping from header to header without
/// reading keys or values: the statistics count every batch a task takes in or
/// sends. A batch that breaks the framing counts the records before the break
/// (it is refused where it is read).
pub fn count(bytes: &[u8]) -> u64 {
    let len_at = |at: usize| bytes.get(at..at.checked_add(4)?).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    let (mut pos, mut n) = (0usize, 0u64);
    while let Some(&flags) = bytes.get(pos) {
        let mut at = pos + 1 + if flags & HAS_TIMESTAMP != 0 { 8 } else { 0 };
        if flags & HAS_KEY != 0 {
            let Some(key) = len_at(at) else { break };
            at = at.saturating_add(4).saturating_add(key);
        }
        let Some(value) = len_at(at) else { break };
        let end = at.saturating_add(4).saturating_add(value);
        if end > bytes.len() {
            break;
        }
        (pos, n) = (end, n + 1);
    }
    n
}

/// Appends a record to a packed batch.
pub fn push(batch: &mut Vec<u8>, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
    push_with(batch, key, timestamp, |buf| buf.extend_from_slice(value));
}

/// Appends a record whose value `write_value` writes straight into the batch,
/// so sources encode without an intermediate buffer.
pub fn push_with(
    batch: &mut Vec<u8>,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    write_value: impl FnOnce(&mut Vec<u8>),
) {
    let flags = key.map_or(0, |_| HAS_KEY) | timestamp.map_or(0, |_| HAS_TIMESTAMP);
    batch.push(flags);
    if let Some(ts) = timestamp {
        batch.extend_from_slice(&ts.to_le_bytes());
    }
    if let Some(key) = key {
        batch.extend_from_slice(&(key.len() as u32).to_le_bytes());
        batch.extend_from_slice(key);
    }
    push_value(batch, write_value);
}

/// As [`push_with`], for a value whose writing may fail: then the batch is left
/// malformed, to be dropped with the error.
pub fn try_push_with<E>(
    batch: &mut Vec<u8>,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    write_value: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let mut result = Ok(());
    push_with(batch, key, timestamp, |buf| result = write_value(buf));
    result
}

/// Appends a value's length and the value `write_value` writes.
fn push_value(batch: &mut Vec<u8>, write_value: impl FnOnce(&mut Vec<u8>)) {
    let len_at = batch.len();
    batch.extend_from_slice(&[0; 4]);
    write_value(batch);
    let len = (batch.len() - len_at - 4) as u32;
    batch[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Marks every record of `batch` as come by the second input of a two-input operator, or
/// clears the mark. A malformed batch is marked up to where it goes wrong and left for the
/// operator to refuse.
pub fn mark_input(batch: &mut [u8], second: bool) {
    let mut pos = 0;
    while pos < batch.len() {
        let mut walk = Records { bytes: &*batch, pos };
        if walk.next_record().is_err() {
            return;
        }
        let next = walk.pos;
        batch[pos] = if second { batch[pos] | SECOND_INPUT } else { batch[pos] & !SECOND_INPUT };
        pos = next;
    }
}

/// Splits `batch` at record boundaries into parts of at most `max_bytes` (a record longer
/// than that is a part of its own). A malformed tail is one part, for its reader to refuse.
pub fn chunks(batch: &[u8], max_bytes: usize) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= batch.len() {
            return None;
        }
        let mut walk = Records { bytes: batch, pos: start };
        let mut end = start;
        while walk.pos < batch.len() {
            if walk.next_record().is_err() {
                end = batch.len();
                break;
            }
            if walk.pos - start > max_bytes && end > start {
                break;
            }
            end = walk.pos;
        }
        let part = &batch[start..end];
        start = end;
        Some(part)
    })
}

/// Appends `record` with its flags, timestamp and key, and the value `write_value` writes.
pub fn push_with_value(batch: &mut Vec<u8>, record: &Record, write_value: impl FnOnce(&mut Vec<u8>)) {
    let header = record.raw.len() - record.value.len() - 4;
    batch.extend_from_slice(&record.raw[..header]);
    push_value(batch, write_value);
}

/// Appends `record` with its side-output flag set to `side_output`, otherwise unchanged.
pub fn push_flagged(batch: &mut Vec<u8>, record: &Record, side_output: bool) {
    let flags = record.raw[0] & !SIDE_OUTPUT;
    batch.push(if side_output { flags | SIDE_OUTPUT } else { flags });
    batch.extend_from_slice(&record.raw[1..]);
}

/// Appends a record with timestamp `timestamp`, otherwise a copy of `record`.
pub fn push_with_timestamp(batch: &mut Vec<u8>, record: &Record, timestamp: i64) {
    if record.timestamp.is_some() {
        batch.push(record.raw[0]);
        batch.extend_from_slice(&timestamp.to_le_bytes());
        batch.extend_from_slice(&record.raw[9..]);
    } else {
        batch.push(record.raw[0] | HAS_TIMESTAMP);
        batch.extend_from_slice(&timestamp.to_le_bytes());
        batch.extend_from_slice(&record.raw[1..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_hops_records_and_stops_at_a_break() {
        let mut b = Vec::new();
        push(&mut b, None, b"1", None);
        push(&mut b, Some(b"\"k\""), b"[\"k\",1]", Some(-5));
        push(&mut b, None, b"", Some(7));
        assert_eq!(count(&b), 3);
        assert_eq!(count(&b[..b.len() - 1]), 2, "a cut record is not counted");
        assert_eq!(count(&[]), 0);
        let mut huge = vec![HAS_KEY];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(count(&huge), 0, "a claimed length past the end counts nothing");
    }

    #[test]
    fn round_trips_all_field_combinations() {
        let mut b = Vec::new();
        push(&mut b, None, b"1", None);
        push(&mut b, Some(b"\"k\""), b"[\"k\",1]", Some(-5));
        push(&mut b, None, b"", Some(7));
        let got: Vec<_> = records(&b).map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].key, got[0].value, got[0].timestamp), (None, &b"1"[..], None));
        assert_eq!(got[1].key, Some(&b"\"k\""[..]));
        assert_eq!(got[1].timestamp, Some(-5));
        assert_eq!(got[2].value, b"");
        let raw: Vec<u8> = got.iter().flat_map(|r| r.raw.iter().copied()).collect();
        assert_eq!(raw, b);
    }

    #[test]
    fn retimestamps_and_flags_side_output() {
        let mut b = Vec::new();
        push(&mut b, Some(b"k"), b"v", None);
        push(&mut b, None, b"w", Some(3));
        let mut out = Vec::new();
        for r in records(&b) {
            push_with_timestamp(&mut out, &r.unwrap(), 42);
        }
        let mut flagged = Vec::new();
        for r in records(&out) {
            let r = r.unwrap();
            assert_eq!(r.timestamp, Some(42));
            push_flagged(&mut flagged, &r, true);
        }
        let got: Vec<_> = records(&flagged).map(Result::unwrap).collect();
        assert!(got.iter().all(|r| r.side_output && r.timestamp == Some(42)));
        assert_eq!((got[0].key, got[0].value, got[1].value), (Some(&b"k"[..]), &b"v"[..], &b"w"[..]));
        let mut cleared = Vec::new();
        push_flagged(&mut cleared, &got[1], false);
        assert!(!records(&cleared).next().unwrap().unwrap().side_output);
    }

    #[test]
    fn rejects_truncated_and_unknown_flags() {
        let mut b = Vec::new();
        push(&mut b, Some(b"key"), b"value", None);
        for cut in 1..b.len() {
            let err = records(&b[..cut]).find_map(Result::err);
            assert_eq!(err, Some(FramingError::Truncated(0)), "cut at {cut}");
        }
        let err = records(&[0x90, 0, 0, 0, 0]).next().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "record at byte 0 has unknown flags 0x90");
    }

    #[test]
    fn chunks_cut_at_records_and_keep_every_byte() {
        let mut b = Vec::new();
        for i in 0..100u32 {
            push(&mut b, None, &vec![b'x'; (i % 7) as usize * 10], Some(i.into()));
        }
        for max in [1, 20, 64, 500, 1 << 20] {
            let parts: Vec<&[u8]> = chunks(&b, max).collect();
            assert_eq!(parts.concat(), b, "max {max}");
            for p in &parts {
                let n = records(p).count();
                assert!(records(p).all(|r| r.is_ok()));
                // Over the limit only when one record is.
                assert!(p.len() <= max || n == 1, "max {max}: a part of {} bytes holds {n} records", p.len());
            }
        }
        let mut bad = b.clone();
        bad.push(0x40);
        assert_eq!(chunks(&bad, 64).collect::<Vec<_>>().concat(), bad);
    }

    #[test]
    fn the_gate_marks_and_clears_the_second_input() {
        let mut b = Vec::new();
        push(&mut b, Some(b"k"), b"1", Some(7));
        push(&mut b, None, b"2", None);
        mark_input(&mut b, true);
        assert!(records(&b).all(|r| r.unwrap().raw[0] & SECOND_INPUT != 0));
        let values: Vec<&[u8]> = records(&b).map(|r| r.unwrap().value).collect();
        assert_eq!(values, [b"1", b"2"]);
        mark_input(&mut b, false);
        assert!(records(&b).all(|r| r.unwrap().raw[0] & SECOND_INPUT == 0));
        // A malformed tail is left for the operator to refuse.
        b.push(0x40);
        mark_input(&mut b, true);
        assert!(records(&b).last().unwrap().is_err());
    }
}
